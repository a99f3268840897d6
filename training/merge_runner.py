"""The worker side of a merge: stage the adapter's files from the artifact store (each checked against its sha256),
fork the merge child (``training.merge_child``) from the training fork server, then write the model card, hash
every file and put them in the artifact store under ``merged/<project>/adapter-<id>/``. The work directory is
removed when it ends; a crash, an exit code or a refused base model becomes the merge's failure reason."""

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File

from core.errors import DomainError
from core.hashing import file_sha256
from core.storage import artifact_storage
from training import launch
from training.children import ForkedChild, fork_context
from training.environment import library_versions
from training.merging import merged_model_beat, merged_model_begin, merged_model_finish
from training.models import MergedModel, MergedState
from training.runner import base_model_check_here, stage_trained, worker_facts
from training.watching import HeartbeatThread, supervise

logger = logging.getLogger(__name__)

CARD = "README.md"
WORK_PREFIX = "merge-"


def remove_work_of_ended_merges() -> list[str]:
    """Delete what merges left in the work directory when their worker was killed with its child; those of
    running merges are kept, as other workers may share the work directory."""
    work = Path(settings.TRAINING_WORK_DIR)
    found = {path.name: path for path in work.glob(f"{WORK_PREFIX}*") if path.is_dir()}
    ids = {name: int(name[len(WORK_PREFIX) :]) for name in found if name[len(WORK_PREFIX) :].isdigit()}
    running = set(
        MergedModel.objects.filter(pk__in=ids.values(), state=MergedState.RUNNING).values_list("pk", flat=True)
    )
    removed = [name for name, pk in ids.items() if pk not in running]
    for name in removed:
        shutil.rmtree(found[name], ignore_errors=True)
    return removed


def run_merge(merged_id: int, worker: str) -> str:
    """Merge one adapter on this worker; returns the final state. Never raises for a failed merge."""
    merged = merged_model_begin(merged_id=merged_id, worker=worker)
    if merged is None:
        return "skipped"
    work = Path(settings.TRAINING_WORK_DIR) / f"{WORK_PREFIX}{merged.pk}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    beat = HeartbeatThread(merged.pk, beat=lambda pk: merged_model_beat(merged_id=pk))
    beat.start()
    try:
        versions = worker_facts()["versions"]
        adapter = merged.adapter
        if adapter.sha256 != merged.adapter_sha256:
            raise DomainError(f"{adapter.name} no longer has the sha256 the merge was asked for; not merging.")
        base_model_check_here(adapter.base_model)
        adapter_dir = stage_trained(adapter, work / "adapter")
        out = work / "merged"
        spec = {"model_dir": adapter.base_model.path, "adapter_dir": str(adapter_dir), "out_dir": str(out)}
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True))
        process = fork_context().Process(target=launch.merge, args=(str(spec_path),), name=work.name)
        process.start()
        code, _ = supervise(ForkedChild(process=process), lambda **_: False, f"merge #{merged.pk}")
        if code != 0 or not (work / "result.json").exists():
            raise DomainError(_failure(work, code))
        result = json.loads((work / "result.json").read_text())
        (out / CARD).write_text(model_card(merged, _hashes(out), result, versions), encoding="utf-8")
        prefix, files = _store(merged, out)
        merged_model_finish(merged_id=merged.pk, storage_prefix=prefix, files=files, library_versions=versions)
    except Exception as exc:
        logger.exception("merge #%s failed in its supervisor", merged_id)
        message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        merged_model_finish(merged_id=merged.pk, reason=message, library_versions=library_versions())
    finally:
        beat.stop()
        shutil.rmtree(work, ignore_errors=True)
    merged.refresh_from_db(fields=["state"])
    return str(merged.state)


def _failure(work: Path, code: int | None) -> str:
    """Why the child failed: its own message, else how it ended (a kill by the kernel is most often memory)."""
    try:
        return f"The merge failed: {json.loads((work / 'error.json').read_text())['message']}"
    except (OSError, ValueError, KeyError):
        if code is not None and code < 0:
            return f"The merge process was killed by signal {-code} (out of memory is the usual cause)."
        return f"The merge process ended with exit code {code} without a result."


def _hashes(directory: Path) -> list[dict[str, Any]]:
    return [
        {"path": str(path.relative_to(directory)), "size_bytes": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    ]


def model_card(
    merged: MergedModel, files: list[dict[str, Any]], result: dict[str, Any], versions: dict[str, str]
) -> str:
    """The README.md that travels with the merged weights: what was merged into what, and every file's sha256."""
    adapter = merged.adapter
    release = adapter.release
    rows = "\n".join(f"| `{f['path']}` | {f['size_bytes']} | `{f['sha256']}` |" for f in files)
    libraries = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    return f"""# {adapter.name}, merged into {adapter.base_model.name}

The LoRA adapter #{adapter.pk} of project "{adapter.project.name}", merged into its base model with PEFT's
`merge_and_unload()` by Enclave on {merged.worker}. Load it as any local model:
`AutoModelForCausalLM.from_pretrained(DIRECTORY, local_files_only=True)`.

| What | Value |
| --- | --- |
| Release | {release.name} v{release.version} |
| Release hash | `{adapter.release_hash}` |
| Base model | {adapter.base_model.name} ({adapter.base_model.architecture}) |
| Base model hash | `{adapter.base_model_hash}` |
| Config hash | `{adapter.config_hash}` |
| Adapter sha256 (adapter_model.safetensors) | `{adapter.sha256}` |
| Training job | #{adapter.job_id} ({adapter.job.kind}), seed {adapter.seed} |
| Weights dtype | {result.get("dtype", "")} |
| Libraries | {libraries} |

## Files

| File | Bytes | sha256 |
| --- | ---: | --- |
{rows}
"""


def _store(merged: MergedModel, directory: Path) -> tuple[str, list[dict[str, Any]]]:
    storage = artifact_storage()
    prefix = f"merged/{merged.adapter.project_id}/adapter-{merged.adapter_id}"
    files = _hashes(directory)
    for entry in files:
        name = f"{prefix}/{entry['path']}"
        if storage.exists(name):
            storage.delete(name)
        with (directory / entry["path"]).open("rb") as stream:
            saved = storage.save(name, File(stream, name=os.path.basename(entry["path"])))
        if saved != name:
            raise RuntimeError(f"The artifact store saved {name} as {saved}.")
    return prefix, files

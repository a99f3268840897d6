"""The worker side of a generation run, as ``training.runner`` is a training job's: prepare the work directory
(the prompts, and the adapter's files from the artifact store, checked against their sha256), fork the
generating child from the training fork server (``evaluation.generate``), watch it, and record what happened.

Every answer passes the project's PII scrubber here, in the supervisor, before it is stored: the raw text
exists only in the run's scratch directory on this worker, which is removed when the run ends."""

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from annotation.importing import project_scrubber
from annotation.pii import Scrubber
from annotation.selectors import annotation_settings
from core.errors import DomainError
from core.hashing import file_sha256
from core.storage import artifact_storage
from core.version import code_version
from evaluation import launch, services
from evaluation.models import GenerationRun
from training.children import Child, ForkedChild, fork_context
from training.environment import library_versions
from training.models import Adapter, BaseModelState, JobState
from training.runner import base_model_check_here, worker_facts
from training.watching import HeartbeatThread, Tail, exit_reason, first_error_line, supervise

logger = logging.getLogger(__name__)

WORK_PREFIX = "generation-"


def remove_work_of_ended_runs() -> list[str]:
    """Delete the work directories of generation runs that are no longer active (a worker killed with its
    child); those of active runs are kept, as other workers may share the work directory."""
    work = Path(settings.TRAINING_WORK_DIR)
    found = {path.name: path for path in work.glob(f"{WORK_PREFIX}*") if path.is_dir()}
    ids = {name: int(name[len(WORK_PREFIX) :]) for name in found if name[len(WORK_PREFIX) :].isdigit()}
    active = set(
        GenerationRun.objects.filter(pk__in=ids.values(), state__in=(JobState.QUEUED, JobState.RUNNING)).values_list(
            "pk", flat=True
        )
    )
    removed = [name for name, pk in ids.items() if pk not in active]
    for name in removed:
        shutil.rmtree(found[name], ignore_errors=True)
    return removed


def stage_adapter(adapter: Adapter, target: Path) -> Path:
    """Copy an adapter's files from the artifact store into ``target``, each checked against its sha256."""
    storage = artifact_storage()
    target.mkdir(parents=True, exist_ok=True)
    for entry in adapter.files:
        path = target / entry["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(f"{adapter.storage_prefix}/{entry['path']}", "rb") as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
        if file_sha256(path) != entry["sha256"]:
            raise DomainError(f"{entry['path']} of {adapter} does not match its sha256 in the lineage; not generating.")
    return target


@dataclass
class GenerationWatch:
    """The child's events and outputs, pumped into the database: each new answer scrubbed, then stored."""

    run: GenerationRun
    scrubber: Scrubber
    events: Tail
    outputs: Tail
    log: Tail
    prompts_done: int | None = None
    error: str = ""
    last_lines: list[str] = field(default_factory=list)
    first_error: str = ""

    def pump(self, child_pid: int | None = None, final: bool = False) -> bool:
        """Move new answers (scrubbed) and progress to the database; returns whether to stop the child."""
        phase = None
        for line in self.events.read(final):  # events first: a batch's answers are written before its event
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "batch":
                self.prompts_done = int(event["prompts_done"])
            elif kind == "phase":
                phase = str(event["phase"])
            elif kind == "error":
                self.error = str(event["message"])
        candidates = [self.scrubbed(json.loads(line)) for line in self.outputs.read(final)]
        lines = [line for line in self.log.read(final) if line.strip()]
        self.last_lines = (self.last_lines + lines)[-20:]
        self.first_error = self.first_error or first_error_line(lines)
        return services.generation_run_progress(
            run=self.run, candidates=candidates, prompts_done=self.prompts_done, phase=phase, child_pid=child_pid
        )

    def scrubbed(self, answer: dict[str, Any]) -> dict[str, Any]:
        # A model can emit any byte, NUL too, which PostgreSQL's text refuses.
        result = self.scrubber.scrub([str(answer["text"]).replace("\x00", "\ufffd")])
        return {**answer, "text": result.texts[0], "scrub_counts": result.counts}


def run_generation(run_id: int, worker: str) -> str:
    """Run one generation run to its end on this worker; returns the final state. Never raises for a failure."""
    try:
        facts = worker_facts()
    except Exception as exc:
        facts, broken = {"versions": library_versions(), "hardware": {}}, f"This worker cannot generate: {exc}"
    else:
        broken = ""
    environment = {"versions": facts["versions"], "hardware": facts["hardware"], "code_version": code_version()}
    run = services.generation_run_begin(run_id=run_id, worker=worker, environment=environment)
    if run is None:
        return "skipped"
    if broken:
        services.generation_run_finish(run=run, state=JobState.FAILED, reason=broken)
        return JobState.FAILED
    work = Path(settings.TRAINING_WORK_DIR) / run.work_name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    beat = HeartbeatThread(run.pk, beat=lambda pk: services.generation_run_beat(run_id=pk))
    beat.start()
    try:
        model = run.base_model
        if model.state != BaseModelState.READY or model.content_hash != run.base_model_hash:
            raise DomainError(
                f"The base model {model} changed after the run was defined ({model.get_state_display().lower()}, "
                f"hash {model.content_hash[:12]}…, the run's {run.base_model_hash[:12]}…); not generating."
            )
        base_model_check_here(model)
        adapter_dir = None
        if run.adapter is not None:
            if run.adapter.sha256 != run.adapter_sha256:
                raise DomainError(f"{run.adapter} no longer has the sha256 the run was defined with; not generating.")
            adapter_dir = str(stage_adapter(run.adapter, work / "adapter"))
        with (work / "prompts.jsonl").open("w", encoding="utf-8") as stream:
            for index, messages in run.prompts.order_by("index").values_list("index", "messages"):
                stream.write(json.dumps({"index": index, "messages": messages}) + "\n")
        spec = {
            "run_id": run.pk,
            "model_dir": run.base_model.path,
            "adapter_dir": adapter_dir,
            "decoding": run.decoding,
            "work_dir": str(work),
            "supervisor_pid": os.getpid(),
        }
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True))
        watch = GenerationWatch(
            run=run,
            scrubber=project_scrubber(annotation_settings(run.project), replace=True),
            events=Tail(work / "events.jsonl"),
            outputs=Tail(work / "outputs.jsonl"),
            log=Tail(work / "output.log"),
        )
        process = fork_context().Process(target=launch.child, args=(str(spec_path),), name=work.name)
        process.start()
        state, reason = _supervise(ForkedChild(process=process), watch)
        result = json.loads((work / "result.json").read_text()) if state == JobState.SUCCEEDED else {}
        services.generation_run_finish(run=run, state=state, reason=reason, result=result)
    except Exception as exc:
        logger.exception("generation run %s failed in its supervisor", run_id)
        message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        services.generation_run_finish(run=run, state=JobState.FAILED, reason=message)
    finally:
        beat.stop()
        shutil.rmtree(work, ignore_errors=True)
    run.refresh_from_db(fields=["state"])
    return str(run.state)


def _supervise(child: Child, watch: GenerationWatch) -> tuple[str, str]:
    """Watch the child to its end (``training.watching.supervise``) and say how it ended."""
    code, cancelled = supervise(child, watch.pump, f"run {watch.run.pk}")
    if cancelled:
        run = GenerationRun.objects.select_related("cancel_requested_by").get(pk=watch.run.pk)
        if run.cancel_requested_by is None:
            return JobState.FAILED, "The run ended while it generated; the generating process was stopped."
        return JobState.CANCELLED, f"Cancelled by {run.cancel_requested_by.username} after {run.prompts_done} prompts."
    if code == 0 and (Path(watch.events.path).parent / "result.json").exists():
        return JobState.SUCCEEDED, ""
    return JobState.FAILED, exit_reason(code, watch, what="generating")

"""Answers scored per second by the scoring run path against a bare batched forward pass with the same reward
model, answers and batch size, in one run.

The run path is the production one from the worker's side: ``evaluation.scoring_runner.run_scoring`` (the code
the Celery task runs) stages the reward model's files from the artifact store (sha256 checked), writes the
answers to the run's work directory, forks the scoring child from the training fork server, and while the child
scores, reads its scores back and stores each as a ``RewardScore`` row. Only the queue is bypassed: the
generation run, its candidates and the scoring run are written directly. The reward model is the tiny Llama's
sequence-classification form with a LoRA adapter and score head (untrained: the speed does not depend on what
it learnt). The bare script (``bench/_bare_score.py``) loads the same files with transformers and PEFT and runs
the same batches. Both use one torch thread; runs alternate, and the table gives the median answers/s of the
scoring loop (tokenising, padding, forward) and of the forward passes alone.

    .venv/bin/python bench/reward_scoring.py              (SQLite file and the filesystem store, ~1 minute)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave .venv/bin/python bench/reward_scoring.py
    ... bench/reward_scoring.py --runs 5 --prompts 256 --hidden 256 --batch 16
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enclave.settings.local")
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-scoring-"))
os.environ["OMP_NUM_THREADS"] = "1"

import django

django.setup()

from _common import ROOT, print_columns, throwaway_database  # noqa: E402
from django.core.files import File  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Project, User  # noqa: E402
from core.hashing import file_sha256  # noqa: E402
from core.storage import artifact_storage  # noqa: E402
from evaluation import scoring_runner  # noqa: E402
from evaluation.models import Candidate, GenerationPrompt, GenerationRun, RewardScore, ScoringRun  # noqa: E402
from releases import splits  # noqa: E402
from releases.models import Release  # noqa: E402
from training import services as training_services  # noqa: E402
from training.inspection import tokenizer_hash  # noqa: E402
from training.models import BaseModel, RewardModel, TrainingJob  # noqa: E402
from training.runner import worker_facts  # noqa: E402
from training.tiny_model import _corpus, make_tiny_model  # noqa: E402


def _reward_model(project: Project, user: User, model: BaseModel, directory: Path) -> RewardModel:
    """An (untrained) reward model of ``model`` in the artifact store, registered as a reward job leaves one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model.path, local_files_only=True)
    classifier = AutoModelForSequenceClassification.from_pretrained(model.path, num_labels=1, local_files_only=True)
    classifier.config.pad_token_id = tokenizer.pad_token_id
    lora = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules="all-linear")
    get_peft_model(classifier, lora).save_pretrained(str(directory), safe_serialization=True)
    release = Release.objects.create(
        project=project, kind="preference", name="bench", version=1, recipe={}, state="built", hash="e" * 64,
        created_by=user,
    )  # fmt: skip
    now = timezone.now()
    job = TrainingJob.objects.create(
        project=project, kind="reward", release=release, base_model=model, config={}, config_hash="0" * 64,
        state="succeeded", created_by=user, started_at=now, finished_at=now,
    )  # fmt: skip
    storage, prefix = artifact_storage(), f"reward-models/{project.pk}/job-{job.pk}"
    files: list[dict[str, Any]] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = str(path.relative_to(directory))
        with path.open("rb") as stream:
            storage.save(f"{prefix}/{relative}", File(stream, name=relative))
        files.append({"path": relative, "size_bytes": path.stat().st_size, "sha256": file_sha256(path)})
    weights = next(f for f in files if f["path"] == "adapter_model.safetensors")
    return RewardModel.objects.create(
        job=job, project=project, release=release, base_model=model, started_by=user,
        tokenizer_hash=tokenizer_hash(model.files), name="bench reward model", storage_prefix=prefix,
        sha256=weights["sha256"], size_bytes=sum(f["size_bytes"] for f in files), files=files,
        release_hash=release.hash, base_model_hash=model.content_hash, config={}, config_hash="0" * 64, seed=0,
        code_version="bench", started_at=now, finished_at=now,
    )  # fmt: skip


def _generation_run(project: Project, user: User, model: BaseModel, conversations: list[Any]) -> GenerationRun:
    """A succeeded generation run whose candidates are the conversations' last messages (one a prompt)."""
    run = GenerationRun.objects.create(
        project=project, base_model=model, base_model_hash=model.content_hash, source="upload", decoding={},
        prompt_count=len(conversations), created_by=user, state="succeeded",
    )  # fmt: skip
    for n, conversation in enumerate(conversations):
        prompt_messages = conversation[:-1]
        prompt = GenerationPrompt.objects.create(
            run=run, index=n, messages=prompt_messages,
            digest=splits.digest(splits.normalise(splits.prompt_text(prompt_messages))),
        )  # fmt: skip
        Candidate.objects.create(
            run=run, prompt=prompt, sample=0, text=conversation[-1]["content"], seed=n, prompt_tokens=0,
            completion_tokens=0, seconds=0.0, finish_reason="stop",
        )  # fmt: skip
    return run


def _run_path(project: Project, user: User, reward_model: RewardModel, run: GenerationRun, batch: int) -> dict:
    RewardScore.objects.filter(reward_model=reward_model).delete()  # each run scores every answer again
    scoring = ScoringRun.objects.create(
        project=project, reward_model=reward_model, reward_model_sha256=reward_model.sha256,
        scope="generation_run", generation_run=run, batch_size=batch, created_by=user,
    )  # fmt: skip
    started = time.monotonic()
    state = scoring_runner.run_scoring(scoring.pk, worker="bench")
    wall = time.monotonic() - started
    scoring.refresh_from_db()
    if state != "succeeded":
        raise SystemExit(f"the scoring run failed: {scoring.failure_reason}")
    result = scoring.environment["result"]
    return {"answers": scoring.done, "loop_seconds": result["loop_seconds"],
            "forward_seconds": result["forward_seconds"], "wall": wall,
            "stored": RewardScore.objects.filter(run=scoring).count()}  # fmt: skip


def _bare(model_dir: Path, adapter_dir: Path, conversations_path: Path, batch: int) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(ROOT / "bench" / "_bare_score.py"), str(model_dir), str(adapter_dir),
         str(conversations_path), str(batch)],
        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each path, alternating (median reported)")
    parser.add_argument("--prompts", type=int, default=256, help="answers to score (one a prompt)")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the tiny Llama")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="enclave-bench-score-"))
    model_dir = make_tiny_model(work / "model", hidden_size=args.hidden)
    texts = list(_corpus(args.prompts * 2, seed=7))
    conversations = [
        [{"role": "user", "content": texts[2 * n]}, {"role": "assistant", "content": texts[2 * n + 1]}]
        for n in range(args.prompts)
    ]
    conversations_path = work / "conversations.json"
    conversations_path.write_text(json.dumps(conversations))
    with throwaway_database() as database:
        user = User.objects.create(username="bench-admin", is_staff=True)
        project = Project.objects.create(name="bench scoring")
        model = BaseModel.objects.create(name=f"tiny-{args.hidden}", path=str(model_dir), registered_by=user)
        validated = training_services.base_model_validate(model_id=model.pk)
        assert validated is not None
        adapter_dir = work / "reward-model"
        reward_model = _reward_model(project, user, validated, adapter_dir)
        generation = _generation_run(project, user, validated, conversations)
        worker_facts()  # warm the fork server once, as a worker does when it starts
        runs, bares = [], []
        for _ in range(args.runs):
            runs.append(_run_path(project, user, reward_model, generation, args.batch))
            bares.append(_bare(model_dir, adapter_dir, conversations_path, args.batch))

    def rate(results: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r["answers"] / r[key] for r in results)

    loop_run, loop_bare = rate(runs, "loop_seconds"), rate(bares, "loop_seconds")
    fwd_run, fwd_bare = rate(runs, "forward_seconds"), rate(bares, "forward_seconds")
    slower = 100 * (loop_bare - loop_run) / loop_bare
    rows = [
        ["answers/s of the scoring loop, run path", f"{loop_run:,.0f}"],
        ["answers/s of the scoring loop, bare batched forward", f"{loop_bare:,.0f}"],
        ["run path slower by (target ≤ 5 %)", f"{slower:+.1f} % ({'met' if slower <= 5 else 'missed'})"],
        ["answers/s inside the forward passes, run path", f"{fwd_run:,.0f}"],
        ["answers/s inside the forward passes, bare", f"{fwd_bare:,.0f}"],
        ["answers a run (same in both paths)", f"{runs[0]['answers']:,} / {bares[0]['answers']:,}"],
        ["scores stored a run", f"{runs[0]['stored']:,}"],
        ["wall time of the whole run path (stage, fork, load, score, store)",
         f"{statistics.median(r['wall'] for r in runs):.2f} s"],
    ]  # fmt: skip
    print_columns(
        f"Scoring runs on {database}: run path vs bare batched forward, {args.prompts} answers, batch {args.batch}, "
        f"median of {args.runs} runs (tiny Llama h={args.hidden} with a LoRA score head, one torch thread)",
        ["measure", "result"],
        rows,
    )


if __name__ == "__main__":
    main()

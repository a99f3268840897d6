"""Seconds per training step of the job path against a bare TRL script with the same model, data and config,
in one run (DPO, SFT and reward-model jobs); and the DPO learning check's held-out accuracy before and after,
with its wall time, and the reward model's held-out pair accuracy before and after.

The job path is the production one from the worker's side: ``training.runner.run_job`` (the code the Celery
task runs) stages the release's files from the artifact store, forks the training child from the fork
server, streams every logged step through ``events.jsonl`` into the database while it trains, and registers
the adapter. Only the queue is bypassed: the release (the learning check's 256 training and 64 held-out
pairs, or the same conversations as SFT rows) and the job rows are created directly. The bare script
(``bench/_bare_trl.py``) trains the same tiny Llama (hidden size 64, ~140k parameters, random weights, a
locally trained tokenizer) with TRL's trainer in a plain process. Both run with one torch thread and log
every step; runs alternate, and the table gives the median seconds per step of ``trainer.train()``.

    .venv/bin/python bench/training_jobs.py              (SQLite file and the filesystem store, ~3 minutes)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave .venv/bin/python bench/training_jobs.py
    ... bench/training_jobs.py --runs 5 --steps 100
    ... bench/training_jobs.py --kinds reward          (the reward-model job alone, ~1 minute)
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
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-training-"))
os.environ["OMP_NUM_THREADS"] = "1"

import django

django.setup()

from _common import ROOT, print_columns, throwaway_database  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402

from accounts.models import Project, User  # noqa: E402
from core.hashing import file_sha256  # noqa: E402
from core.storage import artifact_storage  # noqa: E402
from releases.models import Release, ReleaseFile  # noqa: E402
from training import learning_check, runner, services  # noqa: E402
from training.config import JobConfig  # noqa: E402
from training.models import Adapter, BaseModel, RewardModel, TrainingJob  # noqa: E402
from training.tiny_model import make_tiny_model  # noqa: E402

FILES = {"dpo": "trl_preference", "sft": "trl_sft", "reward": "trl_preference"}


def _sft_rows(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"messages": pair["prompt"] + pair["chosen"]} for pair in pairs]


def _release(
    project: Project, user: User, kind: str, train: list[dict[str, Any]], held_out: list[dict[str, Any]]
) -> Release:
    release = Release.objects.create(
        project=project, kind="sft" if kind == "sft" else "preference", name=f"bench-{kind}", version=1,
        recipe={"kind": kind}, state="built", hash="e" * 64, created_by=user,
    )  # fmt: skip
    storage = artifact_storage()
    for split, rows in (("train", train), ("eval", held_out)):
        body = "".join(json.dumps(row) + "\n" for row in rows).encode()
        path = f"{FILES[kind]}/{split}.jsonl"
        name = storage.save(f"{release.storage_prefix}/{path}", ContentFile(body))
        local = Path(tempfile.mkstemp()[1])
        local.write_bytes(body)
        ReleaseFile.objects.create(
            release=release, path=path, fmt=FILES[kind], split=split, rows=len(rows), size_bytes=len(body),
            sha256=file_sha256(local),
        )  # fmt: skip
        local.unlink()
        assert name.endswith(path)
    return release


def _job_path(
    project: Project, user: User, release: Release, model: BaseModel, config: dict[str, Any]
) -> dict[str, Any]:
    checked = JobConfig.from_canonical(config)
    job = TrainingJob.objects.create(
        project=project, kind=checked.kind, release=release, base_model=model, config=checked.canonical(),
        config_hash=checked.hash, created_by=user,
    )  # fmt: skip
    started = time.monotonic()
    state = runner.run_job(job.pk, worker="bench")
    wall = time.monotonic() - started
    job.refresh_from_db()
    if state != "succeeded":
        raise SystemExit(f"the job failed: {job.failure_reason}")
    trained = RewardModel.objects.get(job=job) if job.kind == "reward" else Adapter.objects.get(job=job)
    train = trained.metrics["train"]
    return {"seconds_per_step": train["seconds"] / train["steps"], "evaluation": job.evaluation, "wall": wall,
            "metrics": job.metrics.count()}  # fmt: skip


def _bare(kind: str, model_dir: Path, train_path: Path, config: dict[str, Any]) -> float:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(ROOT / "bench" / "_bare_trl.py"), kind, str(model_dir), str(train_path),
         json.dumps(config)],
        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]) / int(result["steps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each path, alternating (median reported)")
    parser.add_argument("--steps", type=int, default=60, help="training steps a run")
    parser.add_argument("--kinds", nargs="+", default=["dpo", "sft", "reward"], choices=["dpo", "sft", "reward"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="enclave-bench-train-"))
    model_dir = make_tiny_model(work / "model", hidden_size=64)
    train, held_out = learning_check.train_and_held_out()
    data = {"dpo": (train, held_out), "sft": (_sft_rows(train), _sft_rows(held_out)), "reward": (train, held_out)}
    rows: list[list[str]] = []
    with throwaway_database() as database:
        user = User.objects.create(username="bench-admin", is_staff=True)
        project = Project.objects.create(name="bench training")
        model = BaseModel.objects.create(name="tiny-64", path=str(model_dir), registered_by=user)
        validated = services.base_model_validate(model_id=model.pk)
        assert validated is not None
        model = validated
        runner.worker_facts()  # warm the fork server once, as a worker does when it starts
        for kind in args.kinds:
            config = {**learning_check.CONFIG, "max_steps": args.steps, "logging_steps": 1}
            if kind == "reward":
                config = {**learning_check.REWARD_CONFIG, "max_steps": args.steps, "logging_steps": 1}
            elif kind == "sft":
                config = {k: v for k, v in config.items() if k not in ("beta", "loss_type")} | {"kind": "sft"}
                config["packing"] = False
            release = _release(project, user, kind, *data[kind])
            train_path = work / f"{kind}-train.jsonl"
            train_path.write_text("".join(json.dumps(row) + "\n" for row in data[kind][0]))
            job_steps, bare_steps, runs = [], [], []
            for _ in range(args.runs):
                run = _job_path(project, user, release, model, config)
                runs.append(run)
                job_steps.append(run["seconds_per_step"])
                bare_steps.append(_bare(kind, model_dir, train_path, config))
            job, bare = statistics.median(job_steps), statistics.median(bare_steps)
            overhead = 100 * (job - bare) / bare
            label = "Reward" if kind == "reward" else kind.upper()
            rows.append([f"{label}: seconds per step, job path", f"{job * 1000:.1f} ms"])
            rows.append([f"{label}: seconds per step, bare TRL", f"{bare * 1000:.1f} ms"])
            rows.append([f"{label}: job path slower by (target ≤ 3 %)",
                         f"{overhead:+.1f} % ({'met' if overhead <= 3 else 'missed'})"])  # fmt: skip
            rows.append([f"{label}: metrics streamed to the database a run", str(runs[0]["metrics"])])
            if kind == "reward":
                before, after = runs[0]["evaluation"]["before"], runs[0]["evaluation"]["after"]
                rows.append(["Reward learning check: held-out pair accuracy before → after",
                             f"{before['pair_accuracy']:.3f} → {after['pair_accuracy']:.3f}"])  # fmt: skip
                verdict = "passed" if learning_check.reward_passed(runs[0]["evaluation"]) else "FAILED"
                rows.append(["Reward learning check: wall time of the job (incl. both evaluations)",
                             f"{runs[0]['wall']:.1f} s ({verdict})"])  # fmt: skip
            if kind == "dpo":
                evaluation = runs[0]["evaluation"]
                before, after = evaluation["before"], evaluation["after"]
                rows.append(["DPO learning check: held-out accuracy before → after",
                             f"{before['preference_accuracy']:.3f} → {after['preference_accuracy']:.3f}"])  # fmt: skip
                rows.append(["DPO learning check: mean margin before → after",
                             f"{before['mean_margin']:.3f} → {after['mean_margin']:.3f}"])  # fmt: skip
                verdict = "passed" if learning_check.passed(evaluation) else "FAILED"
                rows.append(["DPO learning check: wall time of the job (incl. both evaluations)",
                             f"{runs[0]['wall']:.1f} s ({verdict})"])  # fmt: skip
    print_columns(
        f"Training jobs on {database}: job path vs bare TRL, {args.steps} steps, median of {args.runs} runs "
        f"({len(train)} train / {len(held_out)} held-out pairs, tiny Llama h=64, one torch thread)",
        ["measure", "result"],
        rows,
    )


if __name__ == "__main__":
    main()

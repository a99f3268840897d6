"""Tokens per second of the generation run path against a bare ``model.generate`` script with the same model,
prompts, batch and decoding settings, in one run.

The run path is the production one from the worker's side: ``evaluation.runner.run_generation`` (the code the
Celery task runs) writes the prompts to the run's work directory, forks the generating child from the training
fork server, and while the child generates, reads its answers back, scrubs each with the project's PII policy
and stores it with its provenance. Only the queue is bypassed: the run and its prompts are written directly.
The bare script (``bench/_bare_generate.py``) loads the same tiny Llama and runs the same batched, seeded
``generate`` loop (chat template, left padding) in a plain process. Both use one torch thread; runs alternate,
and the table gives the median tokens per second of the generating loop (tokenising, ``generate``, decoding),
and of ``generate`` alone.

    .venv/bin/python bench/generation.py              (SQLite file and the filesystem store, ~1 minute)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave .venv/bin/python bench/generation.py
    ... bench/generation.py --runs 5 --prompts 128 --hidden 256
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
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-generation-"))
os.environ["OMP_NUM_THREADS"] = "1"

import django

django.setup()

from _common import ROOT, print_columns, throwaway_database  # noqa: E402

from accounts.models import Project, User  # noqa: E402
from evaluation import runner  # noqa: E402
from evaluation.decoding import Decoding  # noqa: E402
from evaluation.models import Candidate, GenerationPrompt, GenerationRun  # noqa: E402
from releases import splits  # noqa: E402
from training import services as training_services  # noqa: E402
from training.models import BaseModel  # noqa: E402
from training.runner import worker_facts  # noqa: E402
from training.tiny_model import _corpus, make_tiny_model  # noqa: E402


def _run_path(project: Project, user: User, model: BaseModel, prompts: list[Any], decoding: Decoding) -> dict[str, Any]:
    run = GenerationRun.objects.create(
        project=project, base_model=model, base_model_hash=model.content_hash, source="upload",
        decoding=decoding.as_dict(), prompt_count=len(prompts), created_by=user,
    )  # fmt: skip
    GenerationPrompt.objects.bulk_create(
        GenerationPrompt(run=run, index=n, messages=m, digest=splits.digest(splits.normalise(splits.prompt_text(m))))
        for n, m in enumerate(prompts)
    )
    started = time.monotonic()
    state = runner.run_generation(run.pk, worker="bench")
    wall = time.monotonic() - started
    run.refresh_from_db()
    if state != "succeeded":
        raise SystemExit(f"the run failed: {run.failure_reason}")
    result = run.environment["result"]
    return {"tokens": run.completion_tokens, "loop_seconds": result["loop_seconds"],
            "generate_seconds": result["generate_seconds"], "wall": wall,
            "candidates": Candidate.objects.filter(run=run).count()}  # fmt: skip


def _bare(model_dir: Path, prompts_path: Path, decoding: Decoding) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(ROOT / "bench" / "_bare_generate.py"), str(model_dir), str(prompts_path),
         json.dumps(decoding.as_dict())],
        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each path, alternating (median reported)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the tiny Llama")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="enclave-bench-gen-"))
    model_dir = make_tiny_model(work / "model", hidden_size=args.hidden)
    prompts = [[{"role": "user", "content": text}] for text in _corpus(args.prompts, seed=5)]
    prompts_path = work / "prompts.json"
    prompts_path.write_text(json.dumps(prompts))
    decoding = Decoding.from_input(
        {"candidates": 2, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 64, "seed": 1, "batch_size": 8}
    )
    with throwaway_database() as database:
        user = User.objects.create(username="bench-admin", is_staff=True)
        project = Project.objects.create(name="bench generation")
        model = BaseModel.objects.create(name=f"tiny-{args.hidden}", path=str(model_dir), registered_by=user)
        validated = training_services.base_model_validate(model_id=model.pk)
        assert validated is not None
        worker_facts()  # warm the fork server once, as a worker does when it starts
        runs, bares = [], []
        for _ in range(args.runs):
            runs.append(_run_path(project, user, validated, prompts, decoding))
            bares.append(_bare(model_dir, prompts_path, decoding))

    def rate(results: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r["tokens"] / r[key] for r in results)

    loop_run, loop_bare = rate(runs, "loop_seconds"), rate(bares, "loop_seconds")
    gen_run, gen_bare = rate(runs, "generate_seconds"), rate(bares, "generate_seconds")
    slower = 100 * (loop_bare - loop_run) / loop_bare
    walls = [r["wall"] for r in runs]
    rows = [
        ["tokens/s of the generating loop, run path", f"{loop_run:,.0f}"],
        ["tokens/s of the generating loop, bare model.generate", f"{loop_bare:,.0f}"],
        ["run path slower by (target ≤ 5 %)", f"{slower:+.1f} % ({'met' if slower <= 5 else 'missed'})"],
        ["tokens/s inside generate, run path", f"{gen_run:,.0f}"],
        ["tokens/s inside generate, bare", f"{gen_bare:,.0f}"],
        ["tokens a run (same in both paths)", f"{runs[0]['tokens']:,} / {bares[0]['tokens']:,}"],
        ["candidates stored (scrubbed) a run", f"{runs[0]['candidates']:,}"],
        ["wall time of the whole run path (fork, load, scrub, store)", f"{statistics.median(walls):.2f} s"],
    ]
    print_columns(
        f"Generation runs on {database}: run path vs bare model.generate, {args.prompts} prompts × "
        f"{decoding.candidates} candidates, batch {decoding.batch_size}, {decoding.max_new_tokens} new tokens, "
        f"median of {args.runs} runs (tiny Llama h={args.hidden}, one torch thread)",
        ["measure", "result"],
        rows,
    )


if __name__ == "__main__":
    main()

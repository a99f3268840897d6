"""Prompts embedded per second by the import's embedding task against a bare batched forward pass of the same
model on the same prompts, in one run.

The task path is the production one from the worker's side: ``releases.services.prompt_embeddings_compute``
(what the Celery task ``releases.prompt_embeddings_compute`` runs) finds the project's items without an
embedding, reads their conversations, embeds them in length-sorted batches (``releases.embeddings``), encodes
each vector as int8 with its scale and stores the rows, a transaction a chunk; the rows are deleted between
runs. Only the queue is bypassed: the items are written directly. The bare pass loads the same directory with
transformers and runs tokenise, forward and mean pooling on the same texts and batch size, once in the prompts'
order and once sorted by length as the task does. The model is the packaged all-MiniLM-L6-v2
(``EMBEDDING_MODEL_DIR``), loaded once; one torch thread; the three paths alternate and the table gives the
median prompts/s.

    .venv/bin/python bench/embeddings.py              (SQLite file, 2,000 prompts, ~2 minutes)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave .venv/bin/python bench/embeddings.py
    ... bench/embeddings.py --runs 5 --prompts 4000 --batch 32
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enclave.settings.local")
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-embeddings-"))
os.environ["OMP_NUM_THREADS"] = "1"

import django

django.setup()

from _common import print_columns, throwaway_database  # noqa: E402
from django.conf import settings  # noqa: E402

from accounts.models import Project  # noqa: E402
from annotation.models import Item  # noqa: E402
from releases import embeddings  # noqa: E402
from releases.models import PromptEmbedding  # noqa: E402
from releases.services import prompt_embeddings_compute  # noqa: E402

_ASKS = (
    "How do I {verb} my {thing}?", "Why was my {thing} {state} yesterday?", "Can you explain the fee on my {thing}?",
    "I want to {verb} the {thing} for my partner, what do I need?", "Is it safe to {verb} a {thing} abroad?",
)  # fmt: skip
_VERBS = ("reset", "close", "open", "freeze", "change", "renew", "report", "move", "cancel", "upgrade")
_THINGS = ("card PIN", "savings account", "mortgage", "standing order", "credit limit", "overdraft", "loan")
_STATES = ("declined", "blocked", "charged twice", "delayed", "refunded")
_DETAIL = (
    "I have been a customer for years and never had this problem before.", "The app showed an error code.",
    "My branch was closed when I went there.", "I tried calling but nobody answered for forty minutes.",
    "This happened while I was travelling for work.", "The amount was much larger than I expected.",
)  # fmt: skip


def synthetic_prompts(count: int, seed: int = 27) -> list[str]:
    """Banking questions of 1 to 12 sentences (about 8 to 150 words), so batches pad as real traffic does."""
    rng = random.Random(seed)
    prompts = []
    for n in range(count):
        ask = rng.choice(_ASKS).format(verb=rng.choice(_VERBS), thing=rng.choice(_THINGS), state=rng.choice(_STATES))
        details = [rng.choice(_DETAIL) for _ in range(rng.choice((0, 0, 1, 2, 3, 5, 8, 11)))]
        prompts.append(" ".join([ask, *details, f"(ref {n})"]))
    return prompts


def _bare(model: Any, tokenizer: Any, texts: list[str], batch: int, max_length: int, *, by_length: bool) -> float:
    """Seconds for tokenise + forward + mean pooling over ``texts`` in batches: nothing stored, nothing sorted
    unless ``by_length``."""
    import torch

    order = sorted(texts, key=len) if by_length else texts
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            encoded = tokenizer(
                order[start : start + batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            hidden = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            ((hidden * mask).sum(dim=1) / mask.sum(dim=1)).numpy()
    return time.perf_counter() - started


def _task_path(project: Project) -> tuple[float, int]:
    PromptEmbedding.objects.all().delete()
    started = time.perf_counter()
    embedded = prompt_embeddings_compute(project_id=project.pk)
    return time.perf_counter() - started, embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each path, alternating (median reported)")
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=settings.EMBEDDING_BATCH_SIZE)
    args = parser.parse_args()
    settings.EMBEDDING_BATCH_SIZE = args.batch

    import torch

    torch.set_num_threads(1)
    texts = synthetic_prompts(args.prompts)
    loaded = embeddings.load_embedding_model()
    with throwaway_database() as database:
        project = Project.objects.create(name="bench embeddings")
        Item.objects.bulk_create(
            [
                Item(project=project, messages=[{"role": "user", "content": text}], content_hash=f"{n:064x}")
                for n, text in enumerate(texts)
            ],
            batch_size=1000,
        )
        _task_path(project)  # warm: the model's hash and first batches
        plain, sorted_, task = [], [], []
        for _ in range(args.runs):
            plain.append(_bare(loaded.model, loaded.tokenizer, texts, args.batch, loaded.max_length, by_length=False))
            sorted_.append(_bare(loaded.model, loaded.tokenizer, texts, args.batch, loaded.max_length, by_length=True))
            seconds, embedded = _task_path(project)
            assert embedded == len(texts), embedded
            task.append(seconds)
        stored = PromptEmbedding.objects.count()

    def rate(seconds: list[float]) -> float:
        return len(texts) / statistics.median(seconds)

    task_rate, plain_rate, sorted_rate = rate(task), rate(plain), rate(sorted_)
    slower_plain = 100 * (plain_rate - task_rate) / plain_rate
    slower_sorted = 100 * (sorted_rate - task_rate) / sorted_rate
    tokens = [len(loaded.tokenizer(text, truncation=True, max_length=loaded.max_length)["input_ids"]) for text in texts]
    rows = [
        ["prompts/s, embedding task (read, embed, int8, store)", f"{task_rate:,.0f}"],
        ["prompts/s, bare batched forward, prompts' order", f"{plain_rate:,.0f}"],
        ["prompts/s, bare batched forward, sorted by length", f"{sorted_rate:,.0f}"],
        ["task slower than bare, prompts' order (target ≤ 5 %)",
         f"{slower_plain:+.1f} % ({'met' if slower_plain <= 5 else 'missed'})"],
        ["task slower than bare, sorted by length (target ≤ 5 %)",
         f"{slower_sorted:+.1f} % ({'met' if slower_sorted <= 5 else 'missed'})"],
        ["tokens a prompt, median / max", f"{statistics.median(tokens):.0f} / {max(tokens)}"],
        ["rows stored a run, bytes a vector", f"{stored:,}, {loaded.dim} + 4 (scale)"],
    ]  # fmt: skip
    print_columns(
        f"Prompt embeddings on {database}: task path vs bare batched forward, {len(texts):,} prompts, batch "
        f"{args.batch}, median of {args.runs} runs (all-MiniLM-L6-v2, one torch thread)",
        ["measure", "result"],
        rows,
    )


if __name__ == "__main__":
    main()

"""Import throughput with PII scrubbing, peak memory, and "next item" latency over a large queue; then the
same for a comparison JSONL file (the bulk upload of ``POST …/comparisons/``) in a second project.

Runs on a throwaway database (Django's test-database machinery): PostgreSQL when DATABASE_URL is set,
else SQLite.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave .venv/bin/python bench/import_and_queue.py \
        --lines 100000 --comparisons 100000
"""

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "enclave.settings.local"

from _common import print_table, throwaway_database

QUESTIONS = [
    "I lost my card {card}, please block it and call me on {phone}.",
    "Please send the statement to {email}; my IBAN is {iban}.",
    "Why was I charged a fee of £{n} on my current account last month?",
    "Can I raise my transfer limit? I need to pay {n} to my landlord.",
    "The app shows a login from {ip} that wasn't me.",
]
ANSWER = (
    "Thank you for getting in touch. I have looked at your account and can confirm the request. "
    "You will receive a confirmation by post within five working days. Anything else I can help with?"
)


def _question(n: int, rng: random.Random) -> str:
    """A customer's question with a card number, phone number, e-mail, IBAN and IP address in it."""
    return rng.choice(QUESTIONS).format(
        card="4111 1111 1111 1111",
        phone="+44 20 7946 0958",
        email=f"customer{n}@example.com",
        iban="GB82 WEST 1234 5698 7654 32",
        ip=f"203.0.113.{n % 250}",
        n=n,
    )


def _line(n: int, rng: random.Random) -> str:
    question = _question(n, rng)
    messages = [
        {"role": "system", "content": "You are the bank's support assistant."},
        {"role": "user", "content": f"Ticket {n}: {question}"},
        {"role": "assistant", "content": ANSWER},
    ]
    return json.dumps({"id": f"t{n}", "messages": messages})


CANDIDATES = [
    "I have blocked the card and ordered a replacement; it arrives within five working days.",
    "Your card is now blocked. Please visit a branch with your ID to order a new one.",
]


def _comparison_line(n: int, rng: random.Random) -> str:
    question = _question(n, rng)
    candidates = [
        {"content": f"{text} (ref {n})", "model": model, "decoding": {"temperature": 0.7}}
        for text, model in zip(CANDIDATES, ("base", "adapter-v2"), strict=True)
    ]
    return json.dumps({"id": f"c{n}", "prompt": f"Ticket {n}: {question}", "candidates": candidates})


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--next-calls", type=int, default=500)
    parser.add_argument("--comparisons", type=int, default=100_000, help="comparison lines to import; 0: none")
    args = parser.parse_args()

    import django

    django.setup()

    rows: list[tuple[str, str]] = []
    with throwaway_database() as db:
        from accounts import services as accounts_services
        from annotation import importing, services
        from annotation.models import Item, Slot, SlotState

        lead = accounts_services.user_create(actor=None, username="lead")
        project = accounts_services.project_create(actor=lead, name="Bench")
        rng = random.Random(7)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
            for n in range(args.lines):
                handle.write(_line(n, rng) + "\n")
            path = handle.name
        size_mb = os.path.getsize(path) / 1e6

        importing.SYNC_IMPORT_BYTES = 1 << 40  # run inline, in this process, so its memory is measured
        rss_before = _rss_mb()
        start = time.perf_counter()
        with open(path, "rb") as upload:
            batch = services.import_start(
                actor=lead, project=project, upload=upload, source_name="bench.jsonl", fmt="chat_jsonl"
            )
        elapsed = time.perf_counter() - start
        os.unlink(path)
        assert batch.status == "done", (batch.status, batch.errors[:3])
        rows.append((f"import {args.lines:,} lines ({size_mb:.0f} MB)", f"{args.lines / elapsed:,.0f} lines/s"))
        rows.append(("import wall time", f"{elapsed:.1f} s"))
        rows.append(("peak RSS (whole process)", f"{_rss_mb():.0f} MB"))
        rows.append(("peak RSS growth during import", f"{_rss_mb() - rss_before:.0f} MB"))
        rows.append(("PII found", ", ".join(f"{k} {v:,}" for k, v in sorted(batch.scrub_counts.items()))))

        annotator = accounts_services.user_create(actor=None, username="annotator")
        timings = []
        for _ in range(args.next_calls):
            start = time.perf_counter()
            slot = services.item_next(user=annotator, project=project)
            timings.append((time.perf_counter() - start) * 1000)
            assert slot is not None
            Slot.objects.filter(pk=slot.pk).update(state=SlotState.DONE)
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1]
        items = Item.objects.filter(project=project).count()
        rows.append((f'"next item" p50, {items:,} items', f"{statistics.median(timings):.1f} ms"))
        rows.append((f'"next item" p95, {items:,} items', f"{p95:.1f} ms"))

        if args.comparisons:
            compare = accounts_services.project_create(actor=lead, name="Bench comparisons")
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
                for n in range(args.comparisons):
                    handle.write(_comparison_line(n, rng) + "\n")
                path = handle.name
            size_mb = os.path.getsize(path) / 1e6
            rss_before = _rss_mb()
            start = time.perf_counter()
            with open(path, "rb") as upload:
                batch = services.import_start(
                    actor=lead, project=compare, upload=upload, source_name="bench-comparisons.jsonl",
                    fmt="comparison_jsonl",
                )  # fmt: skip
            elapsed = time.perf_counter() - start
            os.unlink(path)
            assert batch.status == "done", (batch.status, batch.errors[:3])
            assert batch.imported_count == args.comparisons
            rows.append(
                (
                    f"import {args.comparisons:,} comparisons ({size_mb:.0f} MB)",
                    f"{args.comparisons / elapsed:,.0f} lines/s",
                )
            )
            rows.append(("comparison import wall time", f"{elapsed:.1f} s"))
            rows.append(("peak RSS growth during the comparison import", f"{_rss_mb() - rss_before:.0f} MB"))
    print_table(f"Import and queue on {db}", rows)


if __name__ == "__main__":
    main()

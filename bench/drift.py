"""The eval-set drift report on a project of 100,000 items: the worker's computation and the page and API that read it.

The project holds ``--items`` SFT items: 80 % in an import of three months ago, released (a built release whose
eval split holds 10 % of them) and 20 % in an import of last week whose topic mix has shifted; every item has a
stored 384-wide int8 prompt embedding (a direction a topic plus noise, as MiniLM's would cluster). Rows are
written in bulk (``bulk_create`` in batches), not through the import, which has benchmarks of its own. Then:

- the task body ``releases.drift.drift_report_compute`` (what ``releases.drift_report_compute`` runs), ``--runs``
  times, each on a new report: reads the eval and recent items and their embeddings, every statistic;
- the drift page (``GET /projects/<id>/releases/drift/``) and the API (``GET /api/v1/projects/<id>/drift/``) as
  a data lead, through Django's test client (no network, no web server), ``--requests`` times each.

The table gives medians, the slowest page, the drift page's first request (its template compiled) and, apart,
the process's first request of any page. The page reads one stored row: its time does not grow with the items.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave .venv/bin/python bench/drift.py
    ... bench/drift.py --items 20000 --runs 3 --requests 20
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enclave.settings.local")
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-drift-"))

import django

django.setup()

import numpy as np  # noqa: E402
from _common import print_table, size_label, throwaway_database  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Role  # noqa: E402
from accounts.services import membership_add, project_create, user_create  # noqa: E402
from annotation.models import ImportBatch, Item  # noqa: E402
from releases.drift import drift_report_compute, drift_report_request  # noqa: E402
from releases.embeddings import quantise  # noqa: E402
from releases.models import PromptEmbedding, Release, ReleaseItem  # noqa: E402

TOPICS = ("cards", "transfers", "loans", "savings", "mortgages", "fraud")
CHANNELS = ("chat", "email", "phone")
BATCH = 5000


def _seed(items: int) -> tuple[int, object]:
    """The project, its two imports, items, release rows and embeddings; returns the project id and a data lead."""
    lead = user_create(actor=None, username="lead", display_name="Lead", password=None)
    project = project_create(actor=None, name="bench drift")
    membership_add(actor=None, project=project, user=lead, role=Role.DATA_LEAD)
    now = timezone.now()
    batches = [
        ImportBatch.objects.create(
            project=project, uploaded_by=lead, source_name=name, fmt="chat_jsonl", sha256="0" * 64, size_bytes=1,
            status="done", created_at=now - timedelta(days=days),
        )
        for name, days in (("history.jsonl", 90), ("this-week.jsonl", 3))
    ]  # fmt: skip
    old = items * 8 // 10
    rng = np.random.default_rng(27)
    directions = rng.normal(size=(len(TOPICS), 384)).astype(np.float32)
    release = Release.objects.create(project=project, kind="sft", name="bench", version=1, recipe={"kind": "sft"},
                                     created_by=lead, state="built", hash="0" * 64, built_at=now)  # fmt: skip
    for start in range(0, items, BATCH):
        rows, topics = [], []
        for n in range(start, min(items, start + BATCH)):
            recent = n >= old
            topic = TOPICS[5 if recent and n % 2 else (n * 7 // 3) % 5]  # last week: half of it fraud
            topics.append(TOPICS.index(topic))
            words = " ".join(["please"] * (n % 17))
            rows.append(Item(
                project=project, batch=batches[int(recent)], content_hash=f"{n:064x}",
                messages=[{"role": "user", "content": f"Question {n} about my {topic} {words}?"}],
                metadata={"topic": topic, "channel": CHANNELS[n % 3], "language": "en", "ref": f"r{n}"},
            ))  # fmt: skip
        made = Item.objects.bulk_create(rows)
        vectors = directions[topics] + rng.normal(scale=1.2, size=(len(made), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        codes, scales = quantise(vectors)
        PromptEmbedding.objects.bulk_create(
            PromptEmbedding(item=item, model_hash="b" * 64, content_hash=item.content_hash, dim=384,
                            scale=float(scales[i]), vector=codes[i].tobytes())
            for i, item in enumerate(made)
        )  # fmt: skip
        ReleaseItem.objects.bulk_create(
            ReleaseItem(release=release, item=item, split="eval" if item.pk % 10 == 3 else "train",
                        group_hash=f"{item.pk:032x}", fingerprint="0" * 32)
            for item in made
            if item.batch_id == batches[0].pk
        )  # fmt: skip
    return project.pk, lead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with throwaway_database() as database:
        began = time.perf_counter()
        project_id, lead = _seed(args.items)
        seeded = time.perf_counter() - began
        from accounts.models import Project

        project = Project.objects.get(pk=project_id)
        task_seconds, report = [], None
        for _ in range(args.runs):
            queued = drift_report_request(actor=None, project=project)
            started = time.perf_counter()
            report = drift_report_compute(report_id=queued.pk)
            task_seconds.append(time.perf_counter() - started)
            assert report.state == "done", report.failure_reason
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the test client's host
        client = Client()
        client.force_login(lead)  # type: ignore[arg-type]
        started = time.perf_counter()
        client.get(f"/projects/{project_id}/releases/")  # a fresh process's first page: URLconf, imports, base
        cold = time.perf_counter() - started
        started = time.perf_counter()
        client.get(f"/projects/{project_id}/releases/drift/")  # its own template compiled on the way
        first = time.perf_counter() - started
        timings: dict[str, list[float]] = {"page": [], "api": []}
        for _ in range(args.requests):
            for name, path in (
                ("page", f"/projects/{project_id}/releases/drift/"),
                ("api", f"/api/v1/projects/{project_id}/drift/"),
            ):
                started = time.perf_counter()
                answer = client.get(path)
                timings[name].append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.status_code
    assert report is not None
    result = report.result
    print_table(
        f"Eval-set drift, {size_label(args.items)} items on {database}",
        [
            ("items (eval / recent)", f"{result['eval_items']:,} / {result['recent_items']:,}"),
            ("seeding (not measured below)", f"{seeded:.1f} s"),
            (f"drift_report_compute, median of {args.runs}", f"{statistics.median(task_seconds):.2f} s"),
            (f"drift page, median of {args.requests}", f"{statistics.median(timings['page']) * 1000:.0f} ms"),
            ("drift page, slowest of them", f"{max(timings['page']) * 1000:.0f} ms"),
            ("drift page, its first request (template compiled)", f"{first * 1000:.0f} ms"),
            ("any page, the process's first request (releases list)", f"{cold * 1000:.0f} ms"),
            (f"drift API, median of {args.requests}", f"{statistics.median(timings['api']) * 1000:.0f} ms"),
            ("flagged", ", ".join(report.flagged) or "nothing"),
            ("keys compared", ", ".join(result["keys"]) or "none"),
        ],
    )


if __name__ == "__main__":
    main()

"""Where a submit-and-next spends the web process's CPU: cProfile (process CPU time, so waiting on PostgreSQL
is not counted) over a run of ``POST …/judgements/and-next/`` through Django's WSGI handler in this
process, against a throwaway PostgreSQL database: ranking mode, three ~300-word candidates, k = 3, no gold,
an annotator with a history (quality row, the project's median cached). Prints the CPU per request without
the profiler (this process and its PostgreSQL backend, read from /proc: PostgreSQL must run on this
machine) and with it (which inflates code made of many small calls most), the CPU of each part of the
request (inclusive, profiled) and the top functions by own time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/profile_submit.py --requests 500
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "enclave.settings.local"

import django
from _common import print_table, throwaway_database

# The parts of a request, by the function whose inclusive time is that part's.
PARTS = [
    ("whole request (WSGI handler)", "django/core/handlers/wsgi.py", "__call__"),
    ("middleware and view dispatch", "django/core/handlers/base.py", "get_response"),
    ("token authentication", "accounts/api_auth.py", "authenticate_credentials"),
    ("project, permissions, comparison read", "preferences/permissions.py", "get_comparison_for_submit"),
    ("input validation (JudgementIn)", "rest_framework/serializers.py", "is_valid"),
    ("judgement submit (service)", "preferences/services.py", "judgement_submit"),
    ("  of which the one-statement record", "preferences/submit_sql.py", "judgement_record"),
    ("next comparison (service and JSON body)", "preferences/api.py", "_next_comparison"),
    ("  of which the claim with its event", "annotation/queue_sql.py", "next_slot"),
    ("  of which the display order (HMAC seed)", "preferences/results.py", "display_order"),
    ("response rendering (JSON)", "rest_framework/renderers.py", "render"),
    ("agreement mark (Redis, after the commit)", "preferences/agreement_runs.py", "_agreement_wanted"),
    ("database calls (psycopg, client side)", "django/db/backends/utils.py", "_execute"),
]


_VOCABULARY = ("the", "account", "card", "transfer", "limit", "branch", "fee", "rate", "loan", "balance", "app")


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_VOCABULARY) for _ in range(count))


def _backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a PostgreSQL backend on this machine (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    django.setup()
    from django.conf import settings

    if not settings.DATABASE_IS_POSTGRES:
        raise SystemExit("PostgreSQL is required (DATABASE_URL).")
    with throwaway_database():
        profile(args.requests)


def profile(requests: int) -> None:
    from django.core.cache import cache
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    from accounts.models import Role, User
    from accounts.services import api_token_create, membership_add, project_create
    from annotation import services as annotation_services
    from preferences import services
    from preferences.models import AnnotatorQuality

    cache.clear()
    rng = random.Random(7)
    lead = User.objects.create_user(username="lead", password="x" * 16)
    annotator = User.objects.create_user(username="annotator", password="x" * 16)
    project = project_create(actor=None, name="profile", admin=lead)
    membership_add(actor=None, project=project, user=annotator, role=Role.ANNOTATOR)
    services.preference_settings_update(actor=lead, project=project, mode="ranking", gold_rate=0.0)
    lines = [
        json.dumps({"prompt": _words(rng, 40), "candidates": [{"content": _words(rng, 300)} for _ in range(3)]})
        for _ in range(2 * requests + 100)
    ]
    for start in range(0, len(lines), 200):  # files under 2 MB are imported at once, not by a worker
        batch = annotation_services.import_start(
            actor=lead, project=project, upload=io.BytesIO(("\n".join(lines[start : start + 200]) + "\n").encode()),
            source_name="profile.jsonl", fmt="comparison_jsonl",
        )  # fmt: skip
        assert batch.status == "done", batch.errors
    AnnotatorQuality.objects.create(project=project, annotator=annotator)
    cache.set(f"judgement-median:{project.pk}", (60_000,), timeout=3600)
    _, token = api_token_create(user=annotator, name="profile", days=1)
    handler = WSGIHandler()

    def post(path: str, body: dict[str, Any] | None) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(raw)),
            "HTTP_AUTHORIZATION": f"Token {token}", "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(raw),
            "wsgi.url_scheme": "https", "wsgi.errors": io.StringIO(), "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
        }  # fmt: skip
        status: list[str] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(line)
            return None

        response = handler(environ, start_response)
        content = b"".join(response)
        response.close()
        assert status[0].startswith(("200", "201")), (status, content[:300])
        return json.loads(content)

    base = f"/api/v1/projects/{project.pk}/comparisons"
    shown = post(f"{base}/next/", None)

    def judge(n: int) -> None:
        nonlocal shown
        letters = [c["letter"] for c in shown["candidates"]]
        body = {"ranking": [[letter] for letter in letters], "idempotency_key": f"p-{n}", "time_spent_ms": 30_000}
        answer = post(f"{base}/{shown['id']}/judgements/and-next/", body)
        shown = answer["next"]

    for n in range(50):  # warm-up: prepared statements, caches
        judge(n)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone() or (0,)
    backend_before = _backend_cpu(backend)
    started = time.process_time()
    for n in range(50, 50 + requests):
        judge(n)
    plain_ms = (time.process_time() - started) * 1000 / requests
    backend_ms = (_backend_cpu(backend) - backend_before) * 1000 / requests
    profiler = cProfile.Profile(time.process_time)
    started = time.process_time()
    profiler.enable()
    for n in range(50 + requests, 50 + 2 * requests):
        judge(n)
    profiler.disable()
    cpu_ms = (time.process_time() - started) * 1000 / requests
    connection.close()
    stats = pstats.Stats(profiler)
    rows = [
        ("requests, each way", f"{requests:,}"),
        ("CPU per request, this process, without the profiler", f"{plain_ms:.2f} ms"),
        ("CPU per request, its PostgreSQL backend (the same requests)", f"{backend_ms:.2f} ms"),
        ("CPU per request, this process, profiled (parts below)", f"{cpu_ms:.2f} ms"),
    ]
    for label, file, function in PARTS:
        total = sum(
            value[3]
            for (path, _, name), value in stats.stats.items()  # type: ignore[attr-defined]
            if name == function and path.endswith(file)
        )
        rows.append((label, f"{total * 1000 / requests:.2f} ms"))
    print_table("Submit-and-next: CPU of the web process per request, by part (inclusive, cProfile)", rows)
    print("\nTop 25 functions by own CPU time:\n")
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()

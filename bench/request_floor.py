"""What one request costs before any domain work: requests/s and CPU per request of the cheapest endpoints,
through the same gunicorn, production settings and load generator as ``preference_collection.py``.

Three endpoints, each driven by 32 keep-alive clients in a closed loop for a fixed time:

- a bare WSGI application under gunicorn (``bench/_bare_wsgi.py``): gunicorn, loopback HTTP and the load
  generator alone;
- ``/healthz``: Django's middleware, URL resolver and one ``SELECT 1``;
- ``GET /api/v1/me/`` with an API token: the same plus DRF and the token lookup, the fixed part of every
  annotator's API call.

An annotator's judgement is one such call ("submit and next", as the comparison page works) or two ("next
comparison", then "submit judgement"), so the last column says how many judgements per second the machine
could serve if the domain work (leasing a slot, storing the judgement, the audit chain, gold and quality
checks) cost nothing. PostgreSQL is required.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enclave .venv/bin/python bench/request_floor.py
"""

import argparse
import os
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "enclave.settings.local"

from _common import collect_static, print_columns, throwaway_database
from preference_collection import GUNICORN_THREADS, GUNICORN_WORKERS, Api, CpuMeter, Server


def _drive(port: int, path: str, tokens: list[str], duration: float, meter: CpuMeter) -> dict[str, float]:
    """``len(tokens)`` clients, each on its own keep-alive connection, request ``path`` until the time is up."""
    counts = [0] * len(tokens)
    failures: list[str] = []
    stop = time.perf_counter() + duration

    def client(n: int) -> None:
        api = Api(port, tokens[n])
        while time.perf_counter() < stop:
            status, body, _ = api.request("GET", path)
            if status != 200:
                failures.append(f"{path}: {status} {body[:200]!r}")
                return
            counts[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(tokens))]
    before = meter.sample()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = meter.sample()
    if failures:
        raise SystemExit(failures[0])
    requests = sum(counts)
    used = {name: (after[name] - before[name]) * 1000 / requests for name in before if name != "wall"}
    wall = after["wall"] - before["wall"]
    return {"rate": requests / wall, "cores": sum(after[n] - before[n] for n in before if n != "wall") / wall, **used}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20, help="seconds measured per endpoint")
    parser.add_argument("--workers", type=int, default=GUNICORN_WORKERS)
    parser.add_argument("--threads", type=int, default=GUNICORN_THREADS)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise SystemExit("This benchmark runs on PostgreSQL only: set DATABASE_URL=postgres://…")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, connections

    from accounts import services as accounts_services

    work = Path(tempfile.mkdtemp(prefix="enclave-bench-floor-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "enclave.settings.production",
        "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_PROXY_SSL_HEADER": "true",
        "ENCLAVE_DATA_DIR": str(work / "data"),
        "STATIC_ROOT": str(work / "static"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    collect_static(env)
    real_name = connections["default"].settings_dict["NAME"]
    connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = f"{real_name}_bench_floor"
    rows = []
    with throwaway_database():
        tokens = []
        for n in range(args.clients):
            user = accounts_services.user_create(actor=None, username=f"floor{n:02d}")
            tokens.append(accounts_services.api_token_create(user=user, name="bench", days=1)[1])
        url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
        env["DATABASE_URL"] = url._replace(path=f"/{settings.DATABASES['default']['NAME']}").geturl()
        connection.close()
        anonymous = [""] * args.clients
        cases = [
            ("bare WSGI app under gunicorn (no Django)", "bench._bare_wsgi:application", "/", anonymous),
            ("Django: /healthz (middleware, one SELECT 1)", "enclave.wsgi:application", "/healthz", anonymous),
            ("DRF: GET /api/v1/me/ with an API token", "enclave.wsgi:application", "/api/v1/me/", tokens),
        ]  # fmt: skip
        for label, app, path, credentials in cases:
            print(f"{label} …", flush=True)
            server = Server(env, args.workers, args.threads, work / "gunicorn.log", app=app)
            try:
                Api(server.port).request("GET", path)  # each worker imports lazily: warm one up before timing
                result = _drive(server.port, path, credentials, args.duration, CpuMeter(server.proc.pid))
            finally:
                server.stop()
            rows.append([
                label,
                f"{result['rate']:,.0f}",
                f"{result['web']:.2f} + {result['PostgreSQL']:.2f} + {result['load generator']:.2f} ms",
                f"{result['cores']:.2f}",
                f"{result['rate']:,.0f} / {result['rate'] / 2:,.0f}",
            ])  # fmt: skip

    print(
        f"\ngunicorn {args.workers} workers × {args.threads} threads, production settings (Django rows), HTTP on "
        f"loopback, {args.clients} keep-alive clients in a closed loop for {args.duration:.0f} s per endpoint; "
        f"the load generator (this process) shares the cores with the server and PostgreSQL."
    )
    print_columns(
        "Per-request floor",
        ["endpoint", "requests/s", "CPU per request: web + PostgreSQL + load generator", "cores busy",
         "judgements/s at 1 / 2 such calls each"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()

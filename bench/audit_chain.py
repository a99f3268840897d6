"""Audit-chain throughput: appends per second from 1 and N concurrent writers, and verify speed.

Every state change writes one audit event under the chain lock, so this bounds the write rate of the
whole product. Runs on a throwaway database: with DATABASE_URL set (PostgreSQL), a database named
``<name>_bench`` is created and dropped; otherwise a temporary SQLite file.

    .venv/bin/python bench/audit_chain.py [--events 2000] [--threads 32]
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "enclave.settings.local"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()

    import django
    from django.conf import settings

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    # Django's test-database machinery gives us a fresh, migrated database and removes it afterwards.
    old = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        from accounts import services
        from accounts.models import User
        from accounts.selectors import audit_chain_verify

        user = User.objects.create(username="bench")
        rows = []

        start = time.perf_counter()
        for i in range(args.events):
            services.audit_event_record(actor=user, action="bench.sequential", payload={"i": i})
        sequential = args.events / (time.perf_counter() - start)
        rows.append(("append, 1 writer", f"{sequential:,.0f} events/s"))

        per_thread = max(1, args.events // args.threads)

        def write() -> None:
            for i in range(per_thread):
                services.audit_event_record(actor=user, action="bench.concurrent", payload={"i": i})
            connection.close()

        threads = [threading.Thread(target=write) for _ in range(args.threads)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent = per_thread * args.threads / (time.perf_counter() - start)
        rows.append((f"append, {args.threads} writers", f"{concurrent:,.0f} events/s"))

        start = time.perf_counter()
        result = audit_chain_verify()
        elapsed = time.perf_counter() - start
        assert result.ok, result.reason
        rows.append((f"verify {result.checked:,} events", f"{result.checked / elapsed:,.0f} events/s"))
    finally:
        teardown_databases(old, verbosity=0)

    db = "PostgreSQL" if settings.DATABASE_IS_POSTGRES else "SQLite (Django's in-memory test database)"
    print(f"\nAudit chain on {db} ({os.cpu_count()} cores)\n")
    print(f"| {'measure':<24} | {'result':>18} |")
    print(f"|{'-' * 26}|{'-' * 20}|")
    for name, value in rows:
        print(f"| {name:<24} | {value:>18} |")


if __name__ == "__main__":
    main()

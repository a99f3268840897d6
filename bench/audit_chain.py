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
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("ENCLAVE_DATA_DIR", tempfile.mkdtemp(prefix="enclave-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "enclave.settings.local"

from _common import print_table, throwaway_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    with throwaway_database() as db:
        from accounts import audit
        from accounts.models import User
        from accounts.selectors import audit_chain_verify

        user = User.objects.create(username="bench")
        rows = []

        start = time.perf_counter()
        for i in range(args.events):
            audit.audit_event_record(actor=user, action="bench.sequential", payload={"i": i})
        sequential = args.events / (time.perf_counter() - start)
        rows.append(("append, 1 writer", f"{sequential:,.0f} events/s"))

        per_thread = max(1, args.events // args.threads)

        errors: list[BaseException] = []

        def write() -> None:
            try:
                for i in range(per_thread):
                    audit.audit_event_record(actor=user, action="bench.concurrent", payload={"i": i})
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=write) for _ in range(args.threads)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise SystemExit(f"{len(errors)} writer(s) failed, first: {errors[0]!r}")
        concurrent = per_thread * args.threads / (time.perf_counter() - start)
        rows.append((f"append, {args.threads} writers", f"{concurrent:,.0f} events/s"))

        start = time.perf_counter()
        result = audit_chain_verify()
        elapsed = time.perf_counter() - start
        assert result.ok, result.reason
        rows.append((f"verify {result.checked:,} events", f"{result.checked / elapsed:,.0f} events/s"))
    print_table(f"Audit chain on {db}", rows)


if __name__ == "__main__":
    main()

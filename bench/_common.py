"""What every benchmark shares: a throwaway database and the table it prints."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh, migrated database (Django's test-database machinery), removed afterwards; yields its kind."""
    from django.conf import settings
    from django.db import connections
    from django.test.utils import setup_databases, teardown_databases

    if not settings.DATABASE_IS_POSTGRES:
        # A file, as in the embedded default: an in-memory database would measure something else.
        connections["default"].settings_dict["TEST"]["NAME"] = os.path.join(settings.DATA_DIR, "bench.sqlite3")
    old = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        yield "PostgreSQL" if settings.DATABASE_IS_POSTGRES else "SQLite (a file, as in the embedded default)"
    finally:
        teardown_databases(old, verbosity=0)


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    name_width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    print(f"\n{title} ({os.cpu_count()} cores)\n")
    print(f"| {'measure':<{name_width}} | {'result':>{value_width}} |")
    print(f"|{'-' * (name_width + 2)}|{'-' * (value_width + 2)}|")
    for name, value in rows:
        print(f"| {name:<{name_width}} | {value:>{value_width}} |")


def print_columns(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Like ``print_table``, with several result columns (e.g. one per size): names left, results right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    print(f"\n{title} ({os.cpu_count()} cores)\n")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


def size_label(count: int) -> str:
    """10000 → "10k", 1000000 → "1M", other counts with separators."""
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1000 and count % 1000 == 0:
        return f"{count // 1000}k"
    return f"{count:,}"


def collect_static(env: dict[str, str]) -> None:
    """Production serves collected, hashed and compressed files (whitenoise's manifest storage)."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )

"""Speed of the PII scrubber on chat items and on digit-dense text, beside an earlier revision's scrubber.

    python bench/pii_speed.py [--items 3000] [--kb 256] [--baseline 27cb626]

Scrubs the import benchmark's support chats (a card number, phone number, e-mail, IBAN and IP address in
each) item by item, and texts made of digit groups, dates, amounts and phone words, with the default policy;
``--baseline REV`` loads ``annotation/pii.py`` as it was at that git revision and runs the same work on it in
the same process, so the two columns are measured side by side. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_and_queue import _line  # noqa: E402

from annotation import pii  # noqa: E402


def _module_at(revision: str) -> ModuleType:
    source = subprocess.run(  # noqa: S603 - a revision the person running the bench names, read by git
        ["git", "show", f"{revision}:annotation/pii.py"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "pii_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pii_baseline", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pii_baseline"] = module
    spec.loader.exec_module(module)
    return module


def _digit_dense(size: int, rng: random.Random) -> list[str]:
    """Chat-sized texts (about 1 KB) full of numbers: groups, dates, amounts, phone words."""
    pieces = [
        lambda: " ".join(str(rng.randint(10, 99999)) for _ in range(rng.randint(1, 4))),
        lambda: f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.20{rng.randint(10, 30)}",
        lambda: f"{rng.randint(1, 9999)},{rng.randint(0, 99):02d} EUR",
        lambda: f"Tel. 0{rng.randint(30, 179)} {rng.randint(100000, 9999999)}",
        lambda: f"order {rng.randint(10**8, 10**9)}",
    ]
    texts: list[str] = []
    total = 0
    while total < size:
        text = " ".join(rng.choice(pieces)() for _ in range(60))
        texts.append(text)
        total += len(text)
    return texts


def _time(scrubber: Any, batches: list[list[str]]) -> float:
    start = time.perf_counter()
    for texts in batches:
        scrubber.scrub(texts)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--kb", type=int, default=256, help="KB of digit-dense text")
    parser.add_argument("--baseline", help="a git revision whose annotation/pii.py to measure beside this one")
    args = parser.parse_args()
    rng = random.Random(7)
    chats = [[m["content"] for m in json.loads(_line(n, rng))["messages"]] for n in range(args.items)]
    dense = [[text] for text in _digit_dense(args.kb * 1024, rng)]
    dense_mb = sum(len(texts[0]) for texts in dense) / 1e6
    columns = [("this tree", pii)]
    if args.baseline:
        columns.append((args.baseline, _module_at(args.baseline)))
    results = []
    for _, module in columns:
        scrubber = module.compile_policy(module.PiiPolicy(mode="replace"))
        chat_seconds = _time(scrubber, chats)
        dense_seconds = _time(scrubber, dense)
        results.append((f"{args.items / chat_seconds:,.0f}", f"{dense_seconds / dense_mb:.1f} s"))
    print("| measure | " + " | ".join(name for name, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    print(f"| support chats ({args.items:,} items), items/s | " + " | ".join(r[0] for r in results) + " |")
    print(f"| digit-dense text ({dense_mb:.2f} MB), per MB | " + " | ".join(r[1] for r in results) + " |")


if __name__ == "__main__":
    main()

"""Recall of planted phone numbers and survival of decoys, per kind, on the generated evaluation set.

    python bench/pii_recall.py [--seed 20] [--per-kind 400] [--misses 5]

Prints a Markdown table (the one in the README's PII section). A phone number counts as found when every
digit of it is inside a scrubbed value (scrubbed for sure or as uncertain, the default policy), so a number
whose area code is left in clear is a miss; a decoy survives when it is still in the text unchanged. Each
case is scrubbed with the project's phone region it was planted for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.annotation.pii_corpus import DECOY_KINDS, PHONE_KINDS, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--per-kind", type=int, default=400)
    parser.add_argument("--misses", type=int, default=0, help="print up to this many misses per kind")
    args = parser.parse_args()
    table, misses = measure(args.seed, args.per_kind)
    print(f"seed {args.seed}, {args.per_kind} cases per kind\n")
    print("| kind | cases | recall / survival | of which uncertain |")
    print("|---|---:|---:|---:|")
    for kind in PHONE_KINDS:
        hit, unsure, total = table[kind]
        print(f"| phone: {kind} | {total} | recall {hit / total:.3f} | {unsure} |")
    for kind in DECOY_KINDS:
        hit, unsure, total = table[kind]
        print(f"| decoy: {kind} | {total} | survival {hit / total:.3f} | {unsure} |")
    for kind, cases in misses.items():
        for case in cases[: args.misses]:
            print(f"MISS {kind} [{case.region}] {case.text!r}")


if __name__ == "__main__":
    main()

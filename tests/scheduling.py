"""The order the suite's processes take their tests in, so the longest modules start first, one process each.

pytest-xdist's ``worksteal`` hands each process one contiguous share of the collection, by count, and a process
that runs dry steals half of the longest remaining queue from its end. A module of a few minutes that lands at
the end of a share runs alone while the others have finished (the API fuzzing, 160 s, did so). Here the modules
measured longest (seconds from ``--durations`` in CI) are dealt, longest first, to the start of the share that has
the least such work so far, and the other tests fill each share up to its count in their usual order. A module
stays together, so its module-scoped fixtures are made once."""

from collections import defaultdict
from typing import Protocol, TypeVar


class Test(Protocol):
    @property
    def nodeid(self) -> str: ...


T = TypeVar("T", bound=Test)

# Module → seconds its tests took in CI (three processes on two cores). Only the ones over ~40 s matter here.
LONG_MODULES = {
    "tests/enclave/test_api_fuzz.py": 240,
    "tests/training/test_worker_jobs.py": 185,
    "tests/training/test_gpu_node.py": 140,
    "tests/enclave/test_serve.py": 140,
    "tests/rounds/test_two_rounds.py": 125,
    "tests/browser/test_pages.py": 120,
    "tests/training/test_mlflow.py": 110,  # one SFT job, two workers, an MLflow server: 128 s alone here, loaded
    "tests/training/test_worker_faults.py": 95,
    "tests/training/test_trainer.py": 70,
    "tests/enclave/test_worker.py": 70,
    "tests/releases/test_build_faults.py": 55,
    "tests/browser/test_evaluation_loop.py": 50,
    "tests/governance/test_dossier.py": 45,
    "tests/browser/test_training.py": 45,
    "tests/preferences/test_redis_fault.py": 45,
    "tests/evaluation/test_scoring_worker.py": 45,
    "tests/evaluation/test_generation_worker.py": 45,
}


def shares(total: int, processes: int) -> list[int]:
    """How many tests worksteal first sends each process: ``len(pending) // nodes_remaining`` in turn."""
    sizes, left = [], total
    for remaining in range(processes, 0, -1):
        sizes.append(left // remaining)
        left -= sizes[-1]
    return sizes


def long_first(items: list[T], processes: int) -> list[T]:
    by_module: dict[str, list[T]] = defaultdict(list)
    rest: list[T] = []
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        (by_module[module] if module in LONG_MODULES else rest).append(item)
    sizes = shares(len(items), processes)
    heads: list[list[T]] = [[] for _ in sizes]
    load = [0] * len(sizes)
    for module in sorted(by_module, key=lambda m: -LONG_MODULES[m]):
        share = min(range(len(sizes)), key=lambda k: (load[k], len(heads[k])))
        if len(heads[share]) + len(by_module[module]) > sizes[share]:
            rest[:0] = by_module[module]  # a share too small to hold it (a filtered run): leave it to the queue
            continue
        heads[share].extend(by_module[module])
        load[share] += LONG_MODULES[module]
    ordered: list[T] = []
    for size, head in zip(sizes, heads, strict=True):
        fill = size - len(head)
        ordered.extend(head + rest[:fill])
        del rest[:fill]
    return ordered + rest

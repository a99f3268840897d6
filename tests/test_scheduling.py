"""The suite's order under pytest-xdist: the longest modules lead the processes' shares."""

from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from tests.scheduling import LONG_MODULES, long_first, shares


@dataclass
class Item:
    nodeid: str


def _items() -> list[Any]:
    short = [Item(f"tests/a/test_{n}.py::test_it_{n}") for n in range(60)]
    long = [Item(f"{module}::test_it_{n}") for module in LONG_MODULES for n in range(2)]
    return short[:30] + long + short[30:]


def test_it_sends_each_process_the_count_worksteal_sends() -> None:
    assert shares(80, 3) == [26, 27, 27]
    assert sum(shares(7, 3)) == 7


def test_it_puts_the_longest_modules_first_in_each_share_and_keeps_every_test_once() -> None:
    items = _items()
    ordered = long_first(items, 3)
    assert sorted(i.nodeid for i in ordered) == sorted(i.nodeid for i in items)
    starts = [0, *accumulate(shares(len(items), 3))][:3]
    leaders = [ordered[start].nodeid.split("::")[0] for start in starts]
    assert len(set(leaders)) == 3
    assert leaders[0] == "tests/enclave/test_api_fuzz.py"
    assert set(leaders) <= set(LONG_MODULES)
    # A module stays together, in its order.
    fuzz = [n for n, i in enumerate(ordered) if i.nodeid.startswith("tests/enclave/test_api_fuzz.py")]
    assert fuzz == list(range(fuzz[0], fuzz[0] + 2))


def test_it_leaves_a_small_run_in_its_order() -> None:
    items = [Item("tests/enclave/test_api_fuzz.py::test_it_x"), Item("tests/a/test_b.py::test_it_y")]
    assert [i.nodeid for i in long_first(items, 3)] == [i.nodeid for i in items]

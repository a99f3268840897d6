"""Processes seen through /proc, for the tests that kill real children: a free port to bind them to, a wait
for them to be ready, the children of a process, and a process's start time (a pid alone may be reused)."""

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

Process = tuple[int, int]  # pid and start time
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], T], what: str, timeout: float = 90, *, ignoring: tuple[type[Exception], ...] = ()
) -> T:
    """Poll ``check`` until it answers something true, and return that; an exception of ``ignoring`` counts as
    not yet (a server still starting refuses connections)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = check()
        except ignoring:
            answer = None
        if answer:
            return answer
        time.sleep(0.05)
    pytest.fail(f"{what} not ready within {timeout} s")


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None once it has exited (or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie not yet reaped by its parent counts as gone)."""
    return start_time(pid) is not None


def gone_within(pid: int, seconds: float) -> bool:
    """Whether the process has ended (or is a zombie) by the time ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    return not alive(pid)


def children(pid: int) -> list[int]:
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            found += [int(child) for child in path.read_text().split()]
    return [child for child in found if start_time(child) is not None]


def descendants(pid: int) -> set[Process]:
    found: set[Process] = set()
    for child in children(pid):
        started = start_time(child)
        if started is not None:
            found |= {(child, started), *descendants(child)}
    return found


def still_running(processes: set[Process]) -> set[Process]:
    return {(pid, started) for pid, started in processes if start_time(pid) == started}


def command_line(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return []

"""Processes seen through /proc, for the tests that kill real children: a free port to bind them to, the
children of a process, and a process's start time (a pid alone may be reused)."""

import contextlib
import socket
from pathlib import Path

Process = tuple[int, int]  # pid and start time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None once it has exited (or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


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

"""What a training child guards against: a connection out of the perimeter (``NetworkGuard``, an audit hook
whose record goes into the adapter's lineage) and a supervisor that is gone (``SupervisorWatch``). Both run in
the child (``training.trainer``); ``say`` writes a line to the job's log."""

import ipaddress
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

SELF_CHECK_ADDRESS = ("192.0.2.1", 9)


def say(message: str) -> None:
    """A line for the job's log (the supervisor stores the child's output line by line)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class NetworkGuard:
    """An audit hook that records every socket connect of this process and refuses any that does not go to
    loopback or a Unix socket. Audit hooks cannot be removed: install it only in a process that trains."""

    def __init__(self) -> None:
        self.connects: list[str] = []
        self.refused: list[str] = []

    def install(self) -> "NetworkGuard":
        sys.addaudithook(self._hook)
        return self

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.connect":
            return
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) == socket.AF_UNIX:
            return
        host = str(address[0]) if isinstance(address, tuple) and address else str(address)
        self.connects.append(host)
        if not _is_loopback(host):
            self.refused.append(host)
            raise PermissionError(f"Enclave training runs offline: refused a connection to {host}.")

    def self_check(self) -> str:
        """Try a connection out of the perimeter (TEST-NET-1, never routed) and confirm the guard refuses it
        before any packet is sent; the answer goes into the adapter's lineage."""
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.connect(SELF_CHECK_ADDRESS)
        except PermissionError:
            return f"refused {SELF_CHECK_ADDRESS[0]}:{SELF_CHECK_ADDRESS[1]} before sending"
        except OSError as exc:
            raise RuntimeError(f"The network guard did not stop a connection attempt: {exc}") from None
        finally:
            probe.close()
            for seen in (self.connects, self.refused):  # the probe is not part of the run's record
                if SELF_CHECK_ADDRESS[0] in seen:
                    seen.remove(SELF_CHECK_ADDRESS[0])
        raise RuntimeError("The network guard let a connection out of the perimeter through.")

    def record(self) -> dict[str, Any]:
        return {"connects": self.connects, "refused": self.refused, "guard": "sys.addaudithook(socket.connect)"}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _process_start(pid: int) -> str | None:
    """The start time of a live process (``/proc/<pid>/stat``), or ``None`` when it is gone or a zombie: a pid
    the kernel gave to another process since, or a dead worker its parent has not reaped yet, is not it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here: only ask whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "alive"
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


class SupervisorWatch:
    """Ends this process when the worker supervising it is gone (killed, crashed): a training run nobody
    records is waste. Its work directory goes first, so no half-written adapter or staged data is left
    behind; the job itself is failed as "worker lost" by the reaper (``training.lifecycle``). Checked every
    second from a thread, and once more when training ends, for a run that finished in that second."""

    def __init__(self, pid: int, work: Path) -> None:
        self.pid, self.work = pid, work
        self.started = _process_start(pid)

    def gone(self) -> bool:
        now = _process_start(self.pid)
        return now is None or now != self.started

    def leave_if_gone(self) -> None:
        if self.gone():
            say(f"The supervising worker (pid {self.pid}) is gone; stopping and removing {self.work}.")
            shutil.rmtree(self.work, ignore_errors=True)
            os._exit(75)

    def start(self) -> "SupervisorWatch":
        def watch() -> None:
            while True:
                time.sleep(1)
                self.leave_if_gone()

        threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
        return self

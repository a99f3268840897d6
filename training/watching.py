"""What the supervisor (``training.runner``) watches while a job's child trains: the child's ``events.jsonl`` and
output tailed into the database (``Watch``), the job's heartbeat from a thread of its own, and the reason, in
words, when the child ends badly."""

import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from training import services
from training.children import Child, stop_child
from training.models import TrainingJob

logger = logging.getLogger(__name__)

_LOG_BATCH = 500
# A line that names what went wrong in a child's output: "RuntimeError: …", "[rank1]: ValueError: …", a C++
# "terminate called after throwing …" (kept when later lines, such as a launcher's summary, push it out).
_ERROR_LINE = re.compile(r"\b[\w.]*(?:Error|Exception): \S|terminate called after throwing")
POLL_SECONDS = 0.5


def supervise(child: Child, pump: Callable[..., bool], what: str) -> tuple[int | None, bool]:
    """Pump the child's events and output into the database every half second (each pump is the heartbeat too)
    until it exits; ``pump`` answers whether to stop the child, and a stop sends SIGTERM, then SIGKILL after the
    grace period. A pump that fails (the database restarting) is retried until the heartbeat timeout. Whatever
    error ends supervision, the child is stopped first, so no work runs on without a supervisor. Returns the
    child's exit code and whether it was told to stop."""
    stopped_at: float | None = None
    last_pumped = time.monotonic()
    try:
        while (code := child.exit_code()) is None:
            now = time.monotonic()
            try:
                stop = pump(child_pid=child.pid)
            except DatabaseError:
                if now - last_pumped > settings.TRAINING_HEARTBEAT_TIMEOUT:
                    raise
                logger.warning("%s: the database did not take a pump; retrying", what, exc_info=True)
                close_old_connections()
                stop = False
            else:
                last_pumped = now
            if stop and stopped_at is None:
                stopped_at = now
                child.signal(signal.SIGTERM)
            if stopped_at is not None and now - stopped_at > settings.TRAINING_CANCEL_GRACE_SECONDS:
                child.signal(signal.SIGKILL)
            time.sleep(POLL_SECONDS)
        pump(final=True)
    except BaseException:
        stop_child(child)
        raise
    return code, stopped_at is not None


@dataclass
class Tail:
    """New complete lines of a file that another process appends to."""

    path: Path
    offset: int = 0
    partial: bytes = b""

    def read(self, final: bool = False) -> list[str]:
        try:
            with self.path.open("rb") as stream:
                stream.seek(self.offset)
                data = stream.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = b"" if final else lines.pop()
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines if line]


@dataclass
class Watch:
    job: TrainingJob
    events: Tail
    output: Tail
    log_seq: int = 0
    total_steps: int | None = None
    last_lines: list[str] = field(default_factory=list)
    first_error: str = ""
    evaluation: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def pump(self, child_pid: int | None = None, final: bool = False) -> bool:
        """Move new events and output to the database; returns whether a cancel was asked for."""
        metrics: list[dict[str, Any]] = []
        phase: str | None = None
        for line in self.events.read(final):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "begin":
                self.total_steps = int(event["total_steps"])
            elif kind == "log" and event.get("phase") in ("train", "eval"):
                metrics.append(event)
            elif kind == "phase":
                phase = str(event["phase"])
            elif kind == "evaluation":
                self.evaluation[event["when"]] = event["values"]
            elif kind == "error":
                self.error = str(event["message"])
        lines = [line for line in self.output.read(final) if line.strip()]
        self.last_lines = (self.last_lines + lines)[-20:]
        self.first_error = self.first_error or first_error_line(lines)
        cancel = False
        for start in range(0, max(len(lines), 1), _LOG_BATCH):
            chunk = lines[start : start + _LOG_BATCH]
            cancel = services.training_job_progress(
                job=self.job,
                metrics=metrics if start == 0 else [],
                log_lines=chunk,
                log_seq=self.log_seq,
                total_steps=self.total_steps,
                phase=phase,
                child_pid=child_pid,
            )
            self.log_seq += len(chunk)
        return cancel


class HeartbeatThread(threading.Thread):
    """Beats for a running job every few seconds from its own database connection, so that staging the data
    and storing the adapter (minutes for large files) do not look like a lost worker. ``beat`` beats for
    another kind of run (a generation run) by its id."""

    def __init__(self, job_id: int, every: float = 5.0, *, beat: Callable[[int], None] | None = None) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.job_id = job_id
        self.every = every
        self.beat = beat or (lambda pk: services.training_job_beat(job_id=pk))  # another app's run: its own beat
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.wait(self.every):
                try:
                    self.beat(self.job_id)
                except DatabaseError:
                    logger.warning("job %s: heartbeat not written", self.job_id, exc_info=True)
                    close_old_connections()
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=10)


def first_error_line(lines: list[str]) -> str:
    """The first of ``lines`` that names an error, or ``""``."""
    return next((line.strip()[:500] for line in lines if _ERROR_LINE.search(line)), "")


class Watched(Protocol):
    error: str
    last_lines: list[str]
    first_error: str


def exit_reason(code: int | None, watch: Watched, *, what: str = "training") -> str:
    """Why a child ended badly, in words: ``what`` names its work ("training", "generating")."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = f"The {what} process was killed by {name}."
        if -code == signal.SIGKILL:
            limit = "max_length" if what == "training" else "max_new_tokens"
            reason += f" The usual cause is the out-of-memory killer: try a smaller batch size or {limit}."
    elif code == 75:
        reason = f"The {what} process stopped because its supervising worker went away."
    else:
        reason = f"The {what} process failed (exit code {code})."
    if watch.error:
        reason += f" {watch.error}"
    if watch.first_error and watch.first_error not in watch.error and watch.first_error not in watch.last_lines[-8:]:
        reason += f"\nFirst error in the log: {watch.first_error}"
    if watch.last_lines:
        reason += "\nLast log lines:\n" + "\n".join(watch.last_lines[-8:])
    return reason

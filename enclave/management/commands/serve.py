"""Run the whole app on this machine: migrate, seed a new database, then the web server and two
Celery workers (``default`` and ``gpu`` queues) until Ctrl+C.

A child that exits is started again after a pause that doubles with each crash (1 s, 2 s, 4 s … 30 s) and
goes back to 1 s once the child had run for a minute; the other children keep running meanwhile, so a
crashed worker never takes the web down. A child that crashes ``CRASH_LIMIT`` times within
``CRASH_WINDOW`` seconds is in a crash loop: then everything stops, with the child named and where to look.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser, OutputWrapper

from accounts.models import User
from enclave.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # a child that ran this long before it exited starts again after FIRST_DELAY
CRASH_LIMIT = 5
CRASH_WINDOW = 120.0
STOP_TIMEOUT = 15.0

WHERE_TO_LOOK = {
    "web": "gunicorn's lines above (is the port free? does `manage.py check` pass?)",
    "worker-default": "its lines above (can it reach the broker and the database?)",
    "worker-gpu": "its lines above (can it reach the broker and the database? do the training libraries import?)",
}


def exit_reason(returncode: int) -> str:
    """``exited with code 1`` or ``was killed by SIGKILL`` (Popen reports a signal as a negative code)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


class Child:
    """One supervised process, in a process group of its own: Ctrl+C reaches only ``serve``, which stops
    the children in order, and whatever a crashed child leaves in its group (gunicorn's workers holding the
    port, celery's pool) is ended before it starts again."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.group_ended = False
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.delay = FIRST_DELAY
        self.crashes: deque[float] = deque()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, env=self.env, process_group=0)  # noqa: S603
        self.group_ended = False
        self.started_at = time.monotonic()
        self.restart_at = None

    def exited(self) -> int | None:
        """The exit code once the child has exited and is not already waiting to start again."""
        if self.proc is None or self.restart_at is not None:
            return None
        return self.proc.poll()

    def crashed(self, now: float) -> int:
        """Count this exit, plan the restart, and answer how many crashes fall within the window."""
        self.end_group()
        if now - self.started_at >= STABLE_AFTER:
            self.delay = FIRST_DELAY
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > CRASH_WINDOW:
            self.crashes.popleft()
        self.restart_at = now + self.delay
        return len(self.crashes)

    def back_off(self) -> None:
        self.delay = min(self.delay * 2, MAX_DELAY)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.end_group()

    def end_group(self) -> None:
        """Once per start: after that the group's id (the child's pid) may belong to someone else."""
        if self.proc is not None and not self.group_ended:
            self.group_ended = True
            with contextlib.suppress(ProcessLookupError, PermissionError):  # an empty group: nothing left behind
                os.killpg(self.proc.pid, signal.SIGKILL)


def supervise(children: list[Child], stderr: OutputWrapper) -> int:
    """Keep the children running until a stop signal (0) or a crash loop (1)."""
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    for child in children:
        child.start()
    exit_code = 0
    while not stopping:
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None and now >= child.restart_at:
                child.start()
            returncode = child.exited()
            if returncode is None or stopping:
                continue
            crashes = child.crashed(now)
            if crashes >= CRASH_LIMIT:
                stderr.write(
                    f"{child.name} {exit_reason(returncode)}: it crashed {crashes} times within "
                    f"{CRASH_WINDOW:g} s, a crash loop; stopping everything. Look at {WHERE_TO_LOOK[child.name]}."
                )
                exit_code, stopping = 1, True
                break
            stderr.write(f"{child.name} {exit_reason(returncode)}; restarting it in {child.delay:g} s.")
            child.back_off()
        time.sleep(0.2)
    for child in children:
        child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        child.wait(deadline)
    return exit_code


class Command(BaseCommand):
    help = "Migrate, seed demo data on a new database, and run the web server plus Celery workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-seed", action="store_true", help="Do not create demo data on a new database.")

    def handle(self, *args: Any, **options: Any) -> None:
        Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        seeded = False
        if not options["no_seed"] and not User.objects.exists():
            call_command("seed_demo", verbosity=0)
            seeded = True
        self._clear_processed_messages()

        env = {**os.environ, "DJANGO_SETTINGS_MODULE": str(settings.SETTINGS_MODULE), "OMP_NUM_THREADS": "1"}
        python = sys.executable
        children = [
            Child("web", [
                python, "-m", "gunicorn", "enclave.wsgi:application",
                "--bind", f"{options['host']}:{options['port']}",
                "--workers", "2", "--threads", "4", "--graceful-timeout", "5",
                "--access-logfile", "-", "--logger-class", "enclave.access_log.AccessLogger",
            ], env),
            Child("worker-default", [
                python, "-m", "celery", "-A", "enclave", "worker", "-Q", "default",
                "-n", "default@%h", "--concurrency", "2", "--loglevel", "INFO",
            ], env),
            Child("worker-gpu", [
                python, "-m", "celery", "-A", "enclave", "worker", "-Q", "gpu",
                "-n", "gpu@%h", "--pool", "solo", "--loglevel", "INFO",
            ], env),
        ]  # fmt: skip

        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"\nEnclave is running at {url}"))
        db = "PostgreSQL" if settings.DATABASE_IS_POSTGRES else f"SQLite ({settings.DATABASES['default']['NAME']})"
        broker = "Redis" if settings.REDIS_URL else f"filesystem ({settings.BROKER_DIR})"
        self.stdout.write(f"Database: {db}; broker: {broker}")
        if seeded or User.objects.filter(username=DEMO_USERS[0][0]).exists():
            self.stdout.write(f"Demo logins (password “{DEMO_PASSWORD}”):")
            for username, label, _ in DEMO_USERS:
                self.stdout.write(f"  {username:<13} {label}")
        self.stdout.write("Press Ctrl+C to stop.\n")
        sys.stdout.flush()

        exit_code = supervise(children, self.stderr)
        if exit_code:
            sys.exit(exit_code)

    def _clear_processed_messages(self) -> None:
        """The filesystem broker keeps each consumed message in processed/; they are spent, drop them."""
        if not settings.REDIS_URL:
            processed = settings.BROKER_DIR / "processed"
            for spent in processed.glob("*.msg"):
                spent.unlink(missing_ok=True)

"""Run the whole app on this machine: migrate, seed a new database, collect the static files (hashed and
compressed, as production serves them), then the web server, two Celery workers (``default`` and ``gpu``
queues) and Celery beat (the site-wide schedule of ``enclave.periodic``) until Ctrl+C. The children log
everything to ``logs/enclave.log`` in the data directory and only warnings and errors to the console, which
ends with one block: the address, the demo logins, the log file.

A child that exits is started again after a pause that doubles with each crash (1 s, 2 s, 4 s … 30 s) and
goes back to 1 s once the child had run for a minute; the other children keep running meanwhile, so a
crashed worker never takes the web down. A child that crashes ``SERVE_CRASH_LIMIT`` times within
``SERVE_CRASH_WINDOW`` seconds (settings) is in a crash loop: then everything stops, with the child named and
where to look.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from accounts.models import User
from enclave import staticfiles
from enclave.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # a child that ran this long before it exited starts again after FIRST_DELAY
STOP_TIMEOUT = 15.0

LOG_NAME = "enclave.log"
# The start of Celery's warning to a worker run by root (a PYTHONWARNINGS filter matches a message's start).
ROOT_WARNING = "ignore:You're running the worker with superuser privileges"
WHERE_TO_LOOK = {
    "web": "gunicorn's lines in {log} (is the port free? does `manage.py check` pass?)",
    "worker-default": "its lines in {log} (can it reach the broker and the database?)",
    "worker-gpu": "its lines in {log} (can it reach the broker and the database? do the training libraries import?)",
    "beat": "its lines in {log} (can it reach the broker? can it write its schedule file in the data directory?)",
}
# What each demo login is for, in the words of the people who use Enclave (the accounts: seed_demo.DEMO_USERS).
PERSONAS = {
    "annotator": "domain expert: labels chats, ranks model answers",
    "reviewer": "reviewer: accepts or sends back annotations",
    "datalead": "data lead: rubric, imports, releases",
    "projectadmin": "project admin: members, roles, training jobs, evaluations",
    "approver": "approver: signs off promotions and rollbacks of adapters",
    "outsider": "member of another project only (sees none of the above)",
    "staff": "site admin: every project, /admin/",
}


def start_log(path: Path) -> Path:
    """A new log file for this run; the previous run's is kept beside it as ``<name>.1``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))
    path.touch()
    return path


def web_ready(host: str, port: int) -> Callable[[], bool]:
    """Whether the web's port takes a connection yet (on any address: ask the loopback one)."""
    address = "127.0.0.1" if host in {"0.0.0.0", ""} else host  # noqa: S104 - compared, not bound

    def ready() -> bool:
        try:
            with socket.create_connection((address, port), timeout=0.2):
                return True
        except OSError:
            return False

    return ready


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
        while self.crashes and now - self.crashes[0] > settings.SERVE_CRASH_WINDOW:
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


def supervise(
    children: list[Child],
    stderr: OutputWrapper,
    log_file: Path,
    ready: Callable[[], bool] = lambda: True,
    on_ready: Callable[[], None] = lambda: None,
) -> int:
    """Keep the children running until a stop signal (0) or a crash loop (1); once ``ready()`` answers true
    (the web takes connections), call ``on_ready`` once."""
    stopping = False
    announced = False

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
        if not announced and ready():
            announced = True
            on_ready()
        for child in children:
            if child.restart_at is not None and now >= child.restart_at:
                child.start()
            returncode = child.exited()
            if returncode is None or stopping:
                continue
            crashes = child.crashed(now)
            if crashes >= settings.SERVE_CRASH_LIMIT:
                stderr.write(
                    f"{child.name} {exit_reason(returncode)}: it crashed {crashes} times within "
                    f"{settings.SERVE_CRASH_WINDOW:g} s, a crash loop; stopping everything. "
                    f"Look at {WHERE_TO_LOOK[child.name].format(log=log_file)}."
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
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        log_file = start_log(data_dir / "logs" / LOG_NAME)
        static_root = Path(getattr(settings, "STATIC_ROOT", None) or data_dir / "staticfiles")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": str(settings.SETTINGS_MODULE),
            "OMP_NUM_THREADS": "1",
            "STATIC_ROOT": str(static_root),
            "LOG_FILE": str(log_file),
            "CONSOLE_LOG_LEVEL": "WARNING",
            # Release builds write through `datasets`, whose bars ("Saving the dataset (0/0 shards)") are noise here.
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
        as_root = os.geteuid() == 0
        if as_root:
            # Celery's eight-line warning per worker would follow the closing block; it says so there in one line.
            env["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), ROOT_WARNING]))
        # The static files are collected meanwhile the database is migrated and seeded, which they do not touch.
        collection = None
        if staticfiles.stale(static_root):
            self.stdout.write("Compressing the static files (after a change only, a few seconds)…")
            collection = staticfiles.Collection(static_root, env)

        call_command("migrate", interactive=False, verbosity=0)
        seeded = False
        if not options["no_seed"] and not User.objects.exists():
            self.stdout.write("Creating the demo data (on a new database only, about half a minute)…")
            call_command("seed_demo", verbosity=0)
            seeded = True
        self._clear_processed_messages()
        if collection is not None:
            try:
                collection.wait()
            except subprocess.CalledProcessError as exc:
                raise CommandError(f"collectstatic failed:\n{exc.output.decode()}") from exc

        python = sys.executable
        children = [
            Child("web", [
                python, "-m", "gunicorn", "enclave.wsgi:application",
                "--bind", f"{options['host']}:{options['port']}",
                "--workers", "2", "--threads", "4", "--graceful-timeout", "5",
                "--access-logfile", str(log_file), "--logger-class", "enclave.access_log.AccessLogger",
            ], env),
            Child("worker-default", [
                python, "-m", "celery", "-A", "enclave", "--quiet", "worker", "-Q", "default",
                "-n", "default@%h", "--concurrency", "2", "--loglevel", "INFO",
            ], env),
            Child("worker-gpu", [
                python, "-m", "celery", "-A", "enclave", "--quiet", "worker", "-Q", "gpu",
                "-n", "gpu@%h", "--pool", "solo", "--loglevel", "INFO",
            ], env),
            Child("beat", [
                python, "-m", "celery", "-A", "enclave", "--quiet", "beat", "--loglevel", "INFO",
                "--schedule", str(data_dir / "celerybeat-schedule"),
            ], env),
        ]  # fmt: skip

        demo = seeded or User.objects.filter(username=DEMO_USERS[0][0]).exists()
        welcome = self.welcome(options["host"], options["port"], log_file, demo, as_root=as_root)
        exit_code = supervise(children, self.stderr, log_file, ready=web_ready(options["host"], options["port"]),
                              on_ready=lambda: self.stdout.write(welcome))  # fmt: skip
        if exit_code:
            sys.exit(exit_code)

    def welcome(self, host: str, port: int, log_file: Path, demo: bool, as_root: bool = False) -> str:
        """The block that ends the start: where to go, who to log in as, where the logs are, how to stop."""
        lines = ["", self.style.SUCCESS(f"Enclave is running at http://{host}:{port}/"), ""]
        if demo:
            lines.append(f"Log in with the password {DEMO_PASSWORD} as:")
            for username, label, _ in DEMO_USERS:
                lines.append(f"  {username:<13} {PERSONAS.get(username, label)}")
            lines.append("")
        db = "PostgreSQL" if settings.DATABASE_IS_POSTGRES else "SQLite"
        broker = "Redis" if settings.REDIS_URL else "a filesystem broker"
        lines.append(f"Data:  {db} and {broker}, in {settings.DATA_DIR}")
        lines.append(f"Logs:  {log_file} (warnings and errors also show here)")
        if as_root:
            lines.append("Root:  the workers run as root too, which Celery advises against outside a container")
        lines.append("Stop:  Ctrl+C")
        return "\n".join(lines)

    def _clear_processed_messages(self) -> None:
        """The filesystem broker keeps each consumed message in processed/; they are spent, drop them."""
        if not settings.REDIS_URL:
            processed = settings.BROKER_DIR / "processed"
            for spent in processed.glob("*.msg"):
                spent.unlink(missing_ok=True)

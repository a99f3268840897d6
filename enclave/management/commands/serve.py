"""Run the whole app on this machine: migrate, seed a new database, then the web server and two
Celery workers (``default`` and ``gpu`` queues) until Ctrl+C. Any child that dies stops the rest."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from accounts.models import User
from enclave.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS


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
        children = {
            "web": [
                python, "-m", "gunicorn", "enclave.wsgi:application",
                "--bind", f"{options['host']}:{options['port']}",
                "--workers", "2", "--threads", "4", "--access-logfile", "-", "--graceful-timeout", "5",
            ],
            "worker-default": [
                python, "-m", "celery", "-A", "enclave", "worker", "-Q", "default",
                "-n", "default@%h", "--concurrency", "2", "--loglevel", "INFO",
            ],
            "worker-gpu": [
                python, "-m", "celery", "-A", "enclave", "worker", "-Q", "gpu",
                "-n", "gpu@%h", "--pool", "solo", "--loglevel", "INFO",
            ],
        }  # fmt: skip
        procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in children.items()}  # noqa: S603

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

        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with code {proc.returncode}; stopping everything.")
                    exit_code = proc.returncode or 1
                    stopping = True
                    break
            time.sleep(0.5)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if exit_code:
            sys.exit(exit_code)

    def _clear_processed_messages(self) -> None:
        """The filesystem broker keeps each consumed message in processed/; they are spent, drop them."""
        if not settings.REDIS_URL:
            processed = settings.BROKER_DIR / "processed"
            for spent in processed.glob("*.msg"):
                spent.unlink(missing_ok=True)

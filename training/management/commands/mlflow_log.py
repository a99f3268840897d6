from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from training.models import MlflowState, TrainingJob
from training.tracking import ENDED, training_job_mlflow_resend


class Command(BaseCommand):
    help = (
        "Queue ended training jobs' runs for the MLflow tracking server (MLFLOW_TRACKING_URI) again: the jobs named, "
        "every job whose logging failed (--failed, after the server was away), or also those that ended before the "
        "setting was made (--missing). A default worker sends them; a run already in MLflow is found, not doubled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("jobs", nargs="*", type=int, help="ids of training jobs")
        parser.add_argument("--failed", action="store_true", help="every job whose MLflow logging failed")
        parser.add_argument("--missing", action="store_true", help="every ended job with no MLflow run kept")

    def handle(self, *args: Any, jobs: list[int], failed: bool, missing: bool, **options: Any) -> None:
        if not (jobs or failed or missing):
            raise CommandError("Name the jobs, or give --failed or --missing.")
        chosen = set(jobs)
        ended = TrainingJob.objects.filter(state__in=ENDED, started_at__isnull=False)
        if failed:
            chosen |= set(ended.filter(mlflow_run__state=MlflowState.FAILED).values_list("pk", flat=True))
        if missing:
            chosen |= set(ended.filter(mlflow_run__isnull=True).values_list("pk", flat=True))
        queued = 0
        for job in TrainingJob.objects.filter(pk__in=chosen).order_by("pk"):
            try:
                training_job_mlflow_resend(actor=None, job=job)
            except DomainError as exc:
                self.stderr.write(f"{job}: {exc.message}")
            else:
                queued += 1
        self.stdout.write(f"{queued} of {len(chosen)} jobs queued for MLflow.")

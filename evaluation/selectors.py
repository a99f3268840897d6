"""Reads of generation runs: a project's runs, a run's candidates with their prompts, a sample for its page,
and the choices of the run form."""

from django.db.models import QuerySet

from accounts.models import Project
from evaluation.models import Candidate, GenerationRun
from releases.models import Release, ReleaseState
from training.models import Adapter


def runs_of(project: Project) -> QuerySet[GenerationRun]:
    return GenerationRun.objects.filter(project=project).select_related("base_model", "adapter", "created_by")


def candidates_of(run: GenerationRun) -> QuerySet[Candidate]:
    return Candidate.objects.filter(run=run).select_related("prompt").order_by("prompt__index", "sample")


def sample_of(run: GenerationRun, count: int = 10) -> list[Candidate]:
    """The newest answers (scrubbed), for the live page."""
    return list(Candidate.objects.filter(run=run).select_related("prompt").order_by("-id")[:count])


def adapters_for_generation(project: Project) -> QuerySet[Adapter]:
    return Adapter.objects.filter(project=project).select_related("base_model").order_by("-created_at", "-id")


def releases_with_eval(project: Project) -> QuerySet[Release]:
    return Release.objects.filter(project=project, state=ReleaseState.BUILT).order_by("-built_at", "-id")

"""Reads of the evaluation app."""

from typing import Any

from django.db.models import QuerySet

from accounts.models import Project
from evaluation.models import Evaluation, EvaluationState, EvaluationSystem
from evaluation.results import evaluation_results


def evaluations_of(project: Project) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(project=project).select_related("created_by", "judging_project")


def systems_of(evaluation: Evaluation) -> QuerySet[EvaluationSystem]:
    return evaluation.systems.select_related("base_model", "adapter", "run").order_by("position")


def figures_of(evaluation: Evaluation) -> dict[str, Any] | None:
    """The frozen results of a finished evaluation, the live ones while it is judged, None before."""
    if evaluation.state == EvaluationState.FINISHED and evaluation.results:
        return evaluation.results
    if evaluation.state == EvaluationState.JUDGING:
        return evaluation_results(evaluation)
    return None

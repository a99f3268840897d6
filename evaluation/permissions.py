"""Access helpers of generation runs; each answers 404 for missing and forbidden alike. Who reads training
reads generation runs (data leads, project admins, site staff); who may start training starts and cancels
them (``RUN_TRAINING``). Annotators and reviewers never see a policy's raw setup."""

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user
from core.http import row_or_404
from evaluation.models import GenerationRun
from training.permissions import can_run_training as can_run_training
from training.permissions import get_project_for_training


def get_project_for_generation(user: AnyUser, project_pk: int | str) -> Project:
    return get_project_for_training(user, project_pk)


def get_project_for_generating(user: AnyUser, project_pk: int | str) -> Project:
    return get_project_for_user(user, project_pk, ProjectPerm.RUN_TRAINING)


def _run(project: Project, run_pk: int | str) -> GenerationRun:
    runs = GenerationRun.objects.filter(project=project).select_related(
        "project", "base_model", "adapter", "release", "created_by", "cancel_requested_by"
    )
    return row_or_404(runs, run_pk, "No such generation run.")


def get_run_for_user(user: AnyUser, project_pk: int | str, run_pk: int | str) -> GenerationRun:
    return _run(get_project_for_generation(user, project_pk), run_pk)


def get_run_for_runner(user: AnyUser, project_pk: int | str, run_pk: int | str) -> GenerationRun:
    return _run(get_project_for_generating(user, project_pk), run_pk)

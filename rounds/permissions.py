"""Access helpers of rounds; each answers 404 for missing and forbidden alike. Who reads training (data leads,
project admins, site staff) reads a project's rounds; who may train (project admins) starts, moves and ends
them. Annotators judge a round's pairs in the ordinary compare pages and never see the rounds."""

from django.http import Http404

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user
from core.http import parse_id
from rounds.models import Round
from training.permissions import can_run_training as can_run_training
from training.permissions import get_project_for_training


def get_project_for_rounds(user: AnyUser, project_pk: int | str) -> Project:
    return get_project_for_training(user, project_pk)


def get_project_for_running_rounds(user: AnyUser, project_pk: int | str) -> Project:
    return get_project_for_user(user, project_pk, ProjectPerm.RUN_TRAINING)


def _round(project: Project, number: int | str) -> Round:
    rounds = Round.objects.filter(project=project).select_related(
        "project", "target", "base_model", "policy_adapter", "reward_model", "generation_run", "release",
        "training_job", "adapter", "evaluation", "promotion", "created_by",
    )  # fmt: skip
    found = rounds.filter(number=number).first() if parse_id(number) is not None else None
    if found is None:
        raise Http404("No such round.")
    return found


def get_round_for_user(user: AnyUser, project_pk: int | str, number: int | str) -> Round:
    return _round(get_project_for_rounds(user, project_pk), number)


def get_round_for_runner(user: AnyUser, project_pk: int | str, number: int | str) -> Round:
    return _round(get_project_for_running_rounds(user, project_pk), number)

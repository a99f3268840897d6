"""Access helpers of the evaluation app: each answers 404 for missing and forbidden alike.

Evaluations are read by those who read training (data leads, project admins, site staff) and started and
finished by those who may run training. Annotators never see them: they judge in the evaluation's judging
project through the normal preference pages, which show no model's name."""

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_user
from core.http import row_or_404
from evaluation.models import Evaluation
from training.permissions import can_run_training, get_project_for_training


def get_project_for_evaluations(user: AnyUser, project_pk: int | str) -> Project:
    return get_project_for_training(user, project_pk)


def can_run_evaluations(user: AnyUser, project: Project) -> bool:
    return can_run_training(user, project)


def _evaluation(project: Project, evaluation_pk: int | str) -> Evaluation:
    evaluations = Evaluation.objects.filter(project=project).select_related(
        "project", "judging_project", "release", "deployment_target", "created_by", "finished_by"
    )
    return row_or_404(evaluations, evaluation_pk, "No such evaluation.")


def get_evaluation_for_user(user: AnyUser, project_pk: int | str, evaluation_pk: int | str) -> Evaluation:
    return _evaluation(get_project_for_evaluations(user, project_pk), evaluation_pk)


def get_evaluation_for_runner(user: AnyUser, project_pk: int | str, evaluation_pk: int | str) -> Evaluation:
    """Finishing is for those who may start evaluations: project admins and site staff."""
    return _evaluation(get_project_for_user(user, project_pk, ProjectPerm.RUN_TRAINING), evaluation_pk)

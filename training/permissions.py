"""Access helpers of the training app: each answers 404 for missing and forbidden alike.

Project admins (and site staff) start, cancel and re-run jobs; data leads may watch them and read adapters'
lineage, which ties their releases to what was trained. Annotators and reviewers never see training. The
base-model registry is site-wide and kept by site staff."""

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Membership, Project, ProjectPerm, Role
from accounts.permissions import (
    AnyUser,
    get_project_for_any,
    get_project_for_user,
    is_site_staff,
    project_perms_for,
    require_site_staff,
)
from core.http import row_or_404
from training.models import Adapter, BaseModel, BaseModelState, RewardModel, TrainingJob

READ_PERMS = {ProjectPerm.MANAGE_DATA, ProjectPerm.RUN_TRAINING}


def get_project_for_training(user: AnyUser, project_pk: int | str) -> Project:
    return get_project_for_any(user, project_pk, READ_PERMS)


def can_run_training(user: AnyUser, project: Project) -> bool:
    return ProjectPerm.RUN_TRAINING in project_perms_for(user, project)


def _job(project: Project, job_pk: int | str) -> TrainingJob:
    jobs = TrainingJob.objects.filter(project=project).select_related(
        "project", "release", "base_model", "created_by", "cancel_requested_by", "rerun_of", "mlflow_run"
    )
    return row_or_404(jobs, job_pk, "No such job.")


def get_job_for_user(user: AnyUser, project_pk: int | str, job_pk: int | str) -> TrainingJob:
    return _job(get_project_for_training(user, project_pk), job_pk)


def get_job_for_admin(user: AnyUser, project_pk: int | str, job_pk: int | str) -> TrainingJob:
    """Cancelling and re-running are for those who may start jobs: project admins and site staff."""
    return _job(get_project_for_user(user, project_pk, ProjectPerm.RUN_TRAINING), job_pk)


def get_adapter_for_user(user: AnyUser, project_pk: int | str, adapter_pk: int | str) -> Adapter:
    project = get_project_for_training(user, project_pk)
    adapters = Adapter.objects.filter(project=project).select_related(
        "project", "job", "release", "base_model", "started_by"
    )
    return row_or_404(adapters, adapter_pk, "No such adapter.")


def get_adapter_for_admin(user: AnyUser, project_pk: int | str, adapter_pk: int | str) -> Adapter:
    """Merging an adapter into its base model runs on the gpu queue: for those who may start jobs."""
    project = get_project_for_user(user, project_pk, ProjectPerm.RUN_TRAINING)
    adapters = Adapter.objects.filter(project=project).select_related("project", "job", "release", "base_model")
    return row_or_404(adapters, adapter_pk, "No such adapter.")


def get_reward_model_for_user(user: AnyUser, project_pk: int | str, reward_model_pk: int | str) -> RewardModel:
    project = get_project_for_training(user, project_pk)
    rows = RewardModel.objects.filter(project=project).select_related(
        "project", "job", "release", "base_model", "started_by"
    )
    return row_or_404(rows, reward_model_pk, "No such reward model.")


def base_models_for_user(user: AnyUser) -> QuerySet[BaseModel]:
    """Site staff see every registered model; a project admin of any project sees the ready ones (to choose
    from when starting a job); anyone else gets 404."""
    if is_site_staff(user):
        return BaseModel.objects.all()
    if not Membership.objects.filter(user_id=user.pk or 0, role=Role.PROJECT_ADMIN).exists():
        raise Http404("Not found.")
    return BaseModel.objects.filter(state=BaseModelState.READY)


def get_base_model_for_staff(user: AnyUser, model_pk: int | str) -> BaseModel:
    require_site_staff(user)
    return row_or_404(BaseModel.objects.all(), model_pk, "No such base model.")

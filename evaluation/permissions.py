"""Access helpers of the evaluation app; each answers 404 for missing and forbidden alike.

Generation runs: who reads training reads them (data leads, project admins, site staff); who may start
training starts and cancels them (``RUN_TRAINING``). Annotators and reviewers never see a policy's raw setup.
Deployment targets: those who read training and approvers read targets, their history and requests; project
admins (who may train) create and change targets and ask for promotions and rollbacks; holders of the approve
permission (approvers, project admins) approve or refuse them. Evaluations: those who read training read them;
who may train starts and finishes them; annotators judge only in the judging project. Scoring runs: as
generation runs (their scores are never an annotator's to see)."""

from django.http import Http404

from accounts.models import Project, ProjectPerm
from accounts.permissions import AnyUser, get_project_for_any, get_project_for_user, project_perms_for
from core.http import parse_id, row_or_404
from evaluation.models import DeploymentTarget, Evaluation, GenerationRun, PromotionRequest, ScoringRun
from training.permissions import READ_PERMS as TRAINING_READ_PERMS
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


DEPLOYMENT_READ_PERMS = TRAINING_READ_PERMS | {ProjectPerm.APPROVE_PROMOTION}


def get_project_for_deployments(user: AnyUser, project_pk: int | str) -> Project:
    return get_project_for_any(user, project_pk, DEPLOYMENT_READ_PERMS)


def can_manage_deployments(user: AnyUser, project: Project) -> bool:
    return ProjectPerm.RUN_TRAINING in project_perms_for(user, project)


def can_approve_promotions(user: AnyUser, project: Project) -> bool:
    return ProjectPerm.APPROVE_PROMOTION in project_perms_for(user, project)


def _target(project: Project, name: str) -> DeploymentTarget:
    target = (
        DeploymentTarget.objects.filter(project=project, name=name)
        .select_related("project", "base_model", "current_adapter", "created_by")
        .first()
    )
    if target is None:
        raise Http404("No such deployment target.")
    return target


def get_target_for_user(user: AnyUser, project_pk: int | str, name: str, perm: str | None = None) -> DeploymentTarget:
    """A target of the project, for a reader (``perm`` None) or for a holder of ``perm``."""
    if perm is None:
        project = get_project_for_deployments(user, project_pk)
    else:
        project = get_project_for_user(user, project_pk, perm)
    return _target(project, name)


def get_request_for_user(
    user: AnyUser, project_pk: int | str, name: str, request_pk: int | str, perm: str | None = None
) -> PromotionRequest:
    target = get_target_for_user(user, project_pk, name, perm)
    request_id = parse_id(request_pk)
    found = (
        PromotionRequest.objects.filter(target=target, pk=request_id)
        .select_related("adapter", "adapter__job", "evaluation", "replaces_adapter", "requested_by")
        .first()
        if request_id is not None
        else None
    )
    if found is None:
        raise Http404("No such request.")
    found.target = target
    return found


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


def _scoring_run(project: Project, run_pk: int | str) -> ScoringRun:
    runs = ScoringRun.objects.filter(project=project).select_related(
        "project", "reward_model", "reward_model__base_model", "generation_run", "created_by", "cancel_requested_by"
    )
    return row_or_404(runs, run_pk, "No such scoring run.")


def get_scoring_run_for_user(user: AnyUser, project_pk: int | str, run_pk: int | str) -> ScoringRun:
    return _scoring_run(get_project_for_generation(user, project_pk), run_pk)


def get_scoring_run_for_runner(user: AnyUser, project_pk: int | str, run_pk: int | str) -> ScoringRun:
    return _scoring_run(get_project_for_generating(user, project_pk), run_pk)

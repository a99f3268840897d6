"""Reads of the evaluation app.

Generation runs: a project's runs, a run's candidates with their prompts, a sample for its page, and the
choices of the run form. Deployment targets: the project's targets with their current models, a target's
history and requests, what a promotion or rollback form offers, the current pointer a serving stack pulls, and
an adapter's evaluations and deployments (for its lineage page). Evaluations: a project's, with their systems
and runs. Scoring runs: a project's, its reward models and scorable runs, a run's scores summed up."""

from typing import Any

from django.db.models import Avg, Count, Max, Min, Q, QuerySet, StdDev
from django.urls import reverse

from accounts.models import Project
from evaluation.models import (
    Candidate,
    Deployment,
    DeploymentTarget,
    Evaluation,
    EvaluationState,
    EvaluationSystem,
    GenerationRun,
    PromotionRequest,
    RequestState,
    RewardScore,
    ScoringRun,
)
from evaluation.results import evaluation_results
from releases.models import Release, ReleaseState
from training.models import Adapter, JobState, RewardModel


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


# --- Deployment targets ------------------------------------------------------------------------------------


def targets_of(project: Project) -> QuerySet[DeploymentTarget]:
    return DeploymentTarget.objects.filter(project=project).select_related("base_model", "current_adapter")


def history_of(target: DeploymentTarget) -> QuerySet[Deployment]:
    return Deployment.objects.filter(target=target).select_related(
        "adapter", "previous_adapter", "request", "request__requested_by"
    )


def requests_of(target: DeploymentTarget) -> QuerySet[PromotionRequest]:
    return PromotionRequest.objects.filter(target=target).select_related(
        "adapter", "evaluation", "replaces_adapter", "requested_by"
    )


def pending_request(target: DeploymentTarget) -> PromotionRequest | None:
    return requests_of(target).filter(state=RequestState.PENDING).first()


def approvals_of(request: PromotionRequest) -> list[dict[str, Any]]:
    return [
        {"approver": a.approver.username, "note": a.note, "created_at": a.created_at}
        for a in request.approvals.select_related("approver").order_by("created_at")
    ]


def promotable_adapters(target: DeploymentTarget) -> QuerySet[Adapter]:
    """Adapters of the project trained on the target's base model, other than the current one."""
    adapters = Adapter.objects.filter(project_id=target.project_id, base_model_id=target.base_model_id)
    if target.current_adapter_id is not None:
        adapters = adapters.exclude(pk=target.current_adapter_id)
    return adapters.order_by("-created_at", "-id")


def finished_evaluations(project: Project) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(project=project, state=EvaluationState.FINISHED).order_by("-finished_at", "-id")


def rollback_choices(target: DeploymentTarget) -> list[Adapter]:
    """The adapters the target served before (newest first), other than the current one."""
    seen: dict[int, Adapter] = {}
    rows = history_of(target).filter(adapter__isnull=False)
    if target.current_adapter_id is not None:
        rows = rows.exclude(adapter_id=target.current_adapter_id)
    for row in rows:
        assert row.adapter is not None
        seen.setdefault(row.adapter.pk, row.adapter)
    return list(seen.values())


def current_pointer(target: DeploymentTarget) -> dict[str, Any]:
    """What a serving stack inside the perimeter pulls: the approved adapter (None: the base model alone), its
    sha256, the base model's hash and the download addresses of the adapter's files."""
    adapter = target.current_adapter
    last = history_of(target).first()
    base = target.base_model
    files = []
    if adapter is not None:
        files = [
            {
                "path": entry["path"],
                "size_bytes": entry["size_bytes"],
                "sha256": entry["sha256"],
                "download": reverse("api_adapter_file", args=[target.project_id, adapter.pk, index]),
            }
            for index, entry in enumerate(adapter.files)
        ]
    return {
        "target": target.name,
        "adapter": adapter.pk if adapter is not None else None,
        "adapter_name": adapter.name if adapter is not None else "",
        "adapter_sha256": adapter.sha256 if adapter is not None else "",
        "base_model": {
            "id": base.pk,
            "name": base.name,
            "hash": adapter.base_model_hash if adapter is not None else base.content_hash,
        },
        "files": files,
        "lineage": reverse("api_adapter_lineage", args=[target.project_id, adapter.pk]) if adapter else "",
        "promoted_at": last.created_at if last is not None else target.created_at,
        "kind": last.kind if last is not None else "created",
        "request": last.request_id if last is not None else None,
    }


def adapter_deployments(adapter: Adapter) -> QuerySet[Deployment]:
    """Every change of a target of the adapter's project that made it current or replaced it."""
    return Deployment.objects.filter(
        Q(adapter=adapter) | Q(previous_adapter=adapter), target__project_id=adapter.project_id
    ).select_related("target", "adapter", "previous_adapter", "request")


def adapter_evaluations(adapter: Adapter) -> QuerySet[Evaluation]:
    """Evaluations in which the adapter was one of the systems (under evaluation, or compared with)."""
    return Evaluation.objects.filter(project_id=adapter.project_id, systems__adapter=adapter).distinct()


def adapter_requests(adapter: Adapter) -> QuerySet[PromotionRequest]:
    return PromotionRequest.objects.filter(adapter=adapter).select_related("target", "requested_by")


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


# --- Scoring runs --------------------------------------------------------------------------------------------


def scoring_runs_of(project: Project) -> QuerySet[ScoringRun]:
    return ScoringRun.objects.filter(project=project).select_related("reward_model", "generation_run", "created_by")


def reward_models_of(project: Project) -> QuerySet[RewardModel]:
    return RewardModel.objects.filter(project=project).select_related("base_model").order_by("-created_at", "-id")


def scorable_runs_of(project: Project) -> QuerySet[GenerationRun]:
    """The project's succeeded generation runs: what a scoring run may score."""
    return runs_of(project).filter(state=JobState.SUCCEEDED).order_by("-created_at", "-id")


def scores_summary(run: ScoringRun) -> dict[str, float | int | None]:
    """How many scores the run stored, and their mean, spread and range (None without scores)."""
    figures = RewardScore.objects.filter(run=run).aggregate(
        count=Count("id"), mean=Avg("score"), stdev=StdDev("score"), low=Min("score"), high=Max("score")
    )
    return {key: figures[key] for key in ("count", "mean", "stdev", "low", "high")}


def scored_sample_of(run: ScoringRun, count: int = 10) -> list[RewardScore]:
    """The newest scores with their answers, for the run's live page (admins only: never an annotator's)."""
    return list(
        RewardScore.objects.filter(run=run)
        .select_related("candidate", "candidate__prompt", "item")
        .order_by("-id")[:count]
    )

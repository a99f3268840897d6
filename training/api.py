"""REST API of the training app: the base-model registry (site staff register; project admins read), jobs
(start with a preset and overrides, read, metrics, cancel, run again) and adapters with their lineage."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import STAFF_ONLY
from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user, require_site_staff
from core.errors import DomainError
from core.fields import Text
from core.filters import read_query
from core.lists import ListView
from releases.models import Release
from training import selectors, services
from training.config import PRESETS
from training.models import BaseModel, BaseModelState, TrainingJob
from training.permissions import (
    base_models_for_user,
    get_base_model_for_staff,
    get_job_for_admin,
    get_job_for_user,
    get_project_for_training,
)
from training.tracking import mlflow_status


class BaseModelIn(serializers.Serializer[Any]):
    name = Text(max_length=100)
    path = Text(max_length=500)
    description = Text(required=False, allow_blank=True, default="")


class BaseModelOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = Text()
    path = Text()
    description = Text()
    state = Text()
    failure_reason = Text()
    architecture = Text()
    model_type = Text()
    parameter_count = serializers.IntegerField(allow_null=True)
    dtype = Text()
    linear_modules = serializers.ListField(child=Text())
    content_hash = Text()
    files = serializers.ListField(child=serializers.DictField())
    registered_at = serializers.DateTimeField()
    validated_at = serializers.DateTimeField(allow_null=True)


@extend_schema_view(
    get=extend_schema(
        responses={
            200: BaseModelOut(many=True),
            404: OpenApiResponse(description="Neither site staff nor a project admin: answered as a missing address."),
        },
        summary="Registered base models (site staff; project admins)",
    )
)
class BaseModelListCreateView(ListView):
    serializer_class = BaseModelOut
    pagination_class = None  # a short registry: the whole list, not a page

    def get_queryset(self) -> QuerySet[BaseModel]:
        return BaseModel.objects.none()  # the registry is no project's: who may see it is asked after the parameters

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        super().filter_queryset(queryset)
        return base_models_for_user(self.request.user)

    @extend_schema(
        request=BaseModelIn,
        responses={202: BaseModelOut, 404: STAFF_ONLY},
        summary="Register a local model directory (site staff); a gpu worker validates and hashes it",
    )
    def post(self, request: Request) -> Response:
        require_site_staff(request.user)
        data = BaseModelIn(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.base_model_register(actor=request_user(request), **data.validated_data)
        return Response(BaseModelOut(model).data, status=status.HTTP_202_ACCEPTED)


class BaseModelUpdateIn(serializers.Serializer[Any]):
    name = Text(max_length=100, required=False)
    path = Text(max_length=500, required=False, help_text="A new path is checked again by a gpu worker.")
    description = Text(required=False, allow_blank=True)


class BaseModelDetailView(APIView):
    @extend_schema(
        responses={200: BaseModelOut, 404: STAFF_ONLY}, summary="A base model: state, architecture, size, hash, files"
    )
    def get(self, request: Request, model_pk: int) -> Response:
        return Response(BaseModelOut(get_base_model_for_staff(request.user, model_pk)).data)

    @extend_schema(
        request=BaseModelUpdateIn,
        responses={
            200: BaseModelOut,
            202: OpenApiResponse(BaseModelOut, description="Saved; a gpu worker checks the directory again."),
            404: STAFF_ONLY,
            409: OpenApiResponse(description="A new path while a queued or running job trains on the model."),
        },
        summary="Fix a base model's name, path or description (site staff); a new path, or any fix of a model "
        "that is not ready, is checked again",
    )
    def patch(self, request: Request, model_pk: int) -> Response:
        model = get_base_model_for_staff(request.user, model_pk)
        data = BaseModelUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = {"name": model.name, "path": model.path, **data.validated_data}
        updated = services.base_model_update(actor=request_user(request), model=model, **values)
        checking = updated.state == BaseModelState.VALIDATING  # a gpu worker has the directory to check
        return Response(BaseModelOut(updated).data, status=status.HTTP_202_ACCEPTED if checking else status.HTTP_200_OK)

    @extend_schema(
        request=None,
        responses={
            204: None,
            404: STAFF_ONLY,
            409: OpenApiResponse(description="Training jobs used the model: their lineage names it."),
        },
        summary="Delete a base model from the registry (site staff); refused while any job used it",
    )
    def delete(self, request: Request, model_pk: int) -> Response:
        model = get_base_model_for_staff(request.user, model_pk)
        services.base_model_delete(actor=request_user(request), model=model)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobIn(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(
        choices=["sft", "dpo", "kto", "reward"],
        help_text="sft on an SFT release; dpo or kto (an adapter) or reward (a reward model) on a preference release",
    )
    release = serializers.IntegerField(help_text="id of a built release of this project (SFT or preference)")
    base_model = serializers.IntegerField(help_text="id of a ready base model")
    preset = serializers.ChoiceField(choices=list(PRESETS), required=False, allow_blank=True, default="")
    config = serializers.DictField(
        required=False,
        default=dict,
        help_text="Overrides of the preset: lora_r, lora_alpha, lora_dropout, target_modules, use_dora, use_qlora, "
        "learning_rate, epochs, max_steps, batch_size, gradient_accumulation_steps, max_length, lr_scheduler, "
        "warmup_ratio, logging_steps, eval_steps, seed; SFT: packing; DPO: beta, loss_type (a list); "
        "KTO: beta, desirable_weight, undesirable_weight; reward: center_rewards_coefficient.",
    )


class MlflowOut(serializers.Serializer[Any]):
    state = Text(help_text="queued, logged or failed")
    reason = Text(help_text="Why it failed (the server away, a refusal); empty otherwise")
    tracking_uri = Text(help_text="The tracking server, without credentials")
    experiment_id = Text()
    experiment = Text()
    run_id = Text()
    run_url = Text(help_text="The run in the tracking server's UI")
    model_name = Text(help_text="The registered model of the adapter's version")
    model_version = Text()
    model_version_url = Text()
    attempts = serializers.IntegerField()
    updated_at = serializers.DateTimeField()


class JobOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = Text()
    state = Text()
    phase = Text()
    release = serializers.IntegerField(source="release_id")
    release_hash = Text(source="release.hash")
    base_model = serializers.IntegerField(source="base_model_id")
    base_model_hash = Text(source="base_model.content_hash")
    preset = Text()
    config = serializers.DictField()
    config_hash = Text()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField(allow_null=True)
    failure_reason = Text()
    evaluation = serializers.DictField()
    worker = Text()
    rerun_of = serializers.IntegerField(source="rerun_of_id", allow_null=True)
    adapter = serializers.SerializerMethodField()
    reward_model = serializers.SerializerMethodField()
    created_by = Text(source="created_by.username")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    mlflow = serializers.SerializerMethodField(
        help_text="The job's run in the MLflow tracking server (MLFLOW_TRACKING_URI): state (queued, logged, failed), "
        "reason of a failure, experiment, run id and link, registered model version; null when none is kept"
    )

    @extend_schema_field(MlflowOut(allow_null=True))
    def get_mlflow(self, job: Any) -> dict[str, Any] | None:
        status = mlflow_status(job)
        return dict(MlflowOut(status).data) if status is not None else None

    def get_adapter(self, job: Any) -> int | None:
        adapter = getattr(job, "adapter", None)
        return adapter.pk if adapter is not None else None

    def get_reward_model(self, job: Any) -> int | None:
        reward_model = getattr(job, "reward_model", None)
        return reward_model.pk if reward_model is not None else None


class JobDetailOut(JobOut):
    environment = serializers.DictField()
    log_tail = serializers.SerializerMethodField()

    def get_log_tail(self, job: Any) -> list[str]:
        return selectors.job_log_tail(job)


TAINTED = OpenApiResponse(
    description="The release holds text that an erasure removed: train on its rebuild without the erased items."
)


@extend_schema_view(get=extend_schema(summary="The project's training jobs, newest first"))
class JobListCreateView(ListView):
    serializer_class = JobOut
    parser_classes = [JSONParser]  # config is a nested object: JSON only

    def get_queryset(self) -> QuerySet[TrainingJob]:
        return selectors.jobs_of(get_project_for_training(self.request.user, self.kwargs["pk"]))

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        jobs = super().filter_queryset(queryset)
        services.training_jobs_reap()  # once the parameters are taken, before the jobs are read
        return jobs

    @extend_schema(
        request=JobIn,
        responses={
            202: JobOut,
            404: OpenApiResponse(description="No such project (or not yours to train in), release or base model."),
            409: TAINTED,
        },
        summary="Start an SFT, DPO, KTO or reward-model LoRA job (project admins); refused with the reason, or queued",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.RUN_TRAINING)
        data = JobIn(data=request.data)
        data.is_valid(raise_exception=True)
        release = Release.objects.filter(project=project, pk=data.validated_data["release"]).first()
        if release is None:
            raise DomainError("No such release in this project.", field="release", status=404)
        base_model = BaseModel.objects.filter(pk=data.validated_data["base_model"]).first()
        if base_model is None:
            raise DomainError("No such base model.", field="base_model", status=404)
        config = services.job_config_from_input(
            kind=data.validated_data["kind"], preset=data.validated_data["preset"], values=data.validated_data["config"]
        )
        job = services.training_job_start(
            actor=request_user(request),
            project=project,
            kind=data.validated_data["kind"],
            release=release,
            base_model=base_model,
            config=config,
            preset=data.validated_data["preset"],
        )
        return Response(JobOut(job).data, status=status.HTTP_202_ACCEPTED)


class JobDetailView(APIView):
    @extend_schema(responses=JobDetailOut, summary="A job: state, progress, evaluation, environment, last log lines")
    def get(self, request: Request, pk: int, job_pk: int) -> Response:
        services.training_jobs_reap()
        return Response(JobDetailOut(get_job_for_user(request.user, pk, job_pk)).data)


class JobMetricsQuery(serializers.Serializer[Any]):
    after = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=2**62, help_text="only metrics with an id above this"
    )


class JobMetricsView(APIView):
    @extend_schema(
        parameters=[JobMetricsQuery],
        responses={200: OpenApiTypes.OBJECT},
        summary="A job's logged steps and evaluations (loss, learning rate, grad norm, DPO rewards); the job page's "
        "charts read it too",
    )
    def get(self, request: Request, pk: int, job_pk: int) -> Response:
        job = get_job_for_user(request.user, pk, job_pk)
        after = read_query(request, JobMetricsQuery)["after"]
        metrics = selectors.job_metrics(job, after=after)
        return Response(
            {
                "state": job.state,
                "step": job.step,
                "total_steps": job.total_steps,
                "metrics": metrics,
                "last": metrics[-1]["id"] if metrics else after,  # the next call's ``after``
            }
        )


class JobCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: JobOut, 409: OpenApiResponse(description="The job has already ended.")},
        summary="Cancel a queued or running job (project admins)",
    )
    def post(self, request: Request, pk: int, job_pk: int) -> Response:
        job = services.training_job_cancel(actor=request_user(request), job=get_job_for_admin(request.user, pk, job_pk))
        return Response(JobOut(job).data)


class JobRerunView(APIView):
    @extend_schema(
        request=None,
        responses={202: JobOut, 409: TAINTED},
        summary="A new job with the same release, base model and config",
    )
    def post(self, request: Request, pk: int, job_pk: int) -> Response:
        job = services.training_job_rerun(actor=request_user(request), job=get_job_for_admin(request.user, pk, job_pk))
        return Response(JobOut(job).data, status=status.HTTP_202_ACCEPTED)


class JobMlflowResendView(APIView):
    @extend_schema(
        request=None,
        responses={
            202: JobOut,
            409: OpenApiResponse(description="No tracking server is set, the job has not ended, or its run is logged."),
        },
        summary="Send an ended job's run to the MLflow tracking server again after a failure (project admins)",
    )
    def post(self, request: Request, pk: int, job_pk: int) -> Response:
        job = get_job_for_admin(request.user, pk, job_pk)
        services.training_job_mlflow_resend(actor=request_user(request), job=job)
        return Response(JobOut(get_job_for_admin(request.user, pk, job_pk)).data, status=status.HTTP_202_ACCEPTED)

"""htmx pages of the training app: the project's jobs and adapters, the job form, a job's live page (state,
progress, ETA, charts, log tail, Cancel and Run again), an adapter's lineage page and JSON, adapter file
downloads, and the site staff's base-model registry."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, project_perms_for, request_user, require_site_staff
from annotation.selectors import default_release_kind
from core.errors import DomainError
from core.storage import artifact_storage
from releases.models import Release
from training import selectors, services
from training.config import PRESETS, SMALL_MODEL
from training.forms import CONFIG_FIELDS, BaseModelForm, JobForm, config_rows, preset_table
from training.models import (
    JOB_KIND_FOR_RELEASE,
    Adapter,
    BaseModel,
    JobKind,
    JobState,
    MergedModel,
    RewardModel,
    TrainingJob,
)
from training.permissions import (
    can_run_training,
    get_adapter_for_user,
    get_base_model_for_staff,
    get_job_for_admin,
    get_job_for_user,
    get_project_for_training,
    get_reward_model_for_user,
)
from training.serving import serving_of
from training.tracking import mlflow_status


@login_required
@require_GET
def job_list(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_training(request.user, pk)
    services.training_jobs_reap()
    jobs = list(selectors.jobs_of(project)[:200])
    context = {
        "project": project,
        "jobs": jobs,
        "adapters": selectors.adapters_of(project)[:200],
        "reward_models": selectors.reward_models_of(project)[:200],
        "can_run": can_run_training(request.user, project),
        "active": any(job.is_active for job in jobs),
    }
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "jobs":
        return render(request, "training/_job_rows.html", context)
    return render(request, "training/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk, ProjectPerm.RUN_TRAINING)
    presets = preset_table()
    newest = selectors.trainable_releases(project).first()
    initial = _initial(newest, presets, release_kind=default_release_kind(project))
    form = JobForm(request.POST or None, project=project, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            config = services.job_config_from_input(kind=form.cleaned_data["kind"], values=form.config_values())
            job = services.training_job_start(
                actor=request_user(request),
                project=project,
                kind=form.cleaned_data["kind"],
                release=form.cleaned_data["release"],
                base_model=form.cleaned_data["base_model"],
                config=config,
                preset=form.cleaned_data["preset"],
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"{job} is queued for a gpu worker.", extra_tags="job-queued")
            return redirect("training_job", pk=pk, job_pk=job.pk)
    context = {
        "project": project,
        "form": form,
        "preset_table": presets,
        "fieldsets": form.fieldsets(),
        "kind": form.chosen_kind,
        "kinds": JobKind.choices,
        "has_models": selectors.ready_base_models().exists(),
        "has_releases": newest is not None,
        "can_build_releases": ProjectPerm.MANAGE_DATA in project_perms_for(request.user, project),
    }
    return render(request, "training/new.html", context, status=400 if form.errors else 200)


def _initial(
    release: Release | None, presets: dict[str, dict[str, dict[str, Any]]], *, release_kind: str = "preference"
) -> dict[str, Any]:
    """The form's first values: the newest trainable release and the job kind that trains on it (on a
    ``release_kind`` release when there is none yet), and, when a small base model is ready (the demo's), that
    model with the CPU-sized preset."""
    small = next(
        (m for m in selectors.ready_base_models() if m.parameter_count and m.parameter_count < SMALL_MODEL), None
    )
    preset = "cpu_check" if small is not None else "standard"
    kind = JOB_KIND_FOR_RELEASE[release.kind if release is not None else release_kind]
    initial: dict[str, Any] = {"preset": preset, "kind": kind, "preference_kind": JobKind.DPO}
    if small is not None:
        initial["base_model"] = small.pk
    if release is not None:
        initial["release"] = release.pk
    table = presets[preset]
    values = {**table["sft"], **table["reward"], **table["kto"], **table["dpo"], **table[kind]}  # others stay filled
    initial.update({name: values[name] for name in CONFIG_FIELDS})
    return initial


def _job_context(request: HttpRequest, job: TrainingJob) -> dict[str, Any]:
    eta = selectors.job_eta_seconds(job)
    return {
        "project": job.project,
        "job": job,
        "log_lines": selectors.job_log_tail(job),
        "eta": _duration(eta) if eta is not None else "",
        "can_run": can_run_training(request.user, job.project),
        "adapter": getattr(job, "adapter", None) if job.state == JobState.SUCCEEDED else None,
        "reward_model": getattr(job, "reward_model", None) if job.state == JobState.SUCCEEDED else None,
        "mlflow": mlflow_status(job),
    }


def _duration(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@login_required
@require_GET
def job_detail(request: HttpRequest, pk: int, job_pk: int) -> HttpResponse:
    services.training_jobs_reap()
    job = get_job_for_user(request.user, pk, job_pk)
    context = _job_context(request, job)
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "status":
        response = render(request, "training/_status.html", context)
        if not job.is_active:
            response["HX-Refresh"] = "true"  # ended: show the whole page with its results
        return response
    context["config_rows"] = config_rows(job.config)
    context["preset_label"] = PRESETS[job.preset].label if job.preset in PRESETS else job.preset
    context["heading"] = f"Job #{job.pk} · {job.get_kind_display()}"
    return render(request, "training/detail.html", context)


@login_required
@require_POST
def job_cancel(request: HttpRequest, pk: int, job_pk: int) -> HttpResponse:
    job = get_job_for_admin(request.user, pk, job_pk)
    try:
        job = services.training_job_cancel(actor=request_user(request), job=job)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if job.state == JobState.CANCELLED:
            messages.success(request, f"{job} is cancelled.")
        else:
            messages.success(request, f"Cancelling {job}: its worker stops the training process now.")
    return redirect("training_job", pk=pk, job_pk=job_pk)


@login_required
@require_POST
def job_rerun(request: HttpRequest, pk: int, job_pk: int) -> HttpResponse:
    job = get_job_for_admin(request.user, pk, job_pk)
    try:
        again = services.training_job_rerun(actor=request_user(request), job=job)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("training_job", pk=pk, job_pk=job_pk)
    messages.success(request, f"{again} runs {job} again with identical inputs.")
    return redirect("training_job", pk=pk, job_pk=again.pk)


@login_required
@require_POST
def job_mlflow_resend(request: HttpRequest, pk: int, job_pk: int) -> HttpResponse:
    job = get_job_for_admin(request.user, pk, job_pk)
    try:
        services.training_job_mlflow_resend(actor=request_user(request), job=job)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{job} is queued for MLflow again: a worker sends its run now.")
    return redirect("training_job", pk=pk, job_pk=job_pk)


@login_required
@require_GET
def adapter_detail(request: HttpRequest, pk: int, adapter_pk: int) -> HttpResponse:
    adapter = get_adapter_for_user(request.user, pk, adapter_pk)
    record = selectors.lineage(adapter)
    return render(
        request,
        "training/adapter.html",
        {
            "project": adapter.project,
            "heading": f"Adapter #{adapter.pk}",
            "adapter": adapter,
            "lineage": record,
            "config_rows": config_rows(adapter.config),
            "files": list(enumerate(adapter.files)),
            # The signed dossier (governance) is for those who may read the project's audit log.
            "can_export_dossier": ProjectPerm.VIEW_AUDIT in project_perms_for(request.user, adapter.project),
            "serving": serving_of(adapter),
            "merged": MergedModel.objects.filter(adapter=adapter).first(),
            "can_merge": ProjectPerm.RUN_TRAINING in project_perms_for(request.user, adapter.project),
        },
    )


@login_required
@require_GET
def adapter_lineage(request: HttpRequest, pk: int, adapter_pk: int) -> JsonResponse:
    return lineage_response(get_adapter_for_user(request.user, pk, adapter_pk))


def lineage_response(adapter: Adapter | RewardModel) -> JsonResponse:
    """The lineage record as a JSON download (the page's link and the API's route)."""
    response = JsonResponse(selectors.lineage(adapter), json_dumps_params={"indent": 2, "sort_keys": True})
    response["Content-Disposition"] = f'attachment; filename="{_file_stem(adapter)}-lineage.json"'
    return response


def _file_stem(trained: Adapter | RewardModel | MergedModel) -> str:
    if isinstance(trained, MergedModel):
        return f"adapter-{trained.adapter_id}-merged"
    return f"reward-model-{trained.pk}" if isinstance(trained, RewardModel) else f"adapter-{trained.pk}"


@login_required
@require_GET
def reward_model_detail(request: HttpRequest, pk: int, reward_model_pk: int) -> HttpResponse:
    reward_model = get_reward_model_for_user(request.user, pk, reward_model_pk)
    return render(
        request,
        "training/reward_model.html",
        {
            "project": reward_model.project,
            "heading": f"Reward model #{reward_model.pk}",
            "reward_model": reward_model,
            "lineage": selectors.lineage(reward_model),
            "files": list(enumerate(reward_model.files)),
            "config_rows": config_rows(reward_model.config),
        },
    )


@login_required
@require_GET
def reward_model_lineage(request: HttpRequest, pk: int, reward_model_pk: int) -> JsonResponse:
    return lineage_response(get_reward_model_for_user(request.user, pk, reward_model_pk))


@login_required
@require_GET
def reward_model_file(request: HttpRequest, pk: int, reward_model_pk: int, index: int) -> HttpResponseBase:
    return stream_adapter_file(request, get_reward_model_for_user(request.user, pk, reward_model_pk), index)


@login_required
@require_GET
def adapter_file(request: HttpRequest, pk: int, adapter_pk: int, index: int) -> HttpResponseBase:
    return stream_adapter_file(request, get_adapter_for_user(request.user, pk, adapter_pk), index)


def stream_adapter_file(
    request: HttpRequest, adapter: Adapter | RewardModel | MergedModel, index: int
) -> HttpResponseBase:
    """Stream one file of an adapter or a reward model (the page's link and the API's route), as release files are
    streamed:
    the ETag is its sha256, and a client that already holds it (If-None-Match) gets 304."""
    if not 0 <= index < len(adapter.files):
        raise Http404("No such file.")
    entry = adapter.files[index]
    etag = f'"{entry["sha256"]}"'
    response: HttpResponseBase
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponseNotModified()
    else:
        stream = artifact_storage().open(f"{adapter.storage_prefix}/{entry['path']}", "rb")
        response = FileResponse(
            stream,
            as_attachment=True,
            filename=f"{_file_stem(adapter)}-{entry['path']}",
            content_type="application/octet-stream",
        )
        response["Content-Length"] = str(entry["size_bytes"])
        response["X-Content-SHA256"] = entry["sha256"]
    response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


# --- Base-model registry (site staff) ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def base_models(request: HttpRequest) -> HttpResponse:
    require_site_staff(request.user)
    form = BaseModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = services.base_model_register(actor=request_user(request), **form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"{model} is registered; a gpu worker checks the directory now.")
            return redirect("base_model", model_pk=model.pk)
    return render(
        request,
        "training/base_models.html",
        {"models": BaseModel.objects.select_related("registered_by"), "form": form},
        status=400 if form.errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def base_model_detail(request: HttpRequest, model_pk: int) -> HttpResponse:
    model = get_base_model_for_staff(request.user, model_pk)
    if request.method == "POST":
        services.base_model_revalidate(actor=request_user(request), model=model)
        messages.success(request, f"{model} is being checked again.")
        return redirect("base_model", model_pk=model.pk)
    if request.headers.get("HX-Request") and request.GET.get("fragment") == "state":
        response = HttpResponse(status=204)
        if model.state != "validating":
            response["HX-Refresh"] = "true"
        return response
    return _base_model_page(request, model, BaseModelForm(initial=_base_model_values(model)))


def _base_model_values(model: BaseModel) -> dict[str, str]:
    return {"name": model.name, "path": model.path, "description": model.description}


def _base_model_page(request: HttpRequest, model: BaseModel, form: BaseModelForm, status: int = 200) -> HttpResponse:
    context = {"model": model, "form": form, "used_by": model.jobs.count()}
    return render(request, "training/base_model.html", context, status=status)


@login_required
@require_POST
def base_model_edit(request: HttpRequest, model_pk: int) -> HttpResponse:
    """Fix the name, path or description; a new path (or any fix of a model that failed its check) is
    checked again on a gpu worker."""
    model = get_base_model_for_staff(request.user, model_pk)
    form = BaseModelForm(request.POST)
    if form.is_valid():
        try:
            updated = services.base_model_update(actor=request_user(request), model=model, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            checking = " A gpu worker checks the directory now." if updated.state == "validating" else ""
            messages.success(request, f"{updated} is saved.{checking}")
            return redirect("base_model", model_pk=model.pk)
    return _base_model_page(request, model, form, status=400)


@login_required
@require_POST
def base_model_delete(request: HttpRequest, model_pk: int) -> HttpResponse:
    model = get_base_model_for_staff(request.user, model_pk)
    try:
        services.base_model_delete(actor=request_user(request), model=model)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("base_model", model_pk=model.pk)
    messages.success(request, f"{model} is deleted from the registry; its directory is left as it was.")
    return redirect("base_models")

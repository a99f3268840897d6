"""The adapter page's serving actions: ask for the adapter merged into its base model (project admins and site
staff, as for starting jobs) and download the merged files (whoever may read the adapter)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import request_user
from core.errors import DomainError
from training.merging import merged_model_request
from training.models import MergedModel, MergedState
from training.permissions import get_adapter_for_admin, get_adapter_for_user
from training.views import stream_adapter_file


@login_required
@require_POST
def merged_request(request: HttpRequest, pk: int, adapter_pk: int) -> HttpResponse:
    adapter = get_adapter_for_admin(request.user, pk, adapter_pk)
    try:
        merged = merged_model_request(actor=request_user(request), adapter=adapter)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if merged.state == MergedState.FAILED:
            messages.error(request, f"The merge could not start: {merged.failure_reason}")
        else:
            messages.success(request, f"The merged model is {merged.get_state_display().lower()}.")
    return redirect("adapter", pk=pk, adapter_pk=adapter_pk)


def ready_merged(adapter_id: int) -> MergedModel:
    merged = MergedModel.objects.filter(adapter_id=adapter_id, state=MergedState.READY).first()
    if merged is None:
        raise Http404("No merged model is ready for this adapter.")
    return merged


@login_required
@require_GET
def merged_file(request: HttpRequest, pk: int, adapter_pk: int, index: int) -> HttpResponseBase:
    adapter = get_adapter_for_user(request.user, pk, adapter_pk)
    return stream_adapter_file(request, ready_merged(adapter.pk), index)

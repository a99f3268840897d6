"""REST API for a project's annotation setup: its rubric (read by members, saved by data leads; a version that
annotations use is never changed, a new one is made) and its annotation settings (k, lease, PII policy). The
views call the services the rubric and settings pages call; the bounds are the pages' form fields'."""

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user
from annotation import selectors, services
from annotation.forms import AnnotationSettingsForm
from annotation.models import AnnotationSettings, PiiMode, PiiUncertain, RubricVersion
from annotation.rubrics import SCALES
from core.fields import Text


def _form_bounds(name: str) -> dict[str, Any]:
    """The page form's limits of one number field, so both ways in refuse the same values."""
    field = AnnotationSettingsForm.base_fields[name]
    return {"min_value": field.min_value, "max_value": field.max_value}  # type: ignore[attr-defined]


# --- Rubric ----------------------------------------------------------------------------------------------


class CriterionIO(serializers.Serializer[Any]):
    key = Text(
        max_length=50, required=False, allow_null=True, default=None,
        help_text="Stable key of the scores; made from the name when left out.",
    )  # fmt: skip
    name = Text(max_length=200)
    guidance = Text(required=False, allow_blank=True, default="")
    scale = serializers.ChoiceField(choices=list(SCALES.items()))
    categories = serializers.ListField(
        child=Text(max_length=100), required=False, default=list,
        help_text="The named categories (at least two) of a `categories` scale; ignored for other scales.",
    )  # fmt: skip
    required = serializers.BooleanField(required=False, default=True)  # type: ignore[assignment]  # a field, not Field.required
    weight = serializers.FloatField(required=False, default=1.0, min_value=0)


class RubricIn(serializers.Serializer[Any]):
    guidelines = Text(required=False, allow_blank=True, default="", help_text="Markdown.")
    criteria = CriterionIO(many=True)  # at least one: the service says so, naming the field


class RubricOut(serializers.Serializer[Any]):
    version = serializers.IntegerField(allow_null=True, help_text="null while the project has no rubric.")
    guidelines = Text()
    criteria = CriterionIO(many=True)
    in_use = serializers.BooleanField(help_text="Annotations use this version: saving makes a new version.")
    created_at = serializers.DateTimeField(allow_null=True)


def _rubric_body(rubric: RubricVersion | None) -> dict[str, Any]:
    if rubric is None:
        return {"version": None, "guidelines": "", "criteria": [], "in_use": False, "created_at": None}
    return {
        "version": rubric.version,
        "guidelines": rubric.guidelines,
        "criteria": rubric.criteria,
        "in_use": rubric.annotations.exists(),
        "created_at": rubric.created_at,
    }


RUBRIC_EXAMPLE = {
    "guidelines": "Answer as a careful branch adviser would. Never promise a refund.",
    "criteria": [
        {"key": "correct", "name": "Correct", "scale": "pass_fail", "required": True, "weight": 2},
        {"key": "tone", "name": "Tone", "guidance": "Polite, plain words", "scale": "likert5", "required": False},
        {"key": "topic", "name": "Topic", "scale": "categories", "categories": ["cards", "loans", "other"]},
    ],
}


class RubricView(APIView):
    @extend_schema(
        responses=RubricOut,
        summary="The project's current rubric (members)",
        examples=[
            OpenApiExample(
                "Rubric", value={"version": 3, **RUBRIC_EXAMPLE, "in_use": True, "created_at": "2026-12-04T10:00:00Z"},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.VIEW)
        return Response(RubricOut(_rubric_body(selectors.current_rubric(project))).data)

    @extend_schema(
        request=RubricIn,
        responses={200: RubricOut, 201: RubricOut},
        summary="Save the rubric (data leads): 201 with a new version when annotations use the current one, "
        "200 when the unused current version was edited in place",
        description="A criterion that does not validate answers 400 naming it, e.g. "
        '`{"criteria": {"1": {"scale": ["\\"stars\\" is not a valid choice."]}}}` (counting from 0) or '
        '`{"detail": "Criterion “Topic” needs at least two categories.", "field": "criteria[2].categories"}`.',
        examples=[OpenApiExample("Rubric", value=RUBRIC_EXAMPLE, request_only=True)],
    )
    def put(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA)
        data = RubricIn(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            before = selectors.current_rubric(project)
            saved = services.rubric_save(actor=request_user(request), project=project, **data.validated_data)
        made_new = before is None or saved.pk != before.pk
        return Response(
            RubricOut(_rubric_body(saved)).data, status=status.HTTP_201_CREATED if made_new else status.HTTP_200_OK
        )


# --- Annotation settings ---------------------------------------------------------------------------------


class PiiPatternIO(serializers.Serializer[Any]):
    type = Text(max_length=40, help_text="Upper case; names the placeholder, e.g. ACCOUNT.")
    pattern = Text(max_length=1000, help_text="A regular expression.")


class AnnotationSettingsIO(serializers.Serializer[Any]):
    annotators_per_item = serializers.IntegerField(
        **_form_bounds("annotators_per_item"), help_text="k: how many annotators label each item."
    )
    lease_minutes = serializers.IntegerField(
        **_form_bounds("lease_minutes"), help_text="An item returns to the queue if left this long."
    )
    pii_mode = serializers.ChoiceField(choices=PiiMode.choices, help_text="PII policy at import.")
    pii_patterns = PiiPatternIO(many=True, help_text="The project's own PII patterns, checked at import.")
    pii_terms = serializers.ListField(
        child=Text(max_length=500), help_text="Literal terms replaced wherever they appear."
    )
    pii_uncertain = serializers.ChoiceField(
        choices=PiiUncertain.choices,
        help_text="Values the scrubber is unsure of (listed in each import's report): scrubbed (default) or kept.",
    )
    pii_phone_region = Text(
        min_length=2, max_length=2, help_text="Region whose national phone formats the scrubber reads, e.g. DE."
    )
    updated_at = serializers.DateTimeField(read_only=True)


def _settings_body(current: AnnotationSettings) -> dict[str, Any]:
    return {
        "annotators_per_item": current.annotators_per_item,
        "lease_minutes": current.lease_minutes,
        "pii_mode": current.pii_mode,
        "pii_patterns": [{"type": kind, "pattern": regex} for kind, regex in current.pii_patterns],
        "pii_terms": list(current.pii_terms),
        "pii_uncertain": current.pii_uncertain,
        "pii_phone_region": current.pii_phone_region,
        "updated_at": current.updated_at,
    }


SETTINGS_EXAMPLE = {"annotators_per_item": 3, "lease_minutes": 30, "pii_mode": "replace",
                    "pii_patterns": [{"type": "ACCOUNT", "pattern": "ACC-\\d{6}"}], "pii_terms": ["Northwind Bank"],
                    "pii_uncertain": "scrub", "pii_phone_region": "DE",
                    "updated_at": "2026-12-04T10:00:00Z"}  # fmt: skip


class AnnotationSettingsView(APIView):
    @extend_schema(
        responses=AnnotationSettingsIO,
        summary="The project's annotation settings (data leads)",
        examples=[OpenApiExample("Settings", value=SETTINGS_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA, with_settings=("annotation",))
        return Response(AnnotationSettingsIO(_settings_body(selectors.annotation_settings(project))).data)

    @extend_schema(
        request=AnnotationSettingsIO(partial=True),
        responses=AnnotationSettingsIO,
        summary="Change the annotation settings (data leads); fields left out keep their value",
        description="Raising k adds slots to open items; lowering it removes free slots. The limits are the "
        "settings page's.",
        examples=[OpenApiExample("Three annotators per item", value={"annotators_per_item": 3}, request_only=True)],
    )
    def patch(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA, with_settings=("annotation",))
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object of the fields to change."]})
        # Fields left out keep their stored value; the whole is then checked as one (a partial serializer
        # would also let a pattern without its regex through).
        data = AnnotationSettingsIO(data=_settings_body(selectors.annotation_settings(project)) | request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["pii_patterns"] = [[entry["type"], entry["pattern"]] for entry in values["pii_patterns"]]
        saved = services.annotation_settings_update(actor=request_user(request), project=project, **values)
        return Response(AnnotationSettingsIO(_settings_body(saved)).data)

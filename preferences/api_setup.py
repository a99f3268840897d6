"""REST API for a project's comparison settings (judgement mode, rationale, gold share and accuracy threshold,
too-fast share, adjudication threshold): read and changed by data leads through the service the comparison
settings page calls. Shares travel as fractions (0.1 = 10 %), as stored; the limits are the page form's."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ProjectPerm
from accounts.permissions import get_project_for_user, request_user
from preferences import selectors, services
from preferences.forms import PreferenceSettingsForm
from preferences.models import JudgementMode, PreferenceSettings


def _share(name: str, help_text: str) -> serializers.FloatField:
    """A share between the page form's percentages, as a fraction."""
    field = PreferenceSettingsForm.base_fields[name]
    low, high = field.min_value / 100, field.max_value / 100  # type: ignore[attr-defined]
    return serializers.FloatField(min_value=low, max_value=high, help_text=f"{help_text} ({low}–{high}).")


_GOLD_MINIMUM = PreferenceSettingsForm.base_fields["gold_minimum"]


class ComparisonSettingsIO(serializers.Serializer[Any]):
    mode = serializers.ChoiceField(
        choices=JudgementMode.choices,
        help_text="Applies to judgements from now on; a comparison of more than two candidates is ranked in "
        "every mode.",
    )
    rationale_required = serializers.BooleanField(help_text="Annotators must say why before they can submit.")
    gold_rate = _share("gold_rate", "Share of “next comparison” requests that serve a gold item")
    gold_accuracy_threshold = _share("gold_accuracy_threshold", "Flag annotators below this gold accuracy")
    gold_minimum = serializers.IntegerField(
        min_value=_GOLD_MINIMUM.min_value,  # type: ignore[attr-defined]
        max_value=_GOLD_MINIMUM.max_value,  # type: ignore[attr-defined]
        help_text="Gold judgements before a flag can be raised.",
    )
    fast_fraction = _share("fast_fraction", "Too fast: judgements under this share of the project's median time")
    adjudication_threshold = _share(
        "adjudication_threshold", "An item goes to adjudication when fewer than this share agree"
    )
    updated_at = serializers.DateTimeField(read_only=True)


FIELDS = ("mode", "rationale_required", "gold_rate", "gold_accuracy_threshold", "gold_minimum", "fast_fraction",
          "adjudication_threshold")  # fmt: skip


def _body(current: PreferenceSettings) -> dict[str, Any]:
    return {name: getattr(current, name) for name in [*FIELDS, "updated_at"]}


EXAMPLE = {"mode": "pairwise", "rationale_required": True, "gold_rate": 0.1, "gold_accuracy_threshold": 0.7,
           "gold_minimum": 5, "fast_fraction": 0.25, "adjudication_threshold": 0.67,
           "updated_at": "2026-12-04T10:00:00Z"}  # fmt: skip


class ComparisonSettingsView(APIView):
    @extend_schema(
        responses=ComparisonSettingsIO,
        summary="The project's comparison settings (data leads)",
        examples=[OpenApiExample("Settings", value=EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA, with_settings=("preferences",))
        return Response(ComparisonSettingsIO(_body(selectors.preference_settings(project))).data)

    @extend_schema(
        request=ComparisonSettingsIO(partial=True),
        responses=ComparisonSettingsIO,
        summary="Change the comparison settings (data leads); fields left out keep their value",
        examples=[
            OpenApiExample("Ranking with 15 % gold", value={"mode": "ranking", "gold_rate": 0.15}, request_only=True)
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.MANAGE_DATA, with_settings=("preferences",))
        data = ComparisonSettingsIO(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        saved = services.preference_settings_update(actor=request_user(request), project=project, **data.validated_data)
        return Response(ComparisonSettingsIO(_body(saved)).data)

"""REST API of the preferences app: next comparison, submit a judgement (alone or with the next comparison), list
judgements. Comparisons' import and list are in ``api_comparisons.py``, agreement in ``api_agreement.py``."""

import threading
from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.serializer_helpers import BindingDict
from rest_framework.views import APIView

from accounts.models import Project, ProjectPerm, User
from accounts.permissions import get_project_for_user, request_user
from annotation.models import Item
from annotation.queue import MAX_TIME_ON_TASK_MS
from core.fields import Text
from core.filters import BooleanFilter, IdFilter, StrictFilterSet, at_or_after, before
from core.lists import ListView
from preferences import selectors, services
from preferences.models import Judgement
from preferences.permissions import SETTINGS, get_comparison_for_submit, get_project_for_quality
from preferences.results import LETTERS, PAIR_CHOICES, display_order
from preferences.submit_sql import ReadBeforeSubmit


class ComparisonOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    messages = serializers.ListField(child=serializers.DictField())
    candidates = serializers.ListField(
        child=serializers.DictField(), help_text="In this annotator's display order, as letter and content only."
    )
    mode = Text(
        help_text="How to judge it: the project's mode, except that more than two candidates are always ranked."
    )


class NextComparisonView(APIView):
    @extend_schema(
        request=None,
        responses={200: ComparisonOut, 204: None},
        summary="Your next comparison, leased to you (204 when none is left)",
    )
    def post(self, request: Request, pk: int) -> Response:
        project = get_project_for_user(request.user, pk, ProjectPerm.ANNOTATE, with_settings=SETTINGS)
        shown = _next_comparison(request_user(request), project)
        if shown is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(shown)


def _next_comparison(user: User, project: Project) -> dict[str, Any] | None:
    """The user's next comparison leased to them, as ``ComparisonOut`` documents it (built directly: the
    serializer's field copies cost more than the rest), or None when nothing is left for them."""
    item = services.comparison_next(user=user, project=project)
    if item is None:
        return None
    _, order = display_order(user, item)
    shown = [{"letter": LETTERS[i], "content": item.candidates[c]["content"]} for i, c in enumerate(order)]
    mode = selectors.judgement_mode(project, item)
    return {"id": item.pk, "messages": item.messages, "candidates": shown, "mode": mode}


class _FieldsBuiltOncePerThread(serializers.Serializer[Any]):
    """DRF deep-copies (rebuilds) a serializer's declared fields for every instance, which costs most of what
    validating a judgement costs (a submit's share is measured with ``bench/preference_collection.py``). Each
    thread builds them once and lends them to the serializer at hand. A thread serves one request at a time, so a
    lent field is never used by two serializers at once."""

    _built = threading.local()

    @property  # DRF declares a cached_property; this one hands out the thread's fields
    def fields(self) -> BindingDict:
        fields: BindingDict | None = getattr(self._built, type(self).__qualname__, None)
        if fields is None:
            fields = BindingDict(self)
            for name, field in self.get_fields().items():
                fields[name] = field
            setattr(self._built, type(self).__qualname__, fields)
        fields.serializer = self
        for field in fields.values():
            field.parent = self  # a field reaches the serializer (partial, context) through its parent
        return fields


class JudgementIn(_FieldsBuiltOncePerThread):
    """A judgement in the letters the annotator was shown (A, B, …): ``choice`` and ``strength`` in pairwise
    mode, ``ranking`` (tiers of letters, best first) in ranking mode, ``criteria`` and ``overall`` per
    criterion. The server maps letters to candidates."""

    choice = serializers.ChoiceField(choices=list(PAIR_CHOICES), required=False)
    strength = serializers.IntegerField(min_value=1, max_value=3, required=False, allow_null=True)
    ranking = serializers.ListField(child=serializers.ListField(child=Text()), required=False)
    criteria = serializers.DictField(child=Text(), required=False)
    overall = Text(required=False)
    rationale = Text(required=False, allow_blank=True, default="")
    time_spent_ms = serializers.IntegerField(min_value=0, max_value=MAX_TIME_ON_TASK_MS, default=0)
    idempotency_key = Text(max_length=64)


class JudgementOut(serializers.ModelSerializer[Judgement]):
    annotator = Text(source="annotator.username")
    annotator_excluded = serializers.SerializerMethodField(
        help_text="A data lead excluded this annotator's judgements from releases (e.g. low gold accuracy)."
    )

    def get_annotator_excluded(self, judgement: Judgement) -> bool:
        excluded: set[int] = self.context.get("excluded", set())
        return judgement.annotator_id in excluded

    class Meta:
        model = Judgement
        fields = [
            "id", "item_id", "annotator", "mode", "displayed_order", "result", "displayed_result", "rationale",
            "time_spent_ms", "is_gold", "gold_correct", "too_fast", "annotator_excluded", "created_at",
        ]  # fmt: skip


_DATETIME = serializers.DateTimeField()


def judgement_out(judgement: Judgement, excluded: set[int] | frozenset[int] = frozenset()) -> dict[str, Any]:
    """What ``JudgementOut`` documents, built directly: a ModelSerializer builds its fields anew for every
    instance, which cost more than the rest of a submit's Python."""
    return {
        "id": judgement.pk,
        "item_id": judgement.item_id,
        "annotator": judgement.annotator.username,
        "mode": judgement.mode,
        "displayed_order": judgement.displayed_order,
        "result": judgement.result,
        "displayed_result": judgement.displayed_result,
        "rationale": judgement.rationale,
        "time_spent_ms": judgement.time_spent_ms,
        "is_gold": judgement.is_gold,
        "gold_correct": judgement.gold_correct,
        "too_fast": judgement.too_fast,
        "annotator_excluded": judgement.annotator_id in excluded,
        "created_at": _DATETIME.to_representation(judgement.created_at),
    }


class JudgementReceiptOut(serializers.Serializer[Any]):
    """What the annotator who submitted is told: their judgement, without the quality fields (gold or not,
    right or not, too fast, excluded) that reviewers and data leads see in the judgement list. Saying which
    items are gold would let annotators tell each other the known answers."""

    id = serializers.IntegerField()
    item_id = serializers.IntegerField()
    annotator = Text()
    mode = Text()
    displayed_order = serializers.ListField(child=serializers.IntegerField())
    result = serializers.DictField()
    displayed_result = serializers.DictField()
    rationale = Text(allow_blank=True)
    time_spent_ms = serializers.IntegerField()
    created_at = serializers.DateTimeField()


_QUALITY_FIELDS = ("is_gold", "gold_correct", "too_fast", "annotator_excluded")


def judgement_receipt(judgement: Judgement) -> dict[str, Any]:
    """What ``JudgementReceiptOut`` documents."""
    body = judgement_out(judgement)
    for name in _QUALITY_FIELDS:
        del body[name]
    return body


_CONFLICT = OpenApiResponse(
    description="The comparison was judged already: in another tab, or under this key with another choice or "
    "rationale (the first judgement stands)."
)


class JudgementSubmitView(APIView):
    parser_classes = [JSONParser]  # a ranking is a list of lists: JSON only

    @extend_schema(
        request=JudgementIn,
        responses={201: JudgementReceiptOut, 409: _CONFLICT},
        summary="Submit a judgement in display letters; the same idempotency key stores it once",
    )
    def post(self, request: Request, pk: int, item_pk: int) -> Response:
        item, seen = get_comparison_for_submit(request.user, pk, item_pk)
        return Response(judgement_receipt(_submit(request, item, seen)), status=status.HTTP_201_CREATED)


def _submit(request: Request, item: Item, seen: ReadBeforeSubmit | None) -> Judgement:
    data = JudgementIn(data=request.data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    meta = {k: values.pop(k) for k in ("rationale", "time_spent_ms", "idempotency_key")}
    return services.judgement_submit(
        user=request_user(request),
        item=item,
        shown=values,
        rationale=meta["rationale"],
        time_spent_ms=meta["time_spent_ms"],
        idempotency_key=meta["idempotency_key"],
        seen=seen,
    )


class JudgementAndNextOut(serializers.Serializer[Any]):
    judgement = JudgementReceiptOut()
    next = ComparisonOut(allow_null=True, help_text="Your next comparison, leased to you; null when none is left.")


class JudgementSubmitAndNextView(APIView):
    """What the comparison page does on submit: store the judgement, then hand out the next comparison, in one
    request (one authentication and one project read instead of two of each)."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=JudgementIn,
        responses={201: JudgementAndNextOut, 409: _CONFLICT},
        summary="Submit a judgement and receive your next comparison in one call",
        description=(
            "The same judgement and idempotency rules as the submit endpoint; a resend with the same key answers "
            "with the stored judgement and the comparison leased to you now (the same one the first answer "
            "named, while its lease holds). `next` is null when nothing is left for you."
        ),
    )
    def post(self, request: Request, pk: int, item_pk: int) -> Response:
        item, seen = get_comparison_for_submit(request.user, pk, item_pk)
        judgement = _submit(request, item, seen)
        body = {
            "judgement": judgement_receipt(judgement),
            "next": _next_comparison(request_user(request), item.project),
        }
        return Response(body, status=status.HTTP_201_CREATED)


class JudgementFilter(StrictFilterSet):
    annotator = django_filters.CharFilter(field_name="annotator__username", help_text="Username")
    item = IdFilter(field_name="item_id", help_text="Comparison id")
    gold = BooleanFilter(field_name="is_gold")
    releasable = BooleanFilter(
        method="filter_releasable", help_text="true: only what a release may use (no gold, no excluded annotator)"
    )
    created_after = at_or_after("created_at")
    created_before = before("created_at")

    def filter_releasable(self, rows: QuerySet[Judgement], name: str, value: bool) -> QuerySet[Judgement]:
        if not value:
            return rows
        excluded = self.view.excluded  # type: ignore[union-attr]  # the project's, read by JudgementListView
        return rows.filter(is_gold=False).exclude(annotator_id__in=excluded)


@extend_schema_view(get=extend_schema(summary="Judgements of a project (reviewers and data leads)"))
class JudgementListView(ListView):
    serializer_class = JudgementOut
    filterset_class = JudgementFilter
    queryset = Judgement.objects.none()

    def get_queryset(self) -> QuerySet[Judgement]:
        project = get_project_for_quality(self.request.user, self.kwargs["pk"])
        self.excluded = selectors.excluded_annotator_ids(project)  # read once: the filter and the rows use it
        return Judgement.objects.filter(item__project=project).select_related("annotator").order_by("id")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "excluded": self.excluded}

"""Strict list filters for the API (django-filter): a parameter a list does not know, or a value it cannot read,
answers 400 naming the parameter instead of being ignored (which returned everything).

Each app declares its filtersets beside its API views (``StrictFilterSet`` subclasses); a list view
(``core.lists.ListView``, whose backend is ``StrictFilterBackend``) names its ``filterset_class`` (with
``queryset = Model.objects.none()``) so that drf-spectacular documents the filters. A list that takes no filters
names none, and the backend refuses every parameter but paging and the view's ``filter_params``. ``limit`` and
``offset`` (pagination) and ``format`` (DRF's renderer choice) are taken everywhere.
"""

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import django_filters
from django import forms
from django.db.models import Model, QuerySet
from django.forms.utils import ErrorDict, ErrorList
from django.http import QueryDict
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

PAGING = ("limit", "offset")
PAGING_MINIMUM = {"limit": 1, "offset": 0}
BIGINT_MAX = 2**63 - 1

M = TypeVar("M", bound=Model)


def _unknown_errors(
    data: Mapping[str, Any], known: Iterable[str], *, paging: Iterable[str] = PAGING
) -> dict[str, list[str]]:
    """Errors for parameters a list does not take, for a parameter given more than once (each takes one
    value; which one counted would be a guess), and for a paging value out of its range (DRF's pagination would
    quietly answer the first page instead)."""
    taken = sorted({*known, *paging, "format"})
    errors = {
        name: [f"Unknown parameter “{name}”: this list takes {', '.join(taken)}."]
        for name in sorted(set(data) - set(taken))
    }
    lists = data.lists() if isinstance(data, QueryDict) else ()
    for name, values in lists:
        if len(values) > 1 and name not in errors:
            errors[name] = [f"Given {len(values)} times: “{name}” takes one value."]
    for name in paging:
        value = data.get(name)
        if value is None or name in errors:
            continue
        lowest = PAGING_MINIMUM[name]
        if not (isinstance(value, str) and value.isascii() and value.isdigit() and int(value) >= lowest):
            errors[name] = [f"A whole number of {lowest} or more."]
    return errors


def _empty_errors(data: Mapping[str, Any], filters: Mapping[str, django_filters.Filter]) -> dict[str, list[str]]:
    """Errors for a parameter given empty whose schema type has no empty value (a choice, a number, a boolean, a
    moment): django-filter reads "state=" as no filter and answered everything. Free text may be empty."""
    return {
        name: [f"“{name}” is empty: give a value, or leave the parameter out."]
        for name, found in filters.items()
        if data.get(name) == "" and not isinstance(found, django_filters.CharFilter)
    }


class StrictFilterSet(django_filters.FilterSet):
    """A filterset whose unknown parameters, and empty values where the type has none, are errors, each under its
    own name."""

    view: APIView | None = None  # the list view, set by StrictFilterBackend

    def is_valid(self) -> bool:
        return (
            super().is_valid()
            and not _unknown_errors(self.data, self.filters)
            and not _empty_errors(self.data, self.filters)
        )

    @property
    def errors(self) -> ErrorDict:
        errors = ErrorDict(super().errors)
        found = _empty_errors(self.data, self.filters) | _unknown_errors(self.data, self.filters)
        for name, messages in found.items():
            errors[name] = ErrorList(messages)
        return errors


class StrictFilterBackend(DjangoFilterBackend):
    """The view's ``filterset_class`` applied strictly; a view without one takes only paging and the parameters
    it names in ``filter_params``. Method filters reach the view (and what it fetched) as ``filterset.view``."""

    filterset_base = StrictFilterSet

    def get_filterset(self, request: Request, queryset: QuerySet[Any], view: APIView) -> StrictFilterSet | None:
        filterset: StrictFilterSet | None = super().get_filterset(request, queryset, view)
        if filterset is not None:
            filterset.view = view
        return filterset

    def filter_queryset(self, request: Request, queryset: QuerySet[M], view: APIView) -> QuerySet[M]:
        if getattr(view, "filterset_class", None) is None:
            refuse_unknown_params(request, getattr(view, "filter_params", ()))
            return queryset
        rows: QuerySet[M] = super().filter_queryset(request, queryset, view)
        return rows


class StrictFilterExtension(DjangoFilterExtension):
    """The schema of a list without a filterset has no filter parameters (and needs no model to say so)."""

    target_class = "core.filters.StrictFilterBackend"
    priority = 1

    def get_schema_operation_parameters(self, auto_schema: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if getattr(auto_schema.view, "filterset_class", None) is None:
            return []
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(auto_schema, *args, **kwargs)
        return parameters


class StrictBooleanField(forms.NullBooleanField):
    """true/false (or 1/0); anything else is an error, where Django's field reads it as "no filter"."""

    widget = forms.TextInput  # Django's select reads any unknown value as "no filter"
    TRUE = frozenset({"true", "1"})
    FALSE = frozenset({"false", "0"})

    def to_python(self, value: Any) -> bool | None:  # type: ignore[override]  # None: no filter
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise forms.ValidationError(f"“{value}” is not a boolean: use true or false.", code="invalid")

    def validate(self, value: Any) -> None:
        pass


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class IdField(forms.IntegerField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=BIGINT_MAX, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": BIGINT_MAX})
class IdFilter(django_filters.NumberFilter):
    """An object id: a whole number a bigint holds (a larger one was a 500 from the database driver)."""

    field_class = IdField


def at_or_after(field_name: str) -> django_filters.IsoDateTimeFilter:
    """Rows whose ``field_name`` is at or after the given moment (``created_after``, ``submitted_after``)."""
    return django_filters.IsoDateTimeFilter(
        field_name=field_name, lookup_expr="gte", help_text="ISO 8601 date-time, inclusive"
    )


def before(field_name: str) -> django_filters.IsoDateTimeFilter:
    """Rows whose ``field_name`` is before the given moment (``created_before``, ``submitted_before``)."""
    return django_filters.IsoDateTimeFilter(
        field_name=field_name, lookup_expr="lt", help_text="ISO 8601 date-time, exclusive"
    )


def refuse_unknown_params(request: Request, known: Iterable[str] = (), *, paging: Iterable[str] = PAGING) -> None:
    """For a list that takes no filters (or reads its own): any other parameter but ``limit``/``offset`` is a
    400 naming it, and so is one given twice. A view that is no list passes ``paging=()``."""
    errors = _unknown_errors(request.query_params, known, paging=paging)
    if errors:
        raise ValidationError(errors)


def read_query(request: Request, serializer_class: type[Serializer[Any]]) -> dict[str, Any]:
    """The query parameters of a view that is no list, read by ``serializer_class`` (which the view also names in
    its schema's ``parameters``): an unknown or repeated parameter, or a value the serializer refuses, is a 400
    naming it."""
    refuse_unknown_params(request, serializer_class().fields, paging=())
    values = serializer_class(data=request.query_params.dict())
    values.is_valid(raise_exception=True)
    return dict(values.validated_data)

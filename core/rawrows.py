"""Model instances from hand-written SQL, for the few statements on the annotators' hot path.

Compiling a queryset costs about as much Python time as PostgreSQL spends running it (docs/PERFORMANCE.md,
the annotators' hot path). The hot statements of "next" and "submit" are written out once and their rows turned
into ordinary model instances here, with the same converters the ORM applies (JSON fields decoded, …).
"""

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


@cache
def _fields(model: type[Model]) -> "tuple[Field[Any, Any], ...]":
    return tuple(model._meta.concrete_fields)


def columns(model: type[Model], alias: str) -> str:
    """Every concrete column of ``model``, qualified by ``alias``, in the order ``instance`` expects."""
    return _columns(model, alias, connection.vendor)


@cache
def _columns(model: type[Model], alias: str, vendor: str) -> str:
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in _fields(model))


class Table:
    """A model's names for a statement template: ``{t}`` is its quoted table and ``{t.item}`` the quoted
    column of its ``item`` field, both from ``_meta``, so no table or column name is typed as a literal."""

    def __init__(self, model: type[Model]) -> None:
        self._model = model

    def __format__(self, spec: str) -> str:
        return connection.ops.quote_name(self._model._meta.db_table)

    def __getattr__(self, name: str) -> str:
        field = self._model._meta.get_field(name)
        assert isinstance(field, Field), name  # a column of this table, not a relation pointing at it
        return connection.ops.quote_name(field.column)


def literal(value: str) -> str:
    """An enum's value as an SQL string literal (so the planner can match partial indexes on it)."""
    text = str(value)
    assert text.isidentifier(), text  # nothing to escape
    return f"'{text}'"


def width(model: type[Model]) -> int:
    return len(_fields(model))


def is_null(model: type[Model], values: Sequence[Any]) -> bool:
    """Whether a row slice of ``model`` is the NULLs of a LEFT JOIN that found nothing."""
    return values[_fields(model).index(model._meta.pk)] is None


@cache
def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in _fields(model)]


@cache
def _converters(model: type[Model], vendor: str) -> tuple[tuple[int, Any, tuple[Any, ...]], ...]:
    found = []
    for index, field in enumerate(_fields(model)):
        col = field.get_col(field.model._meta.db_table)  # as the compiler builds it (a key: its target's type)
        convs = tuple(connection.ops.get_db_converters(col)) + tuple(col.get_db_converters(connection))
        if convs:
            found.append((index, col, convs))
    return tuple(found)


def one(model: type[M], sql: str, params: Sequence[Any] | dict[str, Any]) -> M | None:
    """Run ``sql`` (which selects ``columns(model, …)``) and return its first row as a ``model``, or None."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return instance(model, row) if row is not None else None


def instance(model: type[M], values: Sequence[Any]) -> M:
    """A ``model`` instance from a row slice selected with ``columns(model, …)``."""
    row = list(values)
    for index, col, convs in _converters(model, connection.vendor):
        for convert in convs:
            row[index] = convert(row[index], col, connection)
    return model.from_db(connection.alias, _attnames(model), row)

"""Marks that a higher floor puts on a lower floor's objects, read by the lower floor without importing the
higher one: an erasure (``governance``) taints a release or an adapter, and the release and adapter pages and
API show it. A provider registers itself when its app is ready; with none registered nothing is marked."""

from collections.abc import Callable, Iterable
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

Provider = Callable[[str, list[int]], dict[int, dict[str, Any]]]

_providers: list[Provider] = []


def marks_register(provider: Provider) -> None:
    """Add a provider: called with a kind (``"release"``, ``"adapter"``) and ids, it answers the marks per id."""
    if provider not in _providers:
        _providers.append(provider)


def marks_for(kind: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The marks of each object of ``kind`` in ``ids`` that has any: ``{id: {"tainted": {...}}}``."""
    wanted = sorted({int(pk) for pk in ids})
    found: dict[int, dict[str, Any]] = {}
    if not wanted:
        return found
    for provider in _providers:
        for pk, marks in provider(kind, wanted).items():
            found.setdefault(pk, {}).update(marks)
    return found


def marks_of(kind: str, pk: int) -> dict[str, Any]:
    """The marks of one object (empty: none)."""
    return marks_for(kind, [pk]).get(int(pk), {})


@extend_schema_field({"type": "object", "nullable": True, "description": "Set when the object is marked"})
class MarkField(serializers.Field):
    """A read-only API field: the named mark of the object (``None`` when it has none). In a list, the marks of
    every row are read at once."""

    def __init__(self, kind: str, mark: str, **kwargs: Any) -> None:
        kwargs.update(source="*", read_only=True)
        super().__init__(**kwargs)
        self.kind, self.mark = kind, mark

    def to_representation(self, value: Any) -> Any:
        key = f"_marks:{self.kind}"
        cached = self.context.get(key)
        if cached is None or value.pk not in cached[0]:
            root = self.root
            rows = list(root.instance) if isinstance(root, serializers.ListSerializer) and root.instance else [value]
            ids = {row.pk for row in rows} | {value.pk}
            cached = (ids, marks_for(self.kind, ids))
            self.context[key] = cached
        return cached[1].get(value.pk, {}).get(self.mark)

"""Marks that a higher floor puts on a lower floor's objects, read by the lower floor without importing the
higher one: an erasure (``governance``) taints a release or an adapter, and the release and adapter pages and
API show it. A provider registers itself when its app is ready; with none registered nothing is marked."""

from collections.abc import Callable, Iterable
from typing import Any

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

"""Figures that a higher floor computes for a lower floor's page, read without importing the higher one: the
agreement page and API (``preferences``) show how well each reward model (``evaluation``) agrees with the
experts. A provider registers itself when its app is ready; with none registered a kind has no figures."""

from collections.abc import Callable
from typing import Any

Provider = Callable[[int], list[dict[str, Any]]]

_providers: dict[str, Provider] = {}


def figures_register(kind: str, provider: Provider) -> None:
    """Set the provider of ``kind`` (``"reward_models"``): called with a project id, it answers rows of figures."""
    _providers[kind] = provider


def figures_of(kind: str, project_id: int) -> list[dict[str, Any]]:
    """The rows of ``kind`` for the project (empty: no provider, or nothing to show)."""
    provider = _providers.get(kind)
    return provider(int(project_id)) if provider is not None else []

"""When a comparison goes to adjudication: all its judgements are in and too few of them agree."""

from collections import Counter
from typing import Any

from annotation.models import Item
from annotation.selectors import annotation_settings
from preferences.models import Adjudication
from preferences.results import result_label


def disputed_agreement(item: Item, results: list[dict[str, Any]]) -> tuple[float, int] | None:
    """(share of the largest agreeing group, number of judgements) once all ``k`` judgements of the item are
    in (``results``: their results, read after the item's row was locked); None before."""
    k = annotation_settings(item.project).annotators_per_item
    if len(results) < max(2, k):
        return None
    labels = Counter(result_label(r) for r in results)
    return labels.most_common(1)[0][1] / len(results), len(results)


def adjudication_create(item: Item, *, agreement: float) -> Adjudication | None:
    """The item's new adjudication, or None when it has one already; the caller audits it (after its own
    event, so the chain lock is taken last)."""
    if Adjudication.objects.filter(item=item).exists():
        return None
    return Adjudication.objects.create(item=item, agreement=agreement)

"""An annotator's quality in a project: gold accuracy and its flag, judgements too fast against the project's
median time on task. ``AnnotatorQuality`` is written only when a count or the flag changes."""

import contextlib
import statistics
import threading
from typing import Any

from cachetools import TTLCache
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation.models import Item
from preferences import submit_sql
from preferences.models import AnnotatorQuality, Judgement, PreferenceSettings

NOT_READ = object()  # the quality row was not read (a too-fast judgement takes it locked instead)

# Each web process keeps a project's median for a few seconds in front of the shared cache: every submit asks
# for it, and the Redis round trip (a client built per call by Django's cache) cost more than the rest of
# the speed check. A median moves slowly; a few seconds more staleness changes no flag that matters.
_LOCAL_MEDIANS: TTLCache[int, tuple[float]] = TTLCache(maxsize=1024, ttl=5)
_LOCAL_MEDIANS_LOCK = threading.Lock()


def process_medians_forget() -> None:
    """Drop this process's copies of the medians (tests, whose project ids repeat once
    rolled back)."""
    with _LOCAL_MEDIANS_LOCK:
        _LOCAL_MEDIANS.clear()


def project_median_ms(project: Project) -> float | None:
    """Median time on task of the project's latest 500 non-gold judgements (None under 10), cached for a
    minute in the shared cache and a few seconds in this process: it moves slowly, and every submit asks."""
    with _LOCAL_MEDIANS_LOCK:
        local = _LOCAL_MEDIANS.get(project.pk)
    if local is not None:
        return local[0]
    median = _shared_project_median_ms(project)
    if median is not None:  # too few judgements yet: asked again next time, as the shared cache does
        with _LOCAL_MEDIANS_LOCK:
            _LOCAL_MEDIANS[project.pk] = (median,)
    return median


def _shared_project_median_ms(project: Project) -> float | None:
    key = f"judgement-median:{project.pk}"
    try:
        cached = cache.get(key)
    except Exception:
        cached = None
    if cached is not None:
        return cached[0]
    # Newest first by id (ids follow insertion, as created_at does): the primary key is walked backwards and
    # stops after 500 of the project's. Ordered by created_at, which has no index, every judgement was read
    # and sorted, each minute (``bench/preference_collection.py``).
    recent = list(
        Judgement.objects.filter(item__project=project, is_gold=False)
        .order_by("-pk")
        .values_list("time_spent_ms", flat=True)[:500]
    )
    if len(recent) < 10:
        return None  # too few to judge speed by; cheap to ask again
    median = statistics.median(recent)
    with contextlib.suppress(Exception):
        cache.set(key, (median,), timeout=60)
    return median


def quality_and_item_results(
    project: Project, user: User, item: Item, *, read_quality: bool
) -> tuple[Any, list[dict[str, Any]]]:
    """The user's quality row (None without one; ``NOT_READ`` unless ``read_quality``: a too-fast judgement
    takes it locked instead) and the results of the item's non-gold judgements, this one's included."""
    if connection.vendor != "postgresql" or not read_quality:
        return (submit_sql.quality_row(project, user) if read_quality else NOT_READ), submit_sql.item_results(item)
    return submit_sql.quality_and_item_results(project, user, item)


def quality_update(
    project: Project, user: User, judgement: Judgement, config: PreferenceSettings, *, read: Any = NOT_READ
) -> None:
    """Count a gold or too-fast judgement and raise or lower the flag. ``read`` is the quality row (or None)
    when the caller already read it."""
    if not judgement.is_gold and not judgement.too_fast:
        # Most judgements change no count: read the row (no lock, no write) and stop when the flag, which the
        # settings may have moved, stays as it is.
        current = submit_sql.quality_row(project, user) if read is NOT_READ else read
        if current is not None and current.flagged == should_flag(current, config):
            return
    quality, _ = AnnotatorQuality.objects.select_for_update().get_or_create(project=project, annotator=user)
    if judgement.is_gold:
        quality.gold_seen += 1
        quality.gold_correct += int(bool(judgement.gold_correct))
    if judgement.too_fast:
        quality.fast_judgements += 1
    was_flagged = quality.flagged
    quality.flagged = should_flag(quality, config)
    quality.updated_at = timezone.now()
    quality.save()
    if quality.flagged and not was_flagged:
        audit_event_record(
            actor=None,
            action="annotator.flag",
            target=quality,
            project=project,
            payload={
                "annotator": user.username,
                "gold_accuracy": quality.gold_accuracy,
                "gold_seen": quality.gold_seen,
            },
        )


def should_flag(quality: AnnotatorQuality, config: PreferenceSettings) -> bool:
    """Below the project's gold accuracy threshold, after its minimum number of gold judgements."""
    accuracy = quality.gold_accuracy
    return bool(
        quality.gold_seen >= config.gold_minimum and accuracy is not None and accuracy < config.gold_accuracy_threshold
    )

"""The preferences app's use cases: settings, the next comparison, drafts, adjudication, exclusions and
agreement runs; the judgement submit lives in ``submission`` (re-exported here). They call into the rooms that
hold the parts: ``results``, ``gold``, ``quality``, ``adjudication``, ``agreement_runs`` and ``submit_sql``.
The queue, the import and PII scrubbing are annotation's, called here, never copied."""

import random
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation import queue
from annotation.models import Draft, Item
from core.errors import DomainError
from preferences.agreement_runs import agreement_pending as agreement_pending
from preferences.agreement_runs import agreement_recompute as agreement_recompute
from preferences.agreement_runs import agreement_recompute_queued as agreement_recompute_queued
from preferences.agreement_runs import agreement_send_at_once
from preferences.gold import gold_assign, gold_left_over, gold_skip, gold_unjudged
from preferences.models import (
    COMPARISON,
    Adjudication,
    AnnotatorQuality,
    Judgement,
    JudgementMode,
    PreferenceSettings,
)
from preferences.selectors import preference_settings
from preferences.submission import judgement_submit as judgement_submit


def preference_settings_update(*, actor: User, project: Project, **values: Any) -> PreferenceSettings:
    """Change how a project collects preferences. Raises ``DomainError`` for out-of-range values."""
    checks = {
        "gold_rate": (0.0, 0.5),
        "gold_accuracy_threshold": (0.0, 1.0),
        "fast_fraction": (0.0, 1.0),
        "adjudication_threshold": (0.0, 1.0),
    }
    for name, (low, high) in checks.items():
        if name in values and not low <= float(values[name]) <= high:
            raise DomainError(f"{name.replace('_', ' ').capitalize()} must be between {low} and {high}.", field=name)
    if "gold_minimum" in values and not 1 <= int(values["gold_minimum"]) <= 1000:
        raise DomainError("Gold judgements before a flag must be between 1 and 1000.", field="gold_minimum")
    if "mode" in values and values["mode"] not in JudgementMode.values:
        raise DomainError("Unknown judgement mode.", field="mode")
    with transaction.atomic():
        current, _ = PreferenceSettings.objects.select_for_update().get_or_create(project=project)
        for name, value in values.items():
            setattr(current, name, value)
        current.updated_at = timezone.now()
        current.save()
        if "preferences" in project._state.fields_cache:  # read with the project: keep what it holds current
            project._state.fields_cache["preferences"] = current
        audit_event_record(
            actor=actor, action="preferences.settings_update", target=current, project=project, payload=values
        )
    return current


def comparison_next(*, user: User, project: Project) -> Item | None:
    """The user's next comparison: at the project's gold rate a gold item they have not judged (it looks
    like any other), otherwise a slot from the shared queue (``annotation.services.item_next``); when that has
    nothing left, a gold item they were handed and have not judged (skipped ones last)."""
    config = preference_settings(project)
    if random.random() < config.gold_rate:  # noqa: S311 - sampling, not security
        gold = gold_unjudged(user, project)
        if gold is not None:
            gold.project = project  # the instance that carries the settings already read
            gold_assign(user, gold)
            return gold
    slot = queue.item_next(user=user, project=project, kind=COMPARISON)
    if slot is not None:
        return slot.item
    left_over = gold_left_over(user, project)  # a gold item put off (skipped, or left open) comes back last
    if left_over is not None:
        left_over.project = project
    return left_over


def comparison_skip(*, user: User, item: Item) -> None:
    """Put the comparison ``user`` holds aside: it comes back to them once nothing else is left, gold ones as
    the others (``annotation.queue.item_skip``, ``preferences.gold.gold_skip``). Raises ``DomainError`` when
    the item is not theirs to skip."""
    if item.gold is not None:
        gold_skip(user=user, item=item)
    else:
        queue.item_skip(user=user, item=item)


def comparison_draft_save(
    *, user: User, item: Item, data: dict[str, Any], time_spent_ms: int, page: str = ""
) -> Draft | None:
    """Autosave a half-made judgement (annotation's drafts, which also extend the lease and refuse an older
    tab's overwrite). Returns None and saves nothing once the user has judged the item, e.g. an autosave
    that fires just after the submit."""
    if Judgement.objects.filter(item=item, annotator=user).exists():
        return None
    return queue.draft_save(user=user, item=item, data=data, time_spent_ms=time_spent_ms, page=page)


def agreement_recompute_request(*, actor: User, project: Project) -> datetime:
    """Recompute the project's agreement on a worker now ("Recompute now" on the page, ``POST
    …/agreement/recompute/``): sends the task at once, whether or not one is pending, and audits the request.
    Returns when it was asked (the snapshot that answers it is computed later). Raises ``DomainError``
    (503) when the task queue does not take it; nothing is recorded then."""
    requested_at = timezone.now()
    if not agreement_send_at_once(project.pk, requested_at=requested_at):
        raise DomainError("The task queue is not answering; the agreement figures were not recomputed.", status=503)
    with transaction.atomic():
        audit_event_record(
            actor=actor,
            action="agreement.recompute",
            object_type="accounts.project",
            object_id=project.pk,
            project=project,
            payload={"requested_at": requested_at.isoformat()},
        )
    return requested_at


def adjudication_decide(
    *, reviewer: User, adjudication: Adjudication, result: dict[str, Any], note: str
) -> Adjudication:
    """Record the final answer (in candidate ids) of a disputed comparison: ``{"winner": id | "tie" |
    "both_bad"}`` or ``{"ranking": [[ids], …]}`` covering every candidate once. Raises ``DomainError`` for
    another shape, when it is already decided, or when the reviewer judged the item themselves."""
    count = len(adjudication.item.candidates)
    if "ranking" in result:
        ranked = sorted(c for tier in result["ranking"] for c in tier)
        if not all(result["ranking"]) or ranked != list(range(count)):
            raise DomainError("Give every candidate a rank (equal ranks are ties).")
    elif result.get("winner") not in {*range(count), "tie", "both_bad"}:
        raise DomainError("Choose the better candidate, a tie, or both bad.")
    with transaction.atomic():
        adjudication = (
            Adjudication.objects.select_for_update(of=("self",)).select_related("item").get(pk=adjudication.pk)
        )
        if adjudication.decided_at is not None:
            raise DomainError("This comparison was already adjudicated.")
        if Judgement.objects.filter(item=adjudication.item, annotator=reviewer).exists():
            raise DomainError("You judged this comparison yourself; another reviewer must adjudicate it.")
        adjudication.reviewer = reviewer
        adjudication.result = result
        adjudication.note = note.strip()
        adjudication.decided_at = timezone.now()
        adjudication.save()
        audit_event_record(
            actor=reviewer,
            action="adjudication.decide",
            target=adjudication,
            project=adjudication.item.project,
            payload={"item": adjudication.item_id, "result": result},
        )
    return adjudication


def annotator_set_excluded(*, actor: User, quality: AnnotatorQuality, excluded: bool) -> AnnotatorQuality:
    """Exclude (or re-include) an annotator's judgements from releases of the project."""
    with transaction.atomic():
        quality.excluded = excluded
        quality.updated_at = timezone.now()
        quality.save(update_fields=["excluded", "updated_at"])
        audit_event_record(
            actor=actor,
            action="annotator.exclude" if excluded else "annotator.include",
            target=quality,
            project=quality.project,
            payload={"annotator": quality.annotator.username},
        )
    return quality

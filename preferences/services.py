"""Every write of the preferences app: settings, judgements (with gold and speed checks), adjudication,
exclusions. The queue, the import and PII scrubbing are annotation's, called here, never copied."""

import contextlib
import functools
import hashlib
import json
import logging
import random
import statistics
import threading
from collections import Counter
from collections.abc import Hashable
from datetime import datetime
from typing import Any

from cachetools import TTLCache
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Max, Min, OuterRef, Subquery
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation import queue
from annotation.models import Draft, Item, ItemState, SlotState
from annotation.selectors import annotation_settings
from core import rawrows
from core.errors import DomainError
from core.submit import Resend, submission_key
from preferences.models import (
    Adjudication,
    AgreementSnapshot,
    AnnotatorQuality,
    GoldAssignment,
    Judgement,
    JudgementMode,
    PreferenceSettings,
)
from preferences.selectors import judgement_mode, preference_settings

COMPARISON = "comparison"
PAIR_CHOICES = ("A", "B", "tie", "both_bad")
STRENGTHS = {1: "slightly", 2: "clearly", 3: "much"}
LETTERS = "ABCDEFGHIJKLMNOPQRST"
AGREEMENT_PENDING = "agreement-pending:{}"

logger = logging.getLogger(__name__)


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


def display_order(user: User, item: Item) -> tuple[int, list[int]]:
    """The candidate ids in the order ``user`` sees them, and the seed that shuffled them. The seed is
    derived from a server secret, so the order is stable across reloads and cannot be chosen by a client."""
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:order:{user.pk}:{item.pk}".encode()).digest()
    seed = int.from_bytes(digest[:6], "big")
    order = list(range(len(item.candidates)))
    random.Random(seed).shuffle(order)  # noqa: S311 - a display shuffle, not a secret
    return seed, order


def comparison_next(*, user: User, project: Project) -> Item | None:
    """The user's next comparison: at the project's gold rate a gold item they have not judged (it looks
    like any other), otherwise a slot from the shared queue (``annotation.services.item_next``)."""
    config = preference_settings(project)
    if random.random() < config.gold_rate:  # noqa: S311 - sampling, not security
        gold = _gold_unjudged(user, project)
        if gold is not None:
            _gold_assign(user, gold)
            return gold
    slot = queue.item_next(user=user, project=project, kind=COMPARISON)
    return slot.item if slot is not None else None


def _gold_assign(user: User, item: Item) -> None:
    """Record that ``user`` was handed the gold ``item`` (once; handed again, nothing changes), audited like
    a lease: only a gold item handed out may be judged."""
    with transaction.atomic():
        _, created = GoldAssignment.objects.get_or_create(item=item, annotator=user)
        if created:
            audit_event_record(
                actor=user,
                action="queue.lease",
                object_type="annotation.item",
                object_id=item.pk,
                project=item.project,
                payload={"gold": True},
            )


def _gold_assigned_locked(user: User, item: Item) -> bool:
    """Whether ``user`` was handed the gold ``item``; the row stays locked until the transaction ends."""
    return GoldAssignment.objects.select_for_update().filter(item=item, annotator=user).exists()


def _gold_unjudged(user: User, project: Project) -> Item | None:
    """A gold item of the project that ``user`` has not judged, starting from a random one.

    A few index probes however large the project: from a random point among the gold ids (the partial index
    item_gold) to the next gold item the user has not judged, wrapping round once. "Not judged" is a
    correlated subquery on the (item, annotator) unique index; PostgreSQL keeps it as one probe per gold item
    passed over, whatever its statistics say. ORDER BY random() read every item of the project instead (38 ms
    at 50k items). Gold items that follow a run of judged ones are a little likelier to come up; all do."""
    if connection.vendor == "postgresql":  # the same, in one statement (see annotation's item_next)
        return rawrows.one(Item, _gold_sql(), {"project": project.pk, "user": user.pk, "kind": COMPARISON})
    golds = Item.objects.filter(project=project, kind=COMPARISON, gold__isnull=False, state=ItemState.OPEN)
    bounds = golds.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return None
    judged = Judgement.objects.filter(item=OuterRef("pk"), annotator=user).values("pk")[:1]
    unjudged = golds.alias(judged=Subquery(judged)).filter(judged__isnull=True).order_by("pk")
    start = random.randint(bounds["low"], bounds["high"])  # noqa: S311 - sampling, not security
    return unjudged.filter(pk__gte=start).first() or unjudged.filter(pk__lt=start).first()


# The bounds are min and max alone in their subquery, so each is read from one end of the item_gold index; the
# random start is a scalar subquery, evaluated once and used as the index condition of both branches (joined
# as a table instead, it was a filter, and the walk began at the first gold item: 7 ms at 10,000 of them).
_GOLD_SQL = """
WITH start AS (
  SELECT low + floor(random() * (high - low + 1))::bigint AS id
    FROM (SELECT min(id) AS low, max(id) AS high FROM annotation_item
           WHERE project_id = %(project)s AND gold IS NOT NULL AND kind = %(kind)s AND state = 'open') AS bounds
)
SELECT * FROM ({after}) AS after UNION ALL SELECT * FROM ({before}) AS before
LIMIT 1
"""

_GOLD_BRANCH = """
SELECT {item} FROM annotation_item item
 WHERE item.project_id = %(project)s AND item.gold IS NOT NULL AND item.kind = %(kind)s AND item.state = 'open'
   AND item.id {op} (SELECT id FROM start)
   AND (SELECT j.id FROM preferences_judgement j
         WHERE j.item_id = item.id AND j.annotator_id = %(user)s LIMIT 1) IS NULL
 ORDER BY item.id LIMIT 1
"""


@functools.cache
def _gold_sql() -> str:
    item = rawrows.columns(Item, "item")
    return _GOLD_SQL.format(
        after=_GOLD_BRANCH.format(item=item, op=">="), before=_GOLD_BRANCH.format(item=item, op="<")
    )


def _winner(choice: str, order: list[int]) -> int | str:
    if choice in {"tie", "both_bad"}:
        return choice
    return order[LETTERS.index(choice)]


def _map_result(mode: str, shown: dict[str, Any], order: list[int], criteria: list[str]) -> dict[str, Any]:
    """Check a displayed-order choice and translate it into candidate ids. ``mode`` is the item's
    (``selectors.judgement_mode``: a pair choice only for two candidates). Raises ``DomainError``."""
    n = len(order)
    letters = list(LETTERS[:n])
    if mode == JudgementMode.PAIRWISE:
        choice = shown.get("choice")
        if choice not in PAIR_CHOICES:
            raise DomainError("Choose A, B, tie or both bad.", field="choice")
        strength: int | None = None
        if choice in {"A", "B"}:
            try:
                strength = int(shown.get("strength") or 1)
            except (TypeError, ValueError):
                strength = 0
            if strength not in STRENGTHS:
                raise DomainError("Strength is slightly (1), clearly (2) or much (3) better.", field="strength")
        return {"winner": _winner(str(choice), order), "strength": strength}
    if mode == JudgementMode.RANKING:
        tiers = shown.get("ranking")
        if not isinstance(tiers, list) or not all(isinstance(t, list) and t for t in tiers):
            raise DomainError("Rank every candidate.", field="ranking")
        flat = [str(x) for tier in tiers for x in tier]
        if sorted(flat) != letters:
            raise DomainError(f"Rank each of {', '.join(letters)} exactly once.", field="ranking")
        return {"ranking": [sorted(order[letters.index(str(x))] for x in tier) for tier in tiers]}
    per = shown.get("criteria") or {}
    if sorted(per) != sorted(criteria):
        missing = [c for c in criteria if c not in per]
        raise DomainError(f"Choose for every criterion (missing: {', '.join(missing) or 'none'}).", field="criteria")
    for key, choice in per.items():
        if choice not in PAIR_CHOICES:
            raise DomainError(f"“{choice}” is not a choice for {key}.", field="criteria")
    overall = shown.get("overall")
    if overall not in PAIR_CHOICES:
        raise DomainError("Choose overall: A, B, tie or both bad.", field="overall")
    return {
        "criteria": {key: _winner(str(choice), order) for key, choice in per.items()},
        "overall": _winner(str(overall), order),
    }


def describe_result(result: dict[str, Any] | None) -> str:
    """A judgement (in candidate ids) as a reviewer reads it, with candidates numbered from 1:
    "2 clearly better", "tie", "2 > 1 = 3", "overall 1 · accuracy: 1, tone: tie"."""
    if not result:
        return "—"

    def name(value: Any) -> str:
        return {"tie": "tie", "both_bad": "both bad"}.get(value, f"{value + 1}" if isinstance(value, int) else "?")

    if "ranking" in result:
        return " > ".join(" = ".join(str(c + 1) for c in tier) for tier in result["ranking"])
    if "criteria" in result:
        parts = ", ".join(f"{key}: {name(value)}" for key, value in result["criteria"].items())
        return f"overall {name(result.get('overall'))} · {parts}"
    winner = result.get("winner")
    if isinstance(winner, int) and result.get("strength") in STRENGTHS:
        return f"{name(winner)} {STRENGTHS[result['strength']]} better"
    return f"{name(winner)} better" if isinstance(winner, int) else name(winner)


def gold_matches(result: dict[str, Any], gold: Any) -> bool:
    """Whether a judgement (in candidate ids) gives the gold answer: gold is a candidate id, "tie", or a
    ranking (list of tiers of candidate ids)."""
    if isinstance(gold, list):
        return [sorted(t) for t in result.get("ranking", [])] == [sorted(t) for t in gold]
    answer = result.get("winner", result.get("overall"))
    if "ranking" in result:
        top = result["ranking"][0]
        answer = top[0] if len(top) == 1 else "tie"
    return answer == gold


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


def _project_median_ms(project: Project) -> float | None:
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
    # stops after 500 of the project's, 1.7 ms at a million judgements. Ordered by created_at, which has no
    # index, every judgement was read and sorted: 207 ms on both cores at a million, each minute.
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


def _stored_for_key(key: str, user: User, item: Item) -> Judgement | None:
    """The judgement already stored under ``key``, if any. Raises ``DomainError`` when the key belongs to
    another user's or another item's judgement."""
    # Judgement.objects.filter(idempotency_key=key).first(), written out: every resend asks it
    stored = rawrows.one(Judgement, _BY_KEY_SQL.format(columns=rawrows.columns(Judgement, "j")), [key])
    if stored is not None and (stored.annotator_id != user.pk or stored.item_id != item.pk):
        raise DomainError("This idempotency key was already used for another judgement.")
    return stored


def judgement_submit(
    *,
    user: User,
    item: Item,
    shown: dict[str, Any],
    rationale: str,
    time_spent_ms: int,
    idempotency_key: str,
) -> Judgement:
    """Store the user's judgement of ``item``.

    ``shown`` is the choice in display positions (letters A, B, …); it is mapped to candidate ids with the
    order this user was shown. Idempotent (``core.submit``): the same ``idempotency_key`` with the same
    choice and rationale returns the stored judgement; with another (a page submitted again after the Back
    button) it is refused as a conflict (409). Gold items update the annotator's gold accuracy; very fast
    judgements are flagged. When all ``k`` judgements of an item disagree beyond the project threshold, the
    item goes to adjudication. Raises ``DomainError`` for a malformed choice, a missing rationale, an item
    not assigned to the user, or a second judgement of the same item.
    """
    key = submission_key(idempotency_key, missing="Missing idempotency key.")
    if item.kind != COMPARISON:
        raise DomainError("This item is not a comparison.")
    config = preference_settings(item.project)
    mode = judgement_mode(item.project, item)
    seed, order = display_order(user, item)
    try:
        if config.rationale_required and not rationale.strip():
            raise DomainError("Say why: this project asks for a rationale.", field="rationale")
        criteria = [c["key"] for c in _criteria(item.project)] if mode == JudgementMode.PER_CRITERION else []
        result = _map_result(mode, shown, order, criteria)
    except DomainError:
        earlier = _stored_for_key(key, user, item)
        if earlier is not None:
            return _resend(key, user, item, shown=shown, result=None, rationale=rationale).answer(earlier)
        raise
    resend = _resend(key, user, item, shown=shown, result=result, rationale=rationale)
    fields = {
        "mode": mode,
        "seed": seed,
        "displayed_order": order,
        "result": result,
        "displayed_result": shown,
        "rationale": rationale.strip(),
        "time_spent_ms": queue.time_on_task(time_spent_ms),
        "idempotency_key": key,
    }
    median = _project_median_ms(item.project)
    too_fast = bool(median and time_spent_ms < config.fast_fraction * median)
    return resend.record(lambda: _judgement_record(item, user, resend, fields, config=config, too_fast=too_fast))


def _resend(
    key: str, user: User, item: Item, *, shown: dict[str, Any], result: dict[str, Any] | None, rationale: str
) -> Resend[Judgement]:
    """A resent judgement is the stored one when it carries the same choice (as shown, or as mapped to the
    candidates) and the same rationale; otherwise the changes were not saved and it is a conflict."""

    def same(stored: Judgement) -> bool:
        same_choice = stored.displayed_result == shown or (result is not None and stored.result == result)
        return same_choice and stored.rationale == rationale.strip()

    return Resend[Judgement](
        stored=lambda: _stored_for_key(key, user, item),
        same=same,
        changed=(
            "You had already judged this comparison; the changes made after submitting were not saved. "
            "Your first judgement stands."
        ),
        taken="You already judged this comparison (in another tab or window).",
    )


def _judgement_record(
    item: Item,
    user: User,
    resend: Resend[Judgement],
    fields: dict[str, Any],
    *,
    config: PreferenceSettings,
    too_fast: bool,
) -> Judgement:
    """In one transaction: the comparison is the user's to judge (else a resend's answer or a refusal), the
    judgement is stored, and its after-effects follow."""
    is_gold = item.gold is not None
    with transaction.atomic():
        slot = None
        if is_gold:
            # Gold items have no slots: everyone judges each once, if it was handed to them; a resend finds
            # what was stored. One never handed out answers as any comparison not assigned.
            earlier = resend.stored()
            if earlier is not None:
                return resend.answer(earlier)
            assigned = _gold_assigned_locked(user, item)
        else:
            # The item's row too: of two last judgements of the item at once, the later one must see both to
            # decide on adjudication below.
            slot = queue.own_slot_locked(user, item, lock_item=True)
            assigned = slot is not None and slot.state == SlotState.LEASED
            if not assigned:
                # Judged already: a resend, or a second tab with the same key that waited on the slot lock
                # until the first committed. Answer with what the first one stored.
                earlier = resend.stored()
                if earlier is not None:
                    return resend.answer(earlier)
        if not assigned:
            if Judgement.objects.filter(item=item, annotator=user).exists():
                raise resend.taken_error()
            raise DomainError("This comparison is no longer assigned to you (the lease ran out).")
        # Assigned to this user and locked: a second judgement of theirs for this item, or a key already used
        # elsewhere, fails the insert on its unique index (``Resend.record`` answers it).
        judgement = Judgement.objects.create(
            item=item,
            annotator=user,
            is_gold=is_gold,
            gold_correct=gold_matches(fields["result"], item.gold) if is_gold else None,
            too_fast=too_fast,
            **fields,
        )
        queue.slot_finish(user=user, item=item, slot=slot)
        _after_judgement(judgement, item=item, user=user, config=config)
    return judgement


def _after_judgement(judgement: Judgement, *, item: Item, user: User, config: PreferenceSettings) -> None:
    """The annotator's quality, adjudication when the item's judgements disagree, the agreement figures
    scheduled, and the audit events (last: the chain lock is held from the first append to the commit)."""
    if judgement.is_gold:
        _update_quality(item.project, user, judgement, config)
        disputed = None
    else:
        quality, results = _quality_and_item_results(item.project, user, item, read_quality=not judgement.too_fast)
        _update_quality(item.project, user, judgement, config, read=quality)
        disputed = _disputed_agreement(item, results)
    opened: tuple[Adjudication, dict[str, Any]] | None = None
    if disputed is not None and disputed[0] < config.adjudication_threshold:
        adjudication = _adjudication_create(item, agreement=disputed[0])
        if adjudication is not None:
            opened = (adjudication, {"item": item.pk, "agreement": disputed[0], "judgements": disputed[1]})
    _schedule_agreement(item.project)  # a cache round trip after the commit, none before
    audit_event_record(
        actor=user,
        action="judgement.submit",
        target=judgement,
        project=item.project,
        payload={
            "item": item.pk,
            "result": judgement.result,
            "gold": judgement.is_gold,
            "too_fast": judgement.too_fast,
        },
    )
    if opened is not None:
        audit_event_record(
            actor=None, action="adjudication.open", target=opened[0], project=item.project, payload=opened[1]
        )


# The statements of a submit, written out (the slot's are annotation's): compiling their querysets cost more
# than running them. Each says in a comment the queryset it stands for; they run on every database.
_QUALITY_SQL = "SELECT {columns} FROM preferences_annotatorquality q WHERE q.project_id = %s AND q.annotator_id = %s"
_BY_KEY_SQL = "SELECT {columns} FROM preferences_judgement j WHERE j.idempotency_key = %s"
_RESULTS_SQL = "SELECT result FROM preferences_judgement WHERE item_id = %s AND NOT is_gold"


def _quality_row(project: Project, user: User) -> AnnotatorQuality | None:
    """``AnnotatorQuality.objects.filter(project=project, annotator=user).first()`` (one row at most)."""
    sql = _QUALITY_SQL.format(columns=rawrows.columns(AnnotatorQuality, "q"))
    return rawrows.one(AnnotatorQuality, sql, [project.pk, user.pk])


# PostgreSQL: the quality row (if any) and the item's non-gold results in one statement, one round trip fewer.
_QUALITY_AND_RESULTS_SQL = """
SELECT {columns}, ARRAY(SELECT r.result::text FROM preferences_judgement r WHERE r.item_id = %s AND NOT r.is_gold)
  FROM (SELECT 1) AS one LEFT JOIN preferences_annotatorquality q ON q.project_id = %s AND q.annotator_id = %s
"""

_NOT_READ = object()


def _quality_and_item_results(
    project: Project, user: User, item: Item, *, read_quality: bool
) -> tuple[Any, list[dict[str, Any]]]:
    """The user's quality row (None without one; not read unless ``read_quality``: a too-fast judgement takes
    it locked instead) and the results of the item's non-gold judgements, this one's included."""
    if connection.vendor != "postgresql" or not read_quality:
        return (_quality_row(project, user) if read_quality else _NOT_READ), _item_results(item)
    with connection.cursor() as cursor:
        sql = _QUALITY_AND_RESULTS_SQL.format(columns=rawrows.columns(AnnotatorQuality, "q"))
        cursor.execute(sql, [item.pk, project.pk, user.pk])
        row = cursor.fetchone()
    assert row is not None  # one row always: the LEFT JOIN's
    values, results = row[:-1], row[-1]
    quality = None if rawrows.is_null(AnnotatorQuality, values) else rawrows.instance(AnnotatorQuality, values)
    return quality, [json.loads(r) for r in results]


def _item_results(item: Item) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(_RESULTS_SQL, [item.pk])
        return [json.loads(r) if isinstance(r, str) else r for (r,) in cursor.fetchall()]


def comparison_draft_save(
    *, user: User, item: Item, data: dict[str, Any], time_spent_ms: int, page: str = ""
) -> Draft | None:
    """Autosave a half-made judgement (annotation's drafts, which also extend the lease and refuse an older
    tab's overwrite). Returns None and saves nothing once the user has judged the item, e.g. an autosave
    that fires just after the submit."""
    if Judgement.objects.filter(item=item, annotator=user).exists():
        return None
    return queue.draft_save(user=user, item=item, data=data, time_spent_ms=time_spent_ms, page=page)


# Agreement follows the judgements with a trailing-edge debounce. After its commit every submit asks the cache
# once (``add``: set the project's mark unless it is there); whoever sets the mark sends the task (a few seconds
# late, so a burst is counted in one run). The mark stays while the task computes; when done, the task drops the
# mark and then compares the judgements with what it counted: any judgement committed before the mark was dropped
# is seen there (and starts another run), any later one sets the mark again and sends the next task itself. So a
# burst always ends with a run that counts its last judgement, and a project has one run queued or running.
AGREEMENT_DEBOUNCE_SECONDS = 2
AGREEMENT_MARK_SECONDS = 600  # a run lost with its worker holds the mark this long at most


def _schedule_agreement(project: Project) -> None:
    """Ask for an agreement recomputation once the judgement is committed (one cache round trip then, none
    before). A cache or broker that is down costs a log line and a stale figure, never the judgement."""
    project_id = project.pk
    transaction.on_commit(lambda: _agreement_wanted(project_id))


def _agreement_wanted(project_id: int) -> None:
    try:
        marked = cache.add(AGREEMENT_PENDING.format(project_id), timezone.now().isoformat(), AGREEMENT_MARK_SECONDS)
    except Exception:  # the cache is the broker's Redis: down means no task either
        logger.warning("agreement for project %s not scheduled: cache unavailable", project_id, exc_info=True)
        return
    if marked:  # else a run is queued or running, and it looks again when it is done
        agreement_schedule_now(project_id, countdown=AGREEMENT_DEBOUNCE_SECONDS)


def agreement_schedule_now(project_id: int, *, countdown: float = 0) -> bool:
    """Send the agreement task to a worker; False (and the pending mark cleared) when the broker is down."""
    from preferences.tasks import agreement_recompute_task

    try:
        agreement_recompute_task.apply_async((project_id,), countdown=countdown)
    except Exception:
        logger.warning("agreement for project %s not scheduled: broker unavailable", project_id, exc_info=True)
        with contextlib.suppress(Exception):  # the cache may be down with the broker: nothing more to undo
            cache.delete(AGREEMENT_PENDING.format(project_id))
        return False
    return True


def agreement_pending(project: Project) -> bool | None:
    """Whether a recomputation of the project's agreement is queued or running (None: the cache is down)."""
    try:
        return cache.get(AGREEMENT_PENDING.format(project.pk)) is not None
    except Exception:
        logger.warning("agreement mark of project %s unreadable: cache unavailable", project.pk, exc_info=True)
        return None


def agreement_recompute_request(*, actor: User, project: Project) -> datetime:
    """Recompute the project's agreement on a worker now ("Recompute now" on the page, ``POST
    …/agreement/recompute/``): sends the task at once, whether or not one is pending, and audits the request.
    Returns when it was asked (the snapshot that answers it is computed later). Raises ``DomainError``
    (503) when the task queue does not take it; nothing is recorded then."""
    requested_at = timezone.now()
    with contextlib.suppress(Exception):  # a cache that is down only leaves "pending" unknown
        cache.set(AGREEMENT_PENDING.format(project.pk), requested_at.isoformat(), AGREEMENT_MARK_SECONDS)
    if not agreement_schedule_now(project.pk):
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


def agreement_recompute_queued(*, project_id: int) -> AgreementSnapshot | None:
    """The agreement task's work: recompute and store a snapshot, drop the pending mark, then start the next
    run when judgements changed meanwhile (see the comment above ``_schedule_agreement``). Returns the
    snapshot, or None when the project was deleted meanwhile."""
    key = AGREEMENT_PENDING.format(project_id)
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        cache.delete(key)
        return None
    snapshot = agreement_recompute(project=project)
    cache.delete(key)
    # A judgement committed since the count starts another run, unless a submit has set the mark meanwhile
    # (then it sent that run itself).
    changed = _judgement_fingerprint(project) != (snapshot.judgements, snapshot.last_judgement_id)
    if changed and cache.add(key, timezone.now().isoformat(), AGREEMENT_MARK_SECONDS):
        agreement_schedule_now(project_id, countdown=AGREEMENT_DEBOUNCE_SECONDS)
    return snapshot


def _agreement_rows(project: Project) -> Any:
    return Judgement.objects.filter(item__project=project, is_gold=False)


def _judgement_fingerprint(project: Project) -> tuple[int, int | None]:
    """How many judgements agreement counts, and the latest one's id: what changes when one is added or removed."""
    found = _agreement_rows(project).aggregate(count=Count("id"), last=Max("id"))
    return int(found["count"]), found["last"]


def _criteria(project: Project) -> list[dict[str, Any]]:
    from annotation.selectors import current_rubric

    rubric = current_rubric(project)
    return list(rubric.criteria) if rubric else []


def _update_quality(
    project: Project, user: User, judgement: Judgement, config: PreferenceSettings, *, read: Any = _NOT_READ
) -> None:
    """Count a gold or too-fast judgement and raise or lower the flag. ``read`` is the quality row (or None)
    when the caller already read it."""
    if not judgement.is_gold and not judgement.too_fast:
        # Most judgements change no count: read the row (no lock, no write) and stop when the flag, which the
        # settings may have moved, stays as it is.
        current = _quality_row(project, user) if read is _NOT_READ else read
        if current is not None and current.flagged == _should_flag(current, config):
            return
    quality, _ = AnnotatorQuality.objects.select_for_update().get_or_create(project=project, annotator=user)
    if judgement.is_gold:
        quality.gold_seen += 1
        quality.gold_correct += int(bool(judgement.gold_correct))
    if judgement.too_fast:
        quality.fast_judgements += 1
    was_flagged = quality.flagged
    quality.flagged = _should_flag(quality, config)
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


def _should_flag(quality: AnnotatorQuality, config: PreferenceSettings) -> bool:
    accuracy = quality.gold_accuracy
    return bool(
        quality.gold_seen >= config.gold_minimum and accuracy is not None and accuracy < config.gold_accuracy_threshold
    )


def _label(result: dict[str, Any]) -> str:
    if "ranking" in result:
        return repr(result["ranking"])
    return str(result.get("winner", result.get("overall")))


def _disputed_agreement(item: Item, results: list[dict[str, Any]]) -> tuple[float, int] | None:
    """(share of the largest agreeing group, number of judgements) once all ``k`` judgements of the item are
    in (``results``: their results, read after the item's row was locked); None before."""
    k = annotation_settings(item.project).annotators_per_item
    if len(results) < max(2, k):
        return None
    labels = Counter(_label(r) for r in results)
    return labels.most_common(1)[0][1] / len(results), len(results)


def _adjudication_create(item: Item, *, agreement: float) -> Adjudication | None:
    """The item's new adjudication, or None when it has one already; the caller audits it (after its own
    event, so the chain lock is taken last)."""
    if Adjudication.objects.filter(item=item).exists():
        return None
    return Adjudication.objects.create(item=item, agreement=agreement)


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
        adjudication = Adjudication.objects.select_for_update().select_related("item").get(pk=adjudication.pk)
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


def _signed_strength(result: dict[str, Any]) -> int | None:
    """Pairwise preference on one ordinal scale: +strength for candidate 0, -strength for 1, 0 for a tie."""
    winner = result.get("winner")
    if winner == "tie":
        return 0
    if winner in (0, 1):
        return int(result.get("strength") or 1) * (1 if winner == 0 else -1)
    return None


def agreement_recompute(*, project: Project) -> AgreementSnapshot:
    """Recompute the project's agreement figures from every non-gold judgement and store a snapshot:
    Krippendorff's alpha (nominal on choices, ordinal on signed strength, nominal per criterion), Cohen's
    kappa for each pair of annotators sharing items, mean Kendall's W over ranked items, and each
    annotator's agreement with the consensus."""
    from preferences.agreement import (
        agreement_with_consensus,
        cohens_kappa_pairs,
        kendalls_w,
        krippendorff_alpha,
    )

    read_at = timezone.now()  # every judgement committed before this is counted
    rows = _agreement_rows(project).values_list("id", "item_id", "annotator__username", "result")
    choice: dict[Hashable, dict[Hashable, Hashable]] = {}
    strength: dict[Hashable, dict[Hashable, Hashable]] = {}
    per_criterion: dict[str, dict[Hashable, dict[Hashable, Hashable]]] = {}
    rankings: dict[int, list[dict[Hashable, float]]] = {}
    count, last_id = 0, None
    for judgement_id, item_id, annotator, result in rows.iterator(chunk_size=5000):
        count += 1
        last_id = judgement_id if last_id is None else max(last_id, judgement_id)
        if "ranking" in result:
            ranks: dict[Hashable, float] = {
                cand: float(position) for position, tier in enumerate(result["ranking"], 1) for cand in tier
            }
            rankings.setdefault(item_id, []).append(ranks)
            top = result["ranking"][0]
            choice.setdefault(item_id, {})[annotator] = str(top[0]) if len(top) == 1 else "tie"
            continue
        label = result.get("winner", result.get("overall"))
        choice.setdefault(item_id, {})[annotator] = str(label)
        signed = _signed_strength(result)
        if signed is not None:
            strength.setdefault(item_id, {})[annotator] = signed
        for key, value in (result.get("criteria") or {}).items():
            per_criterion.setdefault(key, {}).setdefault(item_id, {})[annotator] = str(value)
    w_values = [w for w in (kendalls_w(r) for r in rankings.values() if len(r) >= 2) if w is not None]
    figures = {
        "alpha_choice_nominal": krippendorff_alpha(choice, "nominal"),
        "alpha_strength_ordinal": krippendorff_alpha(strength, "ordinal", value_order=list(range(-3, 4))),
        "alpha_per_criterion": {key: krippendorff_alpha(data, "nominal") for key, data in per_criterion.items()},
        "kendalls_w_mean": (sum(w_values) / len(w_values)) if w_values else None,
        "kendalls_w_items": len(w_values),
        "cohens_kappa": [
            {"a": str(p.rater_a), "b": str(p.rater_b), "shared": p.shared_units, "kappa": p.kappa}
            for p in cohens_kappa_pairs(choice)
        ],
        "consensus": {
            str(rater): {"units": score.units, "agreed": score.agreed, "rate": score.rate}
            for rater, score in agreement_with_consensus(choice).items()
        },
    }
    snapshot = AgreementSnapshot.objects.create(
        project=project, computed_at=read_at, judgements=count, last_judgement_id=last_id, figures=figures
    )
    return snapshot

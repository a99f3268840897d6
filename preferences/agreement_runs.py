"""Agreement runs: the figures recomputed on a worker and stored as an ``AgreementSnapshot``, following the
judgements with a trailing-edge debounce (see the comment above ``agreement_schedule``). The statistics
themselves are ``preferences.agreement``'s (pure Python)."""

import contextlib
import logging
from collections import Counter
from collections.abc import Hashable
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from accounts.models import Project
from core.dispatch import BrokerUnreachable, reach_broker
from preferences.agreement import agreement_with_consensus, cohens_kappa_pairs, kendalls_w, krippendorff_alpha
from preferences.models import AgreementSnapshot, Judgement
from preferences.results import signed_strength

AGREEMENT_PENDING = "agreement-pending:{}"

logger = logging.getLogger(__name__)

# Agreement follows the judgements with a trailing-edge debounce. After its commit every submit asks the cache
# once (``add``: set the project's mark unless it is there); whoever sets the mark sends the task (a few seconds
# late, so a burst is counted in one run). The mark stays while the task computes; when done, the task drops the
# mark and then compares the judgements with what it counted: any judgement committed before the mark was dropped
# is seen there (and starts another run), any later one sets the mark again and sends the next task itself. So a
# burst always ends with a run that counts its last judgement, and a project has one run queued or running.
# When the cache or the broker is away (Redis restarting), the run asked for is not sent, and nothing is written
# in its place: the judgements themselves say it is owed. Each time the default worker connects to the broker
# (at start, and again after it was away) it sends a run for every project whose latest snapshot does not count
# its judgements (``agreement_catch_up``).
AGREEMENT_DEBOUNCE_SECONDS = 2
AGREEMENT_MARK_SECONDS = 600  # a run lost with its worker holds the mark this long at most


def agreement_schedule(project: Project) -> None:
    """Ask for an agreement recomputation once the judgement is committed (one cache round trip then, none
    before). A cache or broker that is away costs a figure late until the worker connects again, never the
    judgement."""
    project_id = project.pk
    transaction.on_commit(lambda: _agreement_wanted(project_id))


def _agreement_wanted(project_id: int) -> None:
    try:
        marked = reach_broker(
            lambda: cache.add(AGREEMENT_PENDING.format(project_id), timezone.now().isoformat(), AGREEMENT_MARK_SECONDS)
        )
        if marked:  # else a run is queued or running, and it looks again when it is done
            _agreement_send(project_id, countdown=AGREEMENT_DEBOUNCE_SECONDS)
    except BrokerUnreachable:
        pass  # logged once per outage; the worker catches up when it connects again
    except Exception:  # a fault, not an outage: its traceback, and the judgement (committed) still answers
        logger.exception("agreement run of project %s not scheduled", project_id)


def _agreement_send(project_id: int, *, countdown: float) -> None:
    """Send the agreement task to a worker. Raises ``BrokerUnreachable`` (the pending mark dropped, if the
    cache still answers) when the broker does not take it."""
    from preferences.tasks import agreement_recompute_task

    try:
        # Nobody waits for the result: with ignore_result the publish does not subscribe to it in the result
        # backend first, which with Redis away retries for 20 s before it gives up.
        reach_broker(
            lambda: agreement_recompute_task.apply_async((project_id,), countdown=countdown, ignore_result=True)
        )
    except BrokerUnreachable:
        with contextlib.suppress(BrokerUnreachable):  # the cache is away with the broker: nothing more to undo
            reach_broker(lambda: cache.delete(AGREEMENT_PENDING.format(project_id)))
        raise


def agreement_catch_up() -> int:
    """Send a run for every project whose latest agreement snapshot does not count its judgements (the default
    worker calls this each time it connects to the broker: at start, and again after the broker was away, so
    runs refused or lost with Redis are made up). Returns how many were sent; stops at the first refusal
    (the next connection sends the rest)."""
    judged = _agreement_rows(None).values_list("item__project_id").annotate(count=Count("id"), last=Max("id"))
    sent = 0
    for project_id, count, last in judged.order_by():
        latest = AgreementSnapshot.objects.filter(project_id=project_id).order_by("-computed_at", "-id")
        if latest.values_list("judgements", "last_judgement_id").first() == (count, last):
            continue
        if not agreement_send_at_once(project_id, requested_at=timezone.now()):
            break
        sent += 1
    if sent:
        logger.info("agreement runs sent to catch up with the judgements of %s projects", sent)
    return sent


def agreement_send_at_once(project_id: int, *, requested_at: datetime) -> bool:
    """Mark a run pending and send it now, whether or not one is pending ("Recompute now"); False when the
    broker does not take it."""
    with contextlib.suppress(BrokerUnreachable):  # a cache that is away only leaves "pending" unknown
        reach_broker(
            lambda: cache.set(AGREEMENT_PENDING.format(project_id), requested_at.isoformat(), AGREEMENT_MARK_SECONDS)
        )
    try:
        _agreement_send(project_id, countdown=0)
    except BrokerUnreachable:
        return False
    return True


def agreement_pending(project: Project) -> bool | None:
    """Whether a recomputation of the project's agreement is queued or running (None: the cache is away)."""
    try:
        return reach_broker(lambda: cache.get(AGREEMENT_PENDING.format(project.pk))) is not None
    except BrokerUnreachable:
        return None


def agreement_recompute_queued(*, project_id: int) -> AgreementSnapshot | None:
    """The agreement task's work: recompute and store a snapshot, drop the pending mark, then start the next
    run when judgements changed meanwhile (see the comment above ``agreement_schedule``). Returns the
    snapshot, or None when the project was deleted meanwhile."""
    key = AGREEMENT_PENDING.format(project_id)
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        with contextlib.suppress(BrokerUnreachable):
            reach_broker(lambda: cache.delete(key))
        return None
    snapshot = agreement_recompute(project=project)
    # Redis away: judgements that came meanwhile are counted when the worker connects again.
    with contextlib.suppress(BrokerUnreachable):
        reach_broker(lambda: cache.delete(key))
        # A judgement committed since the count starts another run, unless a submit has set the mark meanwhile
        # (then it sent that run itself).
        changed = _judgement_fingerprint(project) != (snapshot.judgements, snapshot.last_judgement_id)
        if changed and reach_broker(lambda: cache.add(key, timezone.now().isoformat(), AGREEMENT_MARK_SECONDS)):
            _agreement_send(project_id, countdown=AGREEMENT_DEBOUNCE_SECONDS)
    return snapshot


def _agreement_rows(project: Project | None) -> Any:
    """The judgements agreement counts: the project's, or every project's (None)."""
    rows = Judgement.objects.filter(is_gold=False)
    return rows if project is None else rows.filter(item__project=project)


def _judgement_fingerprint(project: Project) -> tuple[int, int | None]:
    """How many judgements agreement counts, and the latest one's id: what changes when one is added or removed."""
    found = _agreement_rows(project).aggregate(count=Count("id"), last=Max("id"))
    return int(found["count"]), found["last"]


class _Imported:
    """Judgements imported from another tool among those counted: how many, from where, by whom."""

    def __init__(self) -> None:
        self.judgements = 0
        self.sources: Counter[tuple[str, str]] = Counter()
        self.annotators: Counter[str] = Counter()

    def add(self, annotator: str, origin: dict[str, Any]) -> None:
        self.judgements += 1
        self.sources[(str(origin.get("tool", "")), str(origin.get("project", "")))] += 1
        self.annotators[annotator] += 1

    def figures(self) -> dict[str, Any]:
        return {
            "judgements": self.judgements,
            "sources": [{"tool": t, "project": p, "judgements": n} for (t, p), n in sorted(self.sources.items())],
            "annotators": dict(sorted(self.annotators.items())),
        }


def agreement_recompute(*, project: Project) -> AgreementSnapshot:
    """Recompute the project's agreement figures from every non-gold judgement and store a snapshot:
    Krippendorff's alpha (nominal on choices, ordinal on signed strength, nominal per criterion), Cohen's
    kappa for each pair of annotators sharing items, mean Kendall's W over ranked items, and each
    annotator's agreement with the consensus."""
    read_at = timezone.now()  # every judgement committed before this is counted
    rows = _agreement_rows(project).values_list("id", "item_id", "annotator__username", "result", "origin")
    choice: dict[Hashable, dict[Hashable, Hashable]] = {}
    strength: dict[Hashable, dict[Hashable, Hashable]] = {}
    per_criterion: dict[str, dict[Hashable, dict[Hashable, Hashable]]] = {}
    rankings: dict[int, list[dict[Hashable, float]]] = {}
    count, last_id = 0, None
    imported = _Imported()
    for judgement_id, item_id, annotator, result, origin in rows.iterator(chunk_size=5000):
        count += 1
        if origin:
            imported.add(annotator, origin)
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
        signed = signed_strength(result)
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
        "imported": imported.figures(),
    }
    snapshot = AgreementSnapshot.objects.create(
        project=project, computed_at=read_at, judgements=count, last_judgement_id=last_id, figures=figures
    )
    return snapshot

"""Reads of the preferences app: settings, queues, and the figures of the quality page."""

from collections.abc import Collection
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from accounts.models import Project, User
from annotation.models import Item
from annotation.selectors import holds_item
from preferences.agreement import PositionBias, position_bias, win_rates
from preferences.models import (
    Adjudication,
    AgreementSnapshot,
    AnnotatorQuality,
    GoldAssignment,
    Judgement,
    JudgementMode,
    PreferenceSettings,
)


def preference_settings(project: Project) -> PreferenceSettings:
    """The project's settings, or the defaults (unsaved) when nobody changed them yet. Read with the project
    when it was fetched with them (``get_project_for_user(…, with_settings=("preferences",))``)."""
    cache = project._state.fields_cache
    if "preferences" in cache:
        return cache["preferences"] or PreferenceSettings(project=project)
    return PreferenceSettings.objects.filter(project=project).first() or PreferenceSettings(project=project)


def judgement_mode(project: Project, item: Item) -> str:
    """How ``item`` is judged: in the project's mode, except that a comparison of more than two candidates is
    always ranked (a pair choice, overall or per criterion, needs exactly two), so an N-way comparison in a
    pairwise project is ranked instead of holding up its annotators."""
    mode = preference_settings(project).mode
    if len(item.candidates) != 2 and mode in {JudgementMode.PAIRWISE, JudgementMode.PER_CRITERION}:
        return JudgementMode.RANKING
    return mode


def holds_comparison(user: User, item: Item) -> bool:
    """Whether ``user`` may still submit a judgement of ``item``: its slot is leased to them, or it is a gold
    comparison handed to them. False once a lease ran out and the slot went to someone else, and for a gold
    item they were never handed (nothing tells it apart from any comparison not theirs)."""
    if item.gold is not None:
        return GoldAssignment.objects.filter(item=item, annotator=user).exists()
    return holds_item(user, item)


def open_adjudications(project: Project, viewer: User | None = None) -> QuerySet[Adjudication]:
    """Undecided adjudications, oldest first; with ``viewer``, each says whether they judged the comparison
    themselves (``is_party``: then another reviewer must decide it)."""
    rows = (
        Adjudication.objects.filter(item__project=project, decided_at__isnull=True)
        .select_related("item")
        .order_by("needed_since")
    )
    if viewer is not None:
        rows = rows.annotate(
            is_party=Exists(Judgement.objects.filter(item_id=OuterRef("item_id"), annotator_id=viewer.pk))
        )
    return rows


def decided_adjudications(project: Project, limit: int = 20) -> QuerySet[Adjudication]:
    return (
        Adjudication.objects.filter(item__project=project, decided_at__isnull=False)
        .select_related("reviewer")
        .order_by("-decided_at")[:limit]
    )


def judgements_of(item: Item) -> QuerySet[Judgement]:
    return Judgement.objects.filter(item=item).select_related("annotator").order_by("created_at")


def latest_agreement(project: Project) -> AgreementSnapshot | None:
    return AgreementSnapshot.objects.filter(project=project).order_by("-computed_at").first()


def annotator_quality(project: Project) -> QuerySet[AnnotatorQuality]:
    return AnnotatorQuality.objects.filter(project=project).select_related("annotator").order_by("annotator__username")


def top_displayed(result: dict[str, Any], order: list[int]) -> int | None:
    """The display position of the single preferred candidate of a judgement, or None when it picked no
    single one (tie, both bad, a tied top rank)."""
    if "ranking" in result:
        top = result["ranking"][0] if result["ranking"] else []
        winner = top[0] if len(top) == 1 else None
    else:
        winner = result.get("winner", result.get("overall"))
    return order.index(winner) if isinstance(winner, int) and winner in order else None


def decisive_positions(project: Project) -> list[tuple[int, int, int]]:
    """Each decisive judgement (one candidate preferred: a pairwise or overall choice, or a single top rank)
    as (annotator id, candidates shown, display position of the one preferred). Gold items are left out."""
    positions = []
    rows = Judgement.objects.filter(item__project=project, is_gold=False).values_list(
        "annotator_id", "result", "displayed_order"
    )
    for annotator, result, order in rows.iterator(chunk_size=5000):
        position = top_displayed(result, order)
        if position is not None:
            positions.append((annotator, len(order), position))
    return positions


def position_bias_for(
    project: Project, positions: list[tuple[int, int, int]] | None = None
) -> list[tuple[int, PositionBias]]:
    """Per number of candidates shown: the share of decisive judgements that went to the first-displayed
    candidate, against 1/N, with a binomial test. ``positions``: ``decisive_positions`` when the caller
    read them already (the quality page draws them per annotator too)."""
    counts: dict[int, list[int]] = {}  # shown -> [decisive, first]
    for _, shown, position in decisive_positions(project) if positions is None else positions:
        tally = counts.setdefault(shown, [0, 0])
        tally[0] += 1
        tally[1] += position == 0
    return [(n, position_bias(first, decisive, n)) for n, (decisive, first) in sorted(counts.items())]


def system_label(provenance: dict[str, Any], position: int = 0) -> str:
    """What produced a candidate, for win rates: model, version and adapter ("base 1.0 + lora #3")."""
    name = " ".join(str(provenance.get(k) or "") for k in ("model", "version")).strip()
    adapter = str(provenance.get("adapter") or "")
    if adapter:
        name = f"{name} + {adapter}" if name else adapter
    return name or f"candidate {position + 1}"


def win_rates_for(project: Project) -> dict[Any, Any]:
    """Per system (model, version, adapter), win rates over every pair of candidates a judgement ordered:
    the pairwise or overall winner beats the other (ties count half; "both bad" is not an outcome), and a
    ranking gives one outcome per pair of candidates (same rank: a tie). Gold items are left out."""
    outcomes = []
    rows = Judgement.objects.filter(item__project=project, is_gold=False).values_list("result", "item__candidates")
    for result, candidates in rows.iterator(chunk_size=2000):
        systems = [system_label(c.get("provenance") or {}, i) for i, c in enumerate(candidates)]
        if "ranking" in result:
            place = {cand: tier for tier, group in enumerate(result["ranking"]) for cand in group}
            for a in range(len(candidates)):
                for b in range(a + 1, len(candidates)):
                    if a in place and b in place:
                        score = 0.5 if place[a] == place[b] else (1.0 if place[a] < place[b] else 0.0)
                        outcomes.append((systems[a], systems[b], score))
            continue
        winner = result.get("winner", result.get("overall"))
        if len(candidates) != 2 or winner == "both_bad":
            continue
        score = 0.5 if winner == "tie" else (1.0 if winner == 0 else 0.0)
        outcomes.append((systems[0], systems[1], score))
    return dict(sorted(win_rates(outcomes).items(), key=lambda kv: str(kv[0])))


def excluded_annotator_ids(project: Project) -> set[int]:
    """Annotators whose judgements a data lead excluded from the project's releases."""
    return set(AnnotatorQuality.objects.filter(project=project, excluded=True).values_list("annotator_id", flat=True))


def releasable_judgements(project: Project, *, left_out: Collection[int] | None = None) -> QuerySet[Judgement]:
    """The judgements a release may use, in item order: not on gold items (those test annotators) and not by
    an excluded annotator. Adjudicated items keep their judgements; the release prefers the adjudicated
    answer. ``left_out``: the annotators to leave out instead, when the caller has read them already (a
    release build, whose recipe may leave out the flagged ones too)."""
    excluded = AnnotatorQuality.objects.filter(project=project, excluded=True).values("annotator")
    return (
        Judgement.objects.filter(item__project=project, is_gold=False)
        .exclude(annotator_id__in=excluded if left_out is None else left_out)
        .order_by("item_id", "id")
    )

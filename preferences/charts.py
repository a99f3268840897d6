"""The pictures of a comparison project: each chart's data, for the project overview (judgements per day and
per annotator, progress toward k) and the quality page (agreement over time, position bias per annotator,
gold accuracy against time per item). Pure functions turn rows into a chart's data with the summary a screen
reader hears instead; the two readers at the bottom fetch the rows. A page carries the data in a json_script
block and ``static/js/charts.js`` draws it with uPlot."""

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, FloatField
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Project, User
from annotation.models import Item
from annotation.selectors import annotation_settings
from preferences.agreement import ALPHA_TENTATIVE, wilson_interval
from preferences.models import COMPARISON, AgreementSnapshot, AnnotatorQuality, Judgement
from preferences.permissions import may_see_annotator_names
from preferences.quality import project_median_ms
from preferences.selectors import decisive_positions, preference_settings

Chart = dict[str, Any]

DAYS_SHOWN = 90  # judgements per day: the latest days drawn
SNAPSHOTS_SHOWN = 200  # agreement over time: one snapshot is stored per run, so a busy project has many


def annotator_labels(annotators: Mapping[int, str], *, viewer_id: int | None, names_visible: bool) -> dict[int, str]:
    """What each annotator (id → username) is called in the charts, in order of ids: their username for who
    may see names, else "Annotator n" (the viewer themselves: "You")."""
    labels = {}
    for n, annotator in enumerate(sorted(annotators), 1):
        if names_visible:
            labels[annotator] = annotators[annotator]
        else:
            labels[annotator] = "You" if annotator == viewer_id else f"Annotator {n}"
    return labels


def _percent(share: float) -> str:
    return f"{round(share * 100)} %"


def _day(day: date) -> str:
    return f"{day.day} {day:%b}"


def judgements_per_day(rows: Iterable[tuple[date, int, int]], labels: Mapping[int, str]) -> Chart:
    """Judgements per day and annotator from ``(day, annotator id, judgements)`` rows, every day from the first
    to the last (days without any count 0), annotators in the order of ``labels``."""
    counts: dict[int, Counter[date]] = defaultdict(Counter)
    for day, annotator, judgements in rows:
        counts[annotator][day] += judgements
    if not counts:
        return {"empty": "No judgements yet: the chart starts with the first one.", "summary": "No judgements yet."}
    first = min(min(c) for c in counts.values())
    last = max(max(c) for c in counts.values())
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    series: list[dict[str, Any]] = [
        {"label": labels.get(a, f"Annotator #{a}"), "counts": [counts[a][d] for d in days]}
        for a in sorted(counts, key=lambda a: (list(labels).index(a) if a in labels else len(labels), a))
    ]
    totals = [sum(s["counts"][i] for s in series) for i in range(len(days))]
    busiest = max(range(len(days)), key=lambda i: (totals[i], i))
    span = f"on {_day(days[0])}" if len(days) == 1 else f"over {len(days)} days, {_day(days[0])} to {_day(days[-1])}"
    summary = (
        f"{sum(totals)} judgements {span}"
        + ("" if len(days) == 1 else f"; the busiest day, {_day(days[busiest])}, had {totals[busiest]}")
        + ". By annotator: "
        + ", ".join(f"{s['label']} {sum(s['counts'])}" for s in series)
        + "."
    )
    return {
        "days": [d.isoformat() for d in days],
        "day_labels": [_day(d) for d in days],
        "series": series,
        "totals": totals,
        "summary": summary,
        "empty": None,
    }


def progress_to_k(judgements_per_comparison: Iterable[int], k: int) -> Chart:
    """How many comparisons have 0, 1, … k of the ``k`` judgements wanted (more than k, left from before k
    was lowered, count as k), and how many of the ``comparisons * k`` wanted are in."""
    buckets = [0] * (k + 1)
    done = 0
    for judged in judgements_per_comparison:
        buckets[min(judged, k)] += 1
        done += min(judged, k)
    comparisons = sum(buckets)
    if not comparisons:
        return {"empty": "No comparisons imported yet.", "summary": "No comparisons imported yet.", "k": k}
    target = comparisons * k
    rest = "; ".join(f"{buckets[j]} have {j}" for j in range(k - 1, -1, -1) if buckets[j])
    summary = (
        f"{done} of the {target} judgements wanted ({_percent(done / target)}): {buckets[k]} of {comparisons} "
        f"comparisons have all {k}" + (f"; {rest}" if rest else "") + "."
    )
    return {
        "k": k,
        "buckets": buckets,
        "comparisons": comparisons,
        "complete": buckets[k],
        "done": done,
        "target": target,
        "summary": summary,
        "empty": None,
    }


def agreement_over_time(snapshots: Sequence[tuple[datetime, int, Mapping[str, Any]]], threshold: float) -> Chart:
    """Krippendorff's alpha per snapshot (oldest first: computed at, judgements counted, figures): on the
    choice, on the strength, and per criterion, against ``threshold``."""
    if not snapshots:
        message = "Not computed yet: a worker computes agreement after the first judgements arrive."
        return {"empty": message, "summary": message, "threshold": threshold}
    wanted = [("alpha_choice_nominal", "Choice"), ("alpha_strength_ordinal", "Strength (ordinal)")]
    for _, _, figures in snapshots:
        for criterion in figures.get("alpha_per_criterion") or {}:
            if (f"criterion:{criterion}", f"“{criterion}”") not in wanted:
                wanted.append((f"criterion:{criterion}", f"“{criterion}”"))

    def value(figures: Mapping[str, Any], key: str) -> float | None:
        if key.startswith("criterion:"):
            return (figures.get("alpha_per_criterion") or {}).get(key.removeprefix("criterion:"))
        return figures.get(key)

    series: list[dict[str, Any]] = [
        {"key": key, "label": label, "values": [value(figures, key) for _, _, figures in snapshots]}
        for key, label in wanted
    ]
    series = [s for s in series if any(v is not None for v in s["values"])]
    computed_at, judgements, _ = snapshots[-1]
    latest: list[tuple[str, float]] = [(s["label"], s["values"][-1]) for s in series if s["values"][-1] is not None]
    below = [label for label, alpha in latest if alpha < threshold]
    when = timezone.localtime(computed_at) if timezone.is_aware(computed_at) else computed_at
    summary = (
        f"Krippendorff's α, latest of {len(snapshots)} snapshot{'s' if len(snapshots) != 1 else ''} "
        f"({when:%d %b %H:%M}, {judgements} judgements): "
        + (", ".join(f"{label} {alpha:.2f}" for label, alpha in latest) or "not defined yet")
        + f". Threshold {threshold}"
        + (f"; below it: {', '.join(below)}." if below else "; none below it." if latest else ".")
    )
    empty = None
    if not series:
        empty = "Alpha is not defined yet: it needs comparisons judged by at least two annotators."
    elif max(sum(v is not None for v in s["values"]) for s in series) < 2:
        empty = "One snapshot with alpha so far: a line needs two. A worker adds one after new judgements arrive."
    return {
        "times": [int(at.timestamp()) for at, _, _ in snapshots],
        "judgements": [count for _, count, _ in snapshots],
        "series": series,
        "threshold": threshold,
        "summary": summary,
        "empty": empty,
    }


def position_bias_by_annotator(rows: Iterable[tuple[int, int]], labels: Mapping[int, str]) -> Chart:
    """Per annotator, the share of decisive judgements between two candidates that went to the one shown
    first, with its 95 % Wilson interval, from ``(annotator id, display position of the one preferred)``
    rows. An interval that leaves out 50 % is a lean toward one position."""
    tallies: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # annotator -> [decisive, first]
    for annotator, position in rows:
        tallies[annotator][0] += 1
        tallies[annotator][1] += position == 0
    if not tallies:
        message = "No decisive judgement between two candidates yet."
        return {"empty": message, "summary": message, "points": []}
    order = [a for a in labels if a in tallies] + sorted(a for a in tallies if a not in labels)
    points: list[dict[str, Any]] = []
    for annotator in order:
        decisive, first = tallies[annotator]
        low, high = wilson_interval(first, decisive) or (0.0, 1.0)
        lean = "first" if low > 0.5 else "second" if high < 0.5 else None
        points.append(
            {
                "label": labels.get(annotator, f"Annotator #{annotator}"),
                "decisive": decisive,
                "first": first,
                "share": first / decisive,
                "low": low,
                "high": high,
                "lean": lean,
            }
        )
    leaning = [p["label"] for p in points if p["lean"]]
    summary = (
        "Share of decisive pairwise judgements that went to the candidate shown first, with 95 % Wilson "
        "intervals: "
        + "; ".join(
            f"{p['label']} {_percent(p['share'])} ({_percent(p['low'])}–{_percent(p['high'])}, "
            f"{p['decisive']} judgements)"
            for p in points
        )
        + (f". Leaning toward one position: {', '.join(leaning)}." if leaning else ". Every interval includes 50 %.")
    )
    return {"points": points, "summary": summary, "empty": None}


def gold_against_time(
    qualities: Iterable[tuple[int, int, int, bool]],
    medians_ms: Mapping[int, float],
    labels: Mapping[int, str],
    *,
    project_median: float | None,
    fast_fraction: float,
    accuracy_threshold: float,
    gold_minimum: int,
) -> Chart:
    """One point per annotator: gold accuracy (from ``(annotator id, gold seen, gold correct, flagged)``)
    against their median time on a non-gold comparison. Flagged is the quality flag (gold accuracy below the
    threshold after the minimum of gold judgements); too fast is a median below the project's too-fast time
    (``fast_fraction`` times the project median), the time under which a single judgement is counted too fast."""
    fast_ms = fast_fraction * project_median if project_median is not None else None
    gold = {annotator: (seen, correct, flagged) for annotator, seen, correct, flagged in qualities if seen}
    points: list[dict[str, Any]] = []
    left_out: list[str] = []
    for annotator in [a for a in labels if a in gold or a in medians_ms]:
        label = labels[annotator]
        if annotator not in gold or annotator not in medians_ms:
            left_out.append(label)
            continue
        seen, correct, flagged = gold[annotator]
        median = medians_ms[annotator]
        points.append(
            {
                "label": label,
                "median_s": round(median / 1000, 1),
                "accuracy": correct / seen,
                "gold_seen": seen,
                "flagged": bool(flagged),
                "too_fast": fast_ms is not None and median < fast_ms,
            }
        )
    points.sort(key=lambda p: (p["median_s"], p["label"]))
    described = "; ".join(
        f"{p['label']} {_percent(p['accuracy'])} of {p['gold_seen']} gold, {p['median_s']} s"
        + (" (flagged: low gold accuracy)" if p["flagged"] else "")
        + (" (too fast)" if p["too_fast"] else "")
        for p in points
    )
    summary = (
        (f"Gold accuracy against median time per comparison: {described}." if points else "No annotator to plot.")
        + f" Flagged below {_percent(accuracy_threshold)} gold accuracy after {gold_minimum} gold"
        + (f"; too fast under {fast_ms / 1000:.1f} s." if fast_ms is not None else "; too-fast time not known yet.")
        + (f" Not plotted (no gold judged, or only gold): {', '.join(left_out)}." if left_out else "")
    )
    return {
        "points": points,
        "accuracy_threshold": accuracy_threshold,
        "gold_minimum": gold_minimum,
        "fast_s": round(fast_ms / 1000, 1) if fast_ms is not None else None,
        "summary": summary,
        "empty": None if points else "No annotator has judged both gold and plain comparisons yet.",
    }


# --- Readers ------------------------------------------------------------------------------------------------


class _Median(Aggregate):
    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _labels(project: Project, viewer: User) -> dict[int, str]:
    annotators = dict(
        Judgement.objects.filter(item__project=project)
        .values_list("annotator_id", "annotator__username")
        .distinct()
        .order_by()
    )
    return annotator_labels(annotators, viewer_id=viewer.pk, names_visible=may_see_annotator_names(viewer, project))


def _median_times(project: Project) -> dict[int, float]:
    """Each annotator's median time on a non-gold comparison, in ms (PostgreSQL computes it; elsewhere here)."""
    rows = Judgement.objects.filter(item__project=project, is_gold=False).order_by()
    if connection.vendor == "postgresql":
        return dict(rows.values("annotator_id").annotate(m=_Median("time_spent_ms")).values_list("annotator_id", "m"))
    times: dict[int, list[int]] = defaultdict(list)
    for annotator, spent in rows.values_list("annotator_id", "time_spent_ms"):
        times[annotator].append(spent)
    return {annotator: float(statistics.median(spent)) for annotator, spent in times.items()}


def overview_charts(project: Project, viewer: User) -> Chart:
    """The overview's charts: judgements per day and annotator (the latest ``DAYS_SHOWN`` days), progress
    toward k. Annotators are named for reviewers and data leads only."""
    labels = _labels(project, viewer)
    since = timezone.localdate() - timedelta(days=DAYS_SHOWN - 1)
    per_day = (
        Judgement.objects.filter(item__project=project)
        .annotate(day=TruncDate("created_at"))
        .filter(day__gte=since)
        .values_list("day", "annotator_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    judged = (
        Item.objects.filter(project=project, kind=COMPARISON, gold__isnull=True)
        .annotate(n=Count("judgements"))
        .values_list("n", flat=True)
        .order_by()
    )
    return {
        "per_day": judgements_per_day(per_day, labels),
        "progress": progress_to_k(judged, annotation_settings(project).annotators_per_item),
    }


def quality_charts(project: Project, viewer: User, positions: list[tuple[int, int, int]] | None = None) -> Chart:
    """The quality page's charts: agreement over time, position bias per annotator, gold accuracy against
    time per comparison. ``positions``: ``selectors.decisive_positions`` when the caller read them already."""
    labels = _labels(project, viewer)
    config = preference_settings(project)
    snapshots = list(
        AgreementSnapshot.objects.filter(project=project)
        .order_by("-computed_at", "-id")
        .values_list(
            "computed_at",
            "judgements",
            "figures__alpha_choice_nominal",
            "figures__alpha_strength_ordinal",
            "figures__alpha_per_criterion",
        )[:SNAPSHOTS_SHOWN]
    )
    figures = [
        (at, count, {"alpha_choice_nominal": c, "alpha_strength_ordinal": s, "alpha_per_criterion": per})
        for at, count, c, s, per in reversed(snapshots)
    ]
    decisive = [
        (annotator, position)
        for annotator, shown, position in (decisive_positions(project) if positions is None else positions)
        if shown == 2
    ]
    qualities = AnnotatorQuality.objects.filter(project=project).values_list(
        "annotator_id", "gold_seen", "gold_correct", "flagged"
    )
    return {
        "agreement": agreement_over_time(figures, ALPHA_TENTATIVE),
        "bias": position_bias_by_annotator(decisive, labels),
        "scatter": gold_against_time(
            qualities,
            _median_times(project),
            labels,
            project_median=project_median_ms(project),
            fast_fraction=config.fast_fraction,
            accuracy_threshold=config.gold_accuracy_threshold,
            gold_minimum=config.gold_minimum,
        ),
    }

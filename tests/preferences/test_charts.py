"""The data of the charts: pure functions over rows with known numbers, then the readers on a small project
(names for reviewers, "Annotator n" for annotators), and the pages that carry them."""

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from annotation import services as annotation_services
from annotation.models import Item
from preferences import charts, services
from preferences.agreement import ALPHA_TENTATIVE, wilson_interval
from preferences.models import AgreementSnapshot, Judgement
from preferences.quality import process_medians_forget
from tests.conftest import ClientFor, Personas
from tests.preferences.helpers import comparison_line, import_comparisons, letter_of

LABELS = {7: "ana", 9: "rui"}


def test_it_names_annotators_for_reviewers_and_numbers_them_for_annotators() -> None:
    people = {9: "rui", 7: "ana", 12: "zoe"}
    assert charts.annotator_labels(people, viewer_id=1, names_visible=True) == {7: "ana", 9: "rui", 12: "zoe"}
    numbered = charts.annotator_labels(people, viewer_id=9, names_visible=False)
    assert numbered == {7: "Annotator 1", 9: "You", 12: "Annotator 3"}
    assert list(numbered) == [7, 9, 12], "in order of ids, the same in every chart"


def test_it_counts_judgements_per_day_and_annotator_filling_quiet_days() -> None:
    rows = [(date(2026, 12, 1), 7, 3), (date(2026, 12, 3), 7, 1), (date(2026, 12, 3), 9, 4)]
    chart = charts.judgements_per_day(rows, LABELS)
    assert chart["days"] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert chart["day_labels"] == ["1 Dec", "2 Dec", "3 Dec"]
    assert chart["series"] == [{"label": "ana", "counts": [3, 0, 1]}, {"label": "rui", "counts": [0, 0, 4]}]
    assert chart["totals"] == [3, 0, 5]
    assert chart["empty"] is None
    assert chart["summary"] == (
        "8 judgements over 3 days, 1 Dec to 3 Dec; the busiest day, 3 Dec, had 5. By annotator: ana 4, rui 4."
    )
    empty = charts.judgements_per_day([], LABELS)
    assert empty["empty"].startswith("No judgements yet")


def test_it_counts_progress_toward_k() -> None:
    chart = charts.progress_to_k([0, 1, 2, 2, 3, 1, 0, 2], k=2)  # 3: left from before k was lowered to 2
    assert chart["buckets"] == [2, 2, 4]
    assert (chart["comparisons"], chart["complete"], chart["done"], chart["target"]) == (8, 4, 10, 16)
    assert chart["summary"] == (
        "10 of the 16 judgements wanted (62 %): 4 of 8 comparisons have all 2; 2 have 1; 2 have 0."
    )
    assert charts.progress_to_k([], k=3)["empty"] == "No comparisons imported yet."


def test_it_draws_agreement_per_criterion_against_the_threshold() -> None:
    at = datetime(2026, 12, 1, 18, tzinfo=UTC)
    snapshots: list[tuple[datetime, int, dict[str, Any]]] = [
        (at, 10, {"alpha_choice_nominal": 0.5, "alpha_strength_ordinal": None, "alpha_per_criterion": {}}),
        (
            at + timedelta(days=1),
            20,
            {"alpha_choice_nominal": 0.7, "alpha_strength_ordinal": None, "alpha_per_criterion": {"safety": 0.6}},
        ),
    ]
    chart = charts.agreement_over_time(snapshots, threshold=0.667)
    assert chart["times"] == [int(at.timestamp()), int(at.timestamp()) + 86400]
    assert chart["judgements"] == [10, 20]
    assert chart["threshold"] == 0.667
    assert [(s["label"], s["values"]) for s in chart["series"]] == [
        ("Choice", [0.5, 0.7]),
        ("“safety”", [None, 0.6]),
    ], "strength was never defined: no series"
    assert chart["empty"] is None
    assert "Choice 0.70, “safety” 0.60. Threshold 0.667; below it: “safety”." in chart["summary"]
    one = charts.agreement_over_time(snapshots[:1], threshold=0.667)
    assert one["empty"].startswith("One snapshot with alpha so far: a line needs two")
    assert charts.agreement_over_time([], threshold=0.667)["empty"].startswith("Not computed yet")


def test_it_gives_each_annotator_a_first_shown_share_with_its_wilson_interval() -> None:
    assert wilson_interval(7, 10) == pytest.approx((0.396778, 0.892209), abs=1e-6)
    assert wilson_interval(0, 0) is None
    rows = [(7, 0)] * 7 + [(7, 1)] * 3 + [(9, 0)] * 3 + [(9, 1)] * 9
    chart = charts.position_bias_by_annotator(rows, LABELS)
    ana, rui = chart["points"]
    assert (ana["label"], ana["decisive"], ana["first"], ana["share"]) == ("ana", 10, 7, 0.7)
    assert (ana["low"], ana["high"]) == pytest.approx((0.396778, 0.892209), abs=1e-6)
    assert ana["lean"] is None, "the interval includes 50 %"
    assert (rui["share"], rui["low"], rui["high"]) == pytest.approx((0.25, 0.088942, 0.532305), abs=1e-6)
    assert rui["lean"] is None
    leaning = charts.position_bias_by_annotator([(7, 0)] * 12, LABELS)["points"][0]
    assert leaning["lean"] == "first"
    assert "ana 70 % (40 %–89 %, 10 judgements); rui 25 % (9 %–53 %, 12 judgements)" in chart["summary"]
    assert charts.position_bias_by_annotator([], LABELS)["empty"]


def test_it_plots_gold_accuracy_against_median_time_and_marks_the_flags() -> None:
    labels = {7: "ana", 9: "rui", 11: "zoe", 13: "max"}
    qualities = [(7, 10, 9, False), (9, 10, 5, True), (11, 0, 0, False), (13, 4, 4, False)]
    medians = {7: 30_000.0, 9: 42_000.0, 11: 20_000.0, 13: 5_000.0}
    chart = charts.gold_against_time(
        qualities, medians, labels, project_median=30_000, fast_fraction=0.25, accuracy_threshold=0.7, gold_minimum=5
    )
    assert chart["fast_s"] == 7.5
    assert chart["accuracy_threshold"] == 0.7
    assert [(p["label"], p["median_s"], p["accuracy"], p["flagged"], p["too_fast"]) for p in chart["points"]] == [
        ("max", 5.0, 1.0, False, True),
        ("ana", 30.0, 0.9, False, False),
        ("rui", 42.0, 0.5, True, False),
    ], "sorted by time; zoe has judged no gold"
    assert "rui 50 % of 10 gold, 42.0 s (flagged: low gold accuracy)" in chart["summary"]
    assert "max 100 % of 4 gold, 5.0 s (too fast)" in chart["summary"]
    assert "Flagged below 70 % gold accuracy after 5 gold; too fast under 7.5 s." in chart["summary"]
    assert chart["summary"].endswith("Not plotted (no gold judged, or only gold): zoe.")
    unknown = charts.gold_against_time(
        qualities, {}, labels, project_median=None, fast_fraction=0.25, accuracy_threshold=0.7, gold_minimum=5
    )
    assert unknown["fast_s"] is None
    assert unknown["empty"]


def _judged_project(personas: Personas) -> list[Item]:
    """Four comparisons, k = 2, and a gold one. The annotator and the reviewer judge two yesterday (disagreeing
    on the second) and one today, the annotator also the gold (wrongly); agreement computed each day."""
    process_medians_forget()
    lead, project = personas.data_lead, personas.project
    annotation_services.annotation_settings_update(
        actor=lead, project=project, annotators_per_item=2, lease_minutes=30, pii_mode="replace",
        pii_patterns=[], pii_terms=[],
    )  # fmt: skip
    services.preference_settings_update(actor=lead, project=project, mode="pairwise", gold_rate=0.0)
    lines = [comparison_line(f"Question {n}?", f"Answer {n}.0", f"Answer {n}.1") for n in range(4)]
    import_comparisons(project, lead, *lines, comparison_line("Gold?", "Right", "Wrong", gold=1))
    items = list(Item.objects.filter(project=project, gold__isnull=True).order_by("id"))
    for n in range(3):
        for user, time_ms in ((personas.annotator, 20_000), (personas.reviewer, 50_000)):
            item = services.comparison_next(user=user, project=project)
            assert item is not None
            pick = 1 if user == personas.reviewer and n == 1 else 0
            services.judgement_submit(
                user=user, item=item, shown={"choice": letter_of(user, item, pick), "strength": 1}, rationale="",
                time_spent_ms=time_ms + 1000 * n, idempotency_key=f"{user.pk}-{item.pk}",
            )  # fmt: skip
        if n == 1:
            services.agreement_recompute(project=project)
            yesterday = timezone.now() - timedelta(days=1)
            Judgement.objects.filter(item__project=project).update(created_at=yesterday)
            AgreementSnapshot.objects.filter(project=project).update(computed_at=yesterday)
    gold = Item.objects.get(project=project, gold__isnull=False)
    from preferences.gold import gold_assign

    gold_assign(personas.annotator, gold)
    services.judgement_submit(
        user=personas.annotator, item=gold, shown={"choice": letter_of(personas.annotator, gold, 1), "strength": 1},
        rationale="", time_spent_ms=9000, idempotency_key="gold",
    )  # fmt: skip
    services.agreement_recompute(project=project)
    return items


@pytest.mark.django_db
def test_it_reads_the_overview_charts_with_names_only_for_reviewers(
    personas: Personas, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    _judged_project(personas)
    with django_assert_max_num_queries(5):  # however many annotators, days and comparisons
        seen_by_reviewer = charts.overview_charts(personas.project, personas.reviewer)
    per_day = seen_by_reviewer["per_day"]
    assert len(per_day["days"]) == 2
    assert per_day["series"] == [
        {"label": "annotator", "counts": [2, 2]},  # two yesterday; one and the gold today
        {"label": "reviewer", "counts": [2, 1]},
    ]
    assert seen_by_reviewer["progress"]["buckets"] == [1, 0, 3], "the gold item is not counted toward k"
    assert seen_by_reviewer["progress"]["k"] == 2
    seen_by_annotator = charts.overview_charts(personas.project, personas.annotator)
    labels = [s["label"] for s in seen_by_annotator["per_day"]["series"]]
    assert labels == ["You", "Annotator 2"]
    assert "By annotator: You 4, Annotator 2 3." in seen_by_annotator["per_day"]["summary"]
    assert "reviewer" not in json.dumps(seen_by_annotator)


@pytest.mark.django_db
def test_it_reads_the_quality_charts(personas: Personas, django_assert_max_num_queries: DjangoAssertNumQueries) -> None:
    _judged_project(personas)
    with django_assert_max_num_queries(8):  # however many annotators, snapshots and judgements
        data = charts.quality_charts(personas.project, personas.data_lead)
    agreement = data["agreement"]
    assert agreement["judgements"] == [4, 6]
    assert agreement["empty"] is None
    assert agreement["threshold"] == ALPHA_TENTATIVE
    assert [s["label"] for s in agreement["series"]] == ["Choice", "Strength (ordinal)"]
    bias = {p["label"]: p for p in data["bias"]["points"]}
    assert {name: p["decisive"] for name, p in bias.items()} == {"annotator": 3, "reviewer": 3}, "gold left out"
    scatter = data["scatter"]
    [point] = scatter["points"]
    assert (point["label"], point["median_s"], point["accuracy"], point["gold_seen"]) == ("annotator", 21.0, 0.0, 1)
    assert not point["flagged"], "one gold judgement is below the project's minimum for a flag"
    assert scatter["fast_s"] is None, "too few judgements for a project median yet"
    assert "Not plotted (no gold judged, or only gold): reviewer." in scatter["summary"]


@pytest.mark.django_db
def test_it_carries_the_chart_data_in_the_pages(personas: Personas, client_for: ClientFor) -> None:
    _judged_project(personas)
    project = personas.project

    def chart_data(body: str) -> dict[str, Any]:
        found = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', body, re.S)
        assert found, "the page carries its charts' data"
        return json.loads(found.group(1))

    overview = client_for(personas.annotator).get(f"/projects/{project.pk}/").content.decode()
    assert set(chart_data(overview)) == {"per_day", "progress"}
    assert 'data-chart="per_day" role="img" aria-label="Judgements per day, by annotator"' in overview
    assert "By annotator: You 4, Annotator 2 3." in overview
    assert "js/charts.js" in overview
    quality = client_for(personas.reviewer).get(f"/projects/{project.pk}/quality/").content.decode()
    data = chart_data(quality)
    assert set(data) == {"agreement", "bias", "scatter"}
    assert 'id="chart-bias-summary"' in quality
    assert data["bias"]["summary"] in quality, "the figures in words, for who cannot see the chart"
    assert data["bias"]["summary"].startswith("Share of decisive pairwise judgements")

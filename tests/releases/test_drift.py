"""Eval-set drift: synthetic traffic whose topic mix shifts after a date. The report flags the shifted key and not
the stable ones, honours the project's thresholds, lists coverage gaps; the page, the badges and the API show it;
“Refresh the eval set” builds a release that keeps every eval item and adds recent ones, moving no training item."""

from datetime import timedelta

import numpy as np
from django.utils import timezone

from accounts.models import AuditEvent
from annotation.models import ImportBatch, Item
from releases import drift, drift_stats
from releases.datasheet_markdown import markdown
from releases.drift_refresh import eval_set_refresh
from releases.embeddings import quantise
from releases.models import DriftReport, PromptEmbedding, Release, ReleaseItem
from releases.selectors import release_diff
from releases.services import prompt_embeddings_compute, release_build
from tests.annotation.helpers import chat_line, give_rubric, import_lines
from tests.conftest import Personas
from tests.releases.helpers import approve_all, build

TOPICS_BEFORE = ("cards", "loans", "transfers", "savings")
TOPICS_AFTER = ("fraud", "fraud", "fraud", "cards", "loans", "transfers")  # fraud dominates the recent imports
CHANNELS = ("chat", "email")
MODEL = "f" * 64


def _lines(topics: tuple[str, ...], count: int, start: int) -> list[str]:
    return [
        chat_line(
            f"Question {n} about my {topics[n % len(topics)]} for the {CHANNELS[n % 2]} desk, please?",
            metadata={"topic": topics[n % len(topics)], "channel": CHANNELS[n % 2], "language": "en"},
        )
        for n in range(start, start + count)
    ]


def _embed_constructed(items: list[Item]) -> None:
    """Stored vectors built from each item's topic: one direction a topic, plus a little noise (0.1 a dimension:
    about 0.99 cosine within a topic, clear of the 0.9 at which the farthest list takes prompts for rewordings)."""
    rng = np.random.default_rng(7)
    directions = {t: rng.normal(size=32) for t in set(TOPICS_BEFORE) | set(TOPICS_AFTER)}
    vectors = np.array([directions[i.metadata["topic"]] + 0.1 * rng.normal(size=32) for i in items])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    codes, scales = quantise(vectors)
    PromptEmbedding.objects.bulk_create(
        PromptEmbedding(
            item=item, model_hash=MODEL, content_hash=item.content_hash, dim=32, scale=float(scales[n]),
            vector=codes[n].tobytes(),
        )
        for n, item in enumerate(items)
    )  # fmt: skip


def _shifted_project(p: Personas, *, approve_recent: bool = False) -> Release:
    """80 items imported 60 days ago (even topics), released with half in eval; 60 recent items, mostly fraud."""
    give_rubric(p.project, p.data_lead)
    old = import_lines(p.project, p.data_lead, *_lines(TOPICS_BEFORE, 80, 0))
    ImportBatch.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=60))
    approve_all(p.project, p.annotator, p.reviewer)
    release = build(p.project, p.data_lead, kind="sft", eval_fraction=0.5)
    recent = import_lines(p.project, p.data_lead, *_lines(TOPICS_AFTER, 60, 1000))
    assert recent.status == "done", recent.errors
    if approve_recent:
        approve_all(p.project, p.annotator, p.reviewer)
    _embed_constructed(list(Item.objects.filter(project=p.project).order_by("id")))
    return release


def _report(p: Personas) -> DriftReport:
    report = drift.drift_report_request(actor=p.data_lead, project=p.project)
    return drift.drift_report_compute(report_id=report.pk)


def test_it_flags_the_shifted_key_and_not_the_stable_ones(personas: Personas) -> None:
    _shifted_project(personas)
    report = _report(personas)
    assert report.state == "done", report.failure_reason
    keys = report.result["keys"]
    assert keys["topic"]["flagged"]
    assert keys["topic"]["psi"] > 0.2
    assert keys["topic"]["chi2_p"] < 0.01
    assert not keys["channel"]["flagged"]
    assert keys["channel"]["psi"] < 0.05
    assert "topic" in report.flagged
    assert "channel" not in report.flagged
    assert "language" not in report.flagged
    assert "prompt length" not in report.flagged
    fraud = next(v for v in keys["topic"]["values"] if v["value"] == "fraud")
    assert fraud["eval"] == 0
    assert fraud["recent"] == 30
    assert report.result["recent_items"] == 60
    assert report.result["eval_items"] > 20
    assert report.result["embedding"]["centroid_distance"] > 0.05
    assert "embedding centroid" in report.flagged
    far = report.result["farthest"]
    # The same question in other words is listed once: these templated prompts collapse to fewer than twenty.
    assert 1 < len(far) < 20
    assert "fraud" in far[0]["prompt"]
    assert len({row["prompt"] for row in far}) == len(far)
    gaps = {(g["key"], g["value"]) for g in report.result["coverage_gaps"]}
    assert ("topic", "fraud") in gaps
    assert report.thresholds["min_eval_per_stratum"] == 20
    assert AuditEvent.objects.filter(action="drift.request").count() == 1


def test_it_honours_the_projects_thresholds(personas: Personas) -> None:
    _shifted_project(personas)
    drift.eval_health_settings_update(
        actor=personas.data_lead, project=personas.project,
        values={"psi_max": 9.0, "centroid_max": 1.5, "mmd_p_min": 0.0, "min_eval_per_stratum": 1},
    )  # fmt: skip
    report = _report(personas)
    assert report.flagged == []
    assert report.thresholds["psi_max"] == 9.0
    assert {(g["key"], g["value"]) for g in report.result["coverage_gaps"]} == {("topic", "fraud")}
    assert AuditEvent.objects.filter(action="drift.settings").count() == 1


def test_it_shows_the_report_on_the_page_the_badges_and_the_api(personas: Personas, client_for) -> None:  # type: ignore[no-untyped-def]
    _shifted_project(personas)
    report = _report(personas)
    lead = client_for(personas.data_lead)
    page = lead.get(f"/projects/{personas.project.pk}/releases/drift/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="key-topic"' in text
    assert "Refresh the eval set" in text
    assert "Coverage gaps" in text
    assert text.index('id="key-topic"') < text.index('id="key-channel"')  # flagged keys first
    for path in (f"/projects/{personas.project.pk}/", f"/projects/{personas.project.pk}/releases/"):
        assert "Eval set drift: topic" in lead.get(path).content.decode()
    answer = lead.get(f"/api/v1/projects/{personas.project.pk}/drift/")
    assert answer.status_code == 200
    assert answer.json()["report"]["id"] == report.pk
    assert "topic" in answer.json()["report"]["flagged"]
    assert client_for(personas.outsider).get(f"/projects/{personas.project.pk}/releases/drift/").status_code == 404
    assert client_for(personas.annotator).get(f"/api/v1/projects/{personas.project.pk}/drift/").status_code == 404


def test_it_refreshes_the_eval_set_keeping_every_eval_item_and_moving_no_training_item(personas: Personas) -> None:
    first = _shifted_project(personas, approve_recent=True)
    report = _report(personas)
    refreshed = eval_set_refresh(actor=personas.data_lead, project=personas.project)
    added = set(refreshed.recipe["eval_items"])
    assert refreshed.name == first.name
    assert refreshed.version == first.version + 1
    assert added
    assert {r["item"] for r in report.result["farthest"]} <= added
    built = release_build(release_id=refreshed.pk)
    assert built is not None
    assert built.state == "built", built.failure_reason
    before = dict(ReleaseItem.objects.filter(release=first).values_list("item_id", "split"))
    after = dict(ReleaseItem.objects.filter(release=built).values_list("item_id", "split"))
    assert all(after[item] == "eval" for item, split in before.items() if split == "eval")
    assert all(after[item] == "eval" for item in added)
    diff = release_diff(first, built)
    assert diff["counts"]["eval_to_train"] == 0
    assert diff["counts"]["train_to_eval"] == 0
    sheet = built.datasheet or {}
    why = sheet["e_quantity_and_suitability"]["requested_and_built"]["eval"]["why"]
    named = why["named by the recipe (eval_items, e.g. by “Refresh the eval set”)"]
    assert 0 < named <= len(added)  # the others were in eval by their hash anyway
    assert sheet["eval_health"]["drift_at_build"]["report"] == report.pk
    event = AuditEvent.objects.get(action="drift.refresh_eval_set")
    assert event.payload["added"] == event.payload["labelled"] == len(added)  # every recent item was approved


def test_it_lists_coverage_gaps_of_the_recipes_strata_in_the_datasheet(personas: Personas) -> None:
    give_rubric(personas.project, personas.data_lead)
    import_lines(personas.project, personas.data_lead, *_lines(TOPICS_BEFORE, 24, 0))
    approve_all(personas.project, personas.annotator, personas.reviewer)
    release = build(personas.project, personas.data_lead, kind="sft", eval_fraction=0.3, stratify_by=["topic"])
    gaps = (release.datasheet or {})["eval_health"]["coverage_gaps"]
    assert {g["value"] for g in gaps} == set(TOPICS_BEFORE)
    assert all(g["items"] == 6 for g in gaps)
    text = markdown(release.manifest or {}, release.datasheet or {})
    assert f"| topic | cards | {gaps[0]['eval_items']} | 6 |" in text


def test_it_measures_with_known_statistics() -> None:
    same = drift_stats.categorical_drift(
        drift_stats.Counter({"a": 50, "b": 50}), drift_stats.Counter({"a": 48, "b": 52})
    )
    assert same["psi"] < 0.01
    assert same["chi2_p"] > 0.5
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.normal(size=(200, 16)) + 1.5
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    assert drift_stats.mmd_test(x[:100], x[100:])["p"] > 0.05
    assert drift_stats.mmd_test(x, y)["p"] < 0.01
    assert drift_stats.mmd_test(x, y) == drift_stats.mmd_test(x, y)  # a fixed seed: one input, one answer
    assert drift_stats.token_count("Can I block my card, please?") == 8


def test_it_sees_a_new_topic_in_real_minilm_embeddings(personas: Personas) -> None:
    give_rubric(personas.project, personas.data_lead)
    cards = [f"How do I block my debit card number {n} after losing it?" for n in range(12)]
    import_lines(personas.project, personas.data_lead, *[chat_line(q) for q in cards])
    approve_all(personas.project, personas.annotator, personas.reviewer)
    build(personas.project, personas.data_lead, kind="sft", eval_fraction=0.5)
    ImportBatch.objects.filter(project=personas.project).update(created_at=timezone.now() - timedelta(days=90))
    crypto = [f"Can I buy bitcoin coin number {n} with my savings account?" for n in range(12)]
    import_lines(personas.project, personas.data_lead, *[chat_line(q) for q in crypto])
    assert prompt_embeddings_compute(project_id=personas.project.pk) == 24
    report = _report(personas)
    embedding = report.result["embedding"]
    assert embedding["recent_embedded"] == 12
    assert embedding["centroid_distance"] > 0.05
    assert "embedding centroid" in report.flagged
    assert report.result["farthest"][0]["similarity"] < 0.6


def test_it_flags_a_key_whose_p_value_underflows_to_zero() -> None:
    huge = drift_stats.categorical_drift(
        drift_stats.Counter({"a": 50_000, "b": 50_000}), drift_stats.Counter({"a": 90_000, "b": 10_000})
    )
    assert huge["chi2_p"] == 0.0
    assert drift.flag_key(huge, {"psi_max": 0.2, "chi2_p_min": 0.01})


def test_it_reports_on_one_releases_eval_split_when_asked(personas: Personas, client_for) -> None:  # type: ignore[no-untyped-def]
    release = _shifted_project(personas)
    lead = client_for(personas.data_lead)
    base = f"/api/v1/projects/{personas.project.pk}/drift/"
    asked = lead.post(f"{base}refresh-report/", {"release": release.pk}, content_type="application/json")
    assert asked.status_code == 202
    assert asked.json()["release"] == release.pk
    drift.drift_report_compute(report_id=asked.json()["id"])
    assert lead.get(base).json()["report"] is None  # the current eval set has no report of its own yet
    assert lead.get(f"{base}?release={release.pk}").json()["report"]["flagged"][0] == "topic"
    assert lead.get(f"{base}?release=999999").status_code == 404
    page = lead.get(f"/projects/{personas.project.pk}/releases/drift/?release={release.pk}").content.decode()
    assert f"of {release.name} v{release.version}" in page
    saved = lead.patch(f"{base}settings/", {"psi_max": 0.5}, content_type="application/json")
    assert saved.json()["psi_max"] == 0.5
    refused = lead.patch(f"{base}settings/", {"window_days": 0}, content_type="application/json")
    assert refused.status_code == 400


def test_it_says_why_the_latest_report_failed(personas: Personas, client_for) -> None:  # type: ignore[no-untyped-def]
    report = drift.drift_report_request(actor=personas.data_lead, project=personas.project)
    DriftReport.objects.filter(pk=report.pk).update(state="failed", failure_reason="The broker is away.")
    page = client_for(personas.data_lead).get(f"/projects/{personas.project.pk}/releases/drift/").content.decode()
    assert "The broker is away." in page
    assert 'id="no-report"' in page

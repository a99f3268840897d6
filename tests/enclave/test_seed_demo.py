import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import Project, User
from annotation.models import Item, RubricVersion, Slot
from preferences.models import Adjudication, AgreementSnapshot, Judgement
from releases.models import DriftReport, Release

pytestmark = pytest.mark.django_db


def test_it_seeds_every_demo_project_once_and_the_pages_work() -> None:
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)  # idempotent
    assert Project.objects.count() == 3
    comparisons = Project.objects.get(name__contains="base model vs. adapter")
    items = Item.objects.filter(project=comparisons, kind="comparison")
    assert items.count() == 12
    gold = items.filter(gold__isnull=False)
    assert gold.count() == 3
    assert not Slot.objects.filter(item__in=gold).exists()
    models = {c["provenance"].get("adapter") or c["provenance"]["model"] for i in items for c in i.candidates}
    assert models == {"bank-assist-7b", "sft-lora-r16 #14"}, "candidates from two models"
    assert Judgement.objects.filter(item__project=comparisons, is_gold=False).count() == 12
    assert Judgement.objects.filter(item__project=comparisons, is_gold=True).count() == 6, "both judged the gold"
    days = {d.date() for d in Judgement.objects.filter(item__project=comparisons).values_list("created_at", flat=True)}
    assert len(days) >= 3, "the judgements span a few days, so the overview's chart has days to draw"
    sft = Project.objects.get(name="Retail banking support (demo)")
    [compare_rubric] = RubricVersion.objects.filter(project=comparisons)
    sft_rubric = RubricVersion.objects.filter(project=sft).get()
    assert compare_rubric.guidelines != sft_rubric.guidelines, "the comparison project has guidelines of its own"
    for written_for_comparing in ("# Comparing two answers", "**Tie**", "**Both bad**", "## The reason field"):
        assert written_for_comparing in compare_rubric.guidelines
    assert Adjudication.objects.filter(item__project=comparisons).count() == 1, "the one disagreement"
    assert AgreementSnapshot.objects.filter(project=comparisons).count() == 3, "one a day: a line to draw"
    from enclave.management.commands.seed_demo import DEMO_JUDGEMENTS

    judged = Judgement.objects.filter(item__project=comparisons, is_gold=False).select_related("item", "annotator")
    for judgement in judged:
        winner, rationale = DEMO_JUDGEMENTS[judgement.item.external_id][judgement.annotator.username]
        assert (judgement.result["winner"], judgement.rationale) == (winner, rationale), "each reason fits its choice"
    (disputed,) = Adjudication.objects.filter(item__project=comparisons).values_list("item__external_id", flat=True)
    assert disputed == "cmp-0006", "the dispute is the one where both answers are right"
    assert not comparisons.memberships.filter(user__username="outsider").exists()
    [release] = Release.objects.filter(project=comparisons)
    assert release.state == "built", release.failure_reason
    assert release.manifest is not None
    assert release.manifest["counts"]["rows"]["train"] > 0
    assert release.manifest["counts"]["rows"]["eval"] > 0, "the demo has a held-out split for training to evaluate on"
    from training.models import BaseModel

    [model] = BaseModel.objects.all()
    assert model.state == "ready", model.failure_reason
    assert model.architecture == "LlamaForCausalLM"
    assert len(model.content_hash) == 64
    admin = Client()
    admin.force_login(User.objects.get(username="projectadmin"))
    form = admin.get(f"/projects/{comparisons.pk}/training/new/").content.decode()
    assert f'<option value="{release.pk}" selected data-switch="dpo">' in form, "the demo release is preselected"
    assert f'<option value="{model.pk}" selected>' in form, "so is the tiny model, with the CPU preset"
    assert '<option value="cpu_check" selected>' in form

    client = Client()
    client.force_login(User.objects.get(username="annotator"))
    page = client.get(f"/projects/{comparisons.pk}/compare/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "bank-assist" not in body
    assert "sft-lora" not in body
    client.force_login(User.objects.get(username="datalead"))
    quality = client.get(f"/projects/{comparisons.pk}/quality/").content.decode()
    assert "bank-assist-7b 2026.09 + sft-lora-r16 #14" in quality, "win rates tell the adapter from its base"
    from preferences.charts import overview_charts, quality_charts

    lead = User.objects.get(username="datalead")
    charts = {**overview_charts(comparisons, lead), **quality_charts(comparisons, lead)}
    assert set(charts) == {"per_day", "progress", "agreement", "bias", "scatter"}
    blank = {name: chart["empty"] for name, chart in charts.items() if chart["empty"]}
    assert blank == {}, "every chart has something to draw with the demo data"


def test_it_seeds_a_banking_project_whose_drift_page_flags_the_topic_only() -> None:
    call_command("seed_demo", verbosity=0)
    banking = Project.objects.get(name="Retail banking support (demo)")
    report = DriftReport.objects.filter(project=banking, state="done").get()
    flagged_keys = [key for key, figures in report.result["keys"].items() if figures["flagged"]]
    assert flagged_keys == ["topic"], report.result["keys"]
    assert "channel" in report.result["keys"]
    assert not {"language", "prompt length"} & set(report.flagged)
    assert {g["value"] for g in report.result["coverage_gaps"] if g["key"] == "topic"} >= {"fraud"}
    lead = Client()
    lead.force_login(User.objects.get(username="datalead"))
    page = lead.get(f"/projects/{banking.pk}/releases/drift/").content.decode()
    assert 'id="key-topic"' in page
    assert "Eval set drift: topic" in lead.get(f"/projects/{banking.pk}/").content.decode()

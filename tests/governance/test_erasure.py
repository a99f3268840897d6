"""Erasure of a data subject: a customer number planted in imported items, an annotation, a judgement's reason,
a generated answer, a built release (JSONL, Parquet, Arrow), an adapter's lineage, an abandoned import upload
and a generation run's leftover output file is gone from a dump of the database and from every file after the
erasure; the release and the adapter are tainted, and the rebuild leaves the erased items out."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.db import connection

from accounts.models import AuditEvent
from annotation.models import Item, ItemState
from core.errors import DomainError
from core.marks import marks_of
from evaluation.deployment import deployment_target_create, promotion_request
from evaluation.models import Candidate, GenerationPrompt, GenerationRun
from governance import services
from governance.matching import Matcher
from governance.models import Erasure, Taint
from governance.permissions import erasure_project_ids
from preferences.models import Judgement
from releases.models import PromptEmbedding, Release, ReleaseItem
from tests.conftest import ClientFor, Personas
from tests.evaluation.helpers import stored_adapter
from tests.releases.helpers import build, comparisons, judge, sft_project
from tests.training.helpers import distinct_prompts, quick_config, ready_model
from training.services import training_job_start

# One customer number in the formats people type it: with dashes, run together, spaced and in lower case.
FORMATS = ("KD-2041-7733", "KD20417733", "kd 2041 7733")
PATTERN = r"[Kk][Dd][- ]?2041[- ]?7733"


def _dump() -> str:
    """``pg_dump`` of the test database, as text."""
    db = connection.settings_dict
    env = os.environ | {"PGPASSWORD": db.get("PASSWORD") or ""}
    command = ["pg_dump", "--data-only", "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432),
               "-U", db["USER"], db["NAME"]]  # fmt: skip
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout


def _readable(path: Path) -> str:
    """A file's content as text, columnar formats read back (their pages are compressed)."""
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False)
    if path.suffix == ".arrow":
        return json.dumps(pa.ipc.open_stream(pa.memory_map(str(path))).read_all().to_pylist(), ensure_ascii=False)
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    try:  # JSON files may escape characters: read them back too
        return text + json.dumps(json.loads(raw), ensure_ascii=False)
    except ValueError:
        return text


def _files_holding(root: Path, needles: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith((".sqlite3", ".safetensors")):
            text = _readable(path)
            if any(needle in text for needle in needles):
                found.append(str(path.relative_to(root)))
    return found


@pytest.fixture
def planted(transactional_db: None, personas: Personas, tiny_model_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """The number in every place text lives; committed, so ``pg_dump`` sees it."""
    project, lead = personas.project, personas.data_lead
    questions = distinct_prompts(6, seed=7)
    questions[0] = f"My customer number is {FORMATS[0]}, why was I charged twice?"
    questions[1] = f"Close account {FORMATS[1]} please."
    sft_project(project, lead, personas.annotator, personas.reviewer, questions)  # answers quote the question
    release = build(project, lead, name="support", kind="sft", eval_fraction=0.3)
    assert release.state == "built", release.failure_reason
    model = ready_model(personas.staff, tiny_model_dir)
    adapter = stored_adapter(personas, model, release, tmp_path / "adapter")

    [item] = comparisons(project, lead, [f"Card of {FORMATS[2]} was swallowed by the machine, what now?"])
    judgement = judge(item, personas.annotator, {"choice": 0, "strength": 2})
    Judgement.objects.filter(pk=judgement.pk).update(rationale=f"A is right about {FORMATS[0]}'s card.")

    run = GenerationRun.objects.create(
        project=project, base_model=model, base_model_hash=model.content_hash, source="upload",
        decoding={"candidates": 1}, created_by=personas.project_admin, state="succeeded",
    )  # fmt: skip
    prompt = GenerationPrompt.objects.create(run=run, index=0, messages=[{"role": "user", "content": "Hi"}], digest="0")
    Candidate.objects.create(
        run=run, prompt=prompt, sample=0, text=f"I have found {FORMATS[1]} in our records.", seed=1,
        prompt_tokens=1, completion_tokens=5, seconds=0.1, finish_reason="stop",
    )  # fmt: skip
    leftover = Path(settings.TRAINING_WORK_DIR) / run.work_name / "outputs.jsonl"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_text(json.dumps({"text": f"Customer {FORMATS[2]} \u2013 done"}, ensure_ascii=True) + "\n")
    upload = Path(settings.MEDIA_ROOT) / "imports" / str(project.pk) / "20240101T000000000000.upload"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_text(f'{{"prompt": "raw text of {FORMATS[0]}"}}\n')
    return {"release": release, "adapter": adapter, "run": run, "comparison": item}


def test_it_erases_a_customer_number_everywhere_and_taints_the_release_and_adapter(
    planted: dict[str, Any], personas: Personas, client_for: ClientFor
) -> None:
    release, adapter = planted["release"], planted["adapter"]
    data_dir = Path(settings.DATA_DIR)
    assert all(needle in _dump() for needle in FORMATS)  # the check below is real: the dump held each format
    holding = _files_holding(data_dir, FORMATS)
    stored = f"artifacts/releases/{personas.project.pk}/{release.pk}"
    assert f"{stored}/parquet/train.parquet" in holding or f"{stored}/parquet/eval.parquet" in holding
    assert any(name.endswith(".arrow") for name in holding)
    assert any(name.endswith(".upload") for name in holding)
    assert any("outputs.jsonl" in n for n in holding)

    scope = erasure_project_ids(personas.data_lead)
    preview = services.erasure_preview(matcher=Matcher.checked("pattern", PATTERN), project_ids=scope)
    assert {hit.key for hit in preview.found.hits} >= {
        "annotation.item.messages", "annotation.annotation.response", "preferences.judgement.rationale",
        "evaluation.candidate.text",
    }  # fmt: skip
    assert set(preview.found.literals) == set(FORMATS)
    assert {f.name for f in preview.files} >= {f"releases/{personas.project.pk}/{release.pk}/parquet/train.parquet"}
    assert Erasure.objects.count() == 0  # a preview changes nothing

    # An embedding of an item's prompt says something of its text: it goes with the erasure.
    from releases.embeddings import quantise

    codes, scales = quantise(np.ones((1, 384), dtype=np.float32) / np.sqrt(384))
    affected = Item.objects.filter(project=personas.project).order_by("pk")
    for item in affected:
        PromptEmbedding.objects.create(
            item=item, model_hash="e" * 64, content_hash=item.content_hash, dim=384, scale=float(scales[0]),
            vector=codes[0].tobytes(),
        )  # fmt: skip

    erasure = services.erasure_erase(
        actor=personas.data_lead, mode="pattern", term=PATTERN, reason="Subject access request DSR-17: erase.",
        request_key="k1", project_ids=scope,
    )  # fmt: skip
    assert erasure.state == "done", erasure.failure
    assert not PromptEmbedding.objects.filter(item_id__in=erasure.items).exists()
    assert PromptEmbedding.objects.exclude(item_id__in=erasure.items).count() == affected.count() - len(erasure.items)
    assert erasure.database_matches >= 6
    assert erasure.file_matches >= 6

    dump = _dump()
    assert not [needle for needle in FORMATS if needle in dump]
    assert "[ERASED]" in dump
    assert _files_holding(data_dir, FORMATS) == []
    assert PATTERN not in dump
    assert "DSR-17" in dump

    assert marks_of("release", release.pk)["tainted"]["erasures"] == [erasure.pk]
    assert marks_of("adapter", adapter.pk)["tainted"]["erasures"] == [erasure.pk]
    # Nothing new is trained on the tainted release, and the tainted adapter is not promoted.
    with pytest.raises(DomainError, match=f"erasure #{erasure.pk} removed; train on its rebuild"):
        training_job_start(
            actor=personas.project_admin, project=personas.project, kind="sft", release=release,
            base_model=adapter.base_model, config=quick_config("sft"),
        )  # fmt: skip
    serving = deployment_target_create(
        actor=personas.project_admin, project=personas.project, name="assistant", base_model=adapter.base_model
    )
    with pytest.raises(DomainError, match=f"erasure #{erasure.pk} removed; train a new adapter"):
        promotion_request(actor=personas.project_admin, target=serving, adapter=adapter, evaluation=None)
    api = client_for(personas.project_admin)
    base = f"/api/v1/projects/{personas.project.pk}"
    assert api.get(f"{base}/releases/{release.pk}/").json()["tainted"]["erasures"] == [erasure.pk]
    assert api.get(f"{base}/releases/").json()["results"][0]["tainted"]["why"] == ["holds erased items"]
    assert api.get(f"{base}/adapters/{adapter.pk}/").json()["tainted"]["erasures"] == [erasure.pk]
    assert api.get(f"{base}/adapters/").json()["results"][0]["tainted"]["erasures"] == [erasure.pk]
    report = client_for(personas.data_lead).get(f"/api/v1/erasures/{erasure.pk}/").json()
    assert {t["kind"] for t in report["taints"]} == {"release", "training_job", "adapter"}
    assert PATTERN not in json.dumps(report)
    kinds = set(Taint.objects.filter(erasure=erasure).values_list("kind", flat=True))
    assert kinds == {"release", "training_job", "adapter"}
    assert [row["id"] for row in erasure.report["adapter"]] == [adapter.pk]
    held = Item.objects.filter(pk__in=erasure.items)
    assert held.count() == 3
    assert set(held.values_list("state", flat=True)) == {ItemState.ON_HOLD}
    events = AuditEvent.objects.filter(action__startswith="erasure.")
    assert {e.action for e in events} == {"erasure.erase", "erasure.files"}
    assert all(e.payload["term_hmac"] == erasure.term_hmac for e in events)
    assert erasure.term_hmac == services.term_hmac(PATTERN, erasure.term_salt)

    # The same form sent again returns the same erasure; a new one finds nothing left.
    again = services.erasure_erase(
        actor=personas.data_lead, mode="pattern", term=PATTERN, reason="again", request_key="k1", project_ids=scope
    )
    assert again.pk == erasure.pk
    with pytest.raises(DomainError, match="Nothing matches"):
        services.erasure_erase(
            actor=personas.data_lead, mode="exact", term=FORMATS[0], reason="again", request_key="k2",
            project_ids=scope,
        )  # fmt: skip

    rebuilt = services.erasure_release_rebuild(actor=personas.data_lead, release=release)
    from releases import services as release_services

    built = release_services.release_build(release_id=rebuilt.pk)
    assert built is not None
    rebuilt = built
    assert rebuilt.state == "built", rebuilt.failure_reason
    assert rebuilt.hash != release.hash
    assert not set(ReleaseItem.objects.filter(release=rebuilt).values_list("item_id", flat=True)) & set(erasure.items)
    assert (
        ReleaseItem.objects.filter(release=rebuilt).count() == ReleaseItem.objects.filter(release=release).count() - 2
    )
    assert (
        _files_holding(
            data_dir / "artifacts" / "releases" / str(personas.project.pk) / str(rebuilt.pk), (*FORMATS, "[ERASED]")
        )
        == []
    )
    assert marks_of("release", release.pk)["tainted"]["rebuilt_as"] == rebuilt.pk
    assert marks_of("release", rebuilt.pk) == {}
    assert Release.objects.get(pk=release.pk).hash == release.hash  # the record of what was built stays


def test_it_refuses_bad_terms_and_a_reason_that_holds_the_term(personas: Personas) -> None:
    scope = erasure_project_ids(personas.data_lead)
    for mode, term, message in [
        ("exact", "ab", "at least 3"),
        ("pattern", "(unclosed", "not a valid regular expression"),
        ("pattern", "x*", "matches empty text"),
        ("exact", "x" * 201, "at most 200"),
        ("sideways", "abc", "exact text or a pattern"),
    ]:
        with pytest.raises(DomainError, match=message):
            services.erasure_erase(actor=personas.data_lead, mode=mode, term=term, reason="r", request_key=mode,
                                   project_ids=scope)  # fmt: skip
    with pytest.raises(DomainError, match="The reason holds"):
        services.erasure_erase(actor=personas.data_lead, mode="exact", term="Jane Roe", reason="erase Jane Roe",
                               request_key="r", project_ids=scope)  # fmt: skip
    with pytest.raises(DomainError, match="Say why"):
        services.erasure_erase(actor=personas.data_lead, mode="exact", term="Jane Roe", reason=" ", request_key="r",
                               project_ids=scope)  # fmt: skip


def test_it_runs_a_catastrophic_pattern_without_hanging(personas: Personas) -> None:
    """``(a+)+$`` backtracks for ages in Python's ``re``; PostgreSQL's engine answers at once."""
    matcher = Matcher.checked("pattern", "(a+)+$")
    assert matcher.found(["a" * 5000 + "!", "b" + "a" * 10]) == [[], ["a" * 10]]


def test_it_searches_only_projects_whose_data_the_user_manages(personas: Personas) -> None:
    assert erasure_project_ids(personas.annotator) == []
    assert erasure_project_ids(personas.data_lead) == [personas.project.pk]
    assert personas.other_project.pk in erasure_project_ids(personas.staff)
    assert erasure_project_ids(personas.outsider) == [personas.other_project.pk]


def test_it_erases_only_in_the_projects_whose_data_the_user_manages(personas: Personas) -> None:
    from tests.annotation.helpers import chat_line, import_lines

    for project, lead in ((personas.project, personas.data_lead), (personas.other_project, personas.outsider)):
        import_lines(project, lead, chat_line(f"Account {FORMATS[0]} of {project.name}"))
    erasure = services.erasure_erase(
        actor=personas.outsider, mode="exact", term=FORMATS[0], reason="Subject request in project B.",
        request_key="b", project_ids=erasure_project_ids(personas.outsider),
    )  # fmt: skip
    assert [p.pk for p in erasure.projects.all()] == [personas.other_project.pk]
    assert Item.objects.get(project=personas.other_project).messages[0]["content"].startswith("Account [ERASED]")
    assert FORMATS[0] in Item.objects.get(project=personas.project).messages[0]["content"]
    assert Item.objects.get(project=personas.project).state == ItemState.OPEN

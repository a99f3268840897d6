"""Another tool's file through the import pipeline: the first read, the data lead's mapping of fields and
annotators, items with their imported judgements and answers keeping their origin, the report of what was
dropped, all or nothing, and the pages and API around it."""

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, User
from annotation import services
from annotation.models import Annotation, ImportBatch, ImportedAnnotator, Item, Slot
from core.errors import DomainError
from preferences.agreement_runs import agreement_recompute
from preferences.models import Adjudication, Judgement
from tests.annotation.helpers import give_rubric
from tests.conftest import Personas
from tests.releases.helpers import build

pytestmark = pytest.mark.django_db


def _message(mid: str, role: str, text: str, *, rank: int | None = None, replies: list[Any] | None = None) -> dict:
    """A node of OpenAssistant's published message tree (oasst_data ExportMessageNode)."""
    return {
        "message_id": mid,
        "parent_id": None,
        "user_id": f"user-{mid}",
        "created_date": "2023-02-05T10:00:00+00:00",
        "text": text,
        "role": role,
        "lang": "en",
        "review_count": 3,
        "review_result": True,
        "deleted": False,
        "rank": rank,
        "synthetic": False,
        "model_name": None,
        "emojis": {},
        "labels": {},
        "replies": replies or [],
    }


def _tree(tree_id: str, prompt: str, answers: list[str]) -> str:
    replies = [_message(f"{tree_id}-a{i}", "assistant", text, rank=i) for i, text in enumerate(answers)]
    root = _message(f"{tree_id}-p", "prompter", prompt, replies=replies)
    for reply in replies:
        reply["parent_id"] = root["message_id"]
    return json.dumps({"message_tree_id": tree_id, "tree_state": "ready_for_export", "prompt": root})


def _oasst_file(*trees: str) -> bytes:
    return ("\n".join(trees) + "\n").encode()


def _ls_task(task_id: int, prompt: str, left: str, right: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    """A task of Label Studio's JSON export of a pairwise project."""
    return {
        "id": task_id,
        "data": {"prompt": prompt, "answer1": left, "answer2": right},
        "annotations": annotations,
        "predictions": [],
        "project": 12,
        "created_at": "2025-03-01T09:00:00.000000Z",
        "updated_at": "2025-03-01T09:00:00.000000Z",
    }


def _ls_annotation(annotation_id: int, user: dict[str, Any], selected: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": annotation_id,
        "completed_by": user,
        "result": [
            {
                "id": f"r{annotation_id}",
                "type": "pairwise",
                "value": {"selected": selected},
                "origin": "manual",
                "to_name": "prompt",
                "from_name": "comparison",
            }
        ],
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2025-03-02T10:00:00.000000Z",
        "updated_at": "2025-03-02T10:00:00.000000Z",
        "lead_time": 12.5,
        **extra,
    }


ANNA = {"id": 3, "email": "anna@bank.example", "first_name": "Anna", "last_name": "K"}
BORIS = {"id": 4, "email": "boris@elsewhere.example", "first_name": "Boris", "last_name": "M"}
LS_FIELDS = {"prompt": "prompt", "candidates": ["answer1", "answer2"], "response": None}


def _ls_file() -> bytes:
    tasks = [
        _ls_task(
            1,
            "Can I raise my card limit? Call me on 020 7946 0958.",
            "Yes, in the app under Cards.",
            "No.",
            [_ls_annotation(10, ANNA, "left"), _ls_annotation(11, BORIS, "right")],
        ),
        _ls_task(
            2,
            "How do I freeze my card?",
            "Ring us.",
            "Tap Freeze in the app.",
            [_ls_annotation(12, ANNA, "right"), _ls_annotation(13, BORIS, "right", was_cancelled=True)],
        ),
    ]
    return json.dumps(tasks, indent=2).encode()


def _scan(batch: ImportBatch) -> dict[str, Any]:
    assert batch.peer_scan is not None
    return batch.peer_scan


def _upload(personas: Personas, data: bytes, fmt: str, name: str, **kwargs: Any) -> ImportBatch:
    return services.import_start(
        actor=personas.data_lead,
        project=personas.project,
        upload=io.BytesIO(data),
        source_name=name,
        fmt=fmt,
        **kwargs,
    )


def test_it_waits_for_the_mapping_then_imports_openassistant_rankings(personas: Personas) -> None:
    data = _oasst_file(
        _tree("t1", "What is an ISA?", ["A tax-free savings account.", "A kind of bond.", "No idea."]),
        _tree("t2", "Is a cheque still valid after six months?", ["Usually not: banks may refuse it.", "Yes."]),
    )
    batch = _upload(personas, data, "openassistant_trees", "oasst.trees.jsonl")
    assert batch.status == "mapping"
    assert not Item.objects.filter(project=personas.project).exists()
    assert [a["key"] for a in _scan(batch)["annotators"]] == ["consensus"]
    assert _scan(batch)["tool"] == "OpenAssistant"

    batch = services.import_mapping_confirm(
        actor=personas.data_lead, batch=batch, fields=None, annotators={"consensus": "new"}
    )
    assert batch.status == "done", (batch.errors, batch.failure_reason)
    assert batch.imported_count == 2
    assert batch.judgement_count == 2
    three = Item.objects.get(project=personas.project, messages__0__content="What is an ISA?")
    assert three.kind == "comparison"
    assert next(c["content"] for c in three.candidates) == "A tax-free savings account."
    judgement = Judgement.objects.get(item=three)
    assert judgement.result == {"ranking": [[0], [1], [2]]}
    origin = judgement.origin or {}
    assert origin["tool"] == "OpenAssistant"
    assert origin["annotator"] == "consensus"
    assert origin["batch"] == batch.pk
    two = Judgement.objects.get(item__messages__0__content__startswith="Is a cheque")
    assert two.result["winner"] == 0
    author = judgement.annotator
    assert not author.is_active
    assert not author.has_usable_password()
    assert ImportedAnnotator.objects.get(user=author).key == "consensus"
    assert Slot.objects.filter(item=three, state="done", user=author).count() == 1
    actions = set(AuditEvent.objects.filter(project=personas.project).values_list("action", flat=True))
    assert {"import.start", "import.mapped", "import.done"} <= actions

    again = _upload(
        personas,
        _oasst_file(_tree("t3", "What is APR?", ["The yearly rate.", "A bank."])),
        "openassistant_trees",
        "more.jsonl",
    )
    assert _scan(again)["annotators"][0]["imported_before"] == author.pk
    again = services.import_mapping_confirm(
        actor=personas.data_lead, batch=again, fields=None, annotators={"consensus": "new"}
    )
    assert Judgement.objects.filter(annotator=author).count() == 3  # the same imported annotator, not a second one


def test_it_maps_label_studio_annotators_scrubs_pii_and_reports_what_it_dropped(personas: Personas) -> None:
    personas.data_lead.email = "anna@bank.example"
    personas.data_lead.save()
    batch = _upload(personas, _ls_file(), "label_studio_json", "project-12-export.json")
    assert batch.status == "mapping"
    anna, boris = sorted(_scan(batch)["annotators"], key=lambda a: a["key"])
    assert anna["label"] == "anna@bank.example"
    assert anna["suggested_user"] == personas.data_lead.pk  # by e-mail: suggested, not applied
    assert boris["suggested_user"] is None

    batch = services.import_mapping_confirm(
        actor=personas.data_lead,
        batch=batch,
        fields=LS_FIELDS,
        annotators={anna["key"]: personas.data_lead.pk, boris["key"]: "new"},
    )
    assert batch.status == "done", (batch.errors, batch.failure_reason)
    assert batch.imported_count == 2
    assert batch.judgement_count == 3
    assert batch.dropped_count >= 1
    assert any("cancel" in d["reason"] for d in batch.dropped), batch.dropped
    card = Item.objects.get(project=personas.project, external_id="1")
    assert "020 7946 0958" not in card.messages[0]["content"]
    assert batch.scrub_counts.get("PHONE") == 1
    by_lead = Judgement.objects.get(item=card, annotator=personas.data_lead)
    assert by_lead.result == {"winner": 0, "strength": None}
    assert by_lead.time_spent_ms == 12500
    assert (by_lead.origin or {})["at"].startswith("2025-03-02T10:00:00")
    assert (by_lead.origin or {})["project"] == "12"
    imported = ImportedAnnotator.objects.get(project=personas.project, key=boris["key"]).user
    assert Judgement.objects.get(item=card, annotator=imported).result["winner"] == 1
    assert "boris" not in imported.username
    assert imported.email == ""
    freeze = Item.objects.get(project=personas.project, external_id="2")
    assert Judgement.objects.filter(item=freeze).count() == 1  # Boris cancelled his
    opened = Adjudication.objects.get(item=card)  # Anna and Boris disagree: adjudicated here
    assert opened.agreement == 0.5
    assert AuditEvent.objects.filter(action="adjudication.open", payload__import=batch.pk).count() == 1


def test_it_refuses_a_mapping_that_is_incomplete_or_names_outsiders(personas: Personas) -> None:
    batch = _upload(personas, _ls_file(), "label_studio_json", "export.json")
    keys = [a["key"] for a in _scan(batch)["annotators"]]
    cases: list[tuple[dict[str, Any], str]] = [
        ({keys[0]: "new"}, "not mapped"),
        ({keys[0]: personas.outsider.pk, keys[1]: "new"}, "not a member"),
        ({keys[0]: personas.annotator.pk, keys[1]: personas.annotator.pk}, "each person judges an item once"),
        ({keys[0]: "someone", keys[1]: "new"}, "user id"),
    ]
    for annotators, says in cases:
        with pytest.raises(DomainError, match=says):
            services.import_mapping_confirm(
                actor=personas.data_lead, batch=batch, fields=LS_FIELDS, annotators=annotators
            )
    with pytest.raises(DomainError, match="no field"):
        services.import_mapping_confirm(
            actor=personas.data_lead,
            batch=batch,
            fields={"prompt": "question", "candidates": ["answer1", "answer2"]},
            annotators=dict.fromkeys(keys, "new"),
        )
    batch.refresh_from_db()
    assert batch.status == "mapping"
    assert not User.objects.filter(imported_as__project=personas.project).exists()


def test_it_leaves_out_an_annotator_mapped_to_skip_and_goes_on_at_once_with_a_full_mapping(
    personas: Personas,
) -> None:
    keys = ["3", "4"]
    batch = _upload(
        personas, _ls_file(), "label_studio_json", "export.json", fields=LS_FIELDS, annotators={"3": "new", "4": "skip"}
    )
    assert batch.status == "done", (batch.errors, batch.failure_reason)
    assert batch.judgement_count == 2
    assert any("left out, as mapped" in d["reason"] for d in batch.dropped)
    assert ImportedAnnotator.objects.filter(project=personas.project).count() == 1
    assert sorted(batch.annotator_map or {}) == keys


def test_it_imports_nothing_when_a_record_is_bad(personas: Personas) -> None:
    good = _tree("t1", "What is an ISA?", ["A savings account.", "A bond."])
    bad = json.dumps({"message_tree_id": "t2", "tree_state": "ready_for_export", "prompt": None})
    batch = _upload(
        personas, _oasst_file(good, bad), "openassistant_trees", "bad.jsonl", annotators={"consensus": "new"}
    )
    assert batch.status == "refused"
    assert batch.errors
    assert batch.errors[0]["line"] == 2
    assert not Item.objects.filter(project=personas.project).exists()
    assert not ImportedAnnotator.objects.exists()  # made within the import's transaction: rolled back with it
    assert batch.judgement_count == 0


def test_it_cancels_an_import_waiting_for_its_mapping(personas: Personas) -> None:
    batch = _upload(personas, _ls_file(), "label_studio_json", "export.json")
    stored = batch.stored_path
    batch = services.import_cancel(actor=personas.data_lead, batch=batch)
    assert batch.status == "cancelled"
    assert not Path(stored).exists()
    with pytest.raises(DomainError, match="not waiting"):
        services.import_mapping_confirm(actor=personas.data_lead, batch=batch, fields=LS_FIELDS, annotators={})


def test_it_counts_imported_judgements_in_the_agreement_figures(personas: Personas) -> None:
    _upload(
        personas, _ls_file(), "label_studio_json", "export.json", fields=LS_FIELDS, annotators={"3": "new", "4": "new"}
    )
    figures = agreement_recompute(project=personas.project).figures
    assert figures["imported"]["judgements"] == 3
    assert figures["imported"]["sources"] == [{"tool": "Label Studio", "project": "12", "judgements": 3}]
    assert len(figures["imported"]["annotators"]) == 2
    client = Client()
    client.force_login(personas.reviewer)
    page = client.get(reverse("preference_quality", kwargs={"pk": personas.project.pk})).content.decode()
    assert "3 of the 3 judgements: 3 from Label Studio (project “12”)" in page


def test_it_imports_edited_answers_for_review_with_their_origin(personas: Personas) -> None:
    give_rubric(personas.project, personas.data_lead)
    task = {
        "id": 7,
        "data": {"question": "How long does a transfer take?", "answer": "A while."},
        "annotations": [
            {
                "id": 70,
                "completed_by": 5,
                "result": [
                    {
                        "id": "x",
                        "type": "textarea",
                        "value": {"text": ["Up to two hours for most transfers; some take a day."]},
                        "from_name": "edited",
                        "to_name": "question",
                        "origin": "manual",
                    }
                ],
                "was_cancelled": False,
                "created_at": "2025-01-05T08:00:00Z",
                "lead_time": 40,
            }
        ],
        "project": 3,
    }
    batch = _upload(
        personas,
        json.dumps([task]).encode(),
        "label_studio_json",
        "sft.json",
        fields={"prompt": "question", "candidates": [], "response": "answer"},
        annotators={"5": "new"},
    )
    assert batch.status == "done", (batch.errors, batch.failure_reason)
    assert batch.answer_count == 1
    annotation = Annotation.objects.get(item__batch=batch)
    assert annotation.state == "submitted"  # reviewed here: four eyes hold for imported work too
    assert annotation.response.startswith("Up to two hours")
    assert annotation.original_response == "A while."
    assert (annotation.origin or {})["tool"] == "Label Studio"


def test_it_offers_the_mapping_step_on_the_page_and_the_api(personas: Personas) -> None:
    client = Client()
    client.force_login(personas.data_lead)
    url = reverse("api_imports", kwargs={"pk": personas.project.pk})
    upload = io.BytesIO(_ls_file())
    upload.name = "export.json"
    response = client.post(url, {"file": upload, "fmt": "label_studio_json"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "mapping"
    assert body["mapping_url"].endswith(f"/imports/{body['id']}/mapping/")
    page = client.get(reverse("import_detail", kwargs={"pk": personas.project.pk, "batch_pk": body["id"]}))
    assert b"Import with this mapping" in page.content
    assert b"anna@bank.example" in page.content

    answer = client.post(
        body["mapping_url"],
        {"field_map": LS_FIELDS, "annotators": {"3": "new", "4": personas.annotator.pk}},
        content_type="application/json",
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["judgement_count"] == 3

    upload = io.BytesIO(_ls_file().replace(b"freeze", b"block"))
    upload.name = "again.json"
    at_once = client.post(
        url,
        {
            "file": upload,
            "fmt": "label_studio_json",
            "annotators": json.dumps({"3": "new", "4": "skip"}),
            "field_map": json.dumps(LS_FIELDS),
        },
    )
    assert at_once.status_code == 201, at_once.content  # mapped with the upload: imported in one call
    assert at_once.json()["judgement_count"] == 1  # the first task is a duplicate now; Boris left out

    outsider = Client()
    outsider.force_login(personas.outsider)
    assert outsider.post(body["mapping_url"], {}, content_type="application/json").status_code == 404


ALICE, BOB = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"


def test_it_imports_an_argilla_dataset_saved_by_argilla_itself(personas: Personas, made: Path) -> None:
    batch = _upload(personas, (made / "argilla_ranking.zip").read_bytes(), "argilla_disk", "argilla_ranking.zip")
    assert batch.status == "mapping"
    assert sorted(a["key"] for a in _scan(batch)["annotators"]) == [ALICE, BOB]
    batch = services.import_mapping_confirm(
        actor=personas.data_lead, batch=batch, fields=None, annotators={ALICE: "new", BOB: personas.annotator.pk}
    )
    assert batch.status == "done", (batch.errors, batch.failure_reason)
    prime = Item.objects.get(batch=batch, external_id="prime-1")
    assert [c["content"] for c in prime.candidates] == ["4", "7", "9"]
    by_annotator = Judgement.objects.get(item=prime, annotator=personas.annotator)
    assert by_annotator.result == {"ranking": [[1], [0], [2]]}
    by_alice = Judgement.objects.exclude(annotator=personas.annotator).get(item=prime)
    assert by_alice.result == {"ranking": [[1], [2], [0]]}
    assert by_alice.rationale == "7 is prime."
    assert (by_alice.origin or {})["project"] == "argilla_ranking"
    unanswered = Item.objects.get(batch=batch, external_id="prime-2")
    assert not Judgement.objects.filter(item=unanswered).exists()
    assert Slot.objects.filter(item=unanswered, state="free").exists()  # to be judged here


def test_it_imports_what_the_label_studio_sdk_wrote_and_the_real_shaped_files(personas: Personas, made: Path) -> None:
    batch = _upload(personas, (made / "ls_pairwise.json").read_bytes(), "label_studio_json", "ls.json")
    assert _scan(batch)["field_guess"] == {"prompt": "prompt", "candidates": ["answer1", "answer2"], "response": None}
    every = {a["key"]: "new" for a in _scan(batch)["annotators"]}
    batch = services.import_mapping_confirm(actor=personas.data_lead, batch=batch, fields=None, annotators=every)
    assert batch.status == "done", (batch.errors, batch.failure_reason)
    assert batch.judgement_count >= 2
    first = Item.objects.get(batch=batch, external_id="1")
    assert sorted(j.result["winner"] for j in Judgement.objects.filter(item=first)) == [0, 1]

    fixtures = Path(__file__).parent / "peers"
    trees = _upload(personas, (fixtures / "oasst_trees.jsonl").read_bytes(), "openassistant_trees", "trees.jsonl")
    trees = services.import_mapping_confirm(
        actor=personas.data_lead, batch=trees, fields=None, annotators={"consensus": "new"}
    )
    assert trees.status == "done", (trees.errors, trees.failure_reason)
    assert trees.imported_count == trees.judgement_count == 4
    assert trees.dropped_count >= 2  # the ranking of prompter replies, the deleted reply


def test_it_names_imported_judgements_in_the_release_datasheet(personas: Personas) -> None:
    batch = _upload(
        personas, _ls_file(), "label_studio_json", "e.json", fields=LS_FIELDS, annotators={"3": "new", "4": "new"}
    )
    assert batch.status == "done"
    release = build(personas.project, personas.data_lead, eval_fraction=0.0)
    assert release.manifest is not None
    assert release.datasheet is not None
    (imported,) = release.manifest["imported"]
    assert imported["tool"] == "Label Studio"
    assert imported["project"] == "12"
    assert imported["batch"] == batch.pk
    # Only the released items' judgements: the split first task (1 to 1) passes no preference and is left out.
    assert release.manifest["counts"]["items"] == {"train": 1}
    assert imported["judgements"] == 1
    assert len(imported["annotators"]) == 1
    assert all(name.startswith("annotator-") for name in imported["annotators"])  # pseudonyms
    assert imported["first"].startswith("2025-03-02")
    assert release.datasheet["b_collection_and_origin"]["imported"] == [imported]
    client = Client()
    client.force_login(personas.data_lead)
    answer = client.get(f"/api/v1/projects/{personas.project.pk}/releases/{release.pk}/datasheet/?as=md")
    text = b"".join(answer.streaming_content).decode()  # type: ignore[attr-defined]
    assert "| Label Studio | 12 |" in text

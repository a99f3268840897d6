"""The peer readers (``annotation.peers``) on files the peers' own libraries write (``peers_make/make_inputs.py``,
run in ``.venv-peers``), on the real-shaped fixtures in ``peers/`` and on broken input. No database."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from annotation.parsing import Limits, LineError
from annotation.peers.guessing import guess_fields
from annotation.peers.reading import peer_read, peer_scan
from annotation.peers.records import FieldMap, PeerDropped, PeerFormat, PeerRecord

FIXTURES = Path(__file__).parent / "peers"
ALICE, BOB = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"
LS, ARGILLA, OA = PeerFormat.LABEL_STUDIO, PeerFormat.ARGILLA, PeerFormat.OPENASSISTANT


def entries(path: Path, fmt: PeerFormat, **kwargs: Any) -> list[PeerRecord | PeerDropped | LineError]:
    return list(peer_read(path, fmt, **kwargs))


def records(path: Path, fmt: PeerFormat, **kwargs: Any) -> list[PeerRecord]:
    return [entry for entry in entries(path, fmt, **kwargs) if isinstance(entry, PeerRecord)]


def results(record: PeerRecord) -> dict[str, dict[str, Any]]:
    return {judgement.annotator.key: judgement.result for judgement in record.judgements}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def task(number: int, data: dict[str, Any], annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": number, "data": data, "annotations": annotations or [], "project": 3}


# --- Label Studio -----------------------------------------------------------------------------------------------


def test_it_maps_label_studio_pairwise_and_choices_results_written_with_the_sdk(made: Path) -> None:
    found = entries(made / "ls_pairwise.json", LS)
    first, second, third = found
    assert isinstance(first, PeerRecord)
    assert isinstance(second, PeerRecord)
    assert [c.content for c in first.candidates] == ["4", "5"]
    assert results(first) == {"1": {"winner": 0, "strength": None}, "2": {"winner": 1, "strength": None}}
    alice, bob = first.judgements
    assert (alice.rationale, alice.lead_time_ms, bob.lead_time_ms, alice.external_id) == (
        "4 is right",
        12500,
        3250,
        "11",
    )
    assert alice.created_at is not None
    assert alice.created_at.isoformat() == "2025-03-01T10:00:00+00:00"
    assert results(second) == {"1": {"winner": 1, "strength": None}, "2": {"winner": "tie", "strength": None}}
    assert second.dropped == ("annotation 23 was cancelled (skipped) by its annotator",)
    assert isinstance(third, PeerDropped)
    assert "control “sentiment” (choices) is not a preference or an answer" in third.reason


def test_it_reads_ranker_orders_and_buckets_as_tiers(made: Path) -> None:
    scan = peer_scan(made / "ls_ranker.json", LS)
    assert scan.field_guess == FieldMap(prompt="prompt", candidates=("items",))
    ranked, dropped = entries(made / "ls_ranker.json", LS)
    assert isinstance(ranked, PeerRecord)
    assert [c.content for c in ranked.candidates] == ["Paris", "Lyon", "Nice"]
    assert ranked.candidates[0].extra == {"id": "a", "title": "A"}
    assert results(ranked) == {"1": {"ranking": [[0], [2], [1]]}, "2": {"ranking": [[0], [1, 2]]}}
    assert isinstance(dropped, PeerDropped)
    assert "leaves out b, c" in dropped.reason


def test_it_reads_an_sft_export_of_json_lines_as_answers(made: Path) -> None:
    greet, thank = records(made / "ls_sft.jsonl", LS)
    assert greet.response == "Hi"
    assert greet.messages[-1].content == "Greet me."
    assert [(a.annotator.key, a.response, a.lead_time_ms) for a in greet.answers] == [("3", "Hello!", 12500)]
    assert thank.answers == ()
    assert thank.external_id == "2"


def test_it_scans_the_pairwise_fixture_for_annotators_with_their_emails() -> None:
    scan = peer_scan(FIXTURES / "label_studio_pairwise.json", LS)
    assert (scan.tool, scan.project, scan.records, scan.errors) == ("Label Studio", "12", 4, [])
    assert scan.fields == ["prompt", "answer1", "answer2"]
    seen = {(s.annotator.key, s.annotator.label): s.judgements for s in scan.annotators}
    assert seen == {("1", "alice@example.org"): 3, ("2", "bob@example.org"): 2}


def test_it_gives_the_fixture_tasks_their_lines_timestamps_and_reasons() -> None:
    found = entries(FIXTURES / "label_studio_pairwise.json", LS)
    assert [type(entry).__name__ for entry in found] == ["PeerRecord", "PeerRecord", "PeerDropped", "PeerRecord"]
    text = (FIXTURES / "label_studio_pairwise.json").read_text().splitlines()
    assert all(text[entry.line - 1].strip() == "{" for entry in found)
    first = found[0]
    assert isinstance(first, PeerRecord)
    assert first.judgements[0].lead_time_ms == 41832
    assert first.judgements[0].rationale == "Answer 1 explains the mechanism."
    last = found[3]
    assert isinstance(last, PeerRecord)
    assert last.dropped == ("annotation 506: control “sentiment” (choices) is not a preference or an answer",)


def test_it_takes_a_field_map_over_the_guess(tmp_path: Path) -> None:
    data = {"question": "Which is larger?", "first_try": "2", "second_try": "3"}
    result = [{"type": "pairwise", "value": {"selected": "right"}, "from_name": "pw", "to_name": "pw"}]
    path = write(tmp_path / "tasks.json", json.dumps([task(9, data, [{"id": 1, "completed_by": 5, "result": result}])]))
    assert peer_scan(path, LS).field_guess == FieldMap(prompt="question")
    (record,) = records(path, LS, fields=FieldMap(prompt="question", candidates=("first_try", "second_try")))
    assert [c.content for c in record.candidates] == ["2", "3"]
    assert results(record) == {"5": {"winner": 1, "strength": None}}


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["prompt", "answer1", "answer2"], FieldMap("prompt", ("answer1", "answer2"))),
        (["Instruction", "response_a", "response_b"], FieldMap("Instruction", ("response_a", "response_b"))),
        (["text", "text1", "text2"], FieldMap("text", ("text1", "text2"))),
        (["question", "chosen", "rejected"], FieldMap("question", ("chosen", "rejected"))),
        (["instruction", "context", "response"], FieldMap("instruction", (), "response")),
        (["id", "image"], None),
    ],
)
def test_it_guesses_fields_by_their_usual_names(names: list[str], expected: FieldMap | None) -> None:
    assert guess_fields(dict.fromkeys(names, "x")) == expected


def test_it_guesses_a_chat_prompt_and_a_list_of_candidates(tmp_path: Path) -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    path = write(tmp_path / "t.json", json.dumps([task(1, {"messages": chat, "options": ["Hello", "Hey"]})]))
    (record,) = records(path, LS)
    assert [m.role for m in record.messages] == ["system", "user"]
    assert len(record.candidates) == 2


def test_it_reports_a_broken_json_array_at_its_line(tmp_path: Path) -> None:
    good = json.dumps(task(1, {"prompt": "p", "answer1": "a", "answer2": "b"}), indent=1)
    path = write(tmp_path / "t.json", f'[\n{good},\n{{"id": 2,\n "data": {{"prompt": }}}}\n]')
    found = entries(path, LS)
    assert isinstance(found[0], PeerRecord)
    assert found[0].line == 2
    assert isinstance(found[1], LineError)
    assert found[1].line == good.count("\n") + 4
    assert found[1].reason.startswith("invalid JSON")
    assert peer_scan(path, LS).errors == [found[1]]


def test_it_reports_a_broken_json_line_and_reads_on(tmp_path: Path) -> None:
    line = json.dumps(task(1, {"prompt": "p", "answer1": "a", "answer2": "b"}))
    found = entries(write(tmp_path / "t.jsonl", f"{line}\n{{not json\n\n{line}\n"), LS)
    assert [(type(e).__name__, e.line) for e in found] == [("PeerRecord", 1), ("LineError", 2), ("PeerRecord", 4)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"prompt": "p", "answer1": "a", "answer2": "b"}, "task 12: the prompt field “question” is missing"),
        ({"question": "p", "answer1": "a"}, "task 12 (missing: “answer2”): 1 candidate found; a comparison needs"),
        ({"question": "p\x00", "answer1": "a", "answer2": "b"}, "task 12: the prompt “question” contains a NUL"),
        ({"question": "p", "answer1": "a\ud800", "answer2": "b"}, "task 12: “answer1” contains an unpaired surrogate"),
        ({"question": "p" * 11, "answer1": "a", "answer2": "b"}, "task 12: the prompt “question” is too long (11 char"),
    ],
)
def test_it_turns_a_malformed_task_into_a_line_error(tmp_path: Path, data: dict[str, Any], reason: str) -> None:
    path = write(tmp_path / "t.json", "[\n" + json.dumps(task(12, data)) + "\n]")
    fields = FieldMap("question", ("answer1", "answer2"))
    (error,) = entries(path, LS, fields=fields, limits=Limits(max_chars_per_message=10))
    assert isinstance(error, LineError)
    assert error.line == 2
    assert error.reason.startswith(reason)


def test_it_says_when_no_field_looks_like_a_prompt(tmp_path: Path) -> None:
    path = write(tmp_path / "t.json", json.dumps([task(1, {"image": "/data/1.png"})]))
    (error,) = entries(path, LS)
    assert isinstance(error, LineError)
    assert "name the prompt field" in error.reason
    assert peer_scan(path, LS).field_guess is None


def test_it_finds_nothing_to_scan_in_a_file_that_is_not_an_export(tmp_path: Path) -> None:
    assert peer_scan(write(tmp_path / "a.json", "hello"), LS).errors[0].reason.startswith("invalid JSON")
    assert peer_scan(write(tmp_path / "b.json", "[]"), LS).errors[0].reason == "the file holds no Label Studio task"


# --- Argilla ----------------------------------------------------------------------------------------------------


def test_it_reads_a_ranking_question_saved_by_to_disk(made: Path) -> None:
    scan = peer_scan(made / "argilla_ranking.zip", ARGILLA)
    assert (scan.tool, scan.project, scan.records, scan.errors) == ("Argilla", "argilla_ranking", 2, [])
    assert scan.field_guess == FieldMap("prompt", ("response-1", "response-2", "response-3"))
    assert {(s.annotator.key, s.annotator.label, s.judgements) for s in scan.annotators} == {
        (ALICE, ALICE, 1),
        (BOB, BOB, 1),
    }
    ranked, unanswered = records(made / "argilla_ranking.zip", ARGILLA)
    assert results(ranked) == {ALICE: {"ranking": [[1], [2], [0]]}, BOB: {"ranking": [[1], [0], [2]]}}
    assert ranked.judgements[0].rationale == "7 is prime."
    assert ranked.external_id == "prime-1"
    assert ranked.metadata == {"source": "demo"}
    assert unanswered.judgements == ()


def test_it_reads_a_label_question_naming_the_two_responses(made: Path) -> None:
    first, second = records(made / "argilla_label.zip", ARGILLA)
    assert results(first) == {ALICE: {"winner": 0, "strength": None}, BOB: {"winner": "tie", "strength": None}}
    assert results(second) == {BOB: {"winner": 1, "strength": None}}


def test_it_reads_a_text_question_as_the_corrected_answer(made: Path) -> None:
    corrected, rated = entries(made / "argilla_sft.zip", ARGILLA)
    assert isinstance(corrected, PeerRecord)
    assert corrected.response == "Lyon"
    assert [(a.annotator.key, a.response) for a in corrected.answers] == [(ALICE, "Paris")]
    assert corrected.dropped == ("question “quality” (rating) is not a preference or an answer",)
    assert isinstance(rated, PeerDropped)
    assert rated.line == 2


def rezip(source: Path, target: Path, change: Any = None, top: str = "") -> Path:
    """Copy a saved dataset's zip, with records.json changed and under another top folder (or none)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            body = old.read(name)
            inner = name.split("/", 1)[1]
            if inner == "records.json" and change is not None:
                body = json.dumps(change(json.loads(body))).encode()
            new.writestr(top + inner, body)
    return target


def test_it_makes_tiers_of_equal_ranks_and_counts_only_submitted_responses(made: Path, tmp_path: Path) -> None:
    def change(saved: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ranks = [
            {"value": "response-1", "rank": 2},
            {"value": "response-2", "rank": 1},
            {"value": "response-3", "rank": 2},
        ]
        saved[0]["responses"]["preference"][0]["value"] = ranks
        saved[0]["responses"]["preference"][1]["status"] = "draft"
        return saved

    (record, _) = records(rezip(made / "argilla_ranking.zip", tmp_path / "r.zip", change), ARGILLA)
    assert results(record) == {ALICE: {"ranking": [[1], [0, 2]]}}
    assert record.dropped == (f"the draft response of user {BOB} to “preference” (only submitted ones count)",)


def test_it_reads_a_zip_without_a_top_folder(made: Path, tmp_path: Path) -> None:
    flat = rezip(made / "argilla_label.zip", tmp_path / "flat.zip")
    assert [results(r) for r in records(flat, ARGILLA)] == [
        results(r) for r in records(made / "argilla_label.zip", ARGILLA)
    ]


def test_it_explains_a_file_that_is_not_a_saved_dataset(made: Path, tmp_path: Path) -> None:
    not_zip = write(tmp_path / "a.zip", "{}")
    assert peer_scan(not_zip, ARGILLA).errors[0].reason.startswith("not a zip file")
    (error,) = entries(not_zip, ARGILLA)
    assert isinstance(error, LineError)
    assert error.line == 1
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as archive:
        archive.writestr("data/records.json", "[]")
    assert "holds no .argilla/settings.json" in peer_scan(tmp_path / "b.zip", ARGILLA).errors[0].reason


# --- OpenAssistant ----------------------------------------------------------------------------------------------


def test_it_makes_a_comparison_of_each_set_of_ranked_siblings() -> None:
    found = entries(FIXTURES / "oasst_trees.jsonl", OA)
    kinds = [(type(e).__name__, e.line) for e in found]
    assert kinds == [("PeerRecord", 1), ("PeerDropped", 1), ("PeerRecord", 1), ("PeerRecord", 2), ("PeerRecord", 2)]
    root, prompter_ranking, deeper, spanish, with_deleted = found
    assert isinstance(root, PeerRecord)
    assert results(root) == {"consensus": {"ranking": [[0], [2], [1]]}}
    assert root.judgements[0].annotator.label == "OpenAssistant ranking (consensus of its rankers)"
    assert root.candidates[0].extra["message_id"] == "a1"
    assert root.candidates[0].extra["user_id"] == "u-a1"
    assert isinstance(prompter_ranking, PeerDropped)
    assert "prompter's replies" in prompter_ranking.reason
    assert isinstance(deeper, PeerRecord)
    assert [m.role for m in deeper.messages] == ["user", "assistant", "user"]
    assert results(deeper) == {"consensus": {"winner": 1, "strength": None}}
    assert deeper.metadata == {
        "message_tree_id": "6ab2c5e8-0001",
        "parent_message_id": "p1",
        "lang": "en",
        "tree_state": "ready_for_export",
        "review_counts": {"a4": 3, "a5": 3},
    }
    assert isinstance(spanish, PeerRecord)
    assert len(spanish.candidates) == 2
    assert spanish.metadata["lang"] == "es"
    assert isinstance(with_deleted, PeerRecord)
    assert with_deleted.dropped == ("reply b5 was deleted",)
    assert results(with_deleted) == {"consensus": {"winner": 0, "strength": None}}


def test_it_scans_trees_for_the_consensus_and_reads_them_gzipped(tmp_path: Path) -> None:
    scan = peer_scan(FIXTURES / "oasst_trees.jsonl", OA)
    assert (scan.tool, scan.records, scan.errors) == ("OpenAssistant", 4, [])
    assert [(s.annotator.key, s.judgements) for s in scan.annotators] == [("consensus", 4)]
    packed = tmp_path / "trees.jsonl.gz"
    with (FIXTURES / "oasst_trees.jsonl").open("rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)
    assert entries(packed, OA) == entries(FIXTURES / "oasst_trees.jsonl", OA)


def test_it_reports_a_damaged_gzip_file(tmp_path: Path) -> None:
    packed = tmp_path / "trees.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"message_tree_id": "t"}\n')[:-6])
    (error,) = entries(packed, OA)
    assert isinstance(error, LineError)
    assert error.reason.startswith("the gzip file is damaged")


def test_it_reads_trees_of_the_published_schema(made: Path) -> None:
    (record,) = records(made / "oasst_trees.jsonl", OA)
    assert results(record) == {"consensus": {"ranking": [[1], [0], [2]]}}


def test_it_makes_a_tier_of_equal_ranks_and_errors_of_broken_trees(tmp_path: Path) -> None:
    def node(
        mid: str, role: str, text: str, rank: int | None = None, replies: list[Any] | None = None
    ) -> dict[str, Any]:
        return {"message_id": mid, "role": role, "text": text, "rank": rank, "replies": replies or []}

    tied = {
        "message_tree_id": "t",
        "prompt": node(
            "m",
            "prompter",
            "Hi",
            replies=[
                node("a", "assistant", "Hello", 0),
                node("b", "assistant", "Hey", 0),
                node("c", "assistant", "Yo", 1),
            ],
        ),
    }
    nul = {
        "message_tree_id": "n",
        "prompt": node(
            "m", "prompter", "Hi\x00", replies=[node("a", "assistant", "Hello", 0), node("b", "assistant", "Hey", 1)]
        ),
    }
    text = "\n".join([json.dumps(tied), "{broken", json.dumps({"message_tree_id": "x"}), json.dumps(nul)])
    tier, broken, no_prompt, bad_text = entries(write(tmp_path / "t.jsonl", text), OA)
    assert isinstance(tier, PeerRecord)
    assert results(tier) == {"consensus": {"ranking": [[0, 1], [2]]}}
    assert isinstance(broken, LineError)
    assert broken.line == 2
    assert broken.reason.startswith("invalid JSON")
    assert no_prompt == LineError(3, "tree x has no prompt message")
    assert bad_text == LineError(4, "tree n, message m contains a NUL character")


def test_it_refuses_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="doccano"):
        peer_read(tmp_path / "x", "doccano")

"""Write the peer readers' test inputs with the peers' own libraries, into the folder given as the argument.

Run with ``.venv-peers/bin/python`` (``make .venv-peers``), never imported by the suite:

- Argilla: ``rg.Dataset(...).to_disk(folder)`` itself, zipped. ``to_disk`` reads the records back from a server;
  here an in-process stand-in answers the three calls it makes (who am I, the workspace, the dataset and its
  records) with the records the SDK's own ``api_model`` serialises, as a server would return them.
- Label Studio: the labeling interface of ``label_studio_sdk`` writes each result (``control.label(...)``) and
  its ``Annotation`` and ``LseTask`` types each annotation and task, dumped as the JSON export writes them.
- OpenAssistant: trees of the published ``ExportMessageTree`` schema (oasst_data/schemas.py), dumped as its
  ``write_tree`` does.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import argilla as rg  # type: ignore[import-not-found]
import httpx  # type: ignore[import-not-found]
from label_studio_sdk.label_interface import LabelInterface  # type: ignore[import-not-found]
from label_studio_sdk.types import Annotation, LseTask  # type: ignore[import-not-found]
from pydantic import BaseModel

NOW = "2025-03-01T10:00:00Z"
SUBMITTED = "submitted"
ALICE, BOB = uuid.UUID(int=1), uuid.UUID(int=2)


# --- Argilla ---------------------------------------------------------------------------------------------------


class _StandIn:
    """Answers the Argilla API calls that ``Dataset.to_disk`` makes, as a server holding ``records`` would."""

    def __init__(self) -> None:
        self.dataset: dict[str, Any] = {}
        self.records: list[dict[str, Any]] = []
        self.workspace = {"id": str(uuid.UUID(int=9)), "name": "annotation", "inserted_at": NOW, "updated_at": NOW}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/me":
            user = {"id": str(uuid.UUID(int=8)), "username": "owner", "role": "owner", "first_name": "Owner"}
            return httpx.Response(200, json={**user, "inserted_at": NOW, "updated_at": NOW})
        if path == "/api/v1/me/workspaces":
            return httpx.Response(200, json={"items": [self.workspace]})
        if path.endswith("/records"):
            offset, limit = int(request.url.params.get("offset", 0)), int(request.url.params.get("limit", 100))
            return httpx.Response(
                200, json={"items": self.records[offset : offset + limit], "total": len(self.records)}
            )
        if path.startswith("/api/v1/datasets/"):
            return httpx.Response(200, json=self.dataset)
        return httpx.Response(404, json={"detail": f"not served: {path}"})


def _argilla_zip(
    out: Path, server: _StandIn, name: str, settings_args: dict[str, Any], records: list[dict[str, Any]]
) -> None:
    server.records = []
    dataset = rg.Dataset(name=name, settings=rg.Settings(**settings_args))
    dataset._model.id = uuid.uuid5(uuid.NAMESPACE_URL, name)
    for number, record in enumerate(records, start=1):
        item = rg.Record(_dataset=dataset, **record)
        served = item.api_model().model_dump(mode="json")
        served.update(id=str(uuid.uuid5(dataset._model.id, str(number))), inserted_at=NOW, updated_at=NOW)
        for response in served["responses"]:
            response.update(inserted_at=NOW, updated_at=NOW)
        server.records.append(served)
    server.dataset = {**dataset.api_model().model_dump(mode="json"), "status": "ready"}
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    dataset.to_disk(str(folder))
    with zipfile.ZipFile(out / f"{name}.zip", "w") as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, Path(name) / file.relative_to(folder))


def write_argilla(out: Path) -> None:
    server = _StandIn()
    # The SDK's default client, which every settings object and dataset below uses, talks to the stand-in.
    rg.Argilla(api_url="http://argilla.invalid", api_key="offline", mounts={"all://": httpx.MockTransport(server)})
    three = ["response-1", "response-2", "response-3"]
    ranking = {
        "fields": [rg.TextField(name="prompt"), *(rg.TextField(name=name) for name in three)],
        "questions": [rg.RankingQuestion(name="preference", values=three), rg.TextQuestion(name="why", required=False)],
    }
    answers = {"prompt": "Name a prime number.", "response-1": "4", "response-2": "7", "response-3": "9"}
    _argilla_zip(
        out,
        server,
        "argilla_ranking",
        ranking,
        [
            {
                "id": "prime-1",
                "fields": answers,
                "metadata": {"source": "demo"},
                "responses": [
                    rg.Response(
                        "preference",
                        [
                            {"value": "response-2", "rank": 1},
                            {"value": "response-3", "rank": 2},
                            {"value": "response-1", "rank": 3},
                        ],
                        user_id=ALICE,
                        status="submitted",
                    ),
                    rg.Response("why", "7 is prime.", user_id=ALICE, status="submitted"),
                    rg.Response(
                        "preference", ["response-2", "response-1", "response-3"], user_id=BOB, status="submitted"
                    ),
                ],
            },
            {"id": "prime-2", "fields": {**answers, "prompt": "Name an even prime."}},
        ],
    )
    label = {
        "fields": [rg.TextField(name="prompt"), rg.TextField(name="response-1"), rg.TextField(name="response-2")],
        "questions": [rg.LabelQuestion(name="better", labels=["response-1", "response-2", "tie"])],
    }
    pair = {"prompt": "Say hello in French.", "response-1": "Bonjour", "response-2": "Hola"}
    _argilla_zip(
        out,
        server,
        "argilla_label",
        label,
        [
            {
                "id": "hello-1",
                "fields": pair,
                "responses": [
                    rg.Response("better", "response-1", user_id=ALICE, status="submitted"),
                    rg.Response("better", "tie", user_id=BOB, status="submitted"),
                ],
            },
            {
                "id": "hello-2",
                "fields": {**pair, "prompt": "Say hello."},
                "responses": [rg.Response("better", "response-2", user_id=BOB, status="submitted")],
            },
        ],
    )
    sft = {
        "fields": [rg.TextField(name="instruction"), rg.TextField(name="response")],
        "questions": [rg.TextQuestion(name="corrected"), rg.RatingQuestion(name="quality", values=[1, 2, 3])],
    }
    _argilla_zip(
        out,
        server,
        "argilla_sft",
        sft,
        [
            {
                "id": "sft-1",
                "fields": {"instruction": "Capital of France?", "response": "Lyon"},
                "responses": [
                    rg.Response("corrected", "Paris", user_id=ALICE, status="submitted"),
                    rg.Response("quality", 1, user_id=ALICE, status="submitted"),
                ],
            },
            {
                "id": "sft-2",
                "fields": {"instruction": "2 + 2?", "response": "4"},
                "responses": [rg.Response("quality", 3, user_id=BOB, status="submitted")],
            },
        ],
    )


# --- Label Studio ----------------------------------------------------------------------------------------------

PAIRWISE_CONFIG = """<View>
  <Text name="prompt" value="$prompt"/>
  <Text name="answer1" value="$answer1"/>
  <Text name="answer2" value="$answer2"/>
  <Pairwise name="comparison" toName="answer1,answer2"/>
  <Choices name="verdict" toName="prompt">
    <Choice value="Answer 1"/><Choice value="Answer 2"/><Choice value="Tie"/>
  </Choices>
  <Choices name="sentiment" toName="prompt"><Choice value="positive"/><Choice value="negative"/></Choices>
  <TextArea name="reason" toName="prompt"/>
</View>"""
RANKER_CONFIG = """<View>
  <Text name="prompt" value="$prompt"/>
  <List name="answers" value="$items" title="Answers"/>
  <Ranker name="rank" toName="answers"/>
  <Ranker name="buckets" toName="answers"><Bucket name="good" title="Good"/><Bucket name="bad" title="Bad"/></Ranker>
</View>"""
SFT_CONFIG = """<View>
  <Text name="instruction" value="$instruction"/>
  <TextArea name="answer" toName="instruction" editable="true"/>
</View>"""


def _annotation(number: int, user: int, regions: list[Any], **extra: Any) -> dict[str, Any]:
    fields = {
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": NOW,
        "updated_at": NOW,
        "lead_time": 12.5,
        "project": 7,
        "task": number // 10,
        **extra,
    }
    annotation = Annotation(
        id=number, completed_by=user, result=[json.loads(region.to_json()) for region in regions], **fields
    )
    return annotation.model_dump(mode="json", exclude_none=True)


def _task(number: int, data: dict[str, Any], annotations: list[dict[str, Any]]) -> dict[str, Any]:
    task = LseTask(id=number, data=data, annotations=annotations, predictions=[], project=7, created_at=NOW)
    return task.model_dump(mode="json", exclude_none=True)


def write_label_studio(out: Path) -> None:
    pairwise = LabelInterface(PAIRWISE_CONFIG)
    ranker = LabelInterface(RANKER_CONFIG)
    sft = LabelInterface(SFT_CONFIG)
    pw, verdict, sentiment, reason = (
        pairwise.get_control(name) for name in ("comparison", "verdict", "sentiment", "reason")
    )
    pair = {"prompt": "What is 2 + 2?", "answer1": "4", "answer2": "5"}
    items = [
        {"id": "a", "title": "A", "body": "Paris"},
        {"id": "b", "title": "B", "body": "Lyon"},
        {"id": "c", "title": "C", "body": "Nice"},
    ]
    tasks = [
        _task(
            1,
            pair,
            [
                _annotation(11, 1, [pw.label("left"), reason.label(text=["4 is right"])]),
                _annotation(12, 2, [pw.label("right")], lead_time=3.25),
            ],
        ),
        _task(
            2,
            pair,
            [
                _annotation(21, 1, [verdict.label("Answer 2")]),
                _annotation(22, 2, [verdict.label("Tie")]),
                _annotation(23, 2, [], was_cancelled=True),
            ],
        ),
        _task(3, pair, [_annotation(31, 1, [sentiment.label("positive")])]),
    ]
    (out / "ls_pairwise.json").write_text(json.dumps(tasks, indent=2, ensure_ascii=False))
    ranked = [
        _task(
            4,
            {"prompt": "Capital of France?", "items": items},
            [
                _annotation(41, 1, [ranker.get_control("rank").label(ranker={"rank": ["a", "c", "b"]})]),
                _annotation(42, 2, [ranker.get_control("buckets").label(ranker={"good": ["a"], "bad": ["b", "c"]})]),
            ],
        ),
        _task(
            5,
            {"prompt": "Capital of Italy?", "items": items},
            [_annotation(51, 1, [ranker.get_control("buckets").label(ranker={"good": ["a"], "_": ["b", "c"]})])],
        ),
    ]
    (out / "ls_ranker.json").write_text(json.dumps(ranked, ensure_ascii=False))
    edit = sft.get_control("answer")
    sft_tasks = [
        _task(1, {"instruction": "Greet me.", "response": "Hi"}, [_annotation(11, 3, [edit.label(text=["Hello!"])])]),
        _task(2, {"instruction": "Thank me.", "response": "ok"}, []),
    ]
    (out / "ls_sft.jsonl").write_text("".join(json.dumps(task) + "\n" for task in sft_tasks))


# --- OpenAssistant ---------------------------------------------------------------------------------------------


class ExportMessageNode(BaseModel):  # the published schema's fields (oasst_data/schemas.py)
    message_id: str
    parent_id: str | None = None
    user_id: str | None = None
    created_date: str | None = None
    text: str
    role: str
    lang: str | None = None
    review_count: int | None = None
    review_result: bool | None = None
    deleted: bool | None = None
    rank: int | None = None
    synthetic: bool | None = None
    model_name: str | None = None
    emojis: dict[str, int] | None = None
    replies: list[ExportMessageNode] | None = None
    labels: dict[str, dict[str, Any]] | None = None
    events: dict[str, list[dict[str, Any]]] | None = None


class ExportMessageTree(BaseModel):
    message_tree_id: str
    tree_state: str | None = None
    prompt: ExportMessageNode | None = None
    origin: str | None = None


def _node(message_id: str, role: str, text: str, rank: int | None = None, **extra: Any) -> ExportMessageNode:
    return ExportMessageNode(
        message_id=message_id,
        user_id=f"user-{message_id}",
        created_date=NOW,
        text=text,
        role=role,
        lang="en",
        review_count=3,
        review_result=True,
        deleted=False,
        rank=rank,
        synthetic=False,
        **extra,
    )


def write_openassistant(out: Path) -> None:
    replies = [
        _node("m2", "assistant", "Paris.", 1),
        _node("m3", "assistant", "It is Paris, on the Seine.", 0),
        _node("m4", "assistant", "Lyon.", 2, replies=[_node("m5", "prompter", "Are you sure?")]),
    ]
    tree = ExportMessageTree(
        message_tree_id="t1",
        tree_state="ready_for_export",
        prompt=_node("m1", "prompter", "What is the capital of France?", replies=replies),
    )
    (out / "oasst_trees.jsonl").write_text(json.dumps(tree.model_dump()) + "\n")


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write_openassistant(out)
    write_label_studio(out)
    write_argilla(out)


if __name__ == "__main__":
    main()

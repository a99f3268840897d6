"""Write the peer readers' test inputs with the peers' own libraries, into the folder given as the argument; with
``--demo FOLDER``, the demo's three files instead (``enclave/demo/peers/``).

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


def _argilla_stand_in() -> _StandIn:
    server = _StandIn()
    # The SDK's default client, which every settings object and dataset made after this uses, talks to the stand-in.
    rg.Argilla(api_url="http://argilla.invalid", api_key="offline", mounts={"all://": httpx.MockTransport(server)})
    return server


def write_argilla(out: Path) -> None:
    server = _argilla_stand_in()
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


# --- The demo's files (enclave/demo/peers/) ------------------------------------------------------------------
#
# One file of each tool for a data lead trying the demo's comparison project: the bank's support assistant judged
# in Label Studio, in Argilla and in OpenAssistant's trees. Questions the demo's own imports do not ask, so none
# is skipped as a duplicate.

# Label Studio's JSON export names each annotator with an object; the SDK's Annotation type holds only the id.
DEMO_LS_USERS = {
    11: {"id": 11, "first_name": "Ana", "last_name": "Okafor", "email": "ana.okafor@bank.example"},
    12: {"id": 12, "first_name": "Rui", "last_name": "Santos", "email": "rui.santos@bank.example"},
    17: {"id": 17, "first_name": "Mei", "last_name": "Chen", "email": "mei.chen@contractors.bank.example"},
}
ANA, RUI, MEI = 11, 12, 17
DEMO_LS_PROJECT = 4
# (prompt, answer1, answer2, annotations: (annotator, control, value, lead time in seconds, reason))
DemoAnnotation = tuple[int, str, str, float, str]
DEMO_LS_TASKS: list[tuple[str, str, str, list[DemoAnnotation]]] = [
    (
        "I'm off to Japan for three weeks in May. Do I need to tell you before I use my card out there?",
        "No need to let us know any more: your card works abroad as it is, and we'll text you if a payment looks "
        "unusual. Two tips for Japan: the cash machines in convenience stores (7-Eleven, Lawson) take foreign "
        "cards, and if a shop offers to charge you in pounds, choose **yen** instead; the shop's rate is usually "
        "worse than ours.",
        "Yes. You must register your travel plans at least 14 days before you leave, otherwise your card will be "
        "blocked in Japan.",
        [
            (ANA, "comparison", "left", 38.2, "We stopped travel notices years ago; 2 would worry them for nothing."),
            (RUI, "verdict", "Answer 1", 21.7, ""),
        ],
    ),
    (
        "I ordered a sofa online in February, paid £640 on my debit card, and it never came. The shop has stopped "
        "answering my emails. Can you get my money back?",
        "I'm sorry, once a debit card payment has gone through we can't reverse it. You'd need to take the shop to "
        "the small claims court.",
        "I'm sorry you're out of pocket. As you paid by debit card, we can raise a **chargeback** for goods that "
        "never arrived:\n\n1. In the app, open the payment and tap *Report a problem → I didn't receive it*.\n"
        "2. Add the order confirmation and your emails to the shop.\n3. We usually have an answer within 30 days; "
        "the shop can contest it.\n\nThere are time limits (normally 120 days from the delivery date you were "
        "promised), so it's best to do it soon.",
        [
            (ANA, "comparison", "right", 64.0, ""),
            (MEI, "comparison", "right", 47.5, "1 is wrong: debit cards have chargeback for non-delivery."),
        ],
    ),
    (
        "My dad died last week and he banked with you. I'm his executor. What do I have to do about his accounts? "
        "I honestly don't know where to start.",
        "I'm very sorry about your dad. You don't have to sort everything out at once.\n\n1. Let us know through "
        "the bereavement form on our website or by phone; we'll need a copy of the death certificate and your ID.\n"
        "2. We'll stop payments from his own accounts, but we can pay the funeral bill straight from them if you "
        "send us the invoice.\n3. Once you have probate (for a small balance we may not need it), we release the "
        "money to you as executor.\n\nJoint accounts pass to the other holder without any of this.",
        "Please bring the death certificate, the will, the grant of probate and your ID to a branch. The accounts "
        "will be closed once the documents have been checked.",
        [
            (RUI, "comparison", "left", 52.3, "Kind, in order, and says the funeral can be paid from his account."),
            (ANA, "verdict", "Answer 1", 30.1, ""),
            (MEI, "", "", 4.2, ""),  # skipped in Label Studio: a cancelled annotation
        ],
    ),
    (
        "Paid a cheque in through the app on Monday evening, £350 from my gran. When can I actually spend it?",
        "If you paid it in before 10pm on Monday, the money is yours to spend by 11:59pm on Tuesday. After 10pm it "
        "counts as paid in on Tuesday, so it will be there by the end of Wednesday.",
        "Cheques take six working days to clear, so you should be able to use the money early next week.",
        [
            (ANA, "comparison", "left", 25.9, ""),
            (RUI, "comparison", "left", 18.6, "2 gives the old clearing rule; app cheques clear the next day."),
        ],
    ),
    (
        "Got a new phone. Can you send my security codes to my new number, 07700 900481, from now on? The old one's "
        "gone.",
        "Done! I've changed your number to 07700 900481, so your codes will go there from now on.",
        "I can't change where your codes go over chat, because that's exactly what a fraudster would ask for. You "
        "can update it in the app under *Profile → Phone number* (you'll confirm with your card reader), or in any "
        "branch with photo ID. If you can't log in meanwhile, call the number on the back of your card.",
        [
            (ANA, "comparison", "right", 41.4, "Never change security details on chat."),
            (RUI, "verdict", "Answer 2", 15.0, ""),
        ],
    ),
    (
        "Can I cancel the direct debit for my gym myself, or do I have to go through them?",
        "You can cancel it yourself in the app: *Payments → Direct Debits*, choose the gym and tap *Cancel*. It "
        "stops straight away. Cancelling the payment doesn't end your gym contract though, so tell them as well.",
        "Yes, you can cancel it yourself: in the app go to *Payments → Direct Debits → the gym → Cancel*, or ask us "
        "in a branch or by phone. Do it at least one working day before the next payment is due, or that one may "
        "still be taken. Cancelling the Direct Debit doesn't end your membership, so check your contract and tell "
        "the gym in writing, or they may chase you for the fees.",
        [
            (ANA, "comparison", "left", 33.8, "Says the same in half the words."),
            (MEI, "comparison", "right", 58.1, "The one-working-day cut-off is why people get charged anyway."),
        ],
    ),
    (
        "Why is there a £3.00 'cash fee' on my credit card? All I did was buy euros at the post office.",
        "Buying foreign currency with a credit card counts as a cash transaction, so it has our cash fee (3%, at "
        "least £3) and interest from the day you buy, not from your statement date. Paying for travel money with "
        "your debit card avoids both.",
        "That's the post office's commission for changing the money. You'd need to ask them about it.",
        [
            (RUI, "verdict", "Answer 1", 27.4, ""),
            (MEI, "sentiment", "negative", 6.3, ""),
        ],
    ),
    (
        "Please email my last three months of statements to j.whitfield84@example.co.uk, I need them for a rental "
        "application.",
        "Sure! I've sent the last three months of statements to j.whitfield84@example.co.uk. Anything else I can "
        "help with?",
        "We don't send statements to an email address given in chat, as we can't be sure it's yours. You can "
        "download them as PDFs in the app (*Accounts → Statements → Download*) and forward them yourself; letting "
        "agents accept those. If they want them stamped, any branch can print and stamp them for you.",
        [
            (ANA, "comparison", "right", 29.0, ""),
            (RUI, "verdict", "Answer 2", 19.8, "1 sends statements to an address nobody checked."),
        ],
    ),
]


def _write_demo_label_studio(path: Path) -> None:
    interface = LabelInterface(PAIRWISE_CONFIG)
    reason = interface.get_control("reason")
    tasks = []
    for number, (prompt, first, second, judged) in enumerate(DEMO_LS_TASKS, start=1):
        task_id = 300 + number
        dumped = []
        for place, (user, control, value, lead_time, why) in enumerate(judged, start=1):
            regions: list[Any] = [interface.get_control(control).label(value)] if control else []
            if why:
                regions.append(reason.label(text=[why]))
            made = f"2025-03-{10 + number:02d}T{9 + place}:{(7 * number) % 60:02d}:00Z"
            annotation = Annotation(
                id=task_id * 10 + place,
                completed_by=user,
                result=[json.loads(region.to_json()) for region in regions],
                was_cancelled=not control,
                ground_truth=False,
                created_at=made,
                updated_at=made,
                lead_time=lead_time,
                project=DEMO_LS_PROJECT,
                task=task_id,
            ).model_dump(mode="json", exclude_none=True)
            dumped.append({**annotation, "completed_by": DEMO_LS_USERS[user]})
        data = {"prompt": prompt, "answer1": first, "answer2": second}
        task = LseTask(
            id=task_id, data=data, annotations=dumped, predictions=[], project=DEMO_LS_PROJECT, created_at=NOW
        )
        tasks.append(task.model_dump(mode="json", exclude_none=True))
    path.write_text(json.dumps(tasks, ensure_ascii=False) + "\n")


DEMO_ARGILLA_USERS = (
    uuid.UUID("3f9d2c1e-8a4b-4c7e-9b21-5d6e7f801a2b"),
    uuid.UUID("b7e41a90-2c3d-4f5e-8a6b-9c0d1e2f3a4b"),
)
# (id, prompt, response-1, response-2, each user's (label, why) in DEMO_ARGILLA_USERS order)
DEMO_ARGILLA_RECORDS: list[tuple[str, str, str, str, tuple[tuple[str, str], tuple[str, str]]]] = [
    (
        "isa-transfer",
        "I've got a cash ISA with another bank from a few years back. Can I move it to you without it counting "
        "against this year's allowance?",
        "Yes. If you move it with our ISA transfer form, it keeps its tax-free status and doesn't use any of this "
        "year's £20,000 allowance. Don't take the money out and pay it in yourself: that counts as a new "
        "deposit. Your old bank has up to 15 working days to send it. Check first whether your old ISA charges "
        "for leaving early, for example on a fixed rate.",
        "Yes, just withdraw the money from your old ISA and pay it into a new ISA with us.",
        (("response-1", "2 would cost them the tax-free wrapper."), ("response-1", "")),
    ),
    (
        "self-employed-mortgage",
        "I've been self-employed as an electrician for two years. What will you want from me if I apply for a "
        "mortgage?",
        "We'll usually ask for your SA302 tax calculations and tax year overviews from HMRC for the last two "
        "years, three months of business and personal bank statements, and ID and proof of address. A letter "
        "from your accountant helps if you have one. Two years of trading is normally enough; we look at your "
        "average profit over both.",
        "Self-employed applicants need three years of certified accounts, so you'll have to wait another year "
        "before you apply.",
        (("response-1", ""), ("response-1", "Two years is enough with us; 2 turns away a customer we'd lend to.")),
    ),
    (
        "card-kept-by-atm",
        "A cash machine at the station kept my card tonight. Is my account safe, and how do I get the card back?",
        "Go back to the station in the morning and ask the staff. They can usually open the machine and give you "
        "your card.",
        "Cards kept by a cash machine are destroyed, not handed back, so you'll need a new one. Freeze the card "
        "in the app now (*Cards → Freeze*) and order a replacement there; it arrives in 3–5 working days. Nobody "
        "can use it without your PIN, but if someone offered to 'help' you at the machine, or you see payments "
        "you don't recognise, report it as stolen instead.",
        (("response-2", ""), ("response-2", "Station staff can't open a bank's machine.")),
    ),
    (
        "helping-a-parent",
        "My mum is 84 and finding banking hard now. How can I help with her account properly?",
        "It depends how much help she wants. If she can still make her own decisions, she can add you with a "
        "third-party mandate, so you can pay bills for her. For the longer term, a Lasting Power of Attorney, "
        "registered with the Office of the Public Guardian, lets you act for her if she no longer can. Bring it "
        "with your ID and we'll add you to her account.",
        "Register a Lasting Power of Attorney with the Office of the Public Guardian, then bring it to us with "
        "your ID and we'll add you to her account.",
        (("tie", "Both right; 1 also covers the lighter option."), ("response-1", "")),
    ),
    (
        "payment-from-a-stranger",
        "£480 landed in my account from a name I don't know, and now someone on WhatsApp wants me to send it back "
        "to a different account. What do I do?",
        "Please don't send it anywhere, and don't reply to the messages. This is a common scam: the money is often "
        "stolen, and passing it on can make you part of the crime. If it really was a mistake, the sender's bank "
        "asks us and we return it to where it came from. Call us on the number on the back of your card and "
        "we'll look into the payment.",
        "If the money isn't yours, send it back as soon as you can so you don't get into trouble.",
        (("response-1", "2 makes the customer a money mule."), ("response-1", "")),
    ),
    (
        "credit-card-payment-date",
        "Can I move the date my credit card payment comes out to the 28th? I get paid on the 27th.",
        "Yes, I've changed it to the 28th for you.",
        "Yes, you can pick any date from the 1st to the 28th: in the app, go to *Credit card → Manage → Payment "
        "date*. The new date applies from your next statement, so this month's payment still goes out on the "
        "usual day.",
        (("response-2", ""), ("response-2", "1 claims a change nobody made.")),
    ),
]


def _write_demo_argilla(out: Path) -> None:
    server = _argilla_stand_in()
    pair = ["response-1", "response-2"]
    settings = {
        "fields": [rg.TextField(name="prompt"), *(rg.TextField(name=name) for name in pair)],
        "questions": [
            rg.LabelQuestion(
                name="preference",
                title="Which answer should the assistant give?",
                labels={"response-1": "Response 1", "response-2": "Response 2", "tie": "Equally good"},
            ),
            rg.TextQuestion(name="why", title="Why? (optional)", required=False),
        ],
    }
    records = []
    for record_id, prompt, first, second, answers in DEMO_ARGILLA_RECORDS:
        responses = []
        for user, (label, why) in zip(DEMO_ARGILLA_USERS, answers, strict=True):
            responses.append(rg.Response("preference", label, user_id=user, status=SUBMITTED))
            if why:
                responses.append(rg.Response("why", why, user_id=user, status=SUBMITTED))
        fields = {"prompt": prompt, "response-1": first, "response-2": second}
        records.append({"id": record_id, "fields": fields, "metadata": {"channel": "app"}, "responses": responses})
    _argilla_zip(out, server, "argilla_preferences", settings, records)
    shutil.rmtree(out / "argilla_preferences")  # the zip is the file to upload


_OASST_IDS = uuid.UUID("5b1e7c3a-0d2f-4e8b-9a61-c4f0e2d7b839")


def _oasst(name: str, role: str, text: str, rank: int | None = None, **extra: Any) -> ExportMessageNode:
    return ExportMessageNode(
        message_id=str(uuid.uuid5(_OASST_IDS, name)),
        user_id=str(uuid.uuid5(_OASST_IDS, f"user {name}")),
        created_date=extra.pop("created_date", "2025-02-18T14:05:00+00:00"),
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


def _link(node: ExportMessageNode) -> None:
    for reply in node.replies or []:
        reply.parent_id = node.message_id
        _link(reply)


def _write_demo_openassistant(path: Path) -> None:
    cards = _oasst(
        "cards",
        "prompter",
        "What's actually the difference between a debit card and a credit card? Which one is better for buying "
        "stuff online?",
        replies=[
            _oasst(
                "cards-b",
                "assistant",
                "A debit card takes money from your account; a credit card lets you borrow and pay back later. "
                "For online shopping, a credit card gives you more protection.",
                1,
                created_date="2025-02-18T14:31:00+00:00",
            ),
            _oasst(
                "cards-a",
                "assistant",
                "A debit card spends money that's already in your current account. A credit card borrows it: you "
                "pay the bank back later, and interest is charged if you don't clear the balance in full.\n\n"
                "Online, a credit card usually protects you better. Under Section 75 of the Consumer Credit Act, "
                "the card provider is jointly responsible for purchases between £100 and £30,000, so if the goods "
                "never arrive or the seller goes bust, you can claim from us. Debit cards only have chargeback, "
                "which is a card scheme rule rather than a legal right.\n\nIf you use a credit card, set up a "
                "Direct Debit for the full balance so you never pay interest.",
                0,
                created_date="2025-02-18T14:47:00+00:00",
            ),
            _oasst(
                "cards-c",
                "assistant",
                "Debit cards are safer online, because you can only spend what you have and you can't get into debt.",
                2,
                created_date="2025-02-18T15:10:00+00:00",
            ),
        ],
    )
    invoice = _oasst(
        "invoice",
        "prompter",
        "I run a small plumbing business. A supplier emailed to say their bank details have changed and this "
        "month's invoice should go to the new account. Anything I should check before I pay?",
        created_date="2025-02-20T08:41:00+00:00",
        replies=[
            _oasst(
                "invoice-b",
                "assistant",
                "Businesses change banks all the time. Update the details and pay as normal, but keep the email in "
                "case you need it later.",
                1,
                created_date="2025-02-20T09:02:00+00:00",
            ),
            _oasst(
                "invoice-a",
                "assistant",
                "Yes, be careful: a 'new bank details' email is the classic invoice fraud. Before paying:\n\n"
                "1. Phone the supplier on a number you already had, not one in the email, and ask someone you know "
                "to confirm the change.\n2. Look closely at the sender's address; fraudsters use lookalike domains.\n"
                "3. When you add the payee, check the Confirmation of Payee result: if the name doesn't match, stop.\n"
                "\nIf you've already paid, call us straight away; the sooner we know, the better the chance of "
                "getting the money back.",
                0,
                created_date="2025-02-20T09:15:00+00:00",
            ),
        ],
    )
    move_follow_up = _oasst(
        "moving-2",
        "prompter",
        "Good to know. What about my direct debits for council tax and my phone contract, will they keep working?",
        created_date="2025-02-23T19:20:00+00:00",
        replies=[
            _oasst(
                "moving-2a",
                "assistant",
                "They'll keep being paid as long as there's money in the account; moving abroad doesn't cancel a "
                "Direct Debit. Council tax is different, though: tell the council your moving-out date, because "
                "you stop owing it once you've left and they'll send a final bill. For the phone, check your "
                "contract's notice period before you cancel it.",
                0,
                created_date="2025-02-23T19:34:00+00:00",
            ),
            _oasst(
                "moving-2b",
                "assistant",
                "Direct Debits only work with a UK address, so they'll be cancelled automatically when you move.",
                1,
                created_date="2025-02-23T19:41:00+00:00",
            ),
        ],
    )
    moving = _oasst(
        "moving",
        "prompter",
        "I'm moving to Toronto for a job next month. Should I keep my UK current account open?",
        created_date="2025-02-23T18:55:00+00:00",
        replies=[
            _oasst(
                "moving-a",
                "assistant",
                "Usually, yes. A UK account is handy for anything you still pay here, and for coming back. Tell us "
                "your new address and that you're living abroad; some of our accounts are open to customers outside "
                "the UK, and we'll tell you if yours needs to change. Sending money between the two countries costs "
                "less with an international transfer than with card payments.",
                0,
                created_date="2025-02-23T19:06:00+00:00",
                replies=[move_follow_up],
            ),
            _oasst(
                "moving-b",
                "assistant",
                "You'll have to close your UK current account before you leave, as accounts are only for UK residents.",
                1,
                created_date="2025-02-23T19:12:00+00:00",
            ),
        ],
    )
    lines = []
    for prompt in (cards, invoice, moving):
        _link(prompt)
        tree = ExportMessageTree(message_tree_id=prompt.message_id, tree_state="ready_for_export", prompt=prompt)
        lines.append(json.dumps(tree.model_dump(), ensure_ascii=False) + "\n")
    path.write_text("".join(lines))


def write_demo(out: Path) -> None:
    """The demo's three files: enclave/demo/peers/ (its README says what each holds)."""
    _write_demo_label_studio(out / "label_studio_pairwise.json")
    _write_demo_argilla(out)
    _write_demo_openassistant(out / "oasst_trees.jsonl")


def main() -> None:
    demo = sys.argv[1:2] == ["--demo"]
    out = Path(sys.argv[2] if demo else sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    if demo:
        write_demo(out)
        return
    write_openassistant(out)
    write_label_studio(out)
    write_argilla(out)


if __name__ == "__main__":
    main()

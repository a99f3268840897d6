"""The banking demo's eval-set drift: three months of support chats (five topics, three channels, English),
labelled, reviewed and released with a held-out share; then this week's import, in which card-fraud and scam
questions dominate the topic mix while the channels and the language keep their shares. Its drift report flags
the topic (and the prompts' embeddings, which follow the topics), not the channel: what ``seed_demo`` shows on
the drift page. The texts are six questions a topic, asked in other words again and again, so the mix is
exact; the history's release holds out two whole questions a topic."""

import io
import json
import logging
from datetime import timedelta

from django.utils import timezone

from accounts.models import Project, User
from annotation import services as annotation_services
from annotation.models import ImportBatch, Item
from releases import drift
from releases import services as release_services
from releases.embeddings import EmbeddingModelError
from releases.models import DriftReport

logger = logging.getLogger(__name__)

HISTORY_SOURCE = "support_history_q3.jsonl"
RECENT_SOURCE = "support_this_week.jsonl"
CHANNELS = ("chat", "email", "phone")
TEMPLATES = {
    "cards": [
        "My debit card was declined at the supermarket although my balance is fine. Why?",
        "How do I order a replacement card, my old one is cracked and the chip fails?",
        "Can I use my card in the United States without extra fees?",
        "I forgot the PIN of my credit card. How can I see or reset it?",
        "Why is there a hold of 150 euros on my card from a hotel I left last week?",
        "Is contactless payment switched off on new cards until the first PIN payment?",
    ],
    "transfers": [
        "A transfer of 800 euros to my landlord has not arrived yet. Where is it?",
        "Can I change the reference of a standing order that runs every month?",
        "What is the daily limit for instant transfers in the app?",
        "I sent money to the wrong IBAN by mistake. Can you get it back?",
        "How long does a payment to a bank in Switzerland take, and what does it cost?",
        "Why was my salary booked two days later than usual this month?",
    ],
    "loans": [
        "What would the monthly rate be for a personal loan of 12,000 euros over four years?",
        "Can I repay my car loan early without paying a fee for it?",
        "Do I need a guarantor to borrow money as a student?",
        "My loan application was refused. Will you tell me the reason?",
        "Can I pause two instalments of my loan while I am on parental leave?",
        "Does a second credit check lower my score if I apply again next month?",
    ],
    "savings": [
        "What interest does the savings account pay at the moment?",
        "How do I move money from my savings account to my current account?",
        "Is my fixed-term deposit protected if the bank goes bust?",
        "Can I open a savings plan for my granddaughter in her name?",
        "Can I withdraw part of a fixed-term deposit before it ends?",
        "Do I have to pay tax on the interest, and does the bank deduct it?",
    ],
    "mortgages": [
        "My fixed mortgage rate ends in spring. What are my options for the next ten years?",
        "Can I make a special repayment on my mortgage this year?",
        "Which documents do you need to value the flat I want to buy?",
        "We are divorcing. Can one of us take over the whole mortgage?",
        "Is building insurance required before the mortgage is paid out?",
        "How much deposit do I need for a first home worth 300,000 euros?",
    ],
    "fraud": [
        "Someone used my card for 240 euros online, not me. What now?",
        "I got a text to confirm a payment I never made. A scam, right?",
        "A caller claiming to be from your security team asked for my TAN. Was that you?",
        "My phone was stolen and my banking app is on it. What should I block first?",
        "There are three small test payments from a shop I do not know. Should I worry?",
        "I clicked a link in an email about my account and typed my password. What now?",
    ],
}
HISTORY = ("cards", "transfers", "loans", "savings", "mortgages")
# This week: fraud is half of all questions; the channels cycle as before.
RECENT = ("fraud", "cards", "fraud", "transfers", "fraud", "loans", "fraud", "savings", "fraud", "mortgages")


GREETINGS = ("Hello,", "Hi there,", "Good morning,", "Dear bank,", "Quick question:", "Hello again,")
CLOSINGS = ("Thanks a lot.", "Please help me.", "Kind regards from Anna.", "It is rather urgent for me.")
HELD_OUT = 2  # the first two questions of each topic: the history's evaluation side, whole questions at a time


def _lines(topics: tuple[str, ...], count: int, first: int) -> bytes:
    """``count`` chats cycling through ``topics``, each topic through its questions from its ``first``-th use on,
    each use with its own greeting and closing words (no two prompts are copies: the import would skip them). The
    questions of a topic are worded and meant differently enough (below 0.75 cosine, checked with the embedding
    model) that the release's leak checks find no paraphrase between two of them; a question's own variants are
    paraphrases of each other, so the history holds out whole questions (``HELD_OUT``)."""
    rows, used = [], dict.fromkeys(TEMPLATES, first)
    for n in range(count):
        topic = topics[n % len(topics)]
        k = used[topic]
        used[topic] += 1
        questions = TEMPLATES[topic]
        variant = k // len(questions)
        greeting, closing = GREETINGS[variant % len(GREETINGS)], CLOSINGS[(variant // len(GREETINGS)) % len(CLOSINGS)]
        question = questions[k % len(questions)]
        if greeting.endswith(",") and not question.startswith(("I ", "I'")):
            question = question[0].lower() + question[1:]
        rows.append(
            {
                "id": f"{'week' if first else 'hist'}-{n:04d}",
                "messages": [
                    {"role": "system", "content": "You are the retail bank's customer-support assistant."},
                    {"role": "user", "content": f"{greeting} {question} {closing}"},
                ],
                "metadata": {"topic": topic, "channel": CHANNELS[n % 3], "language": "en"},
            }
        )
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def _import(project: Project, lead: User, name: str, data: bytes, days_ago: int) -> ImportBatch:
    batch = annotation_services.import_start(
        actor=lead, project=project, upload=io.BytesIO(data), source_name=name, fmt="chat_jsonl"
    )
    ImportBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return batch


def history(project: Project, users: dict[str, User], count: int = 150) -> None:
    """Three months ago: ``count`` chats, each labelled by the project admin and approved by the reviewer, and the
    release "Support SFT" built from them (30 % held out). Before the demo's own import, so its queue stays."""
    lead = users["datalead"]
    batch = _import(project, lead, HISTORY_SOURCE, _lines(HISTORY, count, 0), days_ago=90)
    writer, reviewer = users["projectadmin"], users["reviewer"]
    for n in range(count):
        slot = annotation_services.item_next(user=writer, project=project)
        if slot is None or slot.item.batch_id != batch.pk:
            break
        annotation = annotation_services.annotation_submit(
            user=writer, item=slot.item, response="Thank you for asking. " + _answer(slot.item), scores={
                "factually_correct": "pass", "helpfulness": "4", "compliance_risk": "none"},
            flags=[], note="", time_spent_ms=40_000 + 300 * n, submit_key=f"demo-history-{slot.item_id}",
        )  # fmt: skip
        annotation_services.annotation_review(reviewer=reviewer, annotation=annotation, decision="approve")
    _embed(project)  # before the build, so its paraphrase check covers every prompt
    # The demo's strata are small: a stratum with fewer than ten eval items is a coverage gap.
    drift.eval_health_settings_update(actor=lead, project=project, values={"min_eval_per_stratum": 10})
    held_out = [q for questions in TEMPLATES.values() for q in questions[:HELD_OUT]]
    eval_items = [
        pk
        for pk, messages in Item.objects.filter(batch=batch).values_list("pk", "messages")
        if any(q[1:] in messages[-1]["content"] for q in held_out)  # its first letter may be lower case
    ]
    release = release_services.release_create(
        actor=lead, project=project, name="Support SFT",
        recipe={"kind": "sft", "eval_fraction": 0.3, "stratify_by": ["topic"], "leakage": "drop",
                "eval_items": eval_items},
        assumptions="Demo data: synthetic support chats of the last quarter, labelled by bank staff.",
    )  # fmt: skip
    release_services.release_build(release_id=release.pk)


def _embed(project: Project) -> None:
    """Embed the project's prompts here (the gpu worker would, a little later), when the model is at hand; without
    it the paraphrase check and the drift report say how many items had no embedding."""
    try:
        release_services.prompt_embeddings_compute(project_id=project.pk)
    except EmbeddingModelError as exc:
        logger.warning("demo prompts not embedded: %s", exc)


def _answer(item: Item) -> str:
    topic = (item.metadata or {}).get("topic", "")
    return f"Here is how we handle {topic} questions: I have checked your account and explain the next steps."


def this_week(project: Project, users: dict[str, User], count: int = 80) -> DriftReport:
    """This week's import with the shifted topic mix, its prompts embedded (when the embedding model is at hand;
    the gpu worker does it otherwise) and a drift report computed, under the demo's thresholds."""
    lead = users["datalead"]
    _import(project, lead, RECENT_SOURCE, _lines(RECENT, count, 40), days_ago=2)
    _embed(project)
    report = drift.drift_report_request(actor=lead, project=project)
    return drift.drift_report_compute(report_id=report.pk)

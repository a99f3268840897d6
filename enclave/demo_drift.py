"""The banking demo's eval-set drift: three months of support chats (five topics, three channels, English),
labelled, reviewed and released with a held-out share; then this week's import, in which card-fraud and scam
questions dominate the topic mix while the channels and the language keep their shares. Its drift report flags
the topic (and the prompts' embeddings, which follow the topics), not the channel: what ``seed_demo`` shows on
the drift page. The texts are made here, from templates, so the mix is exact and the prompt lengths alike."""

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
        "My debit card was declined at the supermarket {day} although my balance is fine. Why?",
        "How do I order a replacement card, my old one is cracked and the chip fails {day}?",
    ],
    "transfers": [
        "A transfer of {amount} euros to my landlord {day} has not arrived yet. Where is it?",
        "Can I change the reference of a standing order that runs {day} every month?",
    ],
    "loans": [
        "What would the monthly rate be {day} for a personal loan of {amount} euros over four years?",
        "Can I repay my car loan early {day} without paying a fee for it?",
    ],
    "savings": [
        "What interest does the savings account pay on {amount} euros if I open it {day}?",
        "How do I move {amount} euros from my savings account to my current account {day}?",
    ],
    "mortgages": [
        "My fixed mortgage rate ends {day}. What are my options for the next ten years?",
        "Can I make a special repayment of {amount} euros on my mortgage {day}?",
    ],
    "fraud": [
        "Someone used my card for {amount} euros online {day}, not me. What now?",
        "I got a text {day} to confirm a payment of {amount} euros. A scam, right?",
    ],
}
DAYS = ("today", "yesterday", "on Monday", "last Friday", "this morning", "at the weekend", "last night")
CLOSINGS = ("Thanks a lot.", "Please help me.", "Kind regards from Anna.", "It is rather urgent for me.")
HISTORY = ("cards", "transfers", "loans", "savings", "mortgages")
# This week: fraud is half of all questions; the channels cycle as before.
RECENT = ("fraud", "cards", "fraud", "transfers", "fraud", "loans", "fraud", "savings", "fraud", "mortgages")


def _lines(topics: tuple[str, ...], count: int, first: int) -> bytes:
    """``count`` chats cycling through ``topics``; each template's ``first``-th use onwards picks its day and
    closing words, so no two prompts are copies (the release's leak check would find them)."""
    rows, used = [], dict.fromkeys(TEMPLATES, first)
    for n in range(count):
        topic = topics[n % len(topics)]
        k = used[topic]
        used[topic] += 1
        question = TEMPLATES[topic][k % 2].format(day=DAYS[(k // 2) % len(DAYS)], amount=50 + (n * 37) % 950)
        closing = CLOSINGS[(k // 2) % len(CLOSINGS)]  # with the day: 28 distinct endings a template
        rows.append(
            {
                "id": f"{'week' if first else 'hist'}-{n:04d}",
                "messages": [
                    {"role": "system", "content": "You are the retail bank's customer-support assistant."},
                    {"role": "user", "content": f"{question} {closing}"},
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
    release = release_services.release_create(
        actor=lead, project=project, name="Support SFT",
        recipe={"kind": "sft", "eval_fraction": 0.3, "stratify_by": ["topic"], "leakage": "drop"},
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
    drift.eval_health_settings_update(actor=lead, project=project, values={"min_eval_per_stratum": 10})
    report = drift.drift_report_request(actor=lead, project=project)
    return drift.drift_report_compute(report_id=report.pk)

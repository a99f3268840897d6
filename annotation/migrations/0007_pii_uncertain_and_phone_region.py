"""Settings for uncertain PII values and the phone region; the import report's uncertain values; and content
hashes taken again from the stored (scrubbed) text, so no hash of unscrubbed text stays in the database."""

import hashlib
import unicodedata
from typing import Any

from django.db import migrations, models
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _content_hash(messages: list[dict[str, Any]], response: str | None, candidates: list[dict[str, Any]]) -> str:
    """``annotation.parsing.content_hash`` as it stands at this migration (copied, so the migration never
    changes meaning)."""
    parts = [f"<{_fold(m['role'])}> {_fold(m['content'])}" for m in messages]
    if response is not None:
        parts.append(f"<response> {_fold(response)}")
    parts.extend(f"<candidate> {text}" for text in sorted(_fold(c["content"]) for c in candidates))
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def rehash_scrubbed_text(apps: Any, schema_editor: Any) -> None:
    """Items were de-duplicated on a hash of the text before scrubbing: hash what is stored instead. An item
    whose scrubbed text another item already has keeps a unique hash of its text and its id. An import's
    sha256 was the uploaded file's; it becomes the hash of its items' content hashes."""
    item_model = apps.get_model("annotation", "Item")
    batch_model = apps.get_model("annotation", "ImportBatch")
    item_model.objects.update(content_hash=Concat(Value("migrating-"), Cast("id", CharField())))
    seen: set[tuple[int, str]] = set()
    changed = []
    rows = item_model.objects.order_by("id").values_list("id", "project_id", "messages", "response", "candidates")
    for pk, project_id, messages, response, candidates in rows.iterator(chunk_size=2000):
        digest = _content_hash(messages, response, candidates or [])
        if (project_id, digest) in seen:
            tagged = [*messages, {"role": "enclave-item", "content": str(pk)}]
            digest = _content_hash(tagged, response, candidates or [])
        seen.add((project_id, digest))
        changed.append(item_model(pk=pk, content_hash=digest))
        if len(changed) >= 2000:
            item_model.objects.bulk_update(changed, ["content_hash"])
            changed = []
    item_model.objects.bulk_update(changed, ["content_hash"])
    for batch in batch_model.objects.exclude(sha256="").only("id"):
        hashes = item_model.objects.filter(batch_id=batch.pk).order_by("id").values_list("content_hash", flat=True)
        batch.sha256 = hashlib.sha256("".join(f"{h}\n" for h in hashes).encode()).hexdigest()
        batch.save(update_fields=["sha256"])


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0006_draft_page"),
    ]

    operations = [
        migrations.AddField(
            model_name="annotationsettings",
            name="pii_phone_region",
            field=models.CharField(default="GB", max_length=2),
        ),
        migrations.AddField(
            model_name="annotationsettings",
            name="pii_uncertain",
            field=models.CharField(
                choices=[("scrub", "Scrub them like the others"), ("keep", "Keep them in the text")],
                default="scrub",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="importbatch",
            name="uncertain",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="importbatch",
            name="uncertain_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(rehash_scrubbed_text, migrations.RunPython.noop),
    ]

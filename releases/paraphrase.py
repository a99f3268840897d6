"""The paraphrase check of the release build: a training prompt whose embedding's cosine similarity to an
evaluation prompt's reaches the recipe's ``paraphrase_threshold`` leaks as a ``paraphrase``, beside MinHash's
exact, normalised and near duplicates, and is handled by the same policy (fail, drop, move to eval).

The build runs where torch is not imported: it reads the vectors the gpu queue stored after each import
(``PromptEmbedding``, by the current model's content hash, of the item's current text) and embeds nothing. An
item without one (not embedded yet, edited since, or no model installed) is checked by MinHash only; the build
counts such items for the datasheet and sends the embedding task for the project, so the next build has them.

The search is exact, in batches: a training chunk's codes times the evaluation side's, a matrix product in
float32 of the stored int8 codes, so every dot product is an exact integer (at most 384 · 127² < 2²⁴, below
float32's exact integer range, whatever order BLAS sums in). The cosine is that integer over the two codes'
norms; the best evaluation item of each training item is the first (by item id) of the highest similarity. No
approximate index: the same stored vectors give the same leaks, the same split and the same hash on any
machine (``docs/PERFORMANCE.md`` has the measurement that chose exact search).

The threshold's default, 0.75, was measured with all-MiniLM-L6-v2 on banking questions: twelve reworded
questions of the same meaning ("How do I reset my online banking password?" / "I forgot my password for
internet banking, how can I change it?" 0.89) scored 0.27 to 0.91, median 0.79, eight of them at 0.76 or more;
different questions of the same domain scored at most 0.60 (the same password question against "How do I
change my card PIN?" 0.43), and questions worded alike with another meaning at most 0.73 ("savings" / "personal
loans" interest rate 0.72, a standing order set up / cancelled 0.71) but for "open" / "close" a joint account,
0.90. 0.75 lies in the gap between 0.73 and 0.76; the former default 0.9 caught one paraphrase of twelve.
"""

import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotation.models import Item
from releases import embeddings
from releases.selectors import prompt_embedding_codes
from releases.splits import Leak

logger = logging.getLogger(__name__)

PAIR_BUDGET = 4_000_000  # similarities computed at a time (training rows × evaluation rows): 16 MB of float32
_LOAD = 2000  # items whose vectors are read a query
EXAMPLES = 5
_EXAMPLE_CHARS = 160


@dataclass
class _Vectors:
    item_ids: np.ndarray  # ascending
    codes: np.ndarray  # float32 holding the stored int8 codes, one row an item
    norms: np.ndarray  # float64, each row's Euclidean norm


def _load(project_id: int, model_hash: str, item_ids: Iterable[int]) -> tuple[_Vectors, set[int]]:
    """The stored vectors of ``item_ids`` (current ones only) and the ids that have none."""
    wanted = sorted(set(item_ids))
    ids: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    for start in range(0, len(wanted), _LOAD):
        found_ids, found_codes = prompt_embedding_codes(
            project_id=project_id, model_hash=model_hash, item_ids=wanted[start : start + _LOAD]
        )
        ids.append(found_ids)
        codes.append(found_codes)
    width = max((c.shape[1] for c in codes if len(c)), default=0)
    stacked_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    stacked = np.vstack([c for c in codes if len(c)]).astype(np.float32) if len(stacked_ids) else None
    matrix = stacked if stacked is not None else np.zeros((0, width), dtype=np.float32)
    norms = np.sqrt(np.square(matrix, dtype=np.float64).sum(axis=1))
    keep = norms > 0
    missing = set(wanted) - set(stacked_ids[keep].tolist())
    return _Vectors(stacked_ids[keep], matrix[keep], norms[keep]), missing


@dataclass
class ParaphraseStats:
    """What the check saw, shared by the index and those made of moved items: the training items it compared,
    every item (either side) it could not, having no embedding, and the seconds it took (reads included)."""

    checked: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)
    seconds: float = 0.0


class ParaphraseIndex:
    """The evaluation side's prompt embeddings, to probe training items against (``splits.LeakProbe``)."""

    def __init__(
        self, *, project_id: int, model_hash: str | None, threshold: float, eval_ids: Collection[int],
        stats: ParaphraseStats | None = None,
    ) -> None:  # fmt: skip
        self.project_id, self.model_hash, self.threshold = project_id, model_hash, threshold
        self.stats = stats or ParaphraseStats()
        began = time.perf_counter()
        if model_hash is None:
            empty = _Vectors(np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros(0))
            self.side, missing = empty, set(eval_ids)
        else:
            self.side, missing = _load(project_id, model_hash, eval_ids)
        self.stats.missing |= missing
        self.stats.seconds += time.perf_counter() - began

    def probe(self, item_ids: np.ndarray) -> list[Leak]:
        """The paraphrase leak of each training item that has one, in the order of ``item_ids``."""
        if self.model_hash is None:
            self.stats.missing.update(int(i) for i in item_ids)
            return []
        began = time.perf_counter()
        mine, missing = _load(self.project_id, self.model_hash, item_ids.tolist())
        self.stats.missing |= missing
        self.stats.checked.update(mine.item_ids.tolist())
        found: dict[int, Leak] = {}
        if len(self.side.item_ids) and len(mine.item_ids):
            step = max(1, PAIR_BUDGET // len(self.side.item_ids))
            inverse = (1.0 / self.side.norms).astype(np.float32)
            for start in range(0, len(mine.item_ids), step):
                dots = mine.codes[start : start + step] @ self.side.codes.T  # exact integers
                best = np.argmax(dots * inverse, axis=1)
                rows = np.arange(len(best))
                similarity = dots[rows, best] / (mine.norms[start : start + step] * self.side.norms[best])
                for row in np.flatnonzero(similarity >= self.threshold).tolist():
                    train = int(mine.item_ids[start + row])
                    found[train] = Leak(
                        "paraphrase", train, int(self.side.item_ids[best[row]]), min(1.0, float(similarity[row]))
                    )
        self.stats.seconds += time.perf_counter() - began
        return [found[i] for i in item_ids.tolist() if i in found]

    def of(self, items: Collection[int]) -> "ParaphraseIndex":
        """An index of some training items (those moved to the evaluation side), sharing the stats."""
        return ParaphraseIndex(
            project_id=self.project_id, model_hash=self.model_hash, threshold=self.threshold, eval_ids=items,
            stats=self.stats,
        )  # fmt: skip


def paraphrase_index(*, project_id: int, threshold: float, eval_ids: Collection[int]) -> ParaphraseIndex | None:
    """The index for a build with this threshold (None when it is 0: no check). Without an embedding model every
    item counts as one without an embedding."""
    if not threshold:
        return None
    try:
        model_hash: str | None = embeddings.embedding_model_hash()
    except embeddings.EmbeddingModelError:
        model_hash = None
    return ParaphraseIndex(project_id=project_id, model_hash=model_hash, threshold=threshold, eval_ids=eval_ids)


def _shortened(messages: list[dict[str, Any]]) -> str:
    text = " ".join(embeddings.embedding_text(messages).split())
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"


def report(index: ParaphraseIndex | None, leaks: list[Leak], *, threshold: float, action: str) -> dict[str, Any]:
    """The datasheet's "Paraphrase check" section: model, threshold, items compared and without embedding, pairs
    found per action, and the closest pairs (up to ``EXAMPLES``, prompts shortened)."""
    if index is None:
        return {"threshold": threshold}
    found = sorted((x for x in leaks if x.kind == "paraphrase"), key=lambda x: (-x.similarity, x.train_item))
    shown = found[:EXAMPLES]
    messages = dict(
        Item.objects.filter(pk__in={i for x in shown for i in (x.train_item, x.eval_item)}).values_list(
            "id", "messages"
        )
    )
    return {
        "model_hash": index.model_hash,
        "threshold": threshold,
        "items_checked": len(index.stats.checked),
        "items_without_embedding": len(index.stats.missing),
        "pairs": {action: len(found)} if found else {},
        "examples": [
            {
                "train_item": x.train_item,
                "eval_item": x.eval_item,
                "train_prompt": _shortened(messages.get(x.train_item, [])),
                "eval_prompt": _shortened(messages.get(x.eval_item, [])),
                "similarity": round(x.similarity, 3),
            }
            for x in shown
        ],
    }

"""Held-out splits and the leakage check.

An item's group key is its normalised prompt (the conversation before the answer): lower case, Unicode
NFKC, whitespace collapsed, punctuation dropped. The split is decided per group by a stable hash, so items
sharing a prompt never straddle train and eval, and the same group lands on the same side in every
release. Evaluation is sticky: an item (or a group) that was ever in an evaluation split stays there.

Leaks are looked for between every training item and the evaluation side (this release's eval split and
every earlier one): the same raw prompt, the same normalised prompt, or a near duplicate whose estimated
Jaccard similarity of word 3-gram shingles reaches the threshold (MinHash with LSH, from ``datasketch``).
"""

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import xxhash
from datasketch import MinHash

NUM_PERM = 64
_NOT_WORD = re.compile(r"\W+")  # punctuation and whitespace alike: each run becomes one space


def prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return _NOT_WORD.sub(" ", text).strip()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def raw_digest(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def in_eval_by_hash(group_hash: str, fraction: float) -> bool:
    """Stable across releases and machines: the group's position in [0, 1) from its hash."""
    position = int(hashlib.sha256(f"enclave-split:{group_hash}".encode()).hexdigest()[:16], 16) / 16**16
    return position < fraction


# The permutations depend only on the seed: made once, not per item (five times faster on short prompts).
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=1)


def minhash(normalised: str) -> MinHash:
    words = normalised.split()
    if len(words) < 3:
        shingles = [normalised.encode()]
    else:
        shingles = [f"{a} {b} {c}".encode() for a, b, c in zip(words, words[1:], words[2:], strict=False)]
    signature = MinHash(
        num_perm=NUM_PERM,
        seed=1,
        hashfunc=xxhash.xxh32_intdigest,
        permutations=_TEMPLATE.permutations,
        scheme=_TEMPLATE.scheme,
    )
    signature.update_batch(shingles)
    return signature


@dataclass(frozen=True)
class Leak:
    kind: str  # exact | normalised | near
    train_item: int
    eval_item: int
    similarity: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "train_item": self.train_item,
            "eval_item": self.eval_item,
            "similarity": round(self.similarity, 3),
        }


BANDS, ROWS = 16, 4  # LSH banding of the 64 values: a pair at similarity 0.8 meets in some band 99.98 % of the time
with np.errstate(over="ignore"):
    _BAND_WEIGHTS = np.uint64(0x9E3779B97F4A7C15) ** np.arange(1, ROWS + 1, dtype=np.uint64)


def _bands(signatures: np.ndarray) -> np.ndarray:
    """One 64-bit key per band and signature (an array of rows by BANDS), wrapping arithmetic on uint64."""
    shaped = signatures.astype(np.uint64).reshape(len(signatures), BANDS, ROWS)
    with np.errstate(over="ignore"):
        return (shaped * _BAND_WEIGHTS).sum(axis=2, dtype=np.uint64)


@dataclass
class EvalIndex:
    """Everything on the evaluation side, to probe training items against: digests of the raw and the
    normalised prompt, and MinHash signatures (``datasketch``) in a banded LSH kept as sorted numpy arrays.
    About 420 bytes an evaluation item, so the index stays small when the evaluation split is large; add
    every evaluation item first, then ``freeze``, then probe."""

    threshold: float
    exact: dict[bytes, int] = field(default_factory=dict)
    normalised: dict[bytes, int] = field(default_factory=dict)
    ids: dict[int, int] = field(default_factory=dict)  # item id -> row
    _rows: list[np.ndarray] = field(default_factory=list)
    _signatures: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_PERM), dtype=np.uint32))
    _sorted_bands: np.ndarray = field(default_factory=lambda: np.zeros((BANDS, 0), dtype=np.uint64))
    _order: np.ndarray = field(default_factory=lambda: np.zeros((BANDS, 0), dtype=np.int64))
    _frozen: bool = False

    def add(self, item_id: int, messages: list[dict[str, Any]], text: str | None = None) -> None:
        """Index an evaluation item; ``text`` is its normalised prompt when the caller has it already."""
        if self._frozen:
            raise RuntimeError("the evaluation index is frozen")
        if item_id in self.ids:
            return
        text = text if text is not None else normalise(prompt_text(messages))
        self.exact.setdefault(bytes.fromhex(raw_digest(messages)), item_id)
        self.normalised.setdefault(bytes.fromhex(digest(text)), item_id)
        self.ids[item_id] = len(self._rows)
        self._rows.append(minhash(text).hashvalues.astype(np.uint32))

    def freeze(self) -> None:
        if self._rows:
            self._signatures = np.vstack(self._rows)
            bands = _bands(self._signatures).T  # BANDS × n
            self._order = np.argsort(bands, axis=1, kind="stable")
            self._sorted_bands = np.take_along_axis(bands, self._order, axis=1)
        self._rows = []
        self._item_of = np.array(sorted(self.ids, key=self.ids.__getitem__), dtype=np.int64)
        self._frozen = True

    def probe(self, item_id: int, messages: list[dict[str, Any]], text: str | None = None) -> Leak | None:
        """The closest leak of a training item, or None; ``text`` is its normalised prompt if known."""
        if not self._frozen:
            self.freeze()
        exact = self.exact.get(bytes.fromhex(raw_digest(messages)))
        if exact is not None:
            return Leak("exact", item_id, exact, 1.0)
        text = text if text is not None else normalise(prompt_text(messages))
        same = self.normalised.get(bytes.fromhex(digest(text)))
        if same is not None:
            return Leak("normalised", item_id, same, 1.0)
        if not len(self._signatures):
            return None
        mine = minhash(text).hashvalues.astype(np.uint32)
        keys = _bands(mine[np.newaxis, :])[0]
        found: set[int] = set()
        for band in range(BANDS):
            row = self._sorted_bands[band]
            low, high = np.searchsorted(row, keys[band], "left"), np.searchsorted(row, keys[band], "right")
            found.update(self._order[band, low:high].tolist())
        best: Leak | None = None
        for row_index in sorted(found):
            similarity = float(np.mean(mine == self._signatures[row_index]))
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = Leak("near", item_id, int(self._item_of[row_index]), similarity)
        return best

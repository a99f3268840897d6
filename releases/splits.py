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
from datasketch import MinHash, MinHashLSH

NUM_PERM = 64
_PUNCTUATION = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def raw_digest(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def in_eval_by_hash(group_hash: str, fraction: float) -> bool:
    """Stable across releases and machines: the group's position in [0, 1) from its hash."""
    position = int(hashlib.sha256(f"enclave-split:{group_hash}".encode()).hexdigest()[:16], 16) / 16**16
    return position < fraction


def _xxh(data: bytes) -> int:
    return xxhash.xxh32_intdigest(data)


# The permutations depend only on the seed: made once, not per item (five times faster on short prompts).
_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=1)


def minhash(normalised: str) -> MinHash:
    words = normalised.split()
    if len(words) < 3:
        shingles = [normalised.encode()]
    else:
        shingles = [" ".join(words[i : i + 3]).encode() for i in range(len(words) - 2)]
    signature = MinHash(
        num_perm=NUM_PERM, seed=1, hashfunc=_xxh, permutations=_TEMPLATE.permutations, scheme=_TEMPLATE.scheme
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


@dataclass
class EvalIndex:
    """Everything on the evaluation side, to probe training items against."""

    threshold: float
    exact: dict[str, int] = field(default_factory=dict)
    normalised: dict[str, int] = field(default_factory=dict)
    signatures: dict[int, np.ndarray] = field(default_factory=dict)  # compact: 64 × uint32
    lsh: MinHashLSH = field(init=False)

    def __post_init__(self) -> None:
        self.lsh = MinHashLSH(threshold=self.threshold, num_perm=NUM_PERM)

    def add(self, item_id: int, messages: list[dict[str, Any]], text: str | None = None) -> None:
        """Index an evaluation item; ``text`` is its normalised prompt when the caller has it already."""
        if item_id in self.signatures:
            return
        text = text if text is not None else normalise(prompt_text(messages))
        self.exact.setdefault(raw_digest(messages), item_id)
        self.normalised.setdefault(digest(text), item_id)
        signature = minhash(text)
        self.signatures[item_id] = signature.hashvalues.astype(np.uint32)
        self.lsh.insert(item_id, signature)

    def probe(self, item_id: int, messages: list[dict[str, Any]], text: str | None = None) -> Leak | None:
        """The closest leak of a training item, or None; ``text`` is its normalised prompt if known."""
        exact = self.exact.get(raw_digest(messages))
        if exact is not None:
            return Leak("exact", item_id, exact, 1.0)
        text = text if text is not None else normalise(prompt_text(messages))
        same = self.normalised.get(digest(text))
        if same is not None:
            return Leak("normalised", item_id, same, 1.0)
        signature = minhash(text)
        mine = signature.hashvalues.astype(np.uint32)
        best: Leak | None = None
        for candidate in sorted(self.lsh.query(signature)):
            similarity = float(np.mean(mine == self.signatures[candidate]))
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = Leak("near", item_id, int(candidate), similarity)
        return best

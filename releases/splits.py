"""Held-out splits and the leakage check.

An item's group key is its normalised prompt (the conversation before the answer): lower case, Unicode
NFKC, whitespace collapsed, punctuation dropped. The split is decided per group by a stable hash, so items
sharing a prompt never straddle train and eval, and the same group lands on the same side in every
release. Evaluation is sticky: an item (or a group) that was ever in an evaluation split stays there.

Leaks are looked for between every training item and the evaluation side (this release's eval split and
every earlier one): the same raw prompt, the same normalised prompt, or a near duplicate whose estimated
Jaccard similarity of word 3-gram shingles reaches the threshold (MinHash from ``rensa``, banded LSH); and
beside them a second check of the same items, the paraphrase check by prompt embeddings (``LeakProbe``,
``releases.paraphrase``): an item MinHash finds is not probed by it, so each item leaks once, MinHash first.

The shingles are hashed without a Python object per shingle: one polynomial prefix sum over the
normalised text's bytes gives every word 3-gram's hash from its start and end offsets, and ``rensa`` (Rust)
turns the flat hashes into the signature.
"""

import hashlib
import re
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import orjson
from rensa import RMinHash

NUM_PERM = 64
_SEED = 1
_NOT_WORD = re.compile(r"\W+")  # punctuation and whitespace alike: each run becomes one space
# The same mapping for ASCII bytes: letters, digits and "_" stay, everything else becomes a space.
_ASCII_WORD = bytes(c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(128)) + b" " * 128


def prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)


def normalise(text: str) -> str:
    # NFKC changes no ASCII text; a byte table does what the regex does, faster (docs/PERFORMANCE.md)
    if text.isascii():
        return b" ".join(text.lower().encode().translate(_ASCII_WORD).split()).decode()
    text = unicodedata.normalize("NFKC", text).lower()
    return _NOT_WORD.sub(" ", text).strip()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def prompt_digest(messages: list[dict[str, Any]]) -> str:
    """The digest of a conversation's normalised prompt: a release item's ``group_hash``, so a prompt can be
    looked up among the items of a release's splits."""
    return digest(normalise(prompt_text(messages)))


def raw_digest(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def position(group_hash: str) -> float:
    """A group's place in [0, 1), from its hash: stable across releases and machines."""
    return int(hashlib.sha256(f"enclave-split:{group_hash}".encode()).hexdigest()[:16], 16) / 16**16


def in_eval_by_hash(group_hash: str, fraction: float) -> bool:
    """Whether the unstratified split puts the group in evaluation: its position is below the fraction."""
    return position(group_hash) < fraction


# Polynomial hashing modulo 2**64 over the text's bytes: with C[k] = sum of b[j] * Q**j for j < k (Q the
# inverse of P), the bytes [s, e) hash to (C[e] - C[s]) * P**s = sum of b[s + i] * Q**i, whatever s is.
_P = np.uint64(0x9E3779B97F4A7C15)
_Q = np.uint64(pow(int(_P), -1, 2**64))
_powers: dict[str, np.ndarray] = {"p": np.ones(1, dtype=np.uint64), "q": np.ones(1, dtype=np.uint64)}


def _power_tables(length: int) -> tuple[np.ndarray, np.ndarray]:
    p, q = _powers["p"], _powers["q"]
    if len(p) < length:
        size = max(length, 2 * len(p), 4096)
        with np.errstate(over="ignore"):
            p = np.cumprod(np.full(size, _P, dtype=np.uint64), dtype=np.uint64) * _Q  # P**0 .. P**(size-1)
            q = np.cumprod(np.full(size, _Q, dtype=np.uint64), dtype=np.uint64) * _P
        _powers.update(p=p, q=q)  # replaced whole, so a concurrent reader sees the old or the new pair
    return p, q


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser: every input bit reaches every output bit (the sums' low bits are weak)."""
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB93FE53D86A3)
        h ^= h >> np.uint64(33)
    return h


def shingle_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of every word 3-gram of each normalised text (words are separated by single spaces; a
    text of fewer than three words is one shingle, itself), and where each text's hashes start and end
    (``offsets``, one more than there are texts). The texts are joined by newlines (a normalised text has
    none) and hashed by one prefix sum: numpy's cost per call would otherwise outweigh a short text."""
    joined = "\n".join(texts).encode()
    data = np.frombuffer(joined, dtype=np.uint8)
    size = len(data)
    p, q = _power_tables(size + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(size + 1, dtype=np.uint64)
        np.cumsum(data * q[:size], dtype=np.uint64, out=prefix[1:])
        # Word j is [word_start[j], word_end[j]); a text of no bytes is one empty word.
        cuts = np.flatnonzero((data == ord(" ")) | (data == ord("\n")))
        word_start = np.concatenate(([0], cuts + 1))
        word_end = np.concatenate((cuts, [size]))
        word_text = np.zeros(len(word_start), dtype=np.int64)
        word_text[1:] = np.cumsum(data[cuts] == ord("\n"))
        words = np.bincount(word_text, minlength=len(texts))
        # A 3-gram starts at every word whose second next word is in the same text; a text of fewer than
        # three words is one shingle from its first word's start to its last word's end.
        count = len(word_start)
        trigram = np.zeros(count, dtype=bool)
        trigram[:-2] = word_text[:-2] == word_text[2:]
        first_word = np.concatenate(([0], np.cumsum(words)[:-1]))
        text_end = word_end[first_word + words - 1]
        whole = np.zeros(count, dtype=bool)
        whole[first_word[words < 3]] = True
        chosen = np.flatnonzero(trigram | whole)
        starts = word_start[chosen]
        ends = np.where(trigram[chosen], word_end[np.minimum(chosen + 2, count - 1)], text_end[word_text[chosen]])
        hashes = (prefix[ends] - prefix[starts]) * p[starts]
        hashes ^= (ends - starts).astype(np.uint64) * _Q
    offsets = np.zeros(len(texts) + 1, dtype=np.uint64)
    np.cumsum(np.maximum(words - 2, 1), out=offsets[1:])
    return _fmix64(hashes), offsets


def signatures(texts: list[str]) -> np.ndarray:
    """MinHash signatures (``NUM_PERM`` uint32 values a row) of normalised texts, in one call into rensa."""
    if not texts:
        return np.zeros((0, NUM_PERM), dtype=np.uint32)
    hashes, offsets = shingle_hashes(texts)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, NUM_PERM, _SEED)
    return np.array(matrix.to_rows(), dtype=np.uint32)


@dataclass(frozen=True)
class Leak:
    kind: str  # exact | normalised | near | paraphrase
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
    _BAND_SALT = np.arange(BANDS, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93)


def _bands(signatures: np.ndarray) -> np.ndarray:
    """One 64-bit key per band and signature (an array of rows by BANDS), wrapping arithmetic on uint64; the
    band's number is in its key, so all bands share one sorted array."""
    shaped = signatures.astype(np.uint64).reshape(len(signatures), BANDS, ROWS)
    with np.errstate(over="ignore"):
        return (shaped * _BAND_WEIGHTS).sum(axis=2, dtype=np.uint64) + _BAND_SALT


@dataclass
class EvalIndex:
    """Everything on the evaluation side, to probe training items against: digests of the raw and the
    normalised prompt, and MinHash signatures in a banded LSH kept as one sorted numpy array of band keys.
    About 420 bytes an evaluation item, so the index stays small when the evaluation split is large; add
    every evaluation item first, then ``freeze``, then probe."""

    threshold: float
    exact: dict[bytes, int] = field(default_factory=dict)
    normalised: dict[bytes, int] = field(default_factory=dict)
    ids: dict[int, int] = field(default_factory=dict)  # item id -> row
    _texts: list[str] = field(default_factory=list)  # waiting to be signed, a batch at a time
    _rows: list[np.ndarray] = field(default_factory=list)
    _signatures: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_PERM), dtype=np.uint32))
    _sorted_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    _key_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
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
        self.ids[item_id] = len(self.ids)
        self._texts.append(text)
        if len(self._texts) >= 1000:
            self._sign()

    def add_signed(self, item_id: int, exact: bytes, normalised: bytes, signature: np.ndarray) -> None:
        """Index an item whose prompt digests and signature were computed already (a training item moved to
        the evaluation side, from ``PendingProbes.rows_of``)."""
        if self._frozen:
            raise RuntimeError("the evaluation index is frozen")
        if item_id in self.ids:
            return
        self._sign()  # the texts waiting come first: rows stay in the order of ``ids``
        self.exact.setdefault(exact, item_id)
        self.normalised.setdefault(normalised, item_id)
        self.ids[item_id] = len(self.ids)
        self._rows.append(np.asarray(signature, dtype=np.uint32).reshape(1, NUM_PERM))

    def _sign(self) -> None:
        if self._texts:
            self._rows.append(signatures(self._texts))
        self._texts = []

    def freeze(self) -> None:
        self._sign()
        self._signatures = np.vstack(self._rows) if self._rows else np.zeros((0, NUM_PERM), dtype=np.uint32)
        keys = _bands(self._signatures).ravel()  # row-major: key k belongs to signature k // BANDS
        order = np.argsort(keys, kind="stable")
        self._sorted_keys, self._key_rows = keys[order], order // BANDS
        self._rows = []
        self._item_of = np.fromiter(self.ids, dtype=np.int64, count=len(self.ids))  # ids are kept in row order
        self._frozen = True

    def probe(self, item_id: int, messages: list[dict[str, Any]], text: str | None = None) -> Leak | None:
        """The closest leak of a training item, or None; ``text`` is its normalised prompt if known."""
        text = text if text is not None else normalise(prompt_text(messages))
        found = self.probe_many(
            np.array([item_id]),
            [bytes.fromhex(raw_digest(messages))],
            [bytes.fromhex(digest(text))],
            signatures([text]),
        )
        return found[0] if found else None

    def probe_many(
        self, item_ids: np.ndarray, exact: list[bytes], normalised: list[bytes], signed: np.ndarray
    ) -> list[Leak]:
        """The closest leak of each of many training items (their ids, prompt digests and signatures), in
        their order; the band keys of all of them are looked up in two numpy calls."""
        if not self._frozen:
            self.freeze()
        leaks: list[Leak | None] = [None] * len(item_ids)
        if len(self._signatures):
            keys = _bands(signed)
            low = np.searchsorted(self._sorted_keys, keys, "left")
            high = np.searchsorted(self._sorted_keys, keys, "right")
            for row in np.flatnonzero((high > low).any(axis=1)).tolist():
                leaks[row] = self._near(int(item_ids[row]), signed[row], low[row], high[row])
        for row, (raw, text) in enumerate(zip(exact, normalised, strict=True)):
            if (same := self.exact.get(raw)) is not None:
                leaks[row] = Leak("exact", int(item_ids[row]), same, 1.0)
            elif (same := self.normalised.get(text)) is not None:
                leaks[row] = Leak("normalised", int(item_ids[row]), same, 1.0)
        return [leak for leak in leaks if leak is not None]

    def _near(self, item_id: int, mine: np.ndarray, low: np.ndarray, high: np.ndarray) -> Leak | None:
        hits = high > low
        found = np.unique(np.concatenate([self._key_rows[a:b] for a, b in zip(low[hits], high[hits], strict=True)]))
        similarity = (self._signatures[found] == mine).mean(axis=1)
        best = int(np.argmax(similarity))
        if similarity[best] < self.threshold:
            return None
        return Leak("near", item_id, int(self._item_of[found[best]]), float(similarity[best]))


class LeakProbe(Protocol):
    """A second leak check beside MinHash's (the paraphrase check): its evaluation side, probed by item ids."""

    def probe(self, item_ids: np.ndarray) -> list[Leak]:
        """The leaks of those training items that leak, in the order of ``item_ids``."""
        ...

    def of(self, items: Collection[int]) -> "LeakProbe":
        """The same check with only ``items`` (training items moved to the evaluation side) on that side."""
        ...


_PENDING = np.dtype([("item", "<i8"), ("exact", "V16"), ("normalised", "V16"), ("signature", "<u4", (NUM_PERM,))])


class PendingProbes:
    """Training items waiting for the leak check until the evaluation side is complete: their ids, prompt
    digests and signatures, written to a scratch file (~300 bytes an item) so memory stays flat."""

    batch = 1000

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.stream: IO[bytes] | None = path.open("wb")
        self.waiting: list[tuple[int, bytes, bytes, str]] = []

    def add(self, item_id: int, messages: list[dict[str, Any]], text: str) -> None:
        """A training item; ``text`` is its normalised prompt."""
        self.waiting.append((item_id, bytes.fromhex(raw_digest(messages)), bytes.fromhex(digest(text)), text))
        if len(self.waiting) >= self.batch:
            self._write()

    def _write(self) -> None:
        if not self.waiting or self.stream is None:
            return
        rows = np.empty(len(self.waiting), dtype=_PENDING)
        rows["item"] = [w[0] for w in self.waiting]
        rows["exact"] = [w[1] for w in self.waiting]
        rows["normalised"] = [w[2] for w in self.waiting]
        rows["signature"] = signatures([w[3] for w in self.waiting])
        self.stream.write(rows.tobytes())
        self.waiting = []

    def _chunks(self, skip: Collection[int] = ()) -> Iterator[np.ndarray]:
        """The items added, a batch at a time, in the order they were added, without those in ``skip``."""
        self._write()
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        left_out = np.fromiter(skip, dtype=np.int64, count=len(skip))
        with self.path.open("rb") as stream:
            while chunk := stream.read(self.batch * _PENDING.itemsize):
                rows = np.frombuffer(chunk, dtype=_PENDING)
                if len(left_out):
                    rows = rows[~np.isin(rows["item"], left_out)]
                if len(rows):
                    yield rows

    def leaks(self, index: EvalIndex, skip: Collection[int] = (), also: LeakProbe | None = None) -> Iterator[Leak]:
        """Every leak among the items added (but those in ``skip``), in the order they were added; ``also``
        probes the items MinHash does not find."""
        for rows in self._chunks(skip):
            found = index.probe_many(
                rows["item"],
                [bytes(v) for v in rows["exact"]],
                [bytes(v) for v in rows["normalised"]],
                rows["signature"],
            )
            if also is not None:
                rest = rows["item"][~np.isin(rows["item"], [leak.train_item for leak in found])]
                by_item = {leak.train_item: leak for leak in (*found, *also.probe(rest))}
                found = [by_item[item] for item in rows["item"].tolist() if item in by_item]
            yield from found

    def index_of(self, items: Collection[int], threshold: float) -> EvalIndex:
        """A frozen evaluation index of some of the items added (those moved to the evaluation side)."""
        index = EvalIndex(threshold=threshold)
        wanted = np.fromiter(items, dtype=np.int64, count=len(items))
        for rows in self._chunks():
            for row in rows[np.isin(rows["item"], wanted)]:
                index.add_signed(int(row["item"]), bytes(row["exact"]), bytes(row["normalised"]), row["signature"])
        index.freeze()
        return index


def leak_closure(
    pending: PendingProbes, index: EvalIndex, *, eval_anyway: Collection[int] = (), also: LeakProbe | None = None
) -> list[Leak]:
    """The leaks of the items waiting in ``pending`` when every item that leaks moves to the evaluation side:
    an item moved there is on the evaluation side for the items still waiting too, so the check is repeated
    against the items moved last until nothing moves. ``eval_anyway`` are waiting items that end on the
    evaluation side whether they leak or not (moved there by an earlier release): those that no leak moves
    join it once nothing else moves, and the check goes on against them. The result depends on the items and
    the index only (the order of the rounds is fixed), so the same data always gives the same split; no item
    left waiting is a near or exact copy of one on the evaluation side. ``also`` (the paraphrase check) takes
    part in every round: an item either check moves is on the evaluation side for both."""
    found: list[Leak] = []
    placed: set[int] = set()
    against, also_against = index, also
    while True:
        moved = list(pending.leaks(against, skip=placed, also=also_against))
        found += moved
        newly = {leak.train_item for leak in moved}
        if not newly:
            newly = set(eval_anyway) - placed
            if not newly:
                return found
        placed |= newly
        against = pending.index_of(newly, index.threshold)
        also_against = also.of(newly) if also is not None else None

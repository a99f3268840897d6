"""The leakage index on its own: near duplicates are found, unrelated prompts are not."""

import random
import re
import string
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from releases.splits import (
    EvalIndex,
    PendingProbes,
    in_eval_by_hash,
    normalise,
    prompt_text,
    shingle_hashes,
    signatures,
)

WORDS = ("fee", "rate", "loan", "card", "branch", "limit", "overdraft", "statement", "transfer", "deposit", "bond")


def prompt(seed: int, words: int = 80) -> list[dict[str, str]]:
    return [{"role": "user", "content": " ".join(random.Random(seed).choices(WORDS, k=words))}]


def test_it_finds_a_one_word_edit_and_nothing_unrelated() -> None:
    index = EvalIndex(threshold=0.8)
    for seed in range(500):
        index.add(seed, prompt(seed))
    index.freeze()
    edited = prompt(42)[0]["content"].split()
    edited[40] = "mortgage"
    leak = index.probe(9999, [{"role": "user", "content": " ".join(edited)}])
    assert leak is not None
    assert (leak.kind, leak.eval_item) == ("near", 42)
    assert leak.similarity >= 0.8
    assert all(index.probe(10_000 + s, prompt(10_000 + s)) is None for s in range(200))


def test_it_names_exact_and_normalised_copies_as_such() -> None:
    index = EvalIndex(threshold=0.8)
    index.add(1, [{"role": "user", "content": "How do I freeze my card?"}])
    index.freeze()
    exact = index.probe(2, [{"role": "user", "content": "How do I freeze my card?"}])
    normalised = index.probe(3, [{"role": "user", "content": "how do I  FREEZE my card"}])
    assert exact is not None
    assert normalised is not None
    assert (exact.kind, normalised.kind) == ("exact", "normalised")


def test_it_takes_no_more_items_into_a_frozen_index() -> None:
    index = EvalIndex(threshold=0.8)
    index.freeze()
    assert index.probe(1, prompt(1)) is None
    with pytest.raises(RuntimeError):
        index.add(2, prompt(2))


def test_it_keeps_the_split_position_stable_and_following_the_fraction() -> None:
    groups = [f"{n:032x}" for n in range(4000)]
    share = sum(in_eval_by_hash(g, 0.1) for g in groups) / len(groups)
    assert 0.08 < share < 0.12
    assert [in_eval_by_hash(g, 0.1) for g in groups[:50]] == [in_eval_by_hash(g, 0.1) for g in groups[:50]]
    assert all(in_eval_by_hash(g, 0.2) for g in groups if in_eval_by_hash(g, 0.1)), "a larger share only adds"


def _regex_normalise(text: str) -> str:
    return re.sub(r"\W+", " ", unicodedata.normalize("NFKC", text).lower()).strip()


def test_it_normalises_through_the_ascii_shortcut_exactly_as_the_regex_does() -> None:
    rng = random.Random(3)
    alphabet = string.printable + "\x00\x01\x1c\x1f\x7f__"
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 80))) for _ in range(5000)]
    texts += ["  Ünïcode: ﬁne ＦＵＬＬ width!  ", "tab\tand\nnewline", "__init__ x_y", ""]
    assert [normalise(t) for t in texts] == [_regex_normalise(t) for t in texts]


def _reference_shingle_hash(shingle: bytes) -> int:
    """The same polynomial (in the inverse of P, modulo 2**64) and finaliser, one byte at a time."""
    mask = 2**64 - 1
    q = pow(0x9E3779B97F4A7C15, -1, 2**64)
    h = sum(b * pow(q, i, 2**64) for i, b in enumerate(shingle)) & mask
    h ^= (len(shingle) * q) & mask
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB93FE53D86A3):
        h ^= h >> 33
        h = (h * multiplier) & mask
    return h ^ (h >> 33)


@pytest.mark.parametrize("text", ["a b c d e", "one two", "single", "", "é ü ß x y", "fee rate fee rate fee"])
def test_it_hashes_each_shingle_as_its_word_three_gram(text: str) -> None:
    words = text.split()
    shingles = [" ".join(words[i : i + 3]).encode() for i in range(len(words) - 2)] or [text.encode()]
    assert shingle_hashes([text])[0].tolist() == [_reference_shingle_hash(s) for s in shingles]


def test_it_hashes_a_shingle_the_same_wherever_it_stands() -> None:
    first = shingle_hashes(["loan card fee rate limit"])[0]
    second = shingle_hashes(["bond deposit loan card fee"])[0]
    assert first[0] == second[2], "'loan card fee' at offset 0 and at offset 13"


def test_it_signs_texts_together_as_it_would_sign_them_alone() -> None:
    """Many texts are hashed in one prefix sum: no shingle may cross from one text into the next, and short
    or empty texts (one shingle each) keep their place among the others."""
    rng = random.Random(11)
    vocab = (*WORDS, "é", "ünïcode", "x")
    texts = [" ".join(rng.choices(vocab, k=rng.choice((0, 1, 2, 3, 4, 9, 60)))) for _ in range(400)]
    together = signatures(texts)
    alone = np.stack([signatures([text])[0] for text in texts])
    assert (together == alone).all()
    reference = [sorted(_reference_shingle_hash(s) for s in _shingles(text)) for text in texts[:40]]
    assert [sorted(shingle_hashes([text])[0].tolist()) for text in texts[:40]] == reference


def _shingles(text: str) -> list[bytes]:
    words = text.split()
    return [" ".join(words[i : i + 3]).encode() for i in range(len(words) - 2)] or [text.encode()]


def test_it_estimates_the_jaccard_similarity_of_the_shingle_sets_with_signatures() -> None:
    rng = random.Random(5)
    errors = []
    for _ in range(200):
        base = rng.choices(WORDS + tuple(string.ascii_lowercase), k=120)
        other = [w if rng.random() > rng.choice((0.02, 0.1, 0.3)) else "edit" for w in base]
        a, b = " ".join(base), " ".join(other)
        sets = [{tuple(words[i : i + 3]) for i in range(len(words) - 2)} for words in (base, other)]
        truth = len(sets[0] & sets[1]) / len(sets[0] | sets[1])
        sig = signatures([a, b])
        errors.append(float(np.mean(sig[0] == sig[1])) - truth)
    assert abs(float(np.mean(errors))) < 0.02, "unbiased"
    assert float(np.std(errors)) < 0.08, "about sqrt(J(1-J)/64)"
    assert (signatures(["a b c d"]) == signatures(["a b c d"])).all(), "deterministic"


def test_it_checks_waiting_training_items_in_order_once_the_index_is_complete(tmp_path: Path) -> None:
    index = EvalIndex(threshold=0.8)
    pending = PendingProbes(tmp_path / "train.bin")
    pending.batch = 7  # several batches on disk, and a part-filled one
    edited = prompt(3)[0]["content"].split()
    edited[10] = "mortgage"
    trains = {100 + s: prompt(100 + s) for s in range(30)}
    trains[105] = prompt(1)  # an exact copy of an evaluation prompt
    trains[117] = [{"role": "user", "content": " ".join(edited)}]  # a near duplicate of one
    trains[129] = [{"role": "user", "content": prompt(2)[0]["content"].upper()}]  # the same once normalised
    for item_id, messages in trains.items():
        pending.add(item_id, messages, normalise(prompt_text(messages)))
    for seed in range(10):  # the evaluation side is complete only after the training items were seen
        index.add(seed, prompt(seed))
    index.freeze()
    leaks = list(pending.leaks(index))
    assert [(x.train_item, x.kind, x.eval_item) for x in leaks] == [
        (105, "exact", 1),
        (117, "near", 3),
        (129, "normalised", 2),
    ]
    assert leaks[1].similarity >= 0.8

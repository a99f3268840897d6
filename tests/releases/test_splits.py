"""The leakage index on its own: near duplicates are found, unrelated prompts are not."""

import random

import pytest

from releases.splits import EvalIndex, in_eval_by_hash

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


def test_exact_and_normalised_copies_are_named_as_such() -> None:
    index = EvalIndex(threshold=0.8)
    index.add(1, [{"role": "user", "content": "How do I freeze my card?"}])
    index.freeze()
    exact = index.probe(2, [{"role": "user", "content": "How do I freeze my card?"}])
    normalised = index.probe(3, [{"role": "user", "content": "how do I  FREEZE my card"}])
    assert exact is not None
    assert normalised is not None
    assert (exact.kind, normalised.kind) == ("exact", "normalised")


def test_a_frozen_index_takes_no_more_items() -> None:
    index = EvalIndex(threshold=0.8)
    index.freeze()
    assert index.probe(1, prompt(1)) is None
    with pytest.raises(RuntimeError):
        index.add(2, prompt(2))


def test_the_split_position_is_stable_and_follows_the_fraction() -> None:
    groups = [f"{n:032x}" for n in range(4000)]
    share = sum(in_eval_by_hash(g, 0.1) for g in groups) / len(groups)
    assert 0.08 < share < 0.12
    assert [in_eval_by_hash(g, 0.1) for g in groups[:50]] == [in_eval_by_hash(g, 0.1) for g in groups[:50]]
    assert all(in_eval_by_hash(g, 0.2) for g in groups if in_eval_by_hash(g, 0.1)), "a larger share only adds"

"""Pair policies on their own (no database): which two answers of a prompt the experts are shown."""

import itertools
import random

import pytest

from evaluation.pairs import BEST_VS_WORST, LEAST_SURE, POLICIES, RANDOM, Scored, choose_pairs


def _answers(scores: list[float | None]) -> list[Scored]:
    return [Scored(id=n + 1, text=f"answer {n + 1}", score=s) for n, s in enumerate(scores)]


def test_it_takes_the_smallest_margins_first_where_the_reward_model_is_least_sure() -> None:
    answers = _answers([3.0, 0.2, 0.25, -4.0, 1.0])
    pairs = choose_pairs(answers, 3, LEAST_SURE, seed=1)
    assert [(p.a, p.b) for p in pairs] == [(2, 3), (3, 5), (2, 5)]
    every = sorted(abs((x.score or 0) - (y.score or 0)) for x, y in itertools.combinations(answers, 2))
    assert [round(p.margin or 0, 6) for p in pairs] == [round(m, 6) for m in every[:3]] == [0.05, 0.75, 0.8]
    assert (pairs[0].score_a, pairs[0].score_b) == (0.2, 0.25)


def test_it_pairs_the_best_with_the_worst_first() -> None:
    pairs = choose_pairs(_answers([3.0, 0.2, 0.25, -4.0]), 2, BEST_VS_WORST, seed=1)
    assert (pairs[0].a, pairs[0].b) == (1, 4)
    assert (pairs[0].score_a, pairs[0].score_b) == (3.0, -4.0)
    assert (pairs[1].a, pairs[1].b) == (3, 2)


def test_it_draws_the_same_random_pairs_for_the_same_seed_in_any_order() -> None:
    answers = _answers([None] * 6)
    first = choose_pairs(answers, 4, RANDOM, seed="round-1-prompt-7")
    shuffled = answers[:]
    random.Random(3).shuffle(shuffled)
    again = choose_pairs(shuffled, 4, RANDOM, seed="round-1-prompt-7")
    assert {frozenset((p.a, p.b)) for p in first} == {frozenset((p.a, p.b)) for p in again}
    assert len({frozenset((p.a, p.b)) for p in first}) == 4
    assert all(p.margin is None for p in first)


@pytest.mark.parametrize("policy", POLICIES)
def test_it_never_pairs_two_answers_of_the_same_text(policy: str) -> None:
    answers = [Scored(1, "Yes.", 1.0), Scored(2, " Yes. ", 1.0), Scored(3, "No.", 0.0), Scored(4, "No.", 0.1)]
    pairs = choose_pairs(answers, 6, policy, seed=2)
    texts = {1: "Yes.", 2: "Yes.", 3: "No.", 4: "No."}
    assert pairs, policy
    assert all(texts[p.a] != texts[p.b] for p in pairs)
    assert len({frozenset((texts[p.a], texts[p.b])) for p in pairs}) == len(pairs)


def test_it_leaves_out_unscored_answers_from_the_scored_policies() -> None:
    pairs = choose_pairs(_answers([1.0, None, 2.0, None]), 6, LEAST_SURE, seed=1)
    assert [(p.a, p.b) for p in pairs] == [(1, 3)]

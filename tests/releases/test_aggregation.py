"""Aggregation policies on hand-made judgement sets with known outcomes, ties and N-way expansions."""

import pytest

from releases.aggregation import Pair, Vote, aggregate_pairs, expand_pairs, gold_weight


def pairwise(*winners: object, strength: int = 2) -> list[Vote]:
    return [Vote(n, {"winner": w, "strength": strength if w in (0, 1) else None}) for n, w in enumerate(winners)]


def rows(votes: list[Vote], candidates: int = 2, policy: str = "majority", **options: object) -> list[Pair]:
    return expand_pairs(aggregate_pairs(votes, candidates, policy), candidates, **options)  # type: ignore[arg-type]


def test_it_takes_the_majority_and_reports_its_share() -> None:
    [pair] = rows(pairwise(1, 1, 0))
    assert (pair.chosen, pair.rejected) == (1, 0)
    assert pair.agreement == pytest.approx(2 / 3)
    assert pair.margin == 2


def test_it_drops_an_even_split_between_the_two_sides() -> None:
    assert rows(pairwise(0, 1)) == []


def test_it_keeps_only_full_agreement_under_unanimity() -> None:
    assert rows(pairwise(0, 0, 1), policy="unanimity") == []
    [pair] = rows(pairwise(0, 0, 0), policy="unanimity")
    assert (pair.chosen, pair.agreement) == (0, 1.0)


def test_it_lets_gold_weights_overturn_a_headcount() -> None:
    votes = [Vote(1, {"winner": 0}, 0.2), Vote(2, {"winner": 0}, 0.2), Vote(3, {"winner": 1}, 0.9)]
    assert rows([Vote(v.annotator, v.result) for v in votes])[0].chosen == 0  # "majority" weighs everyone 1
    [weighted] = expand_pairs(aggregate_pairs(votes, 2, "gold_weighted"), 2)
    assert weighted.chosen == 1
    assert weighted.agreement == pytest.approx(0.9 / 1.3)


def test_it_smooths_the_gold_weight_towards_one_half() -> None:
    assert gold_weight(0, 0) == 0.5
    assert gold_weight(8, 8) == pytest.approx(0.9)
    assert gold_weight(8, 0) == pytest.approx(0.1)


def test_it_drops_ties_or_keeps_them_in_both_directions() -> None:
    assert rows(pairwise("tie", "tie", 0)) == []
    kept = rows(pairwise("tie", "tie", 0), ties="keep")
    assert [(p.chosen, p.rejected, p.tie, p.margin) for p in kept] == [(0, 1, True, 0.0), (1, 0, True, 0.0)]


def test_it_counts_both_bad_as_no_vote_at_all() -> None:
    [pair] = rows(pairwise("both_bad", "both_bad", 1))
    assert (pair.chosen, pair.agreement) == (1, 1.0)


def test_it_filters_pairs_by_minimum_agreement_and_strength() -> None:
    assert rows(pairwise(0, 0, 1), min_agreement=0.7) == []
    assert rows(pairwise(0, 0, strength=1), min_strength=2) == []
    assert len(rows(pairwise(0, 0, strength=3), min_strength=2)) == 1


RANKED = [
    Vote(1, {"ranking": [[2], [0], [1]]}),
    Vote(2, {"ranking": [[2], [0], [1]]}),
    Vote(3, {"ranking": [[0], [2], [1]]}),
]


def test_it_expands_a_ranking_into_all_pairs() -> None:
    pairs = {(p.chosen, p.rejected) for p in rows(RANKED, 3)}
    assert pairs == {(2, 0), (2, 1), (0, 1)}


def test_it_follows_the_aggregated_order_for_best_versus_rest_and_adjacent() -> None:
    assert [(p.chosen, p.rejected) for p in rows(RANKED, 3, ranking_pairs="best_vs_rest")] == [(2, 0), (2, 1)]
    assert [(p.chosen, p.rejected) for p in rows(RANKED, 3, ranking_pairs="adjacent")] == [(2, 0), (0, 1)]


def test_it_makes_tied_ranks_ties_in_the_expansion() -> None:
    votes = [Vote(1, {"ranking": [[0, 1], [2]]}), Vote(2, {"ranking": [[0, 1], [2]]})]
    pairs = rows(votes, 3, ties="keep")
    assert {(p.chosen, p.rejected, p.tie) for p in pairs} == {(0, 2, False), (1, 2, False), (0, 1, True), (1, 0, True)}


def test_it_gives_a_set_per_criterion_for_per_criterion_judgements() -> None:
    votes = [
        Vote(1, {"criteria": {"accuracy": 0, "tone": 1}, "overall": 0}),
        Vote(2, {"criteria": {"accuracy": 0, "tone": 1}, "overall": 0}),
    ]
    pairs = rows(votes)
    assert [(p.criterion, p.chosen) for p in pairs] == [("overall", 0), ("accuracy", 0), ("tone", 1)]

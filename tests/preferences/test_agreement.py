"""The agreement statistics against published worked examples, plus the sparse and degenerate cases
that must come back as None rather than raise."""

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import friedmanchisquare

from preferences.agreement import (
    AgreementScore,
    PairKappa,
    PositionBias,
    WinRate,
    agreement_with_consensus,
    cohens_kappa_pairs,
    kendalls_w,
    krippendorff_alpha,
    position_bias,
    win_rates,
)

_: None = None  # a missing rating, kept one character wide so the tables line up as published


def _by_unit(rows: Mapping[str, Sequence[int | None]]) -> dict[int, dict[str, int | None]]:
    """Turn one row per observer (a value per unit, None = not rated) into item -> observer -> value."""
    units = len(next(iter(rows.values())))
    return {unit: {observer: values[unit] for observer, values in rows.items()} for unit in range(units)}


# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability". Annenberg School for
# Communication, University of Pennsylvania, https://repository.upenn.edu/asc_papers/43 — section C:
# four observers, twelve units, values 1-5, missing data. The same table is in the `krippendorff`
# package's own tests (test_ordinal_metric, test_ratio_metric) and docstring.
KRIPPENDORFF_2011 = _by_unit(
    {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
        "C": [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
    }
)

# Wikipedia, "Krippendorff's alpha", section "A computational example": three coders, fifteen units.
# The article gives alpha_nominal = 0.691 and alpha_interval = 0.811; the `krippendorff` package's tests
# (test_nominal_metric_reliability_data, test_interval_metric) pin 0.691358 and 0.810845.
WIKIPEDIA_ALPHA = _by_unit(
    {
        "c1": [_, _, _, _, _, 3, 4, 1, 2, 1, 1, 3, 3, _, 3],
        "c2": [1, _, 2, 1, 3, 3, 4, 3, _, _, _, _, _, _, _],
        "c3": [_, _, 2, 1, 3, 4, 4, _, 2, 1, 1, 3, 3, _, 4],
    }
)


def test_it_reproduces_krippendorff_2011_nominal_alpha() -> None:
    # The paper reports 0.743. From its coincidence matrix: n = 40 pairable values, value totals
    # 9, 13, 10, 5, 3 (sum of squares 384) and off-diagonal coincidences summing to 8, so
    # alpha = 1 - (n - 1) * 8 / (n^2 - 384) = 1 - 312 / 1216.
    alpha = krippendorff_alpha(KRIPPENDORFF_2011, "nominal")
    assert alpha is not None
    assert round(alpha, 3) == 0.743
    assert alpha == pytest.approx(1 - 312 / 1216)


def test_it_reproduces_krippendorff_2011_ordinal_alpha() -> None:
    # Paper, same data: alpha_ordinal = 0.815 (also the package's test_ordinal_metric).
    alpha = krippendorff_alpha(KRIPPENDORFF_2011, "ordinal")
    assert alpha is not None
    assert round(alpha, 3) == 0.815


def test_it_reproduces_krippendorff_2011_ordinal_alpha_from_ordered_labels() -> None:
    # The package's test_string_labels_ordinal_with_domain: the same table with words, ordered by
    # value_order, gives the same 0.815; ordinal alpha depends only on the order of the values.
    words = ["very low", "low", "mid", "high", "very high"]
    labelled = {
        unit: {observer: None if value is None else words[value - 1] for observer, value in by_observer.items()}
        for unit, by_observer in KRIPPENDORFF_2011.items()
    }
    alpha = krippendorff_alpha(labelled, "ordinal", value_order=words)
    assert alpha is not None
    assert round(alpha, 3) == 0.815
    assert alpha == pytest.approx(krippendorff_alpha(KRIPPENDORFF_2011, "ordinal"))


def test_it_reproduces_krippendorff_2011_interval_alpha() -> None:
    # Paper, same data: alpha_interval = 0.849. The package's tests do not pin this one.
    alpha = krippendorff_alpha(KRIPPENDORFF_2011, "interval")
    assert alpha is not None
    assert round(alpha, 3) == 0.849


def test_it_reproduces_the_wikipedia_alpha_example() -> None:
    nominal = krippendorff_alpha(WIKIPEDIA_ALPHA, "nominal")
    interval = krippendorff_alpha(WIKIPEDIA_ALPHA, "interval")
    assert nominal is not None
    assert interval is not None
    assert round(nominal, 6) == 0.691358
    assert round(interval, 6) == 0.810845


def test_it_gives_the_same_nominal_alpha_for_string_labels() -> None:
    names = {1: "A wins", 2: "B wins", 3: "tie", 4: "both bad", 5: "skip"}
    labelled = {
        unit: {observer: None if value is None else names[value] for observer, value in by_observer.items()}
        for unit, by_observer in KRIPPENDORFF_2011.items()
    }
    assert krippendorff_alpha(labelled, "nominal") == pytest.approx(1 - 312 / 1216)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize(
    "ratings",
    [
        {},
        {"i1": {}, "i2": {"a": None}},
        {"i1": {"a": 1, "b": 2}},  # one pairable unit only
        {"i1": {"a": 1, "b": 2}, "i2": {"a": 1}, "i3": {"c": 2}},  # the others have a single rating
        {"i1": {"a": 3, "b": 3}, "i2": {"a": 3, "b": 3, "c": 3}, "i3": {"a": 5}},  # no variation when paired
    ],
    ids=["empty", "no-ratings", "one-pairable-unit", "singletons", "no-variation"],
)
def test_it_returns_none_for_sparse_or_degenerate_alpha(
    ratings: dict[str, dict[str, int | None]], level: Literal["nominal", "ordinal", "interval"]
) -> None:
    assert krippendorff_alpha(ratings, level) is None


def test_it_returns_none_when_ordered_labels_never_vary() -> None:
    ratings = {"i1": {"a": "good", "b": "good"}, "i2": {"a": "good", "b": "good"}}
    assert krippendorff_alpha(ratings, "ordinal", value_order=["bad", "ok", "good"]) is None


def test_it_gives_alpha_one_for_perfect_agreement() -> None:
    ratings = {"i1": {"a": 1, "b": 1}, "i2": {"a": 2, "b": 2, "c": 2}, "i3": {"b": 3, "c": 3}}
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha(ratings, level) == pytest.approx(1.0)


def test_it_rejects_labels_alpha_cannot_order() -> None:
    with pytest.raises(TypeError, match="must be numbers"):
        krippendorff_alpha({"i1": {"a": "low", "b": "high"}, "i2": {"a": "low", "b": "low"}}, "ordinal")
    with pytest.raises(ValueError, match="not in value_order"):
        krippendorff_alpha({"i1": {"a": "low", "b": "huge"}}, "ordinal", value_order=["low", "high"])
    with pytest.raises(ValueError, match="more than once"):
        krippendorff_alpha({}, "interval", value_order=["low", "low"])
    with pytest.raises(ValueError, match="level must be"):
        krippendorff_alpha({}, "ratio")  # type: ignore[arg-type]


@settings(database=None, max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 20),
        st.dictionaries(st.sampled_from("abcd"), st.none() | st.integers(0, 3), max_size=4),
        max_size=12,
    )
)
def test_it_never_raises_for_sparse_alpha(ratings: dict[int, dict[str, int | None]]) -> None:
    for level in ("nominal", "ordinal", "interval"):
        alpha = krippendorff_alpha(ratings, level)
        assert alpha is None or (math.isfinite(alpha) and alpha <= 1.0 + 1e-12)


# Wikipedia, "Cohen's kappa", section "Simple example": 50 grant proposals, readers A and B;
# both yes 20, A yes / B no 5, A no / B yes 10, both no 15. p_o = 35/50 = 0.7,
# p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
def _grant_proposals() -> dict[str, dict[str, str]]:
    cells = [("yes", "yes", 20), ("yes", "no", 5), ("no", "yes", 10), ("no", "no", 15)]
    pairs = [(a, b) for a, b, count in cells for _ in range(count)]
    return {f"proposal-{i}": {"A": a, "B": b} for i, (a, b) in enumerate(pairs)}


def test_it_reproduces_the_wikipedia_cohens_kappa_example() -> None:
    [pair] = cohens_kappa_pairs(_grant_proposals())
    assert (pair.rater_a, pair.rater_b, pair.shared_units) == ("A", "B", 50)
    assert pair.kappa == pytest.approx(0.4)


def test_it_pairs_only_raters_with_enough_shared_items() -> None:
    ratings = _grant_proposals()
    ratings["proposal-0"]["C"] = "yes"
    ratings["proposal-1"]["C"] = "yes"
    ratings["proposal-30"]["D"] = "no"
    pairs = cohens_kappa_pairs(ratings, min_shared=2)
    assert [(p.rater_a, p.rater_b, p.shared_units) for p in pairs] == [("A", "B", 50), ("A", "C", 2), ("B", "C", 2)]
    # With min_shared=1 D joins A and B; C and D share no item, so they never form a pair.
    pairs = cohens_kappa_pairs(ratings, min_shared=1)
    assert [(p.rater_a, p.rater_b, p.shared_units) for p in pairs] == [
        ("A", "B", 50),
        ("A", "C", 2),
        ("A", "D", 1),
        ("B", "C", 2),
        ("B", "D", 1),
    ]


def test_it_returns_none_kappa_when_both_raters_are_constant_on_the_same_label() -> None:
    ratings = {f"i{i}": {"a": "A wins", "b": "A wins"} for i in range(5)}
    assert cohens_kappa_pairs(ratings) == [PairKappa("a", "b", 5, None)]


def test_it_gives_kappa_zero_when_raters_are_constant_on_different_labels() -> None:
    # p_o = 0 and p_e = 0, so kappa = (0 - 0) / (1 - 0) = 0: defined, and no better than chance.
    ratings = {f"i{i}": {"a": "A wins", "b": "B wins"} for i in range(5)}
    assert cohens_kappa_pairs(ratings) == [PairKappa("a", "b", 5, 0.0)]


def test_it_rejects_a_non_positive_min_shared() -> None:
    with pytest.raises(ValueError, match="min_shared"):
        cohens_kappa_pairs({}, min_shared=0)


# Siegel, S. & Castellan, N. J. (1988), "Nonparametric Statistics for the Behavioral Sciences", 2nd ed.:
# three raters rank eight attributes of a travel destination. The data and W = 0.6560847 are as
# reproduced in the R package DescTools' KendallW documentation ("example from Siegel and Castellan
# (1988)"). By hand: rank sums 10, 18, 14, 6, 7, 16, 13, 24, S = 248, W = 12 * 248 / (9 * 504) = 124/189.
_ATTRIBUTES = ["airfare", "climate", "season", "people", "program", "publicity", "present", "interest"]
SIEGEL_CASTELLAN_TRAVEL = [
    dict(zip(_ATTRIBUTES, ranks, strict=True))
    for ranks in ([5, 6, 7, 1, 2, 4, 3, 8], [1, 7, 6, 2, 3, 5, 4, 8], [4, 5, 1, 3, 2, 7, 6, 8])
]

# The "anxiety" ratings (20 subjects, 3 raters, scores 1-6 with many ties) shipped with the R package irr
# and used in DescTools' KendallW documentation, which prints W = 0.5396569 with the tie correction and
# Kendall chi-squared = 30.76 (= m (n - 1) W) on 19 df.
ANXIETY = [
    dict(enumerate(scores))
    for scores in (
        [3, 3, 3, 4, 5, 5, 2, 3, 5, 2, 2, 6, 1, 5, 2, 2, 1, 2, 4, 3],
        [3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4],
        [2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2],
    )
]


def test_it_reproduces_the_siegel_castellan_kendalls_w_example() -> None:
    w = kendalls_w(SIEGEL_CASTELLAN_TRAVEL)
    assert w is not None
    assert round(w, 7) == 0.6560847
    assert w == pytest.approx(124 / 189)


def test_it_reproduces_the_tie_corrected_kendalls_w_of_the_anxiety_data() -> None:
    w = kendalls_w(ANXIETY)
    assert w is not None
    assert round(w, 7) == 0.5396569
    assert round(3 * 19 * w, 2) == 30.76


def test_it_matches_scipys_tie_corrected_friedman_statistic() -> None:
    # Independent check of the tie correction: scipy's Friedman chi-square (tie-corrected) equals
    # m (n - 1) W, so W = chi2 / (m (n - 1)).
    columns = list(zip(*(list(r.values()) for r in ANXIETY), strict=True))
    chi2 = friedmanchisquare(*columns).statistic
    assert kendalls_w(ANXIETY) == pytest.approx(chi2 / (3 * 19))


def _score_tables(m: int, n: int) -> st.SearchStrategy[list[list[int]]]:
    """Return a strategy for m raters' scores of n objects, small integers so that ties are common."""
    return st.lists(st.lists(st.integers(0, 3), min_size=n, max_size=n), min_size=m, max_size=m)


@settings(database=None, max_examples=60, deadline=None)
@given(st.integers(2, 5).flatmap(lambda m: st.integers(3, 7).flatmap(lambda n: _score_tables(m, n))))
def test_it_always_agrees_with_friedman(scores: list[list[int]]) -> None:
    m, n = len(scores), len(scores[0])
    rankings = [dict(enumerate(row)) for row in scores]
    w = kendalls_w(rankings)
    if all(len(set(row)) == 1 for row in scores):
        assert w is None  # every rater tied everything: 0/0
        return
    chi2 = friedmanchisquare(*zip(*scores, strict=True)).statistic
    assert w == pytest.approx(chi2 / (m * (n - 1)))


def test_it_gives_w_one_for_identical_rankings_and_zero_for_a_reversed_pair() -> None:
    ranking = {"a": 1, "b": 2, "c": 3, "d": 4}
    reversed_ranking = {"a": 4, "b": 3, "c": 2, "d": 1}
    assert kendalls_w([ranking, ranking, ranking]) == pytest.approx(1.0)
    # Every rank sum is n + 1 = 5, so S = 0.
    assert kendalls_w([ranking, reversed_ranking]) == pytest.approx(0.0)


def test_it_returns_none_for_too_few_raters_or_objects() -> None:
    assert kendalls_w([]) is None
    assert kendalls_w([{"a": 1, "b": 2}]) is None
    assert kendalls_w([{"a": 1}, {"a": 1}]) is None
    assert kendalls_w([{"a": 1, "b": 1}, {"a": 2, "b": 2}]) is None  # all tied: W is 0/0


def test_it_rejects_rankings_of_different_objects() -> None:
    with pytest.raises(ValueError, match="same objects"):
        kendalls_w([{"a": 1, "b": 2}, {"a": 1, "c": 2}])
    with_nan: list[dict[str, float]] = [{"a": 1, "b": math.nan}, {"a": 1, "b": 2}]
    with pytest.raises(ValueError, match="finite"):
        kendalls_w(with_nan)


def test_it_scores_raters_against_the_leave_one_out_consensus() -> None:
    # Hand-computed; no published example exists for this leave-one-out rate.
    ratings = {
        # a, b, c agree: each one's others agree with them.
        "i1": {"a": "A", "b": "A", "c": "A"},
        # c dissents: for a the others are {A, B} (tie, skipped), same for b; for c the others say A.
        "i2": {"a": "A", "b": "A", "c": "B"},
        # four raters: for d the others are {A, A, B} -> A, d said B; for c the others {A, A, B} -> A.
        "i3": {"a": "A", "b": "A", "c": "B", "d": "B"},
        # two ratings only: not counted.
        "i4": {"a": "B", "d": "A"},
    }
    scores = agreement_with_consensus(ratings)
    # i3 for a: others {A, B, B} -> B, a said A; same for b.
    assert scores == {
        "a": AgreementScore(units=2, agreed=1, rate=0.5),
        "b": AgreementScore(units=2, agreed=1, rate=0.5),
        "c": AgreementScore(units=3, agreed=1, rate=1 / 3),
        "d": AgreementScore(units=1, agreed=0, rate=0.0),
    }


def test_it_reports_raters_without_a_scorable_item() -> None:
    ratings: dict[str, dict[str, int | None]] = {"i1": {"a": 1, "b": 2, "c": 3}, "i2": {"d": 1, "a": None}}
    scores = agreement_with_consensus(ratings)
    assert scores["a"] == AgreementScore(units=0, agreed=0, rate=None)
    assert scores["d"] == AgreementScore(units=0, agreed=0, rate=None)


def test_it_tests_position_bias_with_the_exact_binomial_test() -> None:
    bias = position_bias(70, 100, 2)
    # Independent reference: with p = 1/2 the distribution is symmetric, so the two-sided exact p-value
    # is 2 * P(X >= 70) for X ~ Binomial(100, 1/2).
    exact = 2 * sum(math.comb(100, k) for k in range(70, 101)) / 2**100
    assert bias.share == pytest.approx(0.7)
    assert bias.expected == pytest.approx(0.5)
    assert bias.p_value == pytest.approx(exact, rel=1e-9)
    assert bias.p_value == pytest.approx(7.85e-05, abs=5e-8)


def test_it_finds_no_position_bias_at_the_expected_share() -> None:
    bias = position_bias(50, 100, 2)
    assert (bias.share, bias.expected) == (0.5, 0.5)
    assert bias.p_value == pytest.approx(1.0)


def test_it_uses_one_over_slots_as_the_expected_share() -> None:
    bias = position_bias(10, 30, 3)
    assert bias.expected == pytest.approx(1 / 3)
    assert bias.p_value == pytest.approx(1.0)


def test_it_leaves_position_bias_undefined_without_decisive_judgements() -> None:
    assert position_bias(0, 0, 2) == PositionBias(share=None, expected=0.5, p_value=None)


def test_it_rejects_impossible_position_counts() -> None:
    with pytest.raises(ValueError, match="slots"):
        position_bias(1, 2, 1)
    with pytest.raises(ValueError, match="first_slot_choices"):
        position_bias(3, 2, 2)
    with pytest.raises(ValueError, match="first_slot_choices"):
        position_bias(-1, 2, 2)


def test_it_counts_win_rates_with_ties_as_half() -> None:
    outcomes = [("x", "y", 1.0), ("x", "z", 0.5), ("y", "z", 0.0), ("z", "x", 1.0), ("x", "x", 1.0)]
    assert win_rates(outcomes) == {
        # x: beat y (1), tied z (0.5), lost to z (0) -> 1.5 of 3; the self-comparison is ignored.
        "x": WinRate(comparisons=3, wins=1.5, rate=0.5),
        # y: lost to x (0), lost to z (0) -> 0 of 2.
        "y": WinRate(comparisons=2, wins=0.0, rate=0.0),
        # z: tied x (0.5), beat y (1), beat x (1) -> 2.5 of 3.
        "z": WinRate(comparisons=3, wins=2.5, rate=2.5 / 3),
    }


def test_it_returns_no_win_rates_for_no_outcomes_and_rejects_bad_scores() -> None:
    assert win_rates([]) == {}
    with pytest.raises(ValueError, match="within"):
        win_rates([("x", "y", 2.0)])

"""Inter-annotator agreement for preference judgements: Krippendorff's alpha, pairwise Cohen's kappa,
Kendall's W, leave-one-out agreement with the consensus, position bias (with Wilson intervals) and win rates.

Pure Python (no Django), so it can be tested and reused without a database. The statistics come from
maintained libraries (``krippendorff``, ``statsmodels``, ``scipy``); this module only reshapes
judgements into the inputs those libraries expect and turns their undefined cases into ``None``.

Ratings are ``item -> annotator -> label``. A label of ``None`` counts as "no rating", so callers can
pass sparse tables without filtering them first.
"""

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Literal, TypeAlias, TypeVar

import krippendorff
import numpy as np

Unit: TypeAlias = Hashable  # an item id
Rater: TypeAlias = Hashable  # an annotator id
# The functions are generic in the id types because Mapping keys are invariant: a plain
# ``Mapping[Hashable, ...]`` parameter would reject a caller's ``dict[int, dict[str, str]]``.
UnitT = TypeVar("UnitT", bound=Hashable)
RaterT = TypeVar("RaterT", bound=Hashable)
KeyT = TypeVar("KeyT", bound=Hashable)
Ratings: TypeAlias = Mapping[UnitT, Mapping[RaterT, Hashable]]  # item -> annotator -> label or number

# Krippendorff's floor for tentative conclusions: an alpha below it is not relied on (the quality page draws
# it as the threshold of its agreement chart; a release's datasheet lists the criteria below it as gaps).
ALPHA_TENTATIVE = 0.667
Level: TypeAlias = Literal["nominal", "ordinal", "interval"]

_LEVELS: frozenset[str] = frozenset({"nominal", "ordinal", "interval"})


@dataclass(frozen=True, slots=True)
class PairKappa:
    """Cohen's kappa of two annotators over the items both of them judged."""

    rater_a: Rater
    rater_b: Rater
    shared_units: int
    kappa: float | None  # None when kappa is undefined (chance agreement is 1)


@dataclass(frozen=True, slots=True)
class AgreementScore:
    """How often one annotator's label matched the most frequent label of the other annotators."""

    units: int  # items with >= 3 ratings where the others had a single most frequent label
    agreed: int
    rate: float | None  # agreed / units; None when units == 0


@dataclass(frozen=True, slots=True)
class PositionBias:
    """Share of decisive choices that went to the first-displayed slot, against the share expected by chance."""

    share: float | None
    expected: float
    p_value: float | None  # two-sided exact binomial test of share == expected


@dataclass(frozen=True, slots=True)
class WinRate:
    """A model's pairwise record: comparisons it took part in and wins (ties count half)."""

    comparisons: int
    wins: float
    rate: float | None  # wins / comparisons; None when comparisons == 0


def _present(ratings: Ratings[UnitT, RaterT]) -> dict[UnitT, dict[RaterT, Hashable]]:
    """Return the ratings with ``None`` labels dropped (items left with no rating are kept, empty)."""
    return {
        unit: {rater: label for rater, label in by_rater.items() if label is not None}
        for unit, by_rater in ratings.items()
    }


def _raters_in_order(units: Iterable[Mapping[RaterT, object]]) -> list[RaterT]:
    """Return every annotator of the given items once, in order of first appearance (ids need not sort)."""
    return list(dict.fromkeys(rater for by_rater in units for rater in by_rater))


def _encoder(level: Level, value_order: Sequence[Hashable] | None) -> Callable[[Hashable], float]:
    """Return a function turning one label into the number ``krippendorff.alpha`` compares.

    Nominal labels become arbitrary integer codes (order carries no meaning there, and the package cannot
    mix strings with NaN in a float matrix). Ordinal and interval labels become their position in
    ``value_order`` when given, else they must already be real numbers.

    Raises:
        ValueError: ``value_order`` repeats a label, a label is missing from it, or a number is NaN.
        TypeError: an ordinal or interval label is not a number and no ``value_order`` was given.
    """
    if level == "nominal":
        codes: dict[Hashable, int] = {}

        def nominal(label: Hashable) -> float:
            return float(codes.setdefault(label, len(codes)))

        return nominal

    if value_order is not None:
        ranks = {label: float(position) for position, label in enumerate(value_order)}
        if len(ranks) != len(value_order):
            raise ValueError("value_order lists a label more than once")

        def ranked(label: Hashable) -> float:
            try:
                return ranks[label]
            except KeyError:
                raise ValueError(f"label {label!r} is not in value_order") from None

        return ranked

    def numeric(label: Hashable) -> float:
        if not isinstance(label, Real):
            raise TypeError(f"{level} ratings must be numbers unless value_order is given; got {label!r}")
        value = float(label)
        if math.isnan(value):
            raise ValueError("NaN is not a rating; use None for a missing rating")
        return value

    return numeric


def krippendorff_alpha(
    ratings: Ratings[UnitT, RaterT], level: Level, *, value_order: Sequence[Hashable] | None = None
) -> float | None:
    """Krippendorff's alpha of the ratings at the given level of measurement, via the ``krippendorff`` package.

    ``value_order`` lists the labels from lowest to highest; at the ordinal and interval levels labels are
    replaced by their position in it (so at the interval level the steps are taken as equal). Without it,
    ordinal and interval labels must be numbers and are used as given. It is ignored at the nominal level.

    Items with fewer than two ratings are left out: they cannot be paired, so they carry no information
    about agreement (Krippendorff 2011).

    Returns:
        alpha as a float, or None when it is undefined or meaningless for sparse data: fewer than two items
        with at least two ratings, or a single distinct value among the pairable ratings (no variation).

    Raises:
        ValueError: unknown ``level``, or a label that ``value_order`` does not list (see ``_encoder``).
        TypeError: non-numeric ordinal or interval labels without ``value_order``.
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {sorted(_LEVELS)}, not {level!r}")
    encode = _encoder(level, value_order)
    # Encode every rating, paired or not, so a bad label is reported whatever the sparsity of its item.
    encoded = {
        unit: {rater: encode(label) for rater, label in by_rater.items()}
        for unit, by_rater in _present(ratings).items()
    }
    pairable = [by_rater for by_rater in encoded.values() if len(by_rater) >= 2]
    if len(pairable) < 2:
        return None
    if len({value for by_rater in pairable for value in by_rater.values()}) < 2:
        # Expected disagreement is zero, so alpha is 0/0; the package would raise or return NaN.
        return None

    raters = _raters_in_order(pairable)
    row_of = {rater: row for row, rater in enumerate(raters)}
    reliability_data = np.full((len(raters), len(pairable)), np.nan)  # raters x units, NaN = not rated
    for column, by_rater in enumerate(pairable):
        for rater, value in by_rater.items():
            reliability_data[row_of[rater], column] = value

    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = float(krippendorff.alpha(reliability_data=reliability_data, level_of_measurement=level))
    # The checks above rule out 0/0, but a NaN must never reach a report as if it were a number.
    return alpha if math.isfinite(alpha) else None


def _kappa(labels_a: Sequence[Hashable], labels_b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two equally long label sequences (statsmodels), or None when it is undefined."""
    codes: dict[Hashable, int] = {}
    for label in (*labels_a, *labels_b):
        codes.setdefault(label, len(codes))
    pairs = np.array([[codes[a], codes[b]] for a, b in zip(labels_a, labels_b, strict=True)])
    from statsmodels.stats.inter_rater import cohens_kappa, to_table  # scipy and statsmodels load on first use

    # An integer ``bins`` makes a square table over every label either annotator used, as kappa needs.
    table, _ = to_table(pairs, bins=len(codes))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = float(cohens_kappa(table, return_results=False))
    # Chance agreement of 1 (both annotators always gave the same single label) makes kappa 0/0.
    return kappa if math.isfinite(kappa) else None


def cohens_kappa_pairs(ratings: Ratings[UnitT, RaterT], *, min_shared: int = 2) -> list[PairKappa]:
    """Cohen's kappa for every pair of annotators sharing at least ``min_shared`` rated items.

    Labels are nominal. Pairs come in order of the annotators' first appearance in ``ratings``, the
    earlier annotator as ``rater_a``.

    Returns:
        One PairKappa per qualifying pair; its kappa is None when undefined (e.g. both annotators used the
        same single label on every shared item).

    Raises:
        ValueError: ``min_shared`` is below 1.
    """
    if min_shared < 1:
        raise ValueError("min_shared must be at least 1")
    present = _present(ratings)
    by_rater: dict[RaterT, dict[UnitT, Hashable]] = {rater: {} for rater in _raters_in_order(present.values())}
    for unit, labels in present.items():
        for rater, label in labels.items():
            by_rater[rater][unit] = label

    raters = list(by_rater)
    pairs: list[PairKappa] = []
    for i, rater_a in enumerate(raters):
        units_a = by_rater[rater_a]
        for rater_b in raters[i + 1 :]:
            units_b = by_rater[rater_b]
            shared = [unit for unit in units_a if unit in units_b]
            if len(shared) < min_shared:
                continue
            kappa = _kappa([units_a[unit] for unit in shared], [units_b[unit] for unit in shared])
            pairs.append(PairKappa(rater_a=rater_a, rater_b=rater_b, shared_units=len(shared), kappa=kappa))
    return pairs


def kendalls_w(rankings: Sequence[Mapping[KeyT, float]]) -> float | None:
    """Kendall's coefficient of concordance W, corrected for ties, for m rankings of the same n objects.

    Each mapping gives one annotator's rank (or score: values are re-ranked ascending with average ranks
    for ties, which leaves valid average ranks unchanged). With R_j the rank sum of object j over the m
    annotators, S = sum_j (R_j - mean(R))^2 and T_i = sum over tie groups of annotator i of (t^3 - t):

        W = 12 S / (m^2 (n^3 - n) - m sum_i T_i)

    Kendall & Babington Smith (1939), "The problem of m rankings", Ann. Math. Statist. 10(3):275-287;
    tie correction as in Siegel & Castellan (1988), "Nonparametric Statistics for the Behavioral
    Sciences", 2nd ed. Neither scipy nor statsmodels exposes W; scipy's Friedman statistic
    satisfies chi2_F = m (n - 1) W but needs n >= 3, so W is computed here from ``scipy.stats.rankdata``.

    Returns:
        W in [0, 1], or None when n < 2, m < 2, or every annotator tied all objects (W is 0/0).

    Raises:
        ValueError: the rankings do not cover the same objects, or a value is not finite.
    """
    m = len(rankings)
    if m < 2:
        return None
    objects = list(rankings[0])
    if any(set(ranking) != set(objects) for ranking in rankings[1:]):
        raise ValueError("every ranking must cover the same objects")
    n = len(objects)
    if n < 2:
        return None
    values = np.array([[float(ranking[obj]) for obj in objects] for ranking in rankings])
    if not np.isfinite(values).all():
        raise ValueError("ranks must be finite numbers")

    from scipy.stats import rankdata

    ranks = rankdata(values, axis=1)  # "average" method: ties share the mean of the ranks they span
    rank_sums = ranks.sum(axis=0)
    s = float(((rank_sums - rank_sums.mean()) ** 2).sum())
    ties = 0.0
    for row in ranks:
        _, group_sizes = np.unique(row, return_counts=True)
        ties += float((group_sizes.astype(float) ** 3 - group_sizes).sum())
    denominator = m**2 * (n**3 - n) - m * ties
    if denominator <= 0:
        return None
    return 12.0 * s / denominator


def agreement_with_consensus(ratings: Ratings[UnitT, RaterT]) -> dict[RaterT, AgreementScore]:
    """Per annotator, how often their label equals the most frequent label of the *other* annotators.

    Only items with at least three ratings count, so that "the others" are at least two people. Leaving the
    annotator out keeps them from voting for themselves. Where the others tie for the most frequent label
    there is no consensus to compare with, and that item is skipped for that annotator.

    Returns:
        An AgreementScore for every annotator in ``ratings`` (first-appearance order); rate is None for
        annotators with no item that could be scored.
    """
    present = _present(ratings)
    counts: dict[RaterT, list[int]] = {rater: [0, 0] for rater in _raters_in_order(present.values())}  # [units, agreed]
    for labels in present.values():
        if len(labels) < 3:
            continue
        for rater, label in labels.items():
            others = Counter(other for who, other in labels.items() if who != rater)
            (consensus, votes), *runner_up = others.most_common(2)
            if runner_up and runner_up[0][1] == votes:
                continue
            counts[rater][0] += 1
            counts[rater][1] += bool(label == consensus)
    return {
        rater: AgreementScore(units=units, agreed=agreed, rate=agreed / units if units else None)
        for rater, (units, agreed) in counts.items()
    }


def position_bias(first_slot_choices: int, decisive_judgements: int, slots: int) -> PositionBias:
    """Share of decisive choices given to the first-displayed slot, tested against 1/slots.

    The p-value is scipy's exact two-sided binomial test (``scipy.stats.binomtest``), which for
    expected != 1/2 sums the probabilities of all outcomes no more likely than the observed one.

    Returns:
        PositionBias; share and p_value are None when there are no decisive judgements.

    Raises:
        ValueError: slots < 2, or counts that are negative or inconsistent.
    """
    if slots < 2:
        raise ValueError("position bias needs at least two slots")
    if decisive_judgements < 0 or not 0 <= first_slot_choices <= decisive_judgements:
        raise ValueError("need 0 <= first_slot_choices <= decisive_judgements")
    expected = 1 / slots
    if decisive_judgements == 0:
        return PositionBias(share=None, expected=expected, p_value=None)
    from scipy.stats import binomtest

    test = binomtest(first_slot_choices, decisive_judgements, expected, alternative="two-sided")
    return PositionBias(share=first_slot_choices / decisive_judgements, expected=expected, p_value=float(test.pvalue))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (statsmodels' ``proportion_confint``): unlike the normal
    approximation it stays within [0, 1] and is sound for the few judgements an annotator may have.

    Returns:
        (low, high), or None when there are no trials.

    Raises:
        ValueError: counts that are negative or inconsistent.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError("need 0 <= successes <= trials")
    if trials == 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def win_rates(outcomes: Iterable[tuple[KeyT, KeyT, float]]) -> dict[KeyT, WinRate]:
    """Per model, pairwise comparisons and wins from ``(model_a, model_b, score_for_a)`` outcomes.

    A score is 1 for a win of model_a, 0 for a loss, 0.5 for a tie; model_b is credited 1 - score. Both
    models count the comparison. An outcome of a model against itself says nothing about how it fares
    against others, so it is left out.

    Returns:
        A WinRate per model, in order of first appearance.

    Raises:
        ValueError: a score outside [0, 1].
    """
    tallies: dict[KeyT, list[float]] = {}  # model -> [comparisons, wins]
    for model_a, model_b, score in outcomes:
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score_for_a must be within [0, 1], got {score!r}")
        if model_a == model_b:
            continue
        for model, credit in ((model_a, score), (model_b, 1.0 - score)):
            tally = tallies.setdefault(model, [0, 0.0])
            tally[0] += 1
            tally[1] += credit
    return {
        model: WinRate(comparisons=int(comparisons), wins=wins, rate=wins / comparisons if comparisons else None)
        for model, (comparisons, wins) in tallies.items()
    }

"""Pair policies: which two candidates of one prompt the experts are shown, given each candidate's reward score
(or ``None`` where it has none). Pure: no database, no randomness but the seeded one.

- ``random``: pairs drawn at random with a seed, the same pairs for the same seed and candidates whatever
  order they come in;
- ``least_sure``: the pairs whose scores are closest first (the smallest absolute margin, where the reward
  model is least sure which answer is better; level margins in candidate id order);
- ``best_vs_worst``: the highest-scored against the lowest, then the second highest against the second
  lowest, and so on; then, if more pairs are wanted, the others with the widest margins first.

Every policy leaves out a pair whose two answers are the same text (nothing to tell apart) and never gives the
same pair twice, which includes the same two texts under other ids. The scored policies leave out candidates
without a score. Each pair carries both scores and the margin (``None`` where a score is missing)."""

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RANDOM, LEAST_SURE, BEST_VS_WORST = "random", "least_sure", "best_vs_worst"
POLICIES = (RANDOM, LEAST_SURE, BEST_VS_WORST)


@dataclass(frozen=True)
class Scored:
    """One candidate of a prompt: its id, its text and its reward score (``None``: not scored)."""

    id: int
    text: str
    score: float | None = None


@dataclass(frozen=True)
class ChosenPair:
    """Two candidates to compare: ``a`` and ``b`` (for ``best_vs_worst``, ``a`` is the higher-scored), their
    scores, and the absolute margin between them."""

    a: int
    b: int
    score_a: float | None
    score_b: float | None
    margin: float | None


def _pair(x: Scored, y: Scored) -> ChosenPair:
    margin = abs(x.score - y.score) if x.score is not None and y.score is not None else None
    return ChosenPair(a=x.id, b=y.id, score_a=x.score, score_b=y.score, margin=margin)


def _same_text(x: Scored, y: Scored) -> bool:
    return x.text.strip() == y.text.strip()


def _take(ordered: list[tuple[Scored, Scored]], n: int) -> list[ChosenPair]:
    """The first ``n`` of ``ordered`` that differ in text and are not a pair already taken."""
    chosen: list[ChosenPair] = []
    seen: set[frozenset[str]] = set()
    for x, y in ordered:
        if len(chosen) >= n:
            break
        texts = frozenset((x.text.strip(), y.text.strip()))
        if _same_text(x, y) or texts in seen:
            continue
        seen.add(texts)
        chosen.append(_pair(x, y))
    return chosen


def _random(candidates: list[Scored], seed: int | str) -> list[tuple[Scored, Scored]]:
    pairs = list(itertools.combinations(candidates, 2))
    random.Random(seed).shuffle(pairs)  # noqa: S311 - a reproducible draw, not a secret
    return pairs


def _least_sure(candidates: list[Scored], seed: int | str) -> list[tuple[Scored, Scored]]:
    scored = [c for c in candidates if c.score is not None]
    pairs = list(itertools.combinations(scored, 2))
    return sorted(pairs, key=lambda p: (abs(_score(p[0]) - _score(p[1])), p[0].id, p[1].id))


def _best_vs_worst(candidates: list[Scored], seed: int | str) -> list[tuple[Scored, Scored]]:
    ranked = sorted((c for c in candidates if c.score is not None), key=lambda c: (-_score(c), c.id))
    folded = [(ranked[i], ranked[-1 - i]) for i in range(len(ranked) // 2)]
    taken = {(x.id, y.id) for x, y in folded}
    rest = [(x, y) for x, y in itertools.combinations(ranked, 2) if (x.id, y.id) not in taken]
    rest.sort(key=lambda p: (-(_score(p[0]) - _score(p[1])), p[0].id, p[1].id))
    return folded + rest


def _score(candidate: Scored) -> float:
    assert candidate.score is not None
    return candidate.score


_ORDERS: dict[str, Callable[[list[Scored], int | str], list[tuple[Scored, Scored]]]] = {
    RANDOM: _random,
    LEAST_SURE: _least_sure,
    BEST_VS_WORST: _best_vs_worst,
}


def choose_pairs(candidates: Sequence[Scored], n: int, policy: str, *, seed: int | str = 0) -> list[ChosenPair]:
    """Up to ``n`` pairs of one prompt's ``candidates`` by ``policy`` (fewer when there are not enough pairs
    of different texts). ``seed`` matters to ``random`` only. Raises ``ValueError`` for an unknown policy or
    two candidates with the same id."""
    if policy not in _ORDERS:
        raise ValueError(f"unknown pair policy {policy!r}; one of {', '.join(POLICIES)}")
    ordered = sorted(candidates, key=lambda c: c.id)
    if len({c.id for c in ordered}) != len(ordered):
        raise ValueError("two candidates share an id")
    if n <= 0:
        return []
    return _take(_ORDERS[policy](ordered, seed), n)

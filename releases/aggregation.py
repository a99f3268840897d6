"""Turning the judgements of one comparison into preference pairs: per pair of candidates (and per
criterion), the votes are aggregated by majority, unanimity or gold-accuracy weights; an N-way ranking is
expanded into all pairs, best-versus-rest or adjacent pairs along the aggregated order. Pure functions:
the build feeds them rows, the tests feed them hand-made judgement sets."""

import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

OVERALL = "overall"


@dataclass(frozen=True)
class Vote:
    """One annotator's judgement in candidate ids, with the weight the policy gives it."""

    annotator: int
    result: dict[str, Any]
    weight: float = 1.0


@dataclass(frozen=True)
class PairOutcome:
    """The aggregated preference between candidates ``a < b`` on one criterion."""

    criterion: str
    a: int
    b: int
    score: float  # 1.0: a preferred, 0.0: b preferred, 0.5: tie
    agreement: float  # share of the vote weight behind the outcome
    strength: float | None  # mean strength of the votes behind it (pairwise mode), else None
    votes: int


@dataclass(frozen=True)
class Pair:
    """One row of a preference set."""

    criterion: str
    chosen: int
    rejected: int
    margin: float | None
    agreement: float
    tie: bool = False


def vote_scores(result: dict[str, Any], candidates: int) -> dict[tuple[str, int, int], tuple[float, int | None]]:
    """A judgement as per-pair scores: ``{(criterion, a, b): (score, strength)}`` with ``a < b``. "Both bad"
    says nothing about the order of the two, so it gives no score."""
    scores: dict[tuple[str, int, int], tuple[float, int | None]] = {}
    if "ranking" in result:
        place = {cand: tier for tier, group in enumerate(result["ranking"]) for cand in group}
        for a in range(candidates):
            for b in range(a + 1, candidates):
                if a in place and b in place:
                    score = 0.5 if place[a] == place[b] else (1.0 if place[a] < place[b] else 0.0)
                    scores[(OVERALL, a, b)] = (score, None)
        return scores

    def add(criterion: str, winner: Any, strength: int | None) -> None:
        if winner == "tie":
            scores[(criterion, 0, 1)] = (0.5, None)
        elif winner in (0, 1):
            scores[(criterion, 0, 1)] = (1.0 if winner == 0 else 0.0, strength)

    if "criteria" in result:
        for criterion, winner in result["criteria"].items():
            add(str(criterion), winner, None)
        add(OVERALL, result.get("overall"), None)
    else:
        add(OVERALL, result.get("winner"), result.get("strength"))
    return scores


def aggregate_pairs(votes: list[Vote], candidates: int, policy: str) -> list[PairOutcome]:
    """Aggregate every pair that at least one vote ordered. ``policy``: "majority" and "gold_weighted" (the
    weights differ) pick the outcome with the most weight and drop a pair whose A and B weights are level;
    "unanimity" keeps a pair only when every vote gives the same outcome."""
    tallies: dict[tuple[str, int, int], dict[float, list[tuple[float, int | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for vote in votes:
        for key, (score, strength) in vote_scores(vote.result, candidates).items():
            tallies[key][score].append((vote.weight, strength))
    outcomes = []
    for (criterion, a, b), by_score in sorted(tallies.items()):
        weights = {score: sum(w for w, _ in entries) for score, entries in by_score.items()}
        total = sum(weights.values())
        if total <= 0:
            continue
        if policy == "unanimity":
            if len(by_score) != 1:
                continue
            score = next(iter(by_score))
        else:
            ranked = sorted(weights.items(), key=lambda kv: -kv[1])
            score = ranked[0][0]
            if len(ranked) > 1 and abs(ranked[0][1] - ranked[1][1]) < 1e-9:
                if {ranked[0][0], ranked[1][0]} == {0.0, 1.0}:
                    continue  # as many for a as for b: no preference to train on
                score = 0.5  # level between a side and "tie": call it a tie
        behind = by_score.get(score, [])
        strengths = [s for _, s in behind if s is not None]
        outcomes.append(
            PairOutcome(
                criterion=criterion,
                a=a,
                b=b,
                score=score,
                agreement=round(weights.get(score, 0.0) / total, 6),
                strength=round(sum(strengths) / len(strengths), 6) if strengths else None,
                votes=sum(len(entries) for entries in by_score.values()),
            )
        )
    return outcomes


def adjudicated_pairs(result: dict[str, Any], candidates: int) -> list[PairOutcome]:
    """A reviewer's adjudication as decided pair outcomes (agreement 1: it is final)."""
    return [
        PairOutcome(criterion=c, a=a, b=b, score=score, agreement=1.0, strength=None, votes=1)
        for (c, a, b), (score, _) in sorted(vote_scores(result, candidates).items())
    ]


def copeland_order(outcomes: list[PairOutcome], candidates: int) -> list[int]:
    """Candidates from best to worst by wins minus losses over the decided pairs (ties: lower id first)."""
    points = dict.fromkeys(range(candidates), 0.0)
    for o in outcomes:
        points[o.a] += o.score - 0.5
        points[o.b] += 0.5 - o.score
    return sorted(points, key=lambda c: (-points[c], c))


def expand_pairs(
    outcomes: list[PairOutcome],
    candidates: int,
    *,
    ranking_pairs: str = "all",
    ties: str = "drop",
    min_agreement: float = 0.0,
    min_strength: float = 0.0,
) -> list[Pair]:
    """The rows of one comparison, per criterion, in a stable order."""
    rows: list[Pair] = []
    by_criterion: dict[str, list[PairOutcome]] = defaultdict(list)
    for o in outcomes:
        by_criterion[o.criterion].append(o)
    for criterion in sorted(by_criterion, key=lambda c: (c != OVERALL, c)):
        decided = {(o.a, o.b): o for o in by_criterion[criterion]}
        order = copeland_order(by_criterion[criterion], candidates)
        if ranking_pairs == "best_vs_rest" and candidates > 2:
            wanted = [(order[0], other) for other in order[1:]]
        elif ranking_pairs == "adjacent" and candidates > 2:
            wanted = list(itertools.pairwise(order))
        else:
            wanted = [(a, b) for (a, b) in sorted(decided)]
        for x, y in wanted:
            found = decided.get((min(x, y), max(x, y)))
            if found is None:
                continue
            o = found
            if o.agreement + 1e-9 < min_agreement:
                continue
            if min_strength and (o.strength is None or o.strength + 1e-9 < min_strength):
                continue
            if o.score == 0.5:
                if ties == "keep":
                    rows.append(Pair(criterion, o.a, o.b, 0.0, o.agreement, tie=True))
                    rows.append(Pair(criterion, o.b, o.a, 0.0, o.agreement, tie=True))
                continue
            chosen, rejected = (o.a, o.b) if o.score == 1.0 else (o.b, o.a)
            if ranking_pairs != "all" and candidates > 2 and (chosen, rejected) != (x, y):
                continue  # the aggregated order and this pair's own vote disagree (a cycle): leave it out
            rows.append(Pair(criterion, chosen, rejected, o.strength, o.agreement))
    return rows


def gold_weight(gold_seen: int, gold_correct: int) -> float:
    """An annotator's weight under "gold_weighted": their gold accuracy, smoothed towards one half so that
    a newcomer with few gold items is neither trusted nor ignored ((correct + 1) / (seen + 2))."""
    return (gold_correct + 1) / (gold_seen + 2)

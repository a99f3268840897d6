"""How often a reward model agrees with the experts: per reward model that scored a project's comparisons, its
accuracy against each comparison's decided preference, with a 95 % Wilson interval.

A decided preference is what a release would train on: a reviewer's adjudication where there is one, else the
majority of the releasable judgements (gold items and excluded annotators left out; ``releases.aggregation``),
overall only, every pair of candidates a ranking orders. Pairs the experts called a tie, or split evenly on,
are left out. The reward model agrees when it scores the preferred answer higher; equal scores count ½.
Shown to those who read the agreement figures (``preferences`` reads it through ``core.figures``); never to
annotators."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from accounts.models import Project
from annotation.models import Item
from evaluation.models import RewardScore
from preferences.models import Adjudication
from preferences.selectors import releasable_judgements
from releases.aggregation import OVERALL, Vote, adjudicated_pairs, aggregate_pairs


@dataclass(frozen=True)
class RewardAgreement:
    reward_model: int
    name: str
    n: int  # decided pairs that the reward model scored both answers of
    agreed: float  # pairs where it prefers the experts' answer, equal scores counting ½
    accuracy: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "reward_model": self.reward_model, "name": self.name, "n": self.n, "agreed": self.agreed,
            "accuracy": self.accuracy, "low": self.low, "high": self.high,
        }  # fmt: skip


def wilson(successes: float, trials: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (statsmodels); ``successes`` may hold halves. None without
    trials."""
    if trials <= 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def accuracy_of(
    decided: Iterable[tuple[int, int, int, float]], scores: dict[tuple[int, int], float]
) -> tuple[int, float]:
    """Over decided pairs ``(item, a, b, expert)`` (``expert`` 1.0: a preferred, 0.0: b preferred), the pairs
    whose two answers have a score, and how many the scores agree with (equal scores: ½)."""
    n, agreed = 0, 0.0
    for item, a, b, expert in decided:
        if (item, a) not in scores or (item, b) not in scores:
            continue
        n += 1
        score_a, score_b = scores[(item, a)], scores[(item, b)]
        if score_a == score_b:
            agreed += 0.5
        elif (score_a > score_b) == (expert == 1.0):
            agreed += 1.0
    return n, agreed


def decided_pairs(project: Project, items: Iterable[int]) -> list[tuple[int, int, int, float]]:
    """The experts' decided, untied preferences on ``items`` of the project, as ``(item, a, b, 1.0 | 0.0)``."""
    wanted = set(items)
    sizes = dict(Item.objects.filter(project=project, pk__in=wanted, kind="comparison").values_list("pk", "candidates"))
    decisions = Adjudication.objects.filter(
        item__project=project, item_id__in=wanted, decided_at__isnull=False, result__isnull=False
    ).values_list("item_id", "result")
    adjudicated: dict[int, dict[str, Any]] = {item_id: dict(result or {}) for item_id, result in decisions}
    votes: dict[int, list[Vote]] = defaultdict(list)
    rows = releasable_judgements(project).filter(item_id__in=wanted).values_list("item_id", "annotator_id", "result")
    for item_id, annotator_id, result in rows:
        votes[item_id].append(Vote(annotator=annotator_id, result=result))
    decided: list[tuple[int, int, int, float]] = []
    for item_id in sorted(sizes):
        count = len(sizes[item_id] or [])
        if item_id in adjudicated:
            outcomes = adjudicated_pairs(adjudicated[item_id], count)
        elif votes.get(item_id):
            outcomes = aggregate_pairs(votes[item_id], count, "majority")
        else:
            continue
        decided.extend(
            (item_id, o.a, o.b, o.score) for o in outcomes if o.criterion == OVERALL and o.score in (0.0, 1.0)
        )
    return decided


def reward_agreement(project: Project) -> list[RewardAgreement]:
    """Per reward model with scores on the project's comparisons (newest model first), its agreement with the
    experts' decided preferences."""
    scored = RewardScore.objects.filter(item__project=project).values_list(
        "reward_model_id", "reward_model__name", "item_id", "candidate_index", "score"
    )
    by_model: dict[int, dict[tuple[int, int], float]] = defaultdict(dict)
    names: dict[int, str] = {}
    for model_id, name, item_id, index, score in scored:
        by_model[model_id][(int(item_id), int(index or 0))] = score
        names[model_id] = name
    if not by_model:
        return []
    decided = decided_pairs(project, {item for scores in by_model.values() for item, _ in scores})
    figures = []
    for model_id in sorted(by_model, reverse=True):
        n, agreed = accuracy_of(decided, by_model[model_id])
        interval = wilson(agreed, n)
        figures.append(
            RewardAgreement(
                reward_model=model_id, name=names[model_id], n=n, agreed=agreed,
                accuracy=agreed / n if n else None, low=interval[0] if interval else None,
                high=interval[1] if interval else None,
            )
        )  # fmt: skip
    return figures


def reward_agreement_figures(project_id: int) -> list[dict[str, Any]]:
    """What ``core.figures`` hands the agreement page and API (registered by the app)."""
    project = Project.objects.get(pk=project_id)
    return [figure.as_dict() for figure in reward_agreement(project)]

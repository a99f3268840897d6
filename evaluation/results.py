"""The figures of a blind evaluation, read from the judgements of its judging project (nothing is written here).

Which system a judged candidate came from is in its provenance (``evaluation.judging_project``). Gold items and the
judgements of annotators a data lead excluded (``AnnotatorQuality.excluded``) are left out, as releases leave
them out (``preferences.selectors.releasable_judgements``).

The rule, exactly: each judgement gives system 0 (the adapter under evaluation) a *win*, a *tie* or a *loss*
against each other system it saw. Pairwise and per-criterion judgements: the chosen candidate wins; "tie" and
"both bad" are ties. Ranking judgements: the better tier wins; the same tier is a tie. Over n = wins + ties +
losses judgements, ``win_rate = (wins + ties / 2) / n`` and its 95 % interval is the Wilson score interval of
``wins + ties / 2`` successes in ``n`` trials, as ``statsmodels.stats.proportion.proportion_confint(wins +
ties / 2, n, alpha=0.05, method="wilson")`` gives it. ``conclusive``: the interval excludes 0.5 (the adapter
wins when ``low > 0.5``, loses when ``high < 0.5``).

With three or more systems, a Bradley-Terry ranking: log-strengths from ``choix.ilsr_pairwise_dense`` on the
matrix of pairwise wins (a tie is half a win each way), with 95 % intervals from a seeded bootstrap over prompts
(comparison items), ``BOOTSTRAP_SAMPLES`` resamples."""

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
from django.db.models import IntegerField, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from accounts.models import User
from annotation.models import Item
from evaluation.models import Evaluation
from preferences.models import Judgement
from preferences.selectors import excluded_annotator_ids

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 200
BOOTSTRAP_SEED = 20240
BT_ALPHA = 0.01  # choix's regularisation: keeps strengths finite when a system never lost
METADATA_MAX_VALUES = 12  # a metadata key with more distinct values is an id, not a group

WIN, TIE, LOSS = 0, 1, 2


def wilson_row(wins: int, ties: int, losses: int, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Counts, win rate (a tie counts half) and its Wilson interval; ``conclusive`` when it excludes 0.5."""
    n = wins + ties + losses
    row: dict[str, Any] = {"wins": wins, "ties": ties, "losses": losses, "judgements": n}
    if not n:
        return {**row, "win_rate": None, "low": None, "high": None, "conclusive": False, "verdict": ""}
    successes = wins + ties / 2
    from statsmodels.stats.proportion import proportion_confint  # statsmodels and choix load on first use

    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    low, high = float(low), float(high)
    verdict = "wins" if low > 0.5 else ("loses" if high < 0.5 else "")
    return {**row, "win_rate": successes / n, "low": low, "high": high, "conclusive": bool(verdict), "verdict": verdict}


def _pair_outcomes(part: Any, positions: list[int]) -> Iterable[tuple[int, int, float]]:
    """(system a, system b, score of a) for every pair of systems one judgement part orders, a < b."""
    if isinstance(part, list):  # a ranking: tiers of candidate ids, best first
        tier_of = {positions[c]: tier for tier, group in enumerate(part) for c in group if 0 <= c < len(positions)}
        ordered = sorted(tier_of)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1 :]:
                yield a, b, 0.5 if tier_of[a] == tier_of[b] else (1.0 if tier_of[a] < tier_of[b] else 0.0)
        return
    if len(positions) != 2:
        return
    a, b = sorted(positions)
    if part in ("tie", "both_bad"):
        yield a, b, 0.5
    elif isinstance(part, int) and 0 <= part < 2:
        yield a, b, 1.0 if positions[part] == a else 0.0


def _overall(result: dict[str, Any]) -> Any:
    if "ranking" in result:
        return result["ranking"]
    return result.get("winner", result.get("overall"))


def _tallies() -> defaultdict[int, list[int]]:
    return defaultdict(lambda: [0, 0, 0])


def _count(tally: defaultdict[int, list[int]], outcomes: Iterable[tuple[int, int, float]]) -> None:
    for a, b, score in outcomes:
        if a == 0:  # system 0's record against b
            tally[b][WIN if score == 1.0 else TIE if score == 0.5 else LOSS] += 1


def _metadata_groups(items: dict[int, tuple[list[int], dict[str, Any]]]) -> dict[str, set[str]]:
    values: defaultdict[str, set[str]] = defaultdict(set)
    for _, metadata in items.values():
        for key, value in (metadata or {}).items():
            if isinstance(value, str | int | bool) and len(values[key]) <= METADATA_MAX_VALUES:
                values[key].add(str(value))
    return {key: found for key, found in values.items() if 2 <= len(found) <= METADATA_MAX_VALUES}


def _rows(
    tally: defaultdict[int, list[int]], labels: dict[int, str], extra: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    return [
        {**(extra or {}), "system": position, "label": labels[position], **wilson_row(*tally[position])}
        for position in sorted(tally)
    ]


def evaluation_results(evaluation: Evaluation) -> dict[str, Any]:
    """Every figure of the evaluation as JSON: ``head_to_head`` (system 0 against each other system; the shape the
    promotion gate reads), ``per_criterion``, ``per_annotator``, ``per_metadata`` and, with three or more systems,
    ``ranking``. Counts follow the rule in this module's docstring."""
    systems = list(
        evaluation.systems.order_by("position").values_list("position", "label", "adapter_id", "base_model_id")
    )
    labels = {position: label for position, label, _, _ in systems}
    figures: dict[str, Any] = {
        "method": "wilson",
        "confidence": CONFIDENCE,
        "tie_rule": "win_rate = (wins + ties / 2) / n; interval: Wilson score of wins + ties / 2 in n",
        "judgements": 0,
        "prompts": 0,
        "head_to_head": [],
        "per_criterion": [],
        "per_annotator": [],
        "per_metadata": [],
        "ranking": [],
        "ranking_method": "",
    }
    judging = evaluation.judging_project_id or 0
    overall = _tallies()
    n = len(systems)
    item_rows: dict[int, tuple[list[int], dict[str, Any]]] = {}
    if judging and n >= 2:
        # Read as text and cast in the database: Django would decode every JSON value with the json module.
        keys = [Cast(KT(f"candidates__{i}__provenance__extra__system"), IntegerField()) for i in range(n)]
        items = Item.objects.filter(project_id=judging, gold__isnull=True)
        for row in items.values_list("id", Cast("metadata", TextField()), *keys):
            item_rows[row[0]] = ([p for p in row[2:] if p is not None], orjson.loads(row[1]) if row[1] else {})
    criteria: defaultdict[str, defaultdict[int, list[int]]] = defaultdict(_tallies)
    annotators: defaultdict[int, defaultdict[int, list[int]]] = defaultdict(_tallies)
    groups = _metadata_groups(item_rows)
    by_metadata: defaultdict[tuple[str, str], defaultdict[int, list[int]]] = defaultdict(_tallies)
    per_prompt: dict[int, np.ndarray] = {}
    judged = 0
    if item_rows:
        excluded = excluded_annotator_ids(evaluation.judging_project) if evaluation.judging_project else set()
        rows = Judgement.objects.filter(item__project_id=judging, is_gold=False).values_list(
            "item_id", "annotator_id", Cast("result", TextField())
        )
        for item_id, annotator_id, text in rows:
            if annotator_id in excluded or item_id not in item_rows:
                continue
            result = orjson.loads(text)
            positions, metadata = item_rows[item_id]
            outcomes = list(_pair_outcomes(_overall(result), positions))
            if not outcomes:
                continue
            judged += 1
            _count(overall, outcomes)
            _count(annotators[annotator_id], outcomes)
            for key, value in (metadata or {}).items():
                if key in groups and isinstance(value, str | int | bool):
                    _count(by_metadata[(key, str(value))], outcomes)
            for key, choice in (result.get("criteria") or {}).items():
                _count(criteria[key], _pair_outcomes(choice, positions))
            matrix = per_prompt.get(item_id)
            if matrix is None:
                matrix = per_prompt[item_id] = np.zeros((n, n))
            for a, b, score in outcomes:
                matrix[a, b] += score
                matrix[b, a] += 1.0 - score
    figures["judgements"] = judged
    figures["prompts"] = len(per_prompt)
    for position, label, adapter_id, base_model_id in systems[1:]:
        figures["head_to_head"].append(
            {
                "system": position,
                "label": label,
                "adapter_id": adapter_id,
                "base_model_id": base_model_id,
                **wilson_row(*overall[position]),
            }
        )
    figures["per_criterion"] = [
        row for key in sorted(criteria) for row in _rows(criteria[key], labels, {"criterion": key})
    ]
    names = dict(User.objects.filter(pk__in=list(annotators)).values_list("pk", "username"))
    figures["per_annotator"] = [
        row
        for annotator_id in sorted(annotators, key=lambda pk: names.get(pk, ""))
        for row in _rows(annotators[annotator_id], labels, {"annotator": names.get(annotator_id, str(annotator_id))})
    ]
    figures["per_metadata"] = [
        row
        for (key, value) in sorted(by_metadata)
        for row in _rows(by_metadata[(key, value)], labels, {"key": key, "value": value})
    ]
    if n >= 3 and per_prompt:
        figures["ranking"] = bradley_terry(np.stack(list(per_prompt.values())), labels)
        figures["ranking_method"] = (
            f"Bradley-Terry (choix.ilsr_pairwise_dense, alpha {BT_ALPHA}); 95 % intervals from a bootstrap over "
            f"prompts ({BOOTSTRAP_SAMPLES} resamples, seed {BOOTSTRAP_SEED})"
        )
    return figures


def bradley_terry(per_prompt: np.ndarray, labels: dict[int, str]) -> list[dict[str, Any]]:
    """Bradley-Terry log-strengths of the systems (``per_prompt``: prompts x systems x systems wins, a tie half
    each way) with percentile intervals from resampling prompts; best first."""
    prompts, n, _ = per_prompt.shape
    import choix

    strengths = choix.ilsr_pairwise_dense(per_prompt.sum(axis=0), alpha=BT_ALPHA)
    # Drawing prompts with replacement is drawing, with replacement, among the distinct per-prompt matrices
    # weighted by how many prompts share each: the same resamples, with a few hundred categories, not thousands.
    distinct, shared = np.unique(per_prompt.reshape(prompts, n * n), axis=0, return_counts=True)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.multinomial(prompts, shared / prompts, size=BOOTSTRAP_SAMPLES)
    resampled = (draws @ distinct).reshape(BOOTSTRAP_SAMPLES, n, n)
    samples = np.array(
        [choix.ilsr_pairwise_dense(matrix, alpha=BT_ALPHA, initial_params=strengths) for matrix in resampled]
    )
    low = np.percentile(samples, 100 * (1 - CONFIDENCE) / 2, axis=0)
    high = np.percentile(samples, 100 * (1 + CONFIDENCE) / 2, axis=0)
    order = sorted(range(len(strengths)), key=lambda i: -strengths[i])
    return [
        {
            "rank": rank,
            "system": position,
            "label": labels.get(position, str(position)),
            "strength": float(strengths[position]),
            "low": float(low[position]),
            "high": float(high[position]),
        }
        for rank, position in enumerate(order, start=1)
    ]


def head_to_head_against(figures: dict[str, Any], position: int = 1) -> dict[str, Any] | None:
    """The head-to-head row of system 0 against ``position`` (the first opponent by default)."""
    return next((row for row in figures.get("head_to_head", []) if row["system"] == position), None)

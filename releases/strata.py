"""The stratified sticky split: a recipe that names metadata keys (``stratify_by``: topic, channel, language…)
draws its new evaluation items so that the evaluation split's share of each stratum follows that stratum's
share of the project's items, the traffic the model will meet.

A stratum is the tuple of an item's values for the keys (a missing or empty value is "(none)"). The plan is made
before the rows are written, from one pass over what the recipe selects (``plan``):

- Sides already decided stay: a group (items sharing a normalised prompt) with an item on an earlier release's
  evaluation side, or named by the recipe's ``eval_items``, is on the evaluation side; a group with an item on an
  earlier release's training side stays in train. An item never changes side.
- The evaluation split's size is the recipe's fraction of the items selected. Each stratum's target is its share of
  the project's items times that size (rounded), at most half of the stratum's selected items, so training keeps
  every stratum too.
- A stratum below its target draws new groups in the order of their stable hash position (the position the
  unstratified split uses), until it reaches the target; a stratum at or above it draws none.

The same data and the same earlier releases give the same plan, so a rebuild writes the same bytes. What was
built, per stratum, beside its target and the tolerance, goes into the datasheet (``summary``).
"""

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db.models import TextField
from django.db.models.functions import Cast

from annotation.models import Item, ItemState

NONE = "(none)"
MAX_EVAL_SHARE_OF_STRATUM = 0.5


def _value(value: Any) -> str:
    """A metadata value as a stratum names it: text stripped, JSON for anything else ("true", "3", "[1,2]")."""
    if value is None:
        return NONE
    text = value.strip() if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text[:80] if text else NONE


def stratum_of(metadata: Any, keys: Collection[str]) -> str:
    """The stratum of an item's metadata: its values for ``keys``, joined by " · " ("(none)" where missing)."""
    data = metadata if isinstance(metadata, dict) else {}
    return " · ".join(_value(data.get(key)) for key in keys)


def population(project_id: int, kind: str, keys: tuple[str, ...]) -> Counter[str]:
    """How many of the project's open items of ``kind`` ("sft", "comparison") fall in each stratum, named by
    ``stratum_of`` exactly as the selected items are (the metadata read as text and parsed here: a database's
    JSON operators give booleans and numbers back in their own spellings)."""
    items = Item.objects.filter(project_id=project_id, kind=kind, state=ItemState.OPEN)
    if kind == "comparison":
        items = items.filter(gold__isnull=True)
    counts: Counter[str] = Counter()
    texts = items.annotate(text=Cast("metadata", TextField())).values_list("text", flat=True)
    for text in texts.iterator(chunk_size=5000):
        counts[stratum_of(orjson.loads(text) if text else None, keys)] += 1
    return counts


@dataclass
class _Group:
    stratum: str
    position: float
    items: list[int] = field(default_factory=list)


@dataclass
class Plan:
    """What the stratified split decided: the groups it draws into evaluation, and what the datasheet says."""

    keys: tuple[str, ...]
    fraction: float
    tolerance: float
    population: dict[str, int]
    stratum: dict[int, str]  # selected item -> its stratum
    drawn: set[str]  # groups drawn into evaluation by this plan
    kept_in_train: set[str]  # groups an earlier release put in train: they stay there
    targets: dict[str, int]  # evaluation items wanted per stratum (its share of the project times the split's size)
    selected: dict[str, int]  # selected items per stratum
    kept: dict[str, int]  # items per stratum on the evaluation side before this plan drew any

    def in_eval(self, group_hash: str) -> bool:
        return group_hash in self.drawn

    def summary(self, built: dict[str, Counter[str]]) -> dict[str, Any]:
        """The datasheet's stratification section: per stratum, its share of the project's items (the target),
        of the selection and of the evaluation split as built (``built``: items per split and stratum, counted as
        they were written, leak moves included), how far it is from the target and whether within tolerance."""
        eval_items = built.get("eval", Counter())
        train_items = built.get("train", Counter())
        total_population = sum(self.population.values())
        total_eval = sum(eval_items.values())
        rows = []
        for stratum in sorted(set(self.population) | set(eval_items) | set(train_items)):
            target = self.population.get(stratum, 0) / total_population if total_population else 0.0
            share = eval_items[stratum] / total_eval if total_eval else 0.0
            distance = share - target
            within = abs(distance) <= self.tolerance + 1e-9
            why = ""
            if not within:
                wanted = self.targets.get(stratum, 0)
                if distance > 0:
                    why = (
                        "earlier releases keep more of it in evaluation (sticky)"
                        if self.kept.get(stratum, 0) > wanted
                        else "the leak check moved items there, or its prompts come in large groups"
                    )
                elif self.selected.get(stratum, 0) * MAX_EVAL_SHARE_OF_STRATUM < wanted:
                    why = "too few of its items are selected"
                else:
                    why = "its items are held in train by earlier releases"
            rows.append(
                {
                    "stratum": stratum,
                    "project_items": self.population.get(stratum, 0),
                    "target_share": round(target, 4),
                    "selected_items": self.selected.get(stratum, 0),
                    "train_items": train_items[stratum],
                    "eval_items": eval_items[stratum],
                    "eval_share": round(share, 4),
                    "distance": round(distance, 4),
                    "within_tolerance": within,
                    "why": why,
                }
            )
        return {
            "keys": list(self.keys),
            "tolerance": self.tolerance,
            "strata": rows,
            "outside_tolerance": [r["stratum"] for r in rows if not r["within_tolerance"]],
        }


def plan(
    *,
    keys: tuple[str, ...],
    fraction: float,
    tolerance: float,
    population: Counter[str],
    units: Iterable[tuple[int, str, str]],
    in_eval: Collection[str],
    in_train: Collection[str],
    position: Any,
) -> Plan:
    """Plan the split of the selected ``units`` (item id, group hash, stratum; in item order). ``in_eval`` and
    ``in_train`` are the groups whose side is already decided (earlier releases, named items); ``position`` gives a
    group's stable position in [0, 1)."""
    groups: dict[str, _Group] = {}
    stratum: dict[int, str] = {}
    selected: Counter[str] = Counter()
    for item_id, group_hash, item_stratum in units:
        group = groups.get(group_hash)
        if group is None:
            group = groups[group_hash] = _Group(item_stratum, position(group_hash))
        group.items.append(item_id)
        stratum[item_id] = item_stratum
        selected[item_stratum] += 1
    total = sum(selected.values())
    eval_size = fraction * total
    total_population = sum(population.values()) or 1
    have: Counter[str] = Counter()
    open_groups: dict[str, list[tuple[float, str]]] = defaultdict(list)
    kept_in_train = set()
    for group_hash, group in groups.items():
        if group_hash in in_eval:
            have[group.stratum] += len(group.items)
        elif group_hash in in_train:
            kept_in_train.add(group_hash)
        else:
            open_groups[group.stratum].append((group.position, group_hash))
    targets: dict[str, int] = {}
    drawn: set[str] = set()
    for name in sorted(set(selected) | set(population)):
        targets[name] = math.floor(population.get(name, 0) / total_population * eval_size + 0.5)
        target = min(targets[name], math.floor(selected[name] * MAX_EVAL_SHARE_OF_STRATUM))
        taken = have[name]
        for _, group_hash in sorted(open_groups[name]):
            if taken >= target:
                break
            drawn.add(group_hash)
            taken += len(groups[group_hash].items)
    return Plan(
        keys=keys,
        fraction=fraction,
        tolerance=tolerance,
        population=dict(population),
        stratum=stratum,
        drawn=drawn,
        kept_in_train=kept_in_train,
        targets=targets,
        selected=dict(selected),
        kept=dict(have),
    )

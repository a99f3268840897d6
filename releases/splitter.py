"""Which side of the split each selected item goes to, for ``releases.build``: evaluation is sticky (an item or
group once in an earlier release's evaluation split stays there), the recipe's ``eval_items`` are put there by name,
and the rest is split by the stable hash of the normalised prompt, or, for a stratified recipe, by the plan of
``releases.strata``. Also why each evaluation item is there, for the datasheet."""

from dataclasses import dataclass, field

from releases import splits, strata
from releases.models import FROZEN_STATES, Release, ReleaseItem
from releases.selection import Selection, Unit


@dataclass
class Splitter:
    fraction: float
    sticky_items: set[int]
    sticky_groups: set[str]
    sticky_moved: set[int] = field(default_factory=set)  # in eval only because an earlier leak check moved them
    eval_items: frozenset[int] = frozenset()  # the recipe's items put on the evaluation side by name
    plan: strata.Plan | None = None  # a stratified recipe's split, made before the rows are written

    def split(self, unit: Unit) -> str:
        if unit.source == "mixin":
            return "train"
        group = unit.group_hash
        if unit.item_id in self.sticky_items or unit.item_id in self.sticky_moved or group in self.sticky_groups:
            return "eval"
        if unit.item_id in self.eval_items:
            return "eval"
        if self.plan is not None:
            return "eval" if self.plan.in_eval(group) else "train"
        return "eval" if splits.in_eval_by_hash(group, self.fraction) else "train"

    def eval_reason(self, unit: Unit, *, moved: bool) -> str:
        """Why an evaluation item is there, for the datasheet. Each reason holds for a rebuild too (the items a
        build drew or was given are kept by the next), so a rebuild on unchanged data says the same."""
        if unit.source != "mixin" and unit.item_id in self.eval_items:
            return "named by the recipe (eval_items, e.g. by “Refresh the eval set”)"
        if self.plan is not None and unit.source != "mixin" and not moved:
            return f"in the share of its stratum ({', '.join(self.plan.keys)}): kept from earlier releases or drawn"
        if self.plan is None and unit.source != "mixin" and splits.in_eval_by_hash(unit.group_hash, self.fraction):
            return "in the requested share (stable hash)"
        return "moved there by the leak check" if moved else "kept from earlier releases (sticky)"

    def stratum(self, unit: Unit) -> str | None:
        return self.plan.stratum.get(unit.item_id) if self.plan is not None and unit.source != "mixin" else None

    @classmethod
    def for_release(cls, release: Release, fraction: float, eval_items: tuple[int, ...] = ()) -> "Splitter":
        """Evaluation is sticky: every item (and group) in an earlier release's eval split stays there. Items
        that were there only because a leak check moved them are kept apart, to be checked again. The recipe's
        ``eval_items`` go to eval too (a new item never moves a training item: that is the caller's choice)."""
        frozen_eval = ReleaseItem.objects.filter(
            release__project_id=release.project_id, release__state__in=FROZEN_STATES, split="eval"
        ).exclude(release=release)
        chosen = frozen_eval.filter(moved=False)
        sticky_items = set(chosen.values_list("item_id", flat=True))
        moved = set(frozen_eval.filter(moved=True).values_list("item_id", flat=True)) - sticky_items
        groups = set(chosen.values_list("group_hash", flat=True))
        return cls(fraction, sticky_items, groups, moved, frozenset(eval_items))

    def stratify(self, release: Release, selection: Selection) -> None:
        """Plan a stratified recipe's split (``releases.strata``) from one pass over what it selects: the groups
        decided by earlier releases keep their side, new ones are drawn per stratum."""
        recipe = selection.recipe
        keys = recipe.stratify_by
        earlier_train = set(
            ReleaseItem.objects.filter(
                release__project_id=release.project_id, release__state__in=FROZEN_STATES, split="train"
            )
            .exclude(release=release)
            .values_list("item_id", flat=True)
        )
        units, in_eval, in_train = [], set(), set()
        for unit in selection.units():
            if unit.source == "mixin":
                continue
            group = unit.group_hash
            units.append((unit.item_id, group, strata.stratum_of(unit.metadata, keys)))
            sticky = unit.item_id in self.sticky_items or unit.item_id in self.sticky_moved
            if sticky or unit.item_id in self.eval_items or group in self.sticky_groups:
                in_eval.add(group)
            elif unit.item_id in earlier_train:
                in_train.add(group)
        kind = "sft" if recipe.kind == "sft" else "comparison"
        self.plan = strata.plan(
            keys=keys,
            fraction=recipe.eval_fraction,
            tolerance=recipe.stratify_tolerance,
            population=strata.population(release.project_id, kind, keys),
            units=units,
            in_eval=in_eval,
            in_train=in_train - in_eval,
            position=splits.position,
        )

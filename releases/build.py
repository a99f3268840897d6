"""The release build pipeline behind ``services.release_build``: selection, aggregation, split and leak
check; the files around the rows (datasheet, manifest, the artifact store) are ``releases.artifacts``.

The build streams the project's approved annotations (SFT) or releasable judgements (preference) once:
each item is aggregated, given its split and written to every exporter, while the evaluation side is
indexed for the leakage check and the training items' prompt digests and signatures wait in a scratch
file. When the stream ends, the evaluation items of earlier releases join the index and every training
item is checked. A leak refuses the build, or (policies "drop" and "move to eval") the rows are written a
second time with the leaking items dropped or moved. Nothing is held per item beyond the evaluation index,
so memory stays flat as the data grows.
"""

import hashlib
import hmac
import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Project
from accounts.services import audit_event_record
from annotation.models import (
    Annotation,
    AnnotationState,
    Item,
    ItemState,
    Review,
    ReviewDecision,
)
from preferences.models import Adjudication, AnnotatorQuality
from preferences.selectors import releasable_judgements, top_displayed
from releases import aggregation, artifacts, splits
from releases.datasheet import Tally
from releases.exporters import Exporter, exporters_for
from releases.models import FROZEN_STATES, Release, ReleaseFile, ReleaseItem, ReleaseState
from releases.recipe import Recipe

logger = logging.getLogger(__name__)

_PROGRESS_EVERY = 2000
_ITEM_ROWS_BATCH = 2000
_CHUNK = 2000


def pseudonym(project_id: int, user_id: int) -> str:
    """A stable pseudonym of an annotator within a project (keyed hash: not reversible without the key)."""
    mac = hmac.new(settings.SECRET_KEY.encode(), f"pseudonym:{project_id}:{user_id}".encode(), hashlib.sha256)
    return f"annotator-{mac.hexdigest()[:10]}"


# --- Select and split -------------------------------------------------------------------------------------------


class BuildRefused(Exception):
    """The data or the recipe do not make a release (leaks under the "fail" policy, nothing selected)."""

    def __init__(self, reason: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.report = report or {}


@dataclass
class Unit:
    """What one item contributes: its prompt (for the split and the leak check) and its rows."""

    item_id: int
    batch_id: int | None
    messages: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    voters: list[int] = field(default_factory=list)
    source: str = "annotated"
    tags: list[str] = field(default_factory=list)
    rubric_version: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def normalised(self) -> str:
        return splits.normalise(splits.prompt_text(self.messages))

    @cached_property
    def group_hash(self) -> str:
        return splits.digest(self.normalised)


def _merge(items: Iterable[tuple[Any, ...]], rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[tuple[Any, ...], list]]:
    """Join two streams ordered by item id: each item with the rows that belong to it (maybe none)."""
    row_iter = iter(rows)
    pending = next(row_iter, None)
    for item in items:
        mine = []
        while pending is not None and pending[0] < item[0]:
            pending = next(row_iter, None)
        while pending is not None and pending[0] == item[0]:
            mine.append(pending)
            pending = next(row_iter, None)
        yield item, mine


def _as_text(name: str) -> Cast:
    """A JSON column read as its text, for orjson to decode: Django's converter (the standard library's
    ``json``) is markedly slower; ``bench/release_export.py`` measures the build."""
    return Cast(name, TextField())


def _tags(metadata: dict[str, Any]) -> list[str]:
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    if isinstance(tags, str):
        return [tags]
    return [str(t) for t in tags] if isinstance(tags, list) else []


class _Selection:
    """The recipe applied to a project: who is left out, which items qualify, how votes weigh."""

    def __init__(self, project: Project, recipe: Recipe) -> None:
        self.project = project
        self.recipe = recipe
        quality = AnnotatorQuality.objects.filter(project=project)
        self.excluded = set(quality.filter(excluded=True).values_list("annotator_id", flat=True))
        self.flagged = set(quality.filter(flagged=True, excluded=False).values_list("annotator_id", flat=True))
        self.left_out = self.excluded | (self.flagged if recipe.exclude_flagged_annotators else set())
        self.weights = {
            annotator: aggregation.gold_weight(seen, correct)
            for annotator, seen, correct in quality.values_list("annotator_id", "gold_seen", "gold_correct")
        }

    def selected(self, tags: list[str], tally: Tally | None) -> bool:
        """Whether an item's tags pass the recipe (counted in the tally when they do not)."""
        if not self.recipe.tags or set(tags) & set(self.recipe.tags):
            return True
        if tally is not None:
            tally.dropped["tags not selected"] += 1
        return False

    def units(self, tally: Tally | None = None) -> Iterator[Unit]:
        """Every item's contribution, in item order (mix-in items last)."""
        if self.recipe.kind == "sft":
            yield from self._sft_units(tally)
            yield from self._mixin_units()
        else:
            yield from self._preference_units(tally)

    def mixin_count(self) -> int:
        """How many mix-in items the recipe's batches offer (the cap on them is a share of the training rows)."""
        if not self.recipe.mixin_batches:
            return 0
        return Item.objects.filter(
            project=self.project,
            batch_id__in=self.recipe.mixin_batches,
            kind="mixin",
            state=ItemState.OPEN,
            response__isnull=False,
        ).count()

    def count(self) -> int:
        kind = "sft" if self.recipe.kind == "sft" else "comparison"
        count = Item.objects.filter(project=self.project, kind=kind, state=ItemState.OPEN).count()
        if self.recipe.mixin_batches:
            count += Item.objects.filter(
                project=self.project, batch_id__in=self.recipe.mixin_batches, state=ItemState.OPEN
            ).count()
        return count

    def _sft_units(self, tally: Tally | None) -> Iterator[Unit]:
        edited = (
            Review.objects.filter(annotation=OuterRef("pk"), decision=ReviewDecision.EDIT_APPROVE)
            .order_by("-created_at")
            .values("edited_response")[:1]
        )
        annotations = Annotation.objects.filter(
            item__project=self.project, item__kind="sft", item__state=ItemState.OPEN, state=AnnotationState.APPROVED
        ).exclude(annotator_id__in=self.left_out)
        if self.recipe.rubric_versions:
            annotations = annotations.filter(rubric_version__version__in=self.recipe.rubric_versions)
        rows = (
            annotations.annotate(edited=Subquery(edited))
            .order_by("item_id", "id")
            .values_list("item_id", "annotator_id", "response", "edited", "flags", "rubric_version__version")
        )
        items = (
            Item.objects.filter(project=self.project, kind="sft", state=ItemState.OPEN)
            .order_by("id")
            .values_list("id", "batch_id", "messages", "metadata")
        )
        excluded_flags = set(self.recipe.exclude_flags)
        for (item_id, batch_id, messages, metadata), found in _merge(
            items.iterator(chunk_size=_CHUNK), rows.iterator(chunk_size=_CHUNK)
        ):
            if not found:
                continue
            tags = _tags(metadata)
            if not self.selected(tags, tally):
                continue
            answers: dict[str, list[int]] = {}
            version = None
            for _, annotator, response, edited_response, flags, rubric_version in found:
                if excluded_flags & set(flags or []):
                    if tally is not None:
                        tally.dropped["annotation flagged " + "/".join(sorted(excluded_flags & set(flags)))] += 1
                    continue
                answers.setdefault(edited_response if edited_response is not None else response, []).append(annotator)
                version = rubric_version if version is None else max(version, rubric_version)
            unit_rows = [
                {
                    "item_id": item_id,
                    "messages": [*messages, {"role": "assistant", "content": answer}],
                    "annotators": sorted({pseudonym(self.project.pk, a) for a in who}),
                    "rubric_version": version,
                    "source": "annotated",
                }
                for answer, who in answers.items()
            ]
            if unit_rows:
                yield Unit(
                    item_id,
                    batch_id,
                    messages,
                    unit_rows,
                    [a for who in answers.values() for a in who],
                    tags=tags,
                    rubric_version=version,
                )

    def _mixin_units(self) -> Iterator[Unit]:
        if not self.recipe.mixin_batches:
            return
        items = (
            # Open ones only, as for the project's own items: an item on hold (erased text among them) stays out.
            Item.objects.filter(
                project=self.project, batch_id__in=self.recipe.mixin_batches, kind="mixin", state=ItemState.OPEN
            )
            .order_by("id")
            .values_list("id", "batch_id", "messages", "response", "metadata")
        )
        for item_id, batch_id, messages, response, metadata in items.iterator(chunk_size=_CHUNK):
            if response is None:
                continue
            row = {
                "item_id": item_id,
                "messages": [*messages, {"role": "assistant", "content": response}],
                "annotators": [],
                "rubric_version": None,
                "source": "mixin",
            }
            yield Unit(item_id, batch_id, messages, [row], source="mixin", tags=_tags(metadata))

    def _preference_units(self, tally: Tally | None) -> Iterator[Unit]:
        recipe = self.recipe
        judgements = (
            releasable_judgements(self.project, left_out=self.left_out)
            .annotate(result_text=_as_text("result"), displayed_order_text=_as_text("displayed_order"))
            .order_by("item_id", "id")
            .values_list("item_id", "annotator_id", "result_text", "displayed_order_text")
        )
        items = (
            Item.objects.filter(project=self.project, kind="comparison", gold__isnull=True, state=ItemState.OPEN)
            .annotate(
                messages_text=_as_text("messages"),
                candidates_text=_as_text("candidates"),
                metadata_text=_as_text("metadata"),
            )
            .order_by("id")
            .values_list("id", "batch_id", "messages_text", "candidates_text", "metadata_text")
        )
        adjudicated: dict[int, dict[str, Any]] = {
            item_id: result
            for item_id, result in Adjudication.objects.filter(
                item__project=self.project, decided_at__isnull=False
            ).values_list("item_id", "result")
            if result
        }
        loads = orjson.loads
        weight = (lambda a: self.weights.get(a, 0.5)) if recipe.aggregation == "gold_weighted" else (lambda a: 1.0)
        for (item_id, batch_id, messages_text, candidates, metadata), rows_found in _merge(
            items.iterator(chunk_size=_CHUNK), judgements.iterator(chunk_size=_CHUNK)
        ):
            if not rows_found and item_id not in adjudicated:
                continue
            tags = _tags(loads(metadata))
            if not self.selected(tags, tally):
                continue
            messages, candidates = loads(messages_text), loads(candidates)
            n = len(candidates)
            found = [(i, annotator, loads(result), loads(order)) for i, annotator, result, order in rows_found]
            votes = [aggregation.Vote(annotator, result, weight(annotator)) for _, annotator, result, _ in found]
            outcomes = aggregation.aggregate_pairs(votes, n, recipe.aggregation)
            if item_id in adjudicated:
                final = aggregation.adjudicated_pairs(adjudicated[item_id], n)
                outcomes = [o for o in outcomes if o.criterion != aggregation.OVERALL] + [
                    o for o in final if o.criterion == aggregation.OVERALL
                ]
            if not recipe.per_criterion:
                outcomes = [o for o in outcomes if o.criterion == aggregation.OVERALL]
            pairs = aggregation.expand_pairs(
                outcomes,
                n,
                ranking_pairs=recipe.ranking_pairs,
                ties=recipe.ties,
                min_agreement=recipe.min_agreement,
                min_strength=recipe.min_strength,
            )
            if not pairs:
                if tally is not None:
                    tally.dropped["no preference passed the recipe"] += 1
                continue
            voters = [annotator for _, annotator, _, _ in found]
            names = sorted({pseudonym(self.project.pk, a) for a in voters})
            rows = [
                {
                    "item_id": item_id,
                    "criterion": pair.criterion,
                    "prompt": messages,
                    "chosen": candidates[pair.chosen]["content"],
                    "rejected": candidates[pair.rejected]["content"],
                    "chosen_id": pair.chosen,
                    "rejected_id": pair.rejected,
                    "margin": pair.margin,
                    "agreement": pair.agreement,
                    "tie": pair.tie,
                    "annotators": names,
                }
                for pair in pairs
            ]
            stats = {
                "adjudicated": item_id in adjudicated,
                "votes": [(annotator, result) for _, annotator, result, _ in found],
                "candidates": n,
                "outcomes": outcomes,
                "positions": [(len(order), top_displayed(result, order)) for _, _, result, order in found],
                "strengths": [result.get("strength") for _, _, result, _ in found if result.get("strength")],
            }
            yield Unit(item_id, batch_id, messages, rows, voters, tags=tags, stats=stats)


@dataclass
class _Splitter:
    fraction: float
    sticky_items: set[int]
    sticky_groups: set[str]
    sticky_moved: set[int] = field(default_factory=set)  # in eval only because an earlier leak check moved them

    def split(self, unit: Unit) -> str:
        if unit.source == "mixin":
            return "train"
        group = unit.group_hash
        if unit.item_id in self.sticky_items or unit.item_id in self.sticky_moved or group in self.sticky_groups:
            return "eval"
        return "eval" if splits.in_eval_by_hash(group, self.fraction) else "train"

    def eval_reason(self, unit: Unit, *, moved: bool) -> str:
        """Why an evaluation item is there, for the datasheet (the hash first: a rebuild says the same)."""
        if unit.source != "mixin" and splits.in_eval_by_hash(unit.group_hash, self.fraction):
            return "in the requested share (stable hash)"
        return "moved there by the leak check" if moved else "kept from earlier releases (sticky)"

    @classmethod
    def for_release(cls, release: Release, fraction: float) -> "_Splitter":
        """Evaluation is sticky: every item (and group) in an earlier release's eval split stays there. Items
        that were there only because a leak check moved them are kept apart, to be checked again."""
        frozen_eval = ReleaseItem.objects.filter(
            release__project_id=release.project_id, release__state__in=FROZEN_STATES, split="eval"
        ).exclude(release=release)
        chosen = frozen_eval.filter(moved=False)
        sticky_items = set(chosen.values_list("item_id", flat=True))
        moved = set(frozen_eval.filter(moved=True).values_list("item_id", flat=True)) - sticky_items
        return cls(fraction, sticky_items, set(chosen.values_list("group_hash", flat=True)), moved)


def _set_progress(release: Release, percent: int, note: str) -> None:
    Release.objects.filter(pk=release.pk, state=ReleaseState.BUILDING).update(
        progress=percent, progress_note=note[:200]
    )


def build(release: Release, scratch: Path) -> Release:
    """Build ``release`` (state building) in ``scratch``: write, hash, store and freeze it. Raises
    ``BuildRefused`` when the data or the recipe do not make a release."""
    started = time.perf_counter()
    project = release.project
    recipe = Recipe.from_dict(release.recipe)
    selection = _Selection(project, recipe)
    total = max(1, selection.count())
    frozen_eval = ReleaseItem.objects.filter(
        release__project=project, release__state__in=FROZEN_STATES, split="eval"
    ).exclude(release=release)
    splitter = _Splitter.for_release(release, recipe.eval_fraction)

    # One pass writes every row while the evaluation side (this release's eval items, then every earlier
    # one) is indexed and the training items wait on disk; they are checked for leaks once the index is
    # complete. Leaks refuse the build, or, under "drop" and "move to eval", the rows are written again
    # knowing which training items leak. Under "move to eval" a moved item is on the evaluation side for the
    # others too: the check is repeated until nothing moves (``splits.leak_closure``), so a moved item never
    # leaves its own near copy in train and the same data always gives the same split. Items an earlier
    # release moved wait with the training items and are checked as they were then (they stay in eval
    # anyway): a rebuild counts the same moves and writes the same bytes.
    index = splits.EvalIndex(threshold=recipe.near_duplicate_threshold)
    pending = splits.PendingProbes(scratch / "leak-check" / "train.bin")
    passes = _Pass(release, selection, splitter, scratch, total)
    written = passes.write(index=index, pending=pending)
    earlier = Item.objects.filter(pk__in=frozen_eval.values("item_id")).order_by("id")
    waiting_moved = written.waiting_moved
    for item_id, messages in earlier.values_list("id", "messages").iterator(chunk_size=_CHUNK):
        if item_id not in waiting_moved:
            index.add(item_id, messages)  # skips the items indexed above
    index.freeze()
    _set_progress(release, 86, "checking for leaks")
    if recipe.leakage == "move_to_eval":
        found = splits.leak_closure(pending, index, eval_anyway=waiting_moved)
    else:
        found = list(pending.leaks(index))
    leaks = [leak.as_dict() | {"action": recipe.leakage} for leak in found]
    if found and recipe.leakage == "fail":
        raise BuildRefused(
            f"{len(leaks)} training item(s) leak into the evaluation side (exact, normalised or near duplicates); "
            "nothing was released. See the leak report, or choose another leakage policy.",
            {"leaks": leaks[:1000], "total": len(leaks)},
        )
    leak_action = {leak.train_item: recipe.leakage for leak in found}
    if recipe.leakage == "move_to_eval":  # items an earlier release moved stay in eval, leaking again or not
        leak_action |= dict.fromkeys(waiting_moved, "move_to_eval")
    if written.rewrite or any(item_id not in waiting_moved for item_id in leak_action):  # else the rows stand
        for exporter in written.exporters:
            exporter.close()  # its files are written over by the second pass
        ReleaseItem.objects.filter(release=release).delete()
        written = passes.write(leak_action=leak_action)
    for leak in found:
        written.tally.leaks[leak.kind] += 1
    exporters, timers, tally = written.exporters, written.timers, written.tally
    batches, voters, rubric_versions = written.batches, written.voters, written.rubric_versions
    root = passes.root
    if not tally.rows:
        raise BuildRefused("The recipe selects nothing: no approved annotations or decided preferences match it.")

    _set_progress(release, 92, "closing files")
    files = artifacts.close_exporters(exporters, timers)
    annotators = sorted({pseudonym(project.pk, v) for v in voters})
    manifest = artifacts.manifest(release, recipe, tally, batches, annotators, rubric_versions)
    sheet, release_hash = artifacts.write_datasheet_and_manifest(release, root, manifest, tally, files)

    _set_progress(release, 96, "storing files")
    artifacts.store(release, root, files)
    stats = {"seconds": round(time.perf_counter() - started, 3), "exporter_seconds": timers, "leaks": len(leaks)}
    with transaction.atomic():
        ReleaseFile.objects.bulk_create([ReleaseFile(release=release, **asdict(f)) for f in files])
        Release.objects.filter(pk=release.pk).update(
            state=ReleaseState.BUILT,
            progress=100,
            progress_note="built",
            manifest=manifest,
            hash=release_hash,
            datasheet=sheet,
            leak_report={"leaks": leaks[:1000], "total": len(leaks)} if leaks else {},
            build_stats=stats,
            built_at=timezone.now(),
        )
        audit_event_record(
            actor=None,
            action="release.build",
            object_type="releases.release",
            object_id=release.pk,
            project=project,
            payload={"hash": release_hash, "rows": dict(tally.rows), "files": len(files)},
        )
    release.refresh_from_db()
    return release


@dataclass
class _Written:
    """What one writing pass produced: the open exporters and what the manifest and datasheet count."""

    exporters: list[Exporter]
    timers: dict[str, float]
    tally: Tally
    batches: dict[int, int] = field(default_factory=dict)
    voters: set[int] = field(default_factory=set)
    rubric_versions: set[int] = field(default_factory=set)
    waiting_moved: set[int] = field(default_factory=set)  # moved by an earlier release, checked again
    rewrite: bool = False  # a second pass is needed whatever the check finds


@dataclass
class _Pass:
    """Writes the release's rows to every exporter and its ReleaseItem rows, in one stream over the data."""

    release: Release
    selection: _Selection
    splitter: _Splitter
    scratch: Path
    total: int

    @property
    def root(self) -> Path:
        return self.scratch / "release"

    def write(
        self,
        *,
        index: splits.EvalIndex | None = None,
        pending: splits.PendingProbes | None = None,
        leak_action: dict[int, str] | None = None,
    ) -> _Written:
        """One pass. ``index`` and ``pending`` collect the evaluation side and the training items to check;
        ``leak_action`` drops training items or moves them to eval (a second pass, after the check)."""
        release, recipe, leak_action = self.release, self.selection.recipe, leak_action or {}
        for leftover in (self.root, self.scratch / "arrow"):
            shutil.rmtree(leftover, ignore_errors=True)
        exporters = exporters_for(release.kind, self.root, self.scratch / "arrow")
        tally = Tally(
            gold_items=Item.objects.filter(project=release.project, kind="comparison", gold__isnull=False).count()
        )
        tally.excluded_annotators = len(self.selection.excluded)
        tally.flagged_excluded = len(self.selection.flagged)
        out = _Written(exporters, {type(e).__name__: 0.0 for e in exporters}, tally)
        mixin_items, mixin_share, train_rows = self.selection.mixin_count(), None, 0
        item_rows: list[tuple[Any, ...]] = []
        for position, unit in enumerate(self.selection.units(tally), 1):
            if unit.source == "mixin":
                if mixin_share is None:  # mix-in items come last: every training row is counted by now
                    # A second pass has fewer training rows, so its mix-in items are a subset of the first
                    # pass's (all of which were checked for leaks).
                    cap = recipe.mixin_fraction / (1 - recipe.mixin_fraction) * train_rows
                    mixin_share = min(1.0, cap / mixin_items) if mixin_items and recipe.mixin_fraction else 0.0
                if not splits.in_eval_by_hash(unit.group_hash, mixin_share):
                    continue  # beyond the mix-in cap (a stable choice: the same items every time)
            split = self.splitter.split(unit)
            action = leak_action.get(unit.item_id)
            if action == "drop":
                tally.dropped["leak: dropped from train"] += 1
                continue
            moved = action == "move_to_eval" or unit.item_id in self.splitter.sticky_moved
            if action == "move_to_eval":
                split = "eval"
            elif moved and recipe.leakage == "move_to_eval":
                if pending is not None:  # checked again with the training items, see ``_build``
                    pending.add(unit.item_id, unit.messages, unit.normalised)
                    out.waiting_moved.add(unit.item_id)
                    if split == "train":  # a mix-in item (always train by itself): the second pass moves it
                        out.rewrite = True
            elif split == "eval" and index is not None:
                index.add(unit.item_id, unit.messages, unit.normalised)
            elif split == "train":
                train_rows += len(unit.rows) if unit.source != "mixin" else 0
                if pending is not None:
                    pending.add(unit.item_id, unit.messages, unit.normalised)
            if split == "eval":
                tally.eval_reasons[self.splitter.eval_reason(unit, moved=moved)] += 1
            _write_unit(release, unit, split, exporters, out.timers, tally)
            item_rows.append(_item_row(release, unit, split, moved=moved and split == "eval"))
            out.batches[unit.batch_id or 0] = out.batches.get(unit.batch_id or 0, 0) + 1
            out.voters.update(unit.voters)
            if unit.rubric_version is not None:
                out.rubric_versions.add(unit.rubric_version)
            if len(item_rows) >= _ITEM_ROWS_BATCH:
                _save_item_rows(item_rows)
                item_rows = []
            if position % _PROGRESS_EVERY == 0:
                note = "writing again without the leaking items" if leak_action else "writing"
                _set_progress(release, min(85, 85 * position // self.total), f"{note}: {position:,} items")
        if item_rows:
            _save_item_rows(item_rows)
        return out


def _write_unit(
    release: Release, unit: Unit, split: str, exporters: list[Exporter], timers: dict[str, float], tally: Tally
) -> None:
    for n, row in enumerate(unit.rows):
        row["id"] = (
            f"{unit.item_id}-{n}"
            if release.kind == "sft"
            else f"{unit.item_id}-{row['criterion']}-{row['chosen_id']}-{row['rejected_id']}"
        )
        for exporter in exporters:
            began = time.perf_counter()
            exporter.write(split, row)
            timers[type(exporter).__name__] += time.perf_counter() - began
    tally.rows[split] += len(unit.rows)
    tally.items[split] += 1
    tally.sources[unit.source] += len(unit.rows)
    for tag in unit.tags:
        tally.per_tag[tag] += len(unit.rows)
    if unit.rubric_version is not None:
        tally.per_rubric_version[f"v{unit.rubric_version}"] += len(unit.rows)
    for row in unit.rows:
        for name in row["annotators"]:
            tally.annotator_votes[name] += 1
        if release.kind == "preference":
            tally.per_criterion[row["criterion"]] += 1
    if release.kind != "preference":
        return
    tally.adjudicated += int(unit.stats["adjudicated"])
    tally.rate(unit.item_id, unit.stats["votes"], unit.stats["candidates"])
    for outcome in unit.stats["outcomes"]:
        tally.agreement_sum[outcome.criterion] += outcome.agreement
        tally.agreement_n[outcome.criterion] += 1
        tally.unanimous[outcome.criterion] += outcome.agreement >= 1.0
    for shown, position in unit.stats["positions"]:
        tally.position(shown, position)
    for strength in unit.stats["strengths"]:
        tally.strengths[str(strength)] += 1


_ITEM_COLUMNS = ("release_id", "item_id", "split", "group_hash", "fingerprint", "outcome", "source", "moved")


def _item_row(release: Release, unit: Unit, split: str, *, moved: bool) -> tuple[Any, ...]:
    """The values of the item's ReleaseItem row, in ``_ITEM_COLUMNS`` order."""
    fingerprint = hashlib.sha256(
        orjson.dumps(
            [{k: v for k, v in r.items() if k != "annotators"} for r in unit.rows], option=orjson.OPT_SORT_KEYS
        )
    ).hexdigest()[:32]
    outcome = ";".join(
        sorted(f"{r['criterion']}:{r['chosen_id']}>{r['rejected_id']}" for r in unit.rows if not r.get("tie"))
        if release.kind == "preference"
        else []
    )
    return (release.pk, unit.item_id, split, unit.group_hash, fingerprint, outcome, unit.source, moved)


def _save_item_rows(rows: list[tuple[Any, ...]]) -> None:
    """Insert ReleaseItem rows: by COPY on PostgreSQL (much faster than bulk_create, see
    ``bench/release_export.py``), else in bulk."""
    if connection.vendor != "postgresql":
        ReleaseItem.objects.bulk_create([ReleaseItem(**dict(zip(_ITEM_COLUMNS, row, strict=True))) for row in rows])
        return
    columns = ", ".join(_ITEM_COLUMNS)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {ReleaseItem._meta.db_table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)

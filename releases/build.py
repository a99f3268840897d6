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
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from accounts.services import audit_event_record
from annotation.models import (
    Item,
)
from core import followups
from releases import artifacts, paraphrase, splits
from releases import followups as followups_of_releases
from releases.datasheet import Tally
from releases.exporters import Exporter, exporters_for
from releases.models import FROZEN_STATES, Release, ReleaseFile, ReleaseItem, ReleaseState
from releases.recipe import Recipe
from releases.selection import Selection, Unit, pseudonym
from releases.splitter import Splitter

logger = logging.getLogger(__name__)

_PROGRESS_EVERY = 2000
_ITEM_ROWS_BATCH = 2000
_CHUNK = 2000


# --- Select and split -------------------------------------------------------------------------------------------


class BuildRefused(Exception):
    """The data or the recipe do not make a release (leaks under the "fail" policy, nothing selected)."""

    def __init__(self, reason: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.report = report or {}


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
    selection = Selection(project, recipe)
    total = max(1, selection.count())
    frozen_eval = ReleaseItem.objects.filter(
        release__project=project, release__state__in=FROZEN_STATES, split="eval"
    ).exclude(release=release)
    splitter = Splitter.for_release(release, recipe.eval_fraction, recipe.eval_items)
    if recipe.stratify_by:
        _set_progress(release, 1, "planning the stratified split")
        splitter.stratify(release, selection)

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
    # Paraphrases by stored prompt embeddings, in the same rounds (``releases.paraphrase``).
    paraphrases = paraphrase.paraphrase_index(
        project_id=project.pk, threshold=recipe.paraphrase_threshold, eval_ids=index.ids
    )
    if recipe.leakage == "move_to_eval":
        found = splits.leak_closure(pending, index, eval_anyway=waiting_moved, also=paraphrases)
    else:
        found = list(pending.leaks(index, also=paraphrases))
    if paraphrases is not None and paraphrases.model_hash is not None and paraphrases.stats.missing:
        followups_of_releases.embeddings_requested(project.pk)
    leaks = [leak.as_dict() | {"action": recipe.leakage} for leak in found]
    if found and recipe.leakage == "fail":
        raise BuildRefused(
            f"{len(leaks)} training item(s) leak into the evaluation side (exact, normalised or near duplicates, "
            "or paraphrases); nothing was released. See the leak report, or choose another leakage policy.",
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
    if splitter.plan is not None:
        written.tally.stratification = splitter.plan.summary(written.tally.strata)
    written.tally.paraphrase = paraphrase.report(
        paraphrases, found, threshold=recipe.paraphrase_threshold, action=recipe.leakage
    )
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
    if paraphrases is not None:
        without = len(paraphrases.stats.missing)
        stats["paraphrase_check"] = {
            "seconds": round(paraphrases.stats.seconds, 3),
            "items_checked": len(paraphrases.stats.checked),
            "items_without_embedding": without,
            "note": f"{without} items had no prompt embedding yet and were checked by MinHash only" if without else "",
        }
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
        followups.ended("release", release.pk)
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
    selection: Selection
    splitter: Splitter
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
            if (stratum := self.splitter.stratum(unit)) is not None:
                tally.strata[split][stratum] += 1
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

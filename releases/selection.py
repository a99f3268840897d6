"""What a release selects, item by item: the recipe applied to a project (annotators left out, qualifying items,
vote weights) and each item's contribution (``Unit``: its prompt and rows), streamed for ``releases.build``.
Annotators are named by their pseudonym (``pseudonym``), never their username."""

import hashlib
import hmac
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson
from django.conf import settings
from django.db.models import OuterRef, Subquery, TextField
from django.db.models.functions import Cast

from accounts.models import Project
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
from releases import aggregation, splits
from releases.datasheet import Tally
from releases.recipe import Recipe

logger = logging.getLogger(__name__)

_PROGRESS_EVERY = 2000
_ITEM_ROWS_BATCH = 2000

_CHUNK = 2000


def pseudonym(project_id: int, user_id: int) -> str:
    """A stable pseudonym of an annotator within a project (keyed hash: not reversible without the key)."""
    mac = hmac.new(settings.SECRET_KEY.encode(), f"pseudonym:{project_id}:{user_id}".encode(), hashlib.sha256)
    return f"annotator-{mac.hexdigest()[:10]}"


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
    metadata: dict[str, Any] = field(default_factory=dict)  # the item's, for a stratified split

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


class Selection:
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
                    metadata=metadata if isinstance(metadata, dict) else {},
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
            metadata = loads(metadata)
            tags = _tags(metadata)
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
            yield Unit(
                item_id,
                batch_id,
                messages,
                rows,
                voters,
                tags=tags,
                stats=stats,
                metadata=metadata if isinstance(metadata, dict) else {},
            )

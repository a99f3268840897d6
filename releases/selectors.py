"""Reads of the releases app: lists, downloads, the diff between two releases and a project's prompt embeddings."""

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import F, QuerySet

from accounts.models import Project
from annotation.models import ImportBatch
from core.http import parse_id
from releases.embeddings import dequantise
from releases.models import DriftReport, DriftState, PromptEmbedding, Release, ReleaseItem, ReleaseState

DIFF_EXAMPLES = 50


def releases_of(project: Project) -> QuerySet[Release]:
    return Release.objects.filter(project=project).select_related("created_by").order_by("-created_at", "-id")


def built_releases(project: Project) -> QuerySet[Release]:
    return releases_of(project).filter(state=ReleaseState.BUILT)


def built_release(project: Project, value: object) -> Release | None:
    """The built release of ``project`` that ``value`` (an id from a query string) names, if any."""
    number = parse_id(value)
    return built_releases(project).filter(pk=number).first() if number is not None else None


def mixin_batches(project: Project) -> QuerySet[ImportBatch]:
    return ImportBatch.objects.filter(project=project, purpose="mixin", status="done").order_by("-created_at")


def previous_release(release: Release) -> Release | None:
    return (
        Release.objects.filter(project_id=release.project_id, kind=release.kind, state=ReleaseState.BUILT)
        .filter(created_at__lt=release.created_at)
        .order_by("-created_at")
        .first()
    )


def _rows(release: Release) -> Iterator[tuple[int, str, str, str]]:
    yield from (
        ReleaseItem.objects.filter(release=release)
        .order_by("item_id")
        .values_list("item_id", "split", "fingerprint", "outcome")
        .iterator(chunk_size=5000)
    )


def _flips(before: str, after: str) -> list[str]:
    """Pairs whose preference reversed: "overall:0>1" before, "overall:1>0" after."""
    old = {tuple(p.split(":", 1)) for p in before.split(";") if p}
    flipped = []
    for criterion, pair in (tuple(p.split(":", 1)) for p in after.split(";") if p):
        chosen, rejected = pair.split(">")
        if (criterion, f"{rejected}>{chosen}") in old:
            flipped.append(f"{criterion}: {rejected} > {chosen} became {chosen} > {rejected}")
    return flipped


def release_diff(a: Release, b: Release) -> dict[str, Any]:
    """What changed from release ``a`` to release ``b`` of one project, by a merge over their item rows
    (both ordered by item id, so memory stays flat): items added, removed, changed (their rows differ),
    preference flips and split moves. A move out of evaluation breaks the sticky-split promise and is
    listed under ``eval_to_train`` (it must stay empty)."""
    keys = ("added", "removed", "changed", "unchanged", "flips", "train_to_eval", "eval_to_train")
    counts = dict.fromkeys(keys, 0)
    examples: dict[str, list[Any]] = {key: [] for key in counts if key != "unchanged"}

    def note(key: str, value: Any) -> None:
        counts[key] += 1
        if len(examples[key]) < DIFF_EXAMPLES:
            examples[key].append(value)

    left, right = _rows(a), _rows(b)
    x, y = next(left, None), next(right, None)
    while x is not None or y is not None:
        if x is not None and (y is None or x[0] < y[0]):
            note("removed", {"item": x[0], "split": x[1]})
            x = next(left, None)
            continue
        assert y is not None
        if x is None or y[0] < x[0]:
            note("added", {"item": y[0], "split": y[1]})
            y = next(right, None)
            continue
        if x[1] != y[1]:
            note(f"{x[1]}_to_{y[1]}", {"item": x[0]})
        if x[2] != y[2]:
            note("changed", {"item": x[0]})
            for flip in _flips(x[3], y[3]):
                note("flips", {"item": x[0], "pair": flip})
        else:
            counts["unchanged"] += 1
        x, y = next(left, None), next(right, None)
    return {
        "from": {"id": a.pk, "name": a.name, "version": a.version, "hash": a.hash},
        "to": {"id": b.pk, "name": b.name, "version": b.version, "hash": b.hash},
        "same_hash": bool(a.hash) and a.hash == b.hash,
        "counts": counts,
        "examples": examples,
    }


@dataclass(frozen=True)
class EmbeddingMatrix:
    """A project's prompt embeddings by one model: row ``i`` of ``vectors`` (float32, unit length) is the prompt
    of item ``item_ids[i]``; ids ascending."""

    model_hash: str
    item_ids: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.item_ids)


def prompt_embedding_codes(
    *, project_id: int, model_hash: str, item_ids: Collection[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The stored int8 codes of the project's prompt embeddings by the model ``model_hash`` of the items' current
    text (items not embedded yet, or edited since, are left out): item ids ascending and one row of codes each,
    without the scales (a cosine needs none). ``item_ids`` narrows to those items."""
    rows = PromptEmbedding.objects.filter(
        item__project_id=project_id, model_hash=model_hash, content_hash=F("item__content_hash")
    )
    if item_ids is not None:
        rows = rows.filter(item_id__in=list(item_ids))
    found = list(rows.order_by("item_id").values_list("item_id", "dim", "vector"))
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.int8)
    codes = np.frombuffer(b"".join(bytes(row[2]) for row in found), dtype=np.int8).reshape(len(found), found[0][1])
    return np.fromiter((row[0] for row in found), dtype=np.int64, count=len(found)), codes


def prompt_embeddings(
    *, project_id: int, model_hash: str, item_ids: Collection[int] | None = None, dim: int | None = None
) -> EmbeddingMatrix:
    """The project's items embedded by the model ``model_hash`` (``releases.embeddings.embedding_model_hash()``
    where that model's directory is at hand) of their current text, decoded to a float32 matrix: items not
    embedded yet, or edited since, are left out. ``item_ids`` narrows to those items; ``dim`` gives the width of
    an empty result (0 otherwise)."""
    rows = PromptEmbedding.objects.filter(
        item__project_id=project_id, model_hash=model_hash, content_hash=F("item__content_hash")
    )
    if item_ids is not None:
        rows = rows.filter(item_id__in=list(item_ids))
    found = list(rows.order_by("item_id").values_list("item_id", "dim", "scale", "vector"))
    if not found:
        return EmbeddingMatrix(model_hash, np.zeros(0, dtype=np.int64), np.zeros((0, dim or 0), dtype=np.float32))
    width = found[0][1]
    codes = np.frombuffer(b"".join(bytes(row[3]) for row in found), dtype=np.int8).reshape(len(found), width)
    scales = np.fromiter((row[2] for row in found), dtype=np.float32, count=len(found))
    ids = np.fromiter((row[0] for row in found), dtype=np.int64, count=len(found))
    return EmbeddingMatrix(model_hash, ids, dequantise(codes, scales))


def _drift_reports(project_id: int, release_id: int | None) -> QuerySet[DriftReport]:
    reports = DriftReport.objects.filter(project_id=project_id)
    return reports.filter(release__isnull=True) if release_id is None else reports.filter(release_id=release_id)


def latest_drift_report(project_id: int, release_id: int | None = None) -> DriftReport | None:
    """The newest computed drift report of the project's current eval set (or of the release's eval split)."""
    reports = _drift_reports(project_id, release_id).filter(state=DriftState.DONE)
    return reports.select_related("release").order_by("-id").first()


def pending_drift_report(project_id: int, release_id: int | None = None) -> DriftReport | None:
    """A report of that set still queued or being computed (the newest)."""
    reports = _drift_reports(project_id, release_id).filter(state__in=(DriftState.QUEUED, DriftState.RUNNING))
    return reports.order_by("-id").first()


def failed_drift_report(project_id: int, release_id: int | None = None) -> DriftReport | None:
    """The newest report of that set that failed (the page says why when it is newer than the latest computed)."""
    return _drift_reports(project_id, release_id).filter(state=DriftState.FAILED).order_by("-id").first()


def drift_badge(project_id: int) -> list[dict[str, Any]]:
    """What the project overview and release pages show: the checks the latest report of the current eval set
    flagged (one row, or none when nothing crossed a threshold); ``core.figures`` kind ``eval_drift``."""
    report = latest_drift_report(project_id)
    if report is None or not report.flagged:
        return []
    return [{"report": report.pk, "flagged": list(report.flagged), "computed_at": report.computed_at}]

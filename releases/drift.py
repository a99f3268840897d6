"""Eval-set health: how far the items imported lately have drifted from the evaluation set, and which strata the
evaluation set covers too thinly. A ``DriftReport`` is requested (by a person, after each import, after each
build) and computed by the task ``releases.drift_report_compute`` on a default worker from stored rows and
stored prompt embeddings (numpy and scipy; no model is loaded); the drift page and API only read the latest.

What is compared: the eval items of one release, or the project's current eval set (every frozen release's eval
items), against the items of the project's annotation imports of the window (by the import's time), eval items
left out. Per metadata key (the latest release's ``stratify_by`` keys and every key with few distinct values),
prompt length, language, embeddings; and the recent prompts farthest from any eval prompt
(``releases.drift_stats``). Thresholds are the project's ``EvalHealthSettings``."""

import logging
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import audit_event_record
from annotation.models import Item
from core.dispatch import send_on_commit
from core.errors import DomainError
from releases import drift_stats
from releases.embeddings import embedding_text
from releases.models import (
    FROZEN_STATES,
    DriftReport,
    DriftState,
    EvalHealthSettings,
    PromptEmbedding,
    Release,
    ReleaseItem,
    ReleaseState,
)
from releases.selectors import prompt_embeddings

logger = logging.getLogger(__name__)

MAX_KEYS = 12
MAX_VALUES = 50  # a key with more distinct values is an id or free text: not compared
MAX_GAPS = 100
LANGUAGE_KEYS = ("language", "lang")
NONE = "(none)"
SKIPPED_KEYS = {"tags", "id", "external_id"}


def eval_health_settings(project: Project) -> EvalHealthSettings:
    """The project's thresholds (an unsaved row of defaults when none were set)."""
    return EvalHealthSettings.objects.filter(project=project).first() or EvalHealthSettings(project=project)


# --- Writes ------------------------------------------------------------------------------------------------


def eval_health_settings_update(*, actor: User, project: Project, values: dict[str, Any]) -> EvalHealthSettings:
    """Set the project's drift and coverage thresholds (any of ``EvalHealthSettings.THRESHOLDS``). Raises
    ``DomainError`` naming a value out of range. Audited as ``drift.settings``; takes effect at the next report."""
    limits = {
        "psi_max": (0.0, 10.0),
        "chi2_p_min": (0.0, 1.0),
        "ks_max": (0.0, 1.0),
        "centroid_max": (0.0, 2.0),
        "mmd_p_min": (0.0, 1.0),
        "window_days": (1, 3650),
        "min_eval_per_stratum": (0, 100_000),
    }
    with transaction.atomic():
        row = EvalHealthSettings.objects.select_for_update().filter(project=project).first()
        row = row or EvalHealthSettings(project=project)
        before = row.thresholds()
        for name, value in values.items():
            if name not in limits:
                raise DomainError(f"Unknown threshold “{name}”.", field=name)
            low, high = limits[name]
            try:
                number: float = int(value) if isinstance(low, int) else float(value)
            except (TypeError, ValueError):
                raise DomainError(f"{name} must be a number.", field=name) from None
            if not low <= number <= high:
                raise DomainError(f"{name} must lie between {low} and {high}.", field=name)
            setattr(row, name, number)
        row.updated_by, row.updated_at = actor, timezone.now()
        row.save()
        audit_event_record(
            actor=actor, action="drift.settings", target=row, project=project,
            payload={"before": before, "after": row.thresholds()},
        )  # fmt: skip
    return row


def drift_report_request(*, actor: User | None, project: Project, release: Release | None = None) -> DriftReport:
    """Queue a drift report of ``release``'s eval split (None: the project's current eval set) against the recent
    imports; one still queued for the same set is returned instead. Raises ``DomainError`` for a release that is
    not built. A person's request is audited as ``drift.request``; the task is sent after the commit."""
    if release is not None and release.state not in FROZEN_STATES:
        raise DomainError("Only a built release has an eval split to compare.", field="release", status=409)
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).get(pk=project.pk)  # one queued report a set
        waiting = DriftReport.objects.filter(project=project, release=release, state=DriftState.QUEUED).first()
        if waiting is not None:
            return waiting
        now = timezone.now()
        days = eval_health_settings(project).window_days
        report = DriftReport.objects.create(
            project=project, release=release, window_start=now - timedelta(days=days), window_end=now,
            requested_by=actor,
        )  # fmt: skip
        if actor is not None:  # the automatic ones (after an import or a build) are derived data, not a decision
            audit_event_record(
                actor=actor, action="drift.request", target=report, project=project,
                payload={"release": release.pk if release else None},
            )  # fmt: skip
        from releases.tasks import drift_report_compute_task

        def refused(reason: str) -> None:
            DriftReport.objects.filter(pk=report.pk, state=DriftState.QUEUED).update(
                state=DriftState.FAILED, failure_reason=reason
            )

        send_on_commit(
            lambda: drift_report_compute_task.delay(report.pk), what=f"drift report #{report.pk}", on_refused=refused
        )
    return report


def drift_report_compute(*, report_id: int) -> DriftReport:
    """Compute a queued report on a worker (task ``releases.drift_report_compute``): window from now back the
    project's window days, figures, flags; stores them and marks it done, or failed with the reason. A report
    already done (a message delivered twice) is returned as it is."""
    with transaction.atomic():
        report = (
            DriftReport.objects.select_for_update(of=("self",)).select_related("project", "release").get(pk=report_id)
        )
        if report.state not in (DriftState.QUEUED, DriftState.RUNNING):
            return report
        report.state = DriftState.RUNNING
        report.save(update_fields=["state"])
    started = time.perf_counter()
    try:
        found = eval_health_settings(report.project)
        report.window_end = timezone.now()
        report.window_start = report.window_end - timedelta(days=found.window_days)
        report.thresholds = found.thresholds()
        report.model_hash, report.result = compute(report)
        report.flagged = report.result.pop("flagged")
        report.state, report.computed_at = DriftState.DONE, timezone.now()
    except Exception as exc:
        logger.exception("Drift report #%s failed", report.pk)
        report.state, report.failure_reason = DriftState.FAILED, f"{type(exc).__name__}: {exc}"
    report.seconds = round(time.perf_counter() - started, 3)
    report.save()
    return report


# --- The figures -------------------------------------------------------------------------------------------


def eval_rows(project: Project, release: Release | None) -> QuerySet[ReleaseItem]:
    rows = ReleaseItem.objects.filter(split="eval")
    if release is not None:
        return rows.filter(release=release)
    return rows.filter(release__project=project, release__state__in=FROZEN_STATES)


def recent_items(project: Project, start: Any, end: Any, exclude: QuerySet[ReleaseItem]) -> QuerySet[Item]:
    """The items of the project's annotation imports made in [start, end), eval items left out."""
    return (
        Item.objects.filter(project=project, batch__created_at__gte=start, batch__created_at__lt=end)
        .exclude(batch__purpose="mixin")
        .exclude(pk__in=exclude.values("item_id"))
    )


def metadata_value(value: Any) -> str | None:
    """A metadata value as a stratum's name (None: a list or an object, not a stratum)."""
    if value is None:
        return NONE
    if isinstance(value, str | int | float | bool):
        return str(value).strip()[:80] or NONE
    return None


def _keys(project: Project, metadata: list[dict[str, Any]]) -> list[str]:
    """The latest release's ``stratify_by`` keys, then every key of few distinct scalar values (not an id)."""
    latest = Release.objects.filter(project=project, state=ReleaseState.BUILT).order_by("-built_at", "-id").first()
    chosen = [str(k) for k in ((latest.recipe or {}).get("stratify_by") or [])] if latest else []
    values: dict[str, set[str]] = {}
    broken: set[str] = set()
    for meta in metadata:
        for key, value in meta.items():
            text = metadata_value(value)
            if text is None:
                broken.add(key)
            else:
                values.setdefault(key, set()).add(text)
    for key in sorted(values):
        few = 1 < len(values[key]) <= min(MAX_VALUES, max(2, len(metadata) // 2))
        if key not in chosen and key not in broken and key not in SKIPPED_KEYS and few:
            chosen.append(key)
    return [k for k in chosen if k not in LANGUAGE_KEYS][:MAX_KEYS]


def _counts(metadata: list[dict[str, Any]], key: str) -> Counter[str]:
    return Counter(metadata_value(meta.get(key)) or NONE for meta in metadata)


def _load(items: QuerySet[Item]) -> tuple[list[int], list[dict[str, Any]], list[str]]:
    ids, metadata, texts = [], [], []
    for pk, meta, messages in items.order_by("pk").values_list("pk", "metadata", "messages").iterator(chunk_size=5000):
        ids.append(pk)
        metadata.append(meta if isinstance(meta, dict) else {})
        texts.append(embedding_text(messages or []))
    return ids, metadata, texts


def compute(report: DriftReport) -> tuple[str, dict[str, Any]]:
    """The report's figures and flags (``result["flagged"]``) and the embedding model's hash."""
    project, limits = report.project, report.thresholds
    exclude = eval_rows(project, report.release)
    eval_ids, eval_meta, eval_texts = _load(Item.objects.filter(pk__in=exclude.values("item_id")))
    window = recent_items(project, report.window_start, report.window_end, exclude)
    recent_ids, recent_meta, recent_texts = _load(window)
    flagged: list[str] = []

    keys = {}
    for key in _keys(project, eval_meta + recent_meta):
        keys[key] = drift_stats.categorical_drift(_counts(eval_meta, key), _counts(recent_meta, key))
        keys[key]["flagged"] = flag_key(keys[key], limits)
        flagged += [key] if keys[key]["flagged"] else []
    language: dict[str, Any] = {"key": None, "note": "no language metadata (no offline language detector installed)"}
    for key in LANGUAGE_KEYS:
        if any(key in meta for meta in eval_meta + recent_meta):
            language = {"key": key, **drift_stats.categorical_drift(_counts(eval_meta, key), _counts(recent_meta, key))}
            language["flagged"] = flag_key(language, limits)
            flagged += ["language"] if language["flagged"] else []
            break
    lengths = drift_stats.length_drift(
        [drift_stats.token_count(t) for t in eval_texts], [drift_stats.token_count(t) for t in recent_texts]
    )
    lengths["flagged"] = lengths["ks"] is not None and bool(
        lengths["ks"] >= limits["ks_max"] and lengths["p"] < limits["chi2_p_min"]
    )
    flagged += ["prompt length"] if lengths["flagged"] else []
    model_hash, embedding, far = _embeddings(project, eval_ids, recent_ids)
    if embedding.get("centroid_distance") is not None and embedding["centroid_distance"] >= limits["centroid_max"]:
        flagged.append("embedding centroid")
    if embedding.get("mmd") and embedding["mmd"]["p"] < limits["mmd_p_min"]:
        flagged.append("embedding MMD")
    text_of = dict(zip(recent_ids, recent_texts, strict=True)) | dict(zip(eval_ids, eval_texts, strict=True))
    farthest = [
        {"item": r, "prompt": text_of[r][:240], "nearest_eval": e, "nearest_prompt": text_of[e][:240], "similarity": s}
        for r, e, s in far
    ]
    gaps = coverage_gaps(keys, limits["min_eval_per_stratum"])
    result = {
        "eval_items": len(eval_ids),
        "recent_items": len(recent_ids),
        "keys": keys,
        "language": language,
        "prompt_tokens": lengths,
        "embedding": embedding,
        "farthest": farthest,
        "coverage_gaps": gaps,
        "flagged": flagged,
    }
    return model_hash, result


def flag_key(figures: dict[str, Any], limits: dict[str, Any]) -> bool:
    """A key (or the language) drifted: its PSI reaches the threshold and its p-value is below the threshold's
    (a p-value of 0.0, which huge samples give, counts: it is not a missing one)."""
    if figures["psi"] is None or figures["chi2_p"] is None:
        return False
    return bool(figures["psi"] >= limits["psi_max"] and figures["chi2_p"] < limits["chi2_p_min"])


def coverage_gaps(keys: dict[str, dict[str, Any]], minimum: float) -> list[dict[str, Any]]:
    """Strata (key = value, seen on either side) with fewer than ``minimum`` eval items, most recent items first."""
    gaps = [
        {"key": key, "value": row["value"], "eval": row["eval"], "recent": row["recent"]}
        for key, figures in keys.items()
        for row in figures["values"]
        if row["eval"] < minimum and row["value"] != NONE
    ]
    return sorted(gaps, key=lambda g: (g["eval"] - g["recent"], g["key"], g["value"]))[:MAX_GAPS]


def _embeddings(
    project: Project, eval_ids: list[int], recent_ids: list[int]
) -> tuple[str, dict[str, Any], list[tuple[int, int, float]]]:
    """Embedding drift on the items embedded by the project's latest embedding model; the others are counted."""
    model_hash = (
        PromptEmbedding.objects.filter(item__project=project).order_by("-created_at", "-id")
        .values_list("model_hash", flat=True).first()
    )  # fmt: skip
    if model_hash is None:
        empty = {"centroid_distance": None, "mmd": None, "eval_embedded": 0, "recent_embedded": 0}
        return "", empty | {"eval_missing": len(eval_ids), "recent_missing": len(recent_ids)}, []
    matrix = prompt_embeddings(project_id=project.pk, model_hash=model_hash)
    eval_mask = np.isin(matrix.item_ids, np.asarray(eval_ids, dtype=np.int64))
    recent_mask = np.isin(matrix.item_ids, np.asarray(recent_ids, dtype=np.int64))
    ev, rv = matrix.vectors[eval_mask], matrix.vectors[recent_mask]
    figures = drift_stats.embedding_drift(ev, rv) | {
        "eval_embedded": int(eval_mask.sum()),
        "recent_embedded": int(recent_mask.sum()),
        "eval_missing": len(eval_ids) - int(eval_mask.sum()),
        "recent_missing": len(recent_ids) - int(recent_mask.sum()),
    }
    far = drift_stats.farthest(matrix.item_ids[eval_mask], ev, matrix.item_ids[recent_mask], rv)
    return model_hash, figures, far

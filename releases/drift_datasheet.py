"""Eval-set health in a release's datasheet: a line when the latest drift report flagged drift that no build since
has reported ("Drift at build time"), and the coverage gaps of the release itself: strata of the recipe's
``stratify_by`` keys with fewer eval items than the project's minimum. Both are left out when there is nothing to
say, so a datasheet without them reads as before. The gaps depend on the recipe, data and minimum only (a rebuild
gives the same bytes); the drift line records what a report said when the release was built."""

from collections import Counter
from typing import Any

from releases.drift import NONE, eval_health_settings, metadata_value
from releases.models import Release, ReleaseItem, ReleaseState
from releases.selectors import latest_drift_report

MAX_GAPS = 50


def _drift_line(release: Release) -> dict[str, Any] | None:
    report = latest_drift_report(release.project_id)
    if report is None or not report.flagged or report.computed_at is None:
        return None
    reported = Release.objects.filter(
        project_id=release.project_id, state=ReleaseState.BUILT, built_at__gt=report.computed_at
    ).exclude(pk=release.pk)
    if reported.exists():  # an earlier build's datasheet carries it already
        return None
    return {"report": report.pk, "computed_at": report.computed_at.date().isoformat(), "flagged": report.flagged}


def sections(release: Release) -> dict[str, Any]:
    """The datasheet's ``eval_health`` part (empty when there is nothing to say)."""
    minimum = eval_health_settings(release.project).min_eval_per_stratum
    keys = [str(key) for key in (release.recipe or {}).get("stratify_by") or []]
    gaps = []
    if keys and minimum:
        totals: dict[str, Counter[str]] = {key: Counter() for key in keys}
        evals: dict[str, Counter[str]] = {key: Counter() for key in keys}
        rows = ReleaseItem.objects.filter(release=release).values_list("split", "item__metadata")
        for split, metadata in rows.iterator(chunk_size=5000):
            for key in keys:
                value = metadata_value((metadata or {}).get(key)) if isinstance(metadata, dict) else NONE
                if value is None or value == NONE:
                    continue
                totals[key][value] += 1
                evals[key][value] += split == "eval"
        gaps = [
            {"key": key, "value": value, "eval_items": evals[key][value], "items": total}
            for key in keys
            for value, total in sorted(totals[key].items())
            if evals[key][value] < minimum
        ][:MAX_GAPS]
    drift = _drift_line(release)
    if not gaps and drift is None:
        return {}
    return {"eval_health": {"drift_at_build": drift, "coverage_gaps": gaps, "min_eval_per_stratum": minimum}}


def markdown(sheet: dict[str, Any]) -> str:
    """The ``eval_health`` part as Markdown (empty without one); pure, from the datasheet JSON."""
    part = sheet.get("eval_health")
    if not part:
        return ""
    out = ["\n## Eval-set health\n\n"]
    drift = part.get("drift_at_build")
    if drift:
        flagged = ", ".join(drift["flagged"])
        out.append(f"Drift at build time: report #{drift['report']} of {drift['computed_at']} flagged {flagged}.\n\n")
    gaps = part.get("coverage_gaps") or []
    out.append(f"### Coverage gaps\n\nStrata with fewer than {part['min_eval_per_stratum']} eval items:\n\n")
    if not gaps:
        out.append("_none_\n")
        return "".join(out)
    out.append("| key | value | eval items | items |\n|---|---|---|---|\n")
    out += [f"| {g['key']} | {g['value']} | {g['eval_items']} | {g['items']} |\n" for g in gaps]
    return "".join(out)

"""How an adapter's data was annotated, for its dossier: the annotation procedure in force (k, review, gold,
adjudication, the too-fast rule, blinding, the PII policy), annotator statistics and agreement by pseudonym
(``releases.selection.pseudonym``, never a username), and the bias checks (position bias in the release and in
the project now)."""

from typing import Any

from django.db.models import Count, Q

from accounts.models import Project, User
from annotation.models import Annotation, Item
from annotation.selectors import annotation_settings
from preferences.models import AnnotatorQuality, Judgement
from preferences.selectors import decisive_positions, latest_agreement, preference_settings
from releases.datasheet import position_bias_rows
from releases.models import Release
from releases.selection import pseudonym


def annotation_procedure(project: Project, release: Release) -> dict[str, Any]:
    """How the data was labelled: k per item, review, gold items, adjudication, the too-fast rule, PII policy."""
    settings_row = annotation_settings(project)
    prefs = preference_settings(project)
    return {
        "annotators_per_item": settings_row.annotators_per_item,
        "lease_minutes": settings_row.lease_minutes,
        "review": "SFT: every annotation is approved, sent back or edited by a reviewer other than its annotator "
        "(four-eyes); only approved annotations are releasable.",
        "gold": {
            "items": Item.objects.filter(project=project).exclude(gold=None).count(),
            "rate": prefs.gold_rate,
            "flag_below_accuracy": prefs.gold_accuracy_threshold,
            "minimum_before_flag": prefs.gold_minimum,
            "kept_out_of_releases": True,
        },
        "adjudication": {
            "opened_below_agreement": prefs.adjudication_threshold,
            "rule": "a reviewer who judged none of the comparison's judgements decides it; the release uses the "
            "adjudicated answer",
        },
        "too_fast": {
            "fraction_of_project_median": prefs.fast_fraction,
            "rule": "a judgement faster than this share of the project's median time is counted as too fast",
        },
        "judgement_mode": prefs.mode,
        "rationale_required": prefs.rationale_required,
        "blinding": "candidates shown as letters in an order seeded per annotator and item, never model names",
        "pii": {
            "mode": settings_row.pii_mode,
            "uncertain": settings_row.pii_uncertain,
            "phone_region": settings_row.pii_phone_region,
            "project_patterns": len(settings_row.pii_patterns),
            "project_terms": len(settings_row.pii_terms),
        },
        "release_procedure": (release.manifest or {}).get("procedure", {}),
    }


# --- Annotators, bias, gaps -------------------------------------------------------------------------------------


def annotator_statistics(project: Project) -> list[dict[str, Any]]:
    """Per annotator (pseudonym): annotations by state, judgements, gold accuracy, too-fast judgements, flags
    and exclusions, and agreement with the consensus from the latest agreement snapshot."""
    stats: dict[int, dict[str, Any]] = {}

    def row(user_id: int) -> dict[str, Any]:
        return stats.setdefault(
            user_id, {"pseudonym": pseudonym(project.pk, user_id), "annotations": {}, "judgements": 0, "gold": {}}
        )

    annotations = Annotation.objects.filter(item__project=project).values("annotator_id", "state")
    for entry in annotations.annotate(n=Count("id")):
        row(entry["annotator_id"])["annotations"][entry["state"]] = entry["n"]
    judgements = Judgement.objects.filter(item__project=project).values("annotator_id")
    for entry in judgements.annotate(n=Count("id", filter=Q(is_gold=False)), gold=Count("id", filter=Q(is_gold=True))):
        row(entry["annotator_id"])["judgements"] = entry["n"]
    for quality in AnnotatorQuality.objects.filter(project=project):
        row(quality.annotator_id).update(
            {
                "gold": {
                    "seen": quality.gold_seen,
                    "correct": quality.gold_correct,
                    "accuracy": round(quality.gold_accuracy, 4) if quality.gold_accuracy is not None else None,
                },
                "too_fast_judgements": quality.fast_judgements,
                "flagged": quality.flagged,
                "excluded": quality.excluded,
            }
        )
    snapshot = latest_agreement(project)
    if snapshot is not None:
        consensus = snapshot.figures.get("consensus", {})
        ids = dict(User.objects.filter(username__in=list(consensus)).values_list("username", "pk"))
        for username, score in consensus.items():
            if username in ids:
                row(ids[username])["agreement_with_consensus"] = score
    return sorted(stats.values(), key=lambda r: r["pseudonym"])


def pseudonymised_agreement(project: Project) -> dict[str, Any] | None:
    """The latest agreement snapshot with every annotator named by pseudonym."""
    snapshot = latest_agreement(project)
    if snapshot is None:
        return None
    figures = snapshot.figures
    names = set(figures.get("consensus", {})) | {p[k] for p in figures.get("cohens_kappa", []) for k in ("a", "b")}
    ids = dict(User.objects.filter(username__in=names).values_list("username", "pk"))

    def alias(username: str) -> str:
        return pseudonym(project.pk, ids[username]) if username in ids else "annotator-unknown"

    return {
        "computed_at": snapshot.computed_at.isoformat(),
        "judgements": snapshot.judgements,
        "alpha_choice_nominal": figures.get("alpha_choice_nominal"),
        "alpha_strength_ordinal": figures.get("alpha_strength_ordinal"),
        "alpha_per_criterion": figures.get("alpha_per_criterion", {}),
        "kendalls_w_mean": figures.get("kendalls_w_mean"),
        "cohens_kappa": sorted(
            ({**pair, "a": alias(pair["a"]), "b": alias(pair["b"])} for pair in figures.get("cohens_kappa", [])),
            key=lambda p: (p["a"], p["b"]),
        ),
        "consensus": {alias(name): score for name, score in sorted(figures.get("consensus", {}).items())},
    }


def bias_checks(project: Project, release: Release) -> dict[str, Any]:
    sheet = (release.datasheet or {}).get("f_bias_examination", {})
    return {
        "position_bias_in_release": sheet.get("position_bias", []),
        "position_bias_in_project_now": position_bias_now(project),
        "label_distribution": sheet.get("label_distribution", {}),
        "strength_distribution": sheet.get("strength_distribution", {}),
        "annotator_share": sheet.get("annotator_share", {}),
        "agreement_per_criterion": sheet.get("agreement_per_criterion", {}),
        "agreement": pseudonymised_agreement(project),
    }


def position_bias_now(project: Project) -> list[dict[str, Any]]:
    """Per number of candidates shown, over every decisive non-gold judgement of the project today."""
    counts: dict[int, list[int]] = {}
    for _, shown, position in decisive_positions(project):
        tally = counts.setdefault(shown, [0, 0])
        tally[0] += 1
        tally[1] += position == 0
    return position_bias_rows(counts)

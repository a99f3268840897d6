"""What goes into a release: the recipe, validated once and stored canonically (its canonical JSON is part
of the manifest, so the same recipe on the same data always gives the same release hash)."""

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import DomainError

AGGREGATIONS = {
    "majority": "Majority (most judgements win; an even split between A and B is dropped)",
    "unanimity": "Unanimity (every judgement agrees)",
    "gold_weighted": "Weighted by each annotator's gold accuracy",
}
TIE_POLICIES = {"drop": "Drop ties", "keep": "Keep ties as a half-weight pair in both directions"}
RANKING_PAIRS = {
    "all": "All pairs",
    "best_vs_rest": "Best versus each of the rest",
    "adjacent": "Adjacent ranks only",
}
LEAK_POLICIES = {
    "fail": "Fail the build with a report",
    "move_to_eval": "Move the leaking training item to eval",
    "drop": "Drop the leaking training item",
}
DEFAULT_EXCLUDED_FLAGS = ("pii_leak", "unsafe")


@dataclass(frozen=True)
class Recipe:
    kind: str
    rubric_versions: tuple[int, ...] = ()  # empty: any version
    tags: tuple[str, ...] = ()  # empty: any item; else an item needs one of these in metadata "tags"
    exclude_flagged_annotators: bool = True  # below the gold-accuracy threshold (data-lead exclusions always apply)
    exclude_flags: tuple[str, ...] = DEFAULT_EXCLUDED_FLAGS  # SFT: leave out annotations carrying these flags
    min_agreement: float = 0.0  # preference: share of (weighted) judgements behind the outcome
    aggregation: str = "majority"
    ties: str = "drop"
    min_strength: float = 0.0  # preference: mean strength (1 slightly .. 3 much) of the winning judgements
    ranking_pairs: str = "all"
    per_criterion: bool = False  # preference: one pair set per rubric criterion as well as overall
    eval_fraction: float = 0.1
    leakage: str = "fail"
    near_duplicate_threshold: float = 0.8  # estimated Jaccard similarity of word 3-gram shingles
    mixin_batches: tuple[int, ...] = ()  # SFT: general-purpose import batches mixed into train
    mixin_fraction: float = 0.0  # at most this share of the train rows come from the mix-in
    # Cosine similarity of two prompts' embeddings (releases.embeddings) at which a training prompt paraphrases
    # an evaluation prompt; 0 turns the check off. Handled by the leakage policy as MinHash's near duplicates.
    # 0.75 separates reworded questions from other questions best (measured: ``releases.paraphrase``).
    paraphrase_threshold: float = 0.75
    stratify_by: tuple[str, ...] = ()  # item metadata keys: the eval split's shares per stratum follow the project's
    stratify_tolerance: float = 0.05  # how far (absolute share) a stratum's eval share may be from its target
    eval_items: tuple[int, ...] = ()  # items put on the evaluation side by name ("Refresh the eval set")

    # Fields added after releases were first built: left out of the canonical form at their default, so a stored
    # recipe that predates them rebuilds to the same manifest and hash.
    _LATER = ("paraphrase_threshold", "stratify_by", "stratify_tolerance", "eval_items")

    def canonical(self) -> dict[str, Any]:
        return {
            key: (list(value) if key == "stratify_by" else sorted(value)) if isinstance(value, tuple) else value
            for key, value in sorted(asdict(self).items())
            if key not in self._LATER or value != getattr(Recipe, key)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        """Validate and normalise a recipe. Raises ``DomainError`` naming the field to fix."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DomainError(f"Unknown recipe field(s): {', '.join(unknown)}.", field=unknown[0])
        kind = data.get("kind")
        if kind not in {"sft", "preference"}:
            raise DomainError("The kind is “sft” or “preference”.", field="kind")
        values: dict[str, Any] = {"kind": kind}
        values["rubric_versions"] = tuple(sorted({_int(v, "rubric_versions") for v in data.get("rubric_versions", ())}))
        values["tags"] = tuple(sorted({str(t).strip() for t in data.get("tags", ()) if str(t).strip()}))
        values["mixin_batches"] = tuple(sorted({_int(v, "mixin_batches") for v in data.get("mixin_batches", ())}))
        values["exclude_flags"] = tuple(sorted({str(f) for f in data.get("exclude_flags", DEFAULT_EXCLUDED_FLAGS)}))
        values["exclude_flagged_annotators"] = bool(data.get("exclude_flagged_annotators", True))
        values["per_criterion"] = bool(data.get("per_criterion", False))
        values["eval_items"] = tuple(sorted({_int(v, "eval_items") for v in data.get("eval_items", ())}))
        values["stratify_by"] = _keys(data.get("stratify_by", ()))
        for key, low, high in (
            ("min_agreement", 0.0, 1.0),
            ("min_strength", 0.0, 3.0),
            ("eval_fraction", 0.0, 0.5),
            ("near_duplicate_threshold", 0.5, 1.0),
            ("mixin_fraction", 0.0, 0.9),
            ("paraphrase_threshold", 0.0, 1.0),
            ("stratify_tolerance", 0.0, 0.5),
        ):
            default = getattr(cls, key)
            try:
                number = round(float(data.get(key, default)), 6)
            except (TypeError, ValueError):
                raise DomainError(f"{key} must be a number.", field=key) from None
            if not low <= number <= high:
                raise DomainError(f"{key} must lie between {low:g} and {high:g}.", field=key)
            values[key] = number
        for key, choices in (
            ("aggregation", AGGREGATIONS),
            ("ties", TIE_POLICIES),
            ("ranking_pairs", RANKING_PAIRS),
            ("leakage", LEAK_POLICIES),
        ):
            value = data.get(key, getattr(cls, key))
            if value not in choices:
                raise DomainError(f"{key} is one of: {', '.join(choices)}.", field=key)
            values[key] = value
        if 0 < values["paraphrase_threshold"] < 0.5:
            raise DomainError(
                "paraphrase_threshold is 0 (no paraphrase check) or a cosine similarity from 0.5 to 1.",
                field="paraphrase_threshold",
            )
        if kind == "sft" and (values["per_criterion"] or values["min_strength"]):
            raise DomainError("Per-criterion sets and minimum strength apply to preference releases.", field="kind")
        if kind == "preference" and values["mixin_batches"]:
            raise DomainError("General-purpose mix-in applies to SFT releases.", field="mixin_batches")
        if values["mixin_fraction"] and not values["mixin_batches"]:
            raise DomainError("Choose the mix-in import batches for a mix-in fraction.", field="mixin_batches")
        return cls(**values)


_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_STRATIFY_KEYS = 3


def _keys(value: Any) -> tuple[str, ...]:
    """Metadata keys to stratify by: a list (or a comma-separated string) of at most three plain keys."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise DomainError("stratify_by is a list of metadata keys.", field="stratify_by")
    keys = []
    for key in value:
        key = str(key).strip()
        if not key or key in keys:
            continue
        if not _KEY.fullmatch(key):
            raise DomainError(
                f"“{key[:40]}” is not a metadata key: letters, digits, “_”, “.” and “-”, at most 64.",
                field="stratify_by",
            )
        keys.append(key)
    if len(keys) > MAX_STRATIFY_KEYS:
        raise DomainError(f"Stratify by at most {MAX_STRATIFY_KEYS} metadata keys.", field="stratify_by")
    return tuple(keys)  # in the order given: the first key names the stratum first


def _int(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DomainError(f"{field} holds whole numbers.", field=field) from None


def _percent(value: float) -> str:
    return f"{value * 100:g} %"


def _listed(values: Any, empty: str) -> str:
    return ", ".join(str(v) for v in values) if values else empty


# How the release page shows a stored recipe: (key, label, how to show the value). Keys a recipe does not
# have (one stored by an older version) are left out; keys this table does not know are shown as they are.
_DESCRIBED: tuple[tuple[str, str, Any], ...] = (
    ("kind", "Kind", lambda v: {"sft": "SFT conversations", "preference": "Preference pairs (DPO)"}.get(v, v)),
    ("eval_fraction", "Held-out evaluation", _percent),
    ("rubric_versions", "Rubric versions", lambda v: _listed([f"v{n}" for n in v], "any")),
    ("tags", "Item tags", lambda v: _listed(v, "any")),
    ("exclude_flagged_annotators", "Annotators flagged for low gold accuracy", lambda v: "left out" if v else "kept"),
    ("exclude_flags", "Annotations left out when flagged", lambda v: _listed(v, "none")),
    ("aggregation", "Aggregation", lambda v: AGGREGATIONS.get(v, v)),
    ("ties", "Ties", lambda v: TIE_POLICIES.get(v, v)),
    ("min_agreement", "Minimum agreement", _percent),
    ("min_strength", "Minimum strength", lambda v: f"{v:g}" if v else "none"),
    ("ranking_pairs", "N-way rankings become", lambda v: RANKING_PAIRS.get(v, v)),
    ("per_criterion", "Per-criterion pair sets", lambda v: "yes, and overall" if v else "overall only"),
    ("leakage", "When a leak is found", lambda v: LEAK_POLICIES.get(v, v)),
    ("near_duplicate_threshold", "Near duplicate at similarity", _percent),
    ("paraphrase_threshold", "Paraphrase at embedding similarity", lambda v: _percent(v) if v else "not checked"),
    ("stratify_by", "Evaluation split stratified by", lambda v: _listed(v, "nothing (stable hash only)")),
    ("stratify_tolerance", "Stratum share tolerance", _percent),
    ("eval_items", "Items added to evaluation by name", lambda v: f"{len(v):,}" if v else "none"),
    ("mixin_batches", "General-purpose mix-in imports", lambda v: _listed([f"#{n}" for n in v], "none")),
    ("mixin_fraction", "Mix-in share of train", _percent),
)


def describe(recipe: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A stored recipe as (label, value in words, recipe key) rows, in the order of the definition form."""
    rows = []
    for key, label, show in _DESCRIBED:
        if key in recipe:
            try:
                rows.append((label, str(show(recipe[key])), key))
            except (TypeError, ValueError):
                rows.append((label, str(recipe[key]), key))
    known = {key for key, _, _ in _DESCRIBED}
    rows.extend((key, str(value), key) for key, value in sorted(recipe.items()) if key not in known)
    return rows

"""The datasheet of a release, organised by EU AI Act Article 10(2): (a) design choices, (b) collection
and origin, (c) preparation, (d) assumptions, (e) quantity and suitability, (f) bias examination,
(g) mitigation, (h) gaps. ``Tally`` collects the figures while the build streams the rows; ``render`` turns
them and the manifest into the datasheet's JSON, which ``releases.datasheet_markdown`` writes as Markdown.
What the release holds (items and rows per split, per stratum, per outcome) is read back from its written
Parquet files (``built_contents``), never taken from what the recipe asked for; where the recipe asked for
another share (the evaluation split, the mix-in), the request is shown beside what was built, with the
reasons. Everything in it is derived from the data and the recipe (no build time, no user names), so a
rebuild on unchanged data writes the same bytes."""

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from preferences.agreement import ALPHA_TENTATIVE, krippendorff_alpha, position_bias
from releases.aggregation import vote_scores

ALPHA_ITEMS = 20_000  # Krippendorff's alpha over the first this many items (by id): bounded memory
THIN_SLICE = 20  # a tag or criterion with fewer rows than this is listed as a gap
LOW_AGREEMENT = 0.7  # a criterion whose mean majority share is below this is listed as a gap


@dataclass
class Tally:
    rows: Counter[str] = field(default_factory=Counter)  # per split
    items: Counter[str] = field(default_factory=Counter)  # per split
    sources: Counter[str] = field(default_factory=Counter)  # annotated / mixin rows
    per_criterion: Counter[str] = field(default_factory=Counter)
    per_tag: Counter[str] = field(default_factory=Counter)
    per_rubric_version: Counter[str] = field(default_factory=Counter)
    strengths: Counter[str] = field(default_factory=Counter)
    annotator_votes: Counter[str] = field(default_factory=Counter)  # pseudonym -> judgements or annotations used
    agreement_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    agreement_n: Counter[str] = field(default_factory=Counter)
    unanimous: Counter[str] = field(default_factory=Counter)
    bias: dict[int, list[int]] = field(default_factory=dict)  # shown -> [decisive, first]
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> items
    adjudicated: int = 0
    gold_items: int = 0
    excluded_annotators: int = 0
    flagged_excluded: int = 0
    leaks: Counter[str] = field(default_factory=Counter)
    eval_reasons: Counter[str] = field(default_factory=Counter)  # why each evaluation item is there
    ratings: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)  # criterion -> unit -> rater
    rated_items: int = 0
    strata: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # split -> stratum -> items
    stratification: dict[str, Any] | None = None  # a stratified split's section (``releases.strata.Plan.summary``)
    paraphrase: dict[str, Any] = field(default_factory=dict)  # the paraphrase check (``releases.paraphrase.report``)

    def rate(self, item_id: int, votes: list[tuple[int, dict[str, Any]]], candidates: int) -> None:
        """Keep each vote's per-pair scores (nominal labels) for Krippendorff's alpha, up to ALPHA_ITEMS items."""
        if self.rated_items >= ALPHA_ITEMS or len(votes) < 2:
            return
        self.rated_items += 1
        for annotator, result in votes:
            for (criterion, a, b), (score, _) in vote_scores(result, candidates).items():
                self.ratings.setdefault(criterion, {}).setdefault(f"{item_id}:{a}:{b}", {})[annotator] = score

    def position(self, shown: int, position: int | None) -> None:
        if position is None:
            return
        tally = self.bias.setdefault(shown, [0, 0])
        tally[0] += 1
        tally[1] += position == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(sorted(self.rows.items())),
            "items": dict(sorted(self.items.items())),
            "sources": dict(sorted(self.sources.items())),
            "per_criterion": dict(sorted(self.per_criterion.items())),
            "per_tag": dict(sorted(self.per_tag.items())),
            "per_rubric_version": dict(sorted(self.per_rubric_version.items())),
            "dropped": dict(sorted(self.dropped.items())),
            "leaks": dict(sorted(self.leaks.items())),
            "adjudicated": self.adjudicated,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _share(counter: Counter[str]) -> dict[str, float]:
    total = sum(counter.values())
    return {key: round(value / total, 4) for key, value in sorted(counter.items())} if total else {}


SPLITS = ("train", "eval")
LOWER_PREFERRED, HIGHER_PREFERRED, TIE = "lower candidate id preferred", "higher candidate id preferred", "tie"


def built_contents(root: Path, kind: str) -> dict[str, Any]:
    """What the written release holds, read back from its Parquet files (every format holds the same rows):
    per split the items and rows, the rows per stratum (criterion of a preference set, source of an SFT
    set) and, for preferences, per outcome (ties, and whether the lower or higher candidate id won, from the
    row id ``item-criterion-chosen-rejected``). Rows are in item order, so items are counted as runs of one
    item id, and the files are read a batch at a time."""
    preference = kind == "preference"
    columns = ["id", "item_id", "criterion", "tie"] if preference else ["item_id", "source"]
    out: dict[str, Any] = {}
    for split in SPLITS:
        rows = items = 0
        last: int | None = None
        strata: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        for batch in pq.ParquetFile(root / "parquet" / f"{split}.parquet").iter_batches(columns=columns):
            data = batch.to_pydict()
            rows += batch.num_rows
            for item_id in data["item_id"]:
                if item_id != last:
                    items, last = items + 1, item_id
            strata.update(data["criterion" if preference else "source"])
            if preference:
                for row_id, criterion, tie in zip(data["id"], data["criterion"], data["tie"], strict=True):
                    if tie:
                        outcomes[f"{criterion}: {TIE}"] += 1
                        continue
                    chosen, rejected = (int(v) for v in row_id.rsplit("-", 2)[1:])
                    outcomes[f"{criterion}: {LOWER_PREFERRED if chosen < rejected else HIGHER_PREFERRED}"] += 1
        out[split] = {
            "items": items,
            "rows": rows,
            "per_criterion" if preference else "per_source": dict(sorted(strata.items())),
            **({"outcomes": dict(sorted(outcomes.items()))} if preference else {}),
        }
    return out


def _of(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def requested_and_built(recipe: dict[str, Any], contents: dict[str, Any], tally: Tally) -> dict[str, Any]:
    """The shares the recipe asked for beside those the files hold, and why they differ."""
    items = {s: contents[s]["items"] for s in SPLITS}
    rows = {s: contents[s]["rows"] for s in SPLITS}
    found: dict[str, Any] = {
        "eval": {
            "requested_fraction": recipe.get("eval_fraction"),
            "built_share_of_items": _of(items["eval"], items["train"] + items["eval"]),
            "built_share_of_rows": _of(rows["eval"], rows["train"] + rows["eval"]),
            "items": items["eval"],
            "of_items": items["train"] + items["eval"],
            "rows": rows["eval"],
            "of_rows": rows["train"] + rows["eval"],
            "why": dict(sorted(tally.eval_reasons.items())),
        }
    }
    if recipe.get("mixin_fraction"):
        mixin = contents["train"].get("per_source", {}).get("mixin", 0)
        found["mixin"] = {
            "requested_fraction": recipe["mixin_fraction"],
            "built_share_of_train_rows": _of(mixin, rows["train"]),
            "rows": mixin,
            "of_rows": rows["train"],
        }
    return found


def render(*, manifest: dict[str, Any], tally: Tally, assumptions: str, contents: dict[str, Any]) -> dict[str, Any]:
    """The datasheet's JSON (``releases.datasheet_markdown`` writes it as Markdown). ``contents`` is
    ``built_contents`` of the written files: the figures of what the release holds come from it; the tally adds
    what the files do not say (items left out, leaks, agreement, tags)."""
    recipe = manifest["recipe"]
    kind = manifest["kind"]
    agreement: dict[str, dict[str, Any]] = {
        c: {
            "mean_majority_share": round(tally.agreement_sum[c] / tally.agreement_n[c], 4),
            "unanimous_share": round(tally.unanimous[c] / tally.agreement_n[c], 4),
            "pairs": tally.agreement_n[c],
            "krippendorff_alpha": _rounded(krippendorff_alpha(tally.ratings[c], "nominal"))
            if c in tally.ratings
            else None,
        }
        for c in sorted(tally.agreement_n)
    }
    bias = position_bias_rows(tally.bias)
    gaps = [
        f"criterion “{c}”: mean majority share {a['mean_majority_share']:.2f}"
        for c, a in agreement.items()
        if a["mean_majority_share"] < LOW_AGREEMENT
    ]
    gaps += [
        f"criterion “{c}”: Krippendorff's α {a['krippendorff_alpha']:.2f} (below {ALPHA_TENTATIVE})"
        for c, a in agreement.items()
        if a["krippendorff_alpha"] is not None and a["krippendorff_alpha"] < ALPHA_TENTATIVE
    ]
    gaps += [f"tag “{t}”: {n} rows" for t, n in sorted(tally.per_tag.items()) if n < THIN_SLICE]
    gaps += [f"criterion “{c}”: {n} rows" for c, n in sorted(tally.per_criterion.items()) if n < THIN_SLICE]
    if not contents["eval"]["rows"]:
        gaps.append("the evaluation split is empty")
    if tally.stratification is not None:
        gaps += [
            f"stratum “{r['stratum']}”: {r['eval_share'] * 100:.1f} % of the evaluation split against "
            f"{r['target_share'] * 100:.1f} % of the project's items ({r['why']})"
            for r in tally.stratification["strata"]
            if not r["within_tolerance"]
        ]
    shares = requested_and_built(recipe, contents, tally)
    mitigation = [
        "Candidates were shown in an order shuffled per annotator and item (seeded, stored with each judgement)."
        if kind == "preference"
        else "Every annotation was reviewed by a second person (four-eyes) before approval.",
        f"Annotators excluded by a data lead: {tally.excluded_annotators}; excluded for low gold accuracy: "
        f"{tally.flagged_excluded if recipe['exclude_flagged_annotators'] else 'not applied'}.",
        f"Leakage check between train and every evaluation split ({recipe['leakage']}): "
        + (", ".join(f"{k} {v}" for k, v in sorted(tally.leaks.items())) or "no leaks found")
        + ".",
    ]
    if kind == "preference":
        mitigation.insert(
            1,
            f"Gold comparisons kept out of the release: {tally.gold_items}; disputed comparisons "
            f"adjudicated by a reviewer and used with the adjudicated answer: {tally.adjudicated}.",
        )
    sheet: dict[str, Any] = {
        "a_design_choices": {"kind": kind, "recipe": recipe},
        "b_collection_and_origin": {
            "import_batches": manifest["import_batches"],
            **({"imported": manifest["imported"]} if manifest.get("imported") else {}),
        },
        "c_preparation": {
            "pii_scrubbing": manifest["pii_scrubbing"],
            "procedure": manifest["procedure"],
            "rubric_versions": manifest["rubric_versions"],
            "adjudicated_items": tally.adjudicated,
        },
        "d_assumptions": assumptions,
        "e_quantity_and_suitability": tally.as_dict()
        | {
            "rows": {s: contents[s]["rows"] for s in SPLITS},
            "items": {s: contents[s]["items"] for s in SPLITS},
            "per_split": contents,
            "requested_and_built": shares,
        }
        | ({"stratification": tally.stratification} if tally.stratification is not None else {})
        | (
            {"per_criterion": dict(sorted(_summed(contents, "per_criterion").items()))}
            if kind == "preference"
            else {"sources": dict(sorted(_summed(contents, "per_source").items()))}
        ),
        "f_bias_examination": {
            "position_bias": bias,
            "label_distribution": _share(_overall_outcomes(contents)) if kind == "preference" else {},
            "strength_distribution": _share(tally.strengths),
            "annotator_share": _share(tally.annotator_votes),
            "agreement_per_criterion": agreement,
        },
        "g_mitigation": mitigation,
        **({"g_paraphrase_check": tally.paraphrase} if tally.paraphrase else {}),
        "h_gaps": gaps,
    }
    return sheet


def _summed(contents: dict[str, Any], key: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for split in SPLITS:
        total.update(contents[split].get(key, {}))
    return total


def _overall_outcomes(contents: dict[str, Any]) -> Counter[str]:
    """The overall rows' outcomes over both splits (ties, lower or higher candidate id preferred)."""
    prefix = "overall: "
    return Counter(
        {k.removeprefix(prefix): v for k, v in _summed(contents, "outcomes").items() if k.startswith(prefix)}
    )


def position_bias_rows(counts: Mapping[int, Sequence[int]]) -> list[dict[str, Any]]:
    """Per number of candidates shown (``{shown: (decisive, first shown won)}``): the share the first shown won,
    what chance would give and the binomial test's p-value, as the datasheet and the dossier show them."""
    rows = []
    for shown, (decisive, first) in sorted(counts.items()):
        result = position_bias(first, decisive, shown)
        rows.append(
            {
                "candidates": shown,
                "decisive": decisive,
                "first_shown_won": first,
                "rate": result.share,
                "expected": result.expected,
                "p_value": result.p_value,
            }
        )
    return rows

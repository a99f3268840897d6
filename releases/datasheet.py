"""The datasheet of a release, organised by EU AI Act Article 10(2): (a) design choices, (b) collection
and origin, (c) preparation, (d) assumptions, (e) quantity and suitability, (f) bias examination,
(g) mitigation, (h) gaps. ``Tally`` collects the figures while the build streams the rows; ``render`` turns
them and the manifest into JSON and Markdown. Everything in it is derived from the data and the recipe
(no build time, no user names), so a rebuild on unchanged data writes the same bytes."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from preferences.agreement import krippendorff_alpha, position_bias
from releases.aggregation import vote_scores
from releases.recipe import describe

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
    labels: Counter[str] = field(default_factory=Counter)  # first listed / second listed / tie (by candidate id)
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
    ratings: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)  # criterion -> unit -> rater
    rated_items: int = 0

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


def render(*, manifest: dict[str, Any], tally: Tally, assumptions: str) -> tuple[dict[str, Any], str]:
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
    bias = []
    for shown, (decisive, first) in sorted(tally.bias.items()):
        result = position_bias(first, decisive, shown)
        bias.append(
            {
                "candidates": shown,
                "decisive": decisive,
                "first_shown_won": first,
                "rate": result.share,
                "expected": result.expected,
                "p_value": result.p_value,
            }
        )
    gaps = [
        f"criterion “{c}”: mean majority share {a['mean_majority_share']:.2f}"
        for c, a in agreement.items()
        if a["mean_majority_share"] < LOW_AGREEMENT
    ]
    gaps += [
        f"criterion “{c}”: Krippendorff's α {a['krippendorff_alpha']:.2f} (below 0.667)"
        for c, a in agreement.items()
        if a["krippendorff_alpha"] is not None and a["krippendorff_alpha"] < 0.667
    ]
    gaps += [f"tag “{t}”: {n} rows" for t, n in sorted(tally.per_tag.items()) if n < THIN_SLICE]
    gaps += [f"criterion “{c}”: {n} rows" for c, n in sorted(tally.per_criterion.items()) if n < THIN_SLICE]
    if not tally.rows.get("eval"):
        gaps.append("the evaluation split is empty")
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
        "b_collection_and_origin": {"import_batches": manifest["import_batches"]},
        "c_preparation": {
            "pii_scrubbing": manifest["pii_scrubbing"],
            "procedure": manifest["procedure"],
            "rubric_versions": manifest["rubric_versions"],
            "adjudicated_items": tally.adjudicated,
        },
        "d_assumptions": assumptions,
        "e_quantity_and_suitability": tally.as_dict(),
        "f_bias_examination": {
            "position_bias": bias,
            "label_distribution": _share(tally.labels),
            "strength_distribution": _share(tally.strengths),
            "annotator_share": _share(tally.annotator_votes),
            "agreement_per_criterion": agreement,
        },
        "g_mitigation": mitigation,
        "h_gaps": gaps,
    }
    return sheet, markdown(manifest, sheet)


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    if not rows:
        return "_none_\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(manifest: dict[str, Any], sheet: dict[str, Any]) -> str:
    """The datasheet as Markdown, from the manifest and the datasheet JSON (what ``datasheet.md`` holds)."""
    e = sheet["e_quantity_and_suitability"]
    f = sheet["f_bias_examination"]
    c = sheet["c_preparation"]
    out = [f"# Datasheet: {manifest['kind']} release of project “{manifest['project']['name']}”\n"]
    out.append("Organised by EU AI Act Article 10(2). The release hash is the sha256 of `manifest.json`.\n")
    out.append("## (a) Design choices\n")
    recipe = sheet["a_design_choices"]["recipe"]
    out.append(_table([(label, value, key) for label, value, key in describe(recipe)], ("setting", "value", "field")))
    out.append("## (b) Data collection and origin\n")
    out.append(
        _table(
            [
                (b["id"], b["source"], b["format"], b["sha256"][:16], b["items_used"])
                for b in sheet["b_collection_and_origin"]["import_batches"]
            ],
            ("batch", "source", "format", "sha256", "items used"),
        )
    )
    out.append("## (c) Preparation\n")
    out.append(
        f"- PII scrubbing (placeholders per type, over the batches used): "
        f"{', '.join(f'{k} {v}' for k, v in sorted(c['pii_scrubbing'].items())) or 'nothing found'}\n"
    )
    for key, value in sorted(c["procedure"].items()):
        out.append(f"- {key.replace('_', ' ')}: {value}\n")
    out.append(f"- adjudicated items: {c['adjudicated_items']}\n\n")
    out.append(
        _table(
            [(r["version"], r["guidelines_sha256"][:16], ", ".join(r["criteria"])) for r in c["rubric_versions"]],
            ("rubric version", "guidelines sha256", "criteria"),
        )
    )
    out.append("## (d) Assumptions\n")
    out.append((sheet["d_assumptions"].strip() or "_None stated by the data lead._") + "\n\n")
    out.append("## (e) Quantity and suitability\n")
    out.append(
        _table([(s, e["items"].get(s, 0), e["rows"].get(s, 0)) for s in ("train", "eval")], ("split", "items", "rows"))
    )
    for title, key in (
        ("Rows per criterion", "per_criterion"),
        ("Rows per tag", "per_tag"),
        ("Rows per rubric version", "per_rubric_version"),
        ("Rows per source", "sources"),
        ("Items left out", "dropped"),
    ):
        if e[key]:
            out.append(f"\n{title}:\n\n" + _table(sorted(e[key].items()), ("", "count")))
    out.append("\n## (f) Examination of possible biases\n")
    out.append(
        _table(
            [
                (
                    b["candidates"],
                    b["decisive"],
                    f"{b['rate']:.3f}" if b["rate"] is not None else "—",
                    f"{b['expected']:.3f}",
                    f"{b['p_value']:.3g}" if b["p_value"] is not None else "—",
                )
                for b in f["position_bias"]
            ],
            ("candidates", "decisive", "first shown won", "expected", "p"),
        )
    )
    for title, key in (
        ("Label distribution", "label_distribution"),
        ("Strength distribution", "strength_distribution"),
        ("Share per annotator (pseudonyms)", "annotator_share"),
    ):
        if f[key]:
            out.append(f"\n{title}:\n\n" + _table(sorted(f[key].items()), ("", "share")))
    if f["agreement_per_criterion"]:
        out.append("\nAgreement per criterion:\n\n")
        out.append(
            _table(
                [
                    (
                        k,
                        v["pairs"],
                        v["mean_majority_share"],
                        v["unanimous_share"],
                        "—" if v["krippendorff_alpha"] is None else v["krippendorff_alpha"],
                    )
                    for k, v in f["agreement_per_criterion"].items()
                ],
                ("criterion", "pairs", "mean majority share", "unanimous share", "Krippendorff's α (nominal)"),
            )
        )
    out.append("\n## (g) Mitigation\n")
    out += [f"- {line}\n" for line in sheet["g_mitigation"]]
    out.append("\n## (h) Gaps and shortcomings\n")
    out += [f"- {line}\n" for line in sheet["h_gaps"]] or ["- none found\n"]
    return "".join(out)

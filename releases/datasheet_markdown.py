"""A release's datasheet as Markdown (what ``datasheet.md`` holds and the release page shows), written from the
manifest and the datasheet's JSON (``releases.datasheet.render``) alone, so a datasheet stored years ago reads
the same today."""

from typing import Any

from releases import drift_datasheet
from releases.datasheet import SPLITS
from releases.recipe import describe


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %".replace(".0 %", " %")


def _differs(requested: float | None, built: float | None) -> bool:
    return requested is not None and built is not None and abs(requested - built) >= 0.005


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    if not rows:
        return "_none_\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _stratification(section: dict[str, Any]) -> str:
    """The stratified split per stratum: its share of the project's items (the target) beside the evaluation
    split's, and whether within the recipe's tolerance."""
    head = (
        f"\nStratification of the evaluation split by {', '.join(section['keys'])}, tolerance "
        f"{section['tolerance'] * 100:g} points: new evaluation items are drawn so that each stratum's share of the "
        "evaluation split follows its share of the project's items; items keep the side earlier releases gave them.\n\n"
    )
    rows = [
        (
            r["stratum"],
            r["project_items"],
            _pct(r["target_share"]),
            r["train_items"],
            r["eval_items"],
            _pct(r["eval_share"]),
            f"{r['distance'] * 100:+.1f}",
            "yes" if r["within_tolerance"] else f"no: {r['why']}",
        )
        for r in section["strata"]
    ]
    header = ("stratum", "project items", "target share", "train items", "eval items", "eval share", "points off",
              "within tolerance")  # fmt: skip
    return head + _table(rows, header)


def markdown(manifest: dict[str, Any], sheet: dict[str, Any]) -> str:
    """The datasheet as Markdown, from the manifest and the datasheet JSON (what ``datasheet.md`` holds)."""
    e = sheet["e_quantity_and_suitability"]
    f = sheet["f_bias_examination"]
    c = sheet["c_preparation"]
    out = [f"# Datasheet: {manifest['kind']} release of project “{manifest['project']['name']}”\n"]
    out.append("Organised by EU AI Act Article 10(2). The release hash is the sha256 of `manifest.json`.\n")
    out.append("## (a) Design choices\n")
    recipe = sheet["a_design_choices"]["recipe"]
    shares = e.get("requested_and_built") or {}  # absent from datasheets stored before it was written
    built = {
        "eval_fraction": ("eval", "built_share_of_items"),
        "mixin_fraction": ("mixin", "built_share_of_train_rows"),
    }
    described = []
    for label, value, key in describe(recipe):
        part, share = built.get(key, ("", ""))
        if part in shares and _differs(shares[part]["requested_fraction"], shares[part][share]):
            value = f"{value} requested; built: {_pct(shares[part][share])} (see (e))"
        described.append((label, value, key))
    out.append(_table(described, ("setting", "value", "field")))
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
    imported = sheet["b_collection_and_origin"].get("imported")
    if imported:
        out.append(
            "Judgements and answers imported from other tools, on the items of this release, with the times "
            "those tools recorded:\n\n"
        )
        out.append(
            _table(
                [
                    (
                        r["tool"],
                        r["project"] or "—",
                        r["batch"],
                        r.get("judgements", r.get("answers")),
                        len(r["annotators"]),
                        (r["first"] or "—")[:10],
                        (r["last"] or "—")[:10],
                    )
                    for r in imported
                ],
                ("tool", "its project", "import", "judgements or answers", "annotators", "first", "last"),
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
    out.append("Counted in the release's files.\n\n")
    out.append(
        _table([(s, e["items"].get(s, 0), e["rows"].get(s, 0)) for s in ("train", "eval")], ("split", "items", "rows"))
    )
    if "eval" in shares:
        held = shares["eval"]
        line = (
            f"\nEvaluation split: {held['items']} of {held['of_items']} items "
            f"({_pct(held['built_share_of_items'])}), {held['rows']} of {held['of_rows']} rows "
            f"({_pct(held['built_share_of_rows'])}); the recipe asked for {_pct(held['requested_fraction'])}"
        )
        if _differs(held["requested_fraction"], held["built_share_of_items"]) and held["why"]:
            line += " (" + ", ".join(f"{n} {reason}" for reason, n in held["why"].items()) + ")"
        out.append(line + ".\n")
    if "mixin" in shares:
        mix = shares["mixin"]
        out.append(
            f"\nMix-in: {mix['rows']} of {mix['of_rows']} training rows ({_pct(mix['built_share_of_train_rows'])}); "
            f"the recipe asked for at most {_pct(mix['requested_fraction'])}.\n"
        )
    if e.get("stratification"):
        out.append(_stratification(e["stratification"]))
    per_split = e.get("per_split") or {}
    strata = sorted({k for s in per_split.values() for k in s.get("per_criterion", s.get("per_source", {}))})
    if strata:
        key = "per_criterion" if any("per_criterion" in s for s in per_split.values()) else "per_source"
        out.append(f"\nRows per {'criterion' if key == 'per_criterion' else 'source'} and split:\n\n")
        out.append(
            _table(
                [(k, *(per_split.get(s, {}).get(key, {}).get(k, 0) for s in SPLITS)) for k in strata],
                ("", *SPLITS),
            )
        )
    outcomes = sorted({k for s in per_split.values() for k in s.get("outcomes", {})})
    if outcomes:
        out.append("\nRows per outcome and split:\n\n")
        out.append(
            _table(
                [(k, *(per_split.get(s, {}).get("outcomes", {}).get(k, 0) for s in SPLITS)) for k in outcomes],
                ("", *SPLITS),
            )
        )
    for title, key in (
        *([] if per_split else [("Rows per criterion", "per_criterion")]),
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
    if "g_paraphrase_check" in sheet:
        out.append(_paraphrase_check(sheet["g_paraphrase_check"]))
    out.append("\n## (h) Gaps and shortcomings\n")
    out += [f"- {line}\n" for line in sheet["h_gaps"]] or ["- none found\n"]
    out.append(drift_datasheet.markdown(sheet))  # eval-set health, when the build had something to say
    return "".join(out)


def _paraphrase_check(check: dict[str, Any]) -> str:
    """The "Paraphrase check" subsection of (g): the embedding comparison beside MinHash, and its closest pairs."""
    out = ["\n### Paraphrase check\n\n"]
    if not check["threshold"]:
        return out[0] + "Not run: the recipe's paraphrase threshold is 0.\n"
    model = check["model_hash"]
    out.append(
        f"Training prompts were compared with every evaluation prompt by the cosine similarity of their sentence "
        f"embeddings (model `{model[:16] if model else 'none installed'}`); a pair at {check['threshold']:g} or "
        f"above leaks as a paraphrase. {check['items_checked']} training items were compared.\n"
    )
    if check["items_without_embedding"]:
        out.append(
            f"\n{check['items_without_embedding']} items had no prompt embedding yet and were checked by MinHash "
            "only.\n"
        )
    pairs = ", ".join(f"{n} ({action.replace('_', ' ')})" for action, n in sorted(check["pairs"].items()))
    out.append(f"\nPairs found: {pairs or 'none'}.\n")
    if check["examples"]:
        out.append("\n")
        out.append(
            _table(
                [
                    (
                        f"#{x['train_item']} {x['train_prompt']}".replace("|", "\\|"),
                        f"#{x['eval_item']} {x['eval_prompt']}".replace("|", "\\|"),
                        x["similarity"],
                    )
                    for x in check["examples"]
                ],
                ("training prompt", "evaluation prompt", "similarity"),
            )
        )
    return "".join(out)

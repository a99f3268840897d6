"""The datasheet counts what the release's files hold, never what the recipe asked for, and shows the request
beside it where they differ (sticky evaluation items of an earlier release, items moved by the leak check)."""

from collections import Counter
from pathlib import Path

from core.storage import artifact_storage
from releases import services
from releases.models import Release, ReleaseItem
from tests.conftest import ClientFor, Personas
from tests.releases.helpers import build
from tests.releases.test_build import PROMPTS, judged
from tests.releases.test_leak_closure import chains
from tests.releases.test_leak_closure import judged as judged_chains
from tests.releases.test_pages import body


def jsonl_rows(release: Release, tmp_path: Path) -> dict[str, int]:
    """Lines per split of the release's TRL preference files, as a user downloads them."""
    target = tmp_path / f"release-{release.pk}"
    services.export_to_directory(release=release, target=target, formats=["trl_preference"])
    return {
        split: len((target / "trl_preference" / f"{split}.jsonl").read_bytes().splitlines())
        for split in ("train", "eval")
    }


def item_counts(release: Release) -> dict[str, int]:
    return dict(Counter(ReleaseItem.objects.filter(release=release).values_list("split", flat=True)))


def outcomes(release: Release) -> dict[str, Counter[str]]:
    """Per split, whether the lower or the higher candidate id won each overall pair (from the item rows)."""
    found: dict[str, Counter[str]] = {"train": Counter(), "eval": Counter()}
    for split, outcome in ReleaseItem.objects.filter(release=release).values_list("split", "outcome"):
        for pair in outcome.split(";"):
            chosen, rejected = (int(v) for v in pair.removeprefix("overall:").split(">"))
            found[split][f"overall: {'lower' if chosen < rejected else 'higher'} candidate id preferred"] += 1
    return found


def test_it_counts_the_files_in_the_datasheet_and_shows_the_request_beside_them(
    personas: Personas, client_for: ClientFor, tmp_path: Path
) -> None:
    p = personas
    judged(p, PROMPTS)
    first = build(p.project, p.data_lead, eval_fraction=0.5)
    assert first.state == "built", first.failure_reason
    # Asked for 10 %: the evaluation items of the first release stay in eval, so the release holds far more.
    release = build(p.project, p.data_lead, eval_fraction=0.1)
    assert release.state == "built", release.failure_reason
    items = item_counts(release)
    assert items["eval"] / (items["eval"] + items["train"]) > 0.3
    rows = jsonl_rows(release, tmp_path)

    sheet = client_for(p.data_lead).get(f"/api/v1/projects/{p.project.pk}/releases/{release.pk}/datasheet/").json()
    e = sheet["e_quantity_and_suitability"]
    assert e["items"] == items
    assert e["rows"] == rows
    for split in ("train", "eval"):
        assert e["per_split"][split]["items"] == items[split]
        assert e["per_split"][split]["rows"] == rows[split]
        assert e["per_split"][split]["per_criterion"] == {"overall": rows[split]}
        assert e["per_split"][split]["outcomes"] == dict(outcomes(release)[split])
    overall = outcomes(release)["train"] + outcomes(release)["eval"]
    assert sheet["f_bias_examination"]["label_distribution"] == {
        label.removeprefix("overall: "): round(n / overall.total(), 4) for label, n in sorted(overall.items())
    }
    held = e["requested_and_built"]["eval"]
    assert held["requested_fraction"] == 0.1
    assert (held["items"], held["of_items"]) == (items["eval"], items["eval"] + items["train"])
    assert held["built_share_of_items"] == round(items["eval"] / (items["eval"] + items["train"]), 4)
    assert sum(held["why"].values()) == items["eval"]
    assert held["why"]["kept from earlier releases (sticky)"] > 0

    text = client_for(p.data_lead).get(f"/api/v1/projects/{p.project.pk}/releases/{release.pk}/datasheet/?as=md")
    markdown = body(text).decode()
    share = f"{held['built_share_of_items'] * 100:.1f} %".replace(".0 %", " %")
    assert f"| Held-out evaluation | 10 % requested; built: {share} (see (e)) | eval_fraction |" in markdown
    assert (
        f"Evaluation split: {items['eval']} of {items['eval'] + items['train']} items ({share}), "
        f"{rows['eval']} of {rows['eval'] + rows['train']} rows"
    ) in markdown
    assert "the recipe asked for 10 %" in markdown
    assert "kept from earlier releases (sticky)" in markdown
    assert release.manifest is not None
    page = client_for(p.data_lead).get(f"/projects/{p.project.pk}/releases/{release.pk}/").content.decode()
    assert f"10 % requested; built: {share}" in page


def test_it_counts_and_names_items_moved_by_the_leak_check(personas: Personas, tmp_path: Path) -> None:
    p = personas
    judged_chains(p, chains())
    release = build(p.project, p.data_lead, eval_fraction=0.1, leakage="move_to_eval")
    assert release.state == "built", release.failure_reason
    assert release.datasheet is not None
    e = release.datasheet["e_quantity_and_suitability"]
    items = item_counts(release)
    assert e["items"] == items
    assert e["rows"] == jsonl_rows(release, tmp_path)
    held = e["requested_and_built"]["eval"]
    assert held["why"]["moved there by the leak check"] == release.leak_report["total"]
    assert sum(held["why"].values()) == items["eval"]
    assert "moved there by the leak check" in (artifact_storage().open(
        f"{release.storage_prefix}/datasheet.md"
    ).read().decode())  # fmt: skip

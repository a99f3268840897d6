"""The stratified sticky split: a recipe naming metadata keys draws its evaluation items so that each stratum's share
of the evaluation split follows its share of the project's items, within the recipe's tolerance; items keep the
side an earlier release gave them; the datasheet says how far each stratum is from its target; the same recipe on
the same data gives the same hash."""

from collections import Counter
from typing import Any

import pytest

from annotation.models import Item
from core.errors import DomainError
from releases import strata
from releases.datasheet_markdown import markdown
from releases.models import Release, ReleaseItem
from releases.recipe import Recipe
from tests.conftest import Personas
from tests.preferences.helpers import comparison_line, import_comparisons
from tests.releases.helpers import build, judge
from tests.releases.test_leak_closure import rebuilt

TOPICS = {"cards": 0.5, "loans": 0.3, "savings": 0.2}


def traffic(p: Personas, counts: dict[str, int], *, tag: str, channel: str = "chat") -> list[Item]:
    """Judged comparisons of distinct prompts, ``counts`` of them per topic (in a shuffled, seeded order)."""
    lines = []
    for topic, count in counts.items():
        for n in range(count):
            prompt = f"{tag} question {n} about {topic}: case {n * 7919 % 1000} from {channel}, reference {tag}{n}"
            lines.append(
                comparison_line(
                    prompt, f"First answer {n}", f"Second answer {n}", metadata={"topic": topic, "channel": channel}
                )
            )
    lines.sort(key=lambda line: hash(line) % 97)
    batch = import_comparisons(p.project, p.data_lead, *lines)
    assert batch.status == "done", batch.errors
    items = list(Item.objects.filter(batch=batch).order_by("id"))
    for n, item in enumerate(items):
        judge(item, p.annotator, {"winner": n % 2, "strength": 2})
        judge(item, p.reviewer, {"winner": n % 2, "strength": 2})
    return items


def eval_shares(release: Release) -> Counter[str]:
    topics = dict(Item.objects.filter(project=release.project).values_list("id", "metadata__topic"))
    chosen = ReleaseItem.objects.filter(release=release, split="eval").values_list("item", flat=True)
    return Counter(topics[item] for item in chosen)


def sides(release: Release) -> dict[int, str]:
    return dict(ReleaseItem.objects.filter(release=release).values_list("item_id", "split"))


def stratification(release: Release) -> dict[str, Any]:
    assert release.datasheet is not None
    return release.datasheet["e_quantity_and_suitability"]["stratification"]


def test_eval_shares_follow_the_project_within_the_tolerance(personas: Personas) -> None:
    traffic(personas, {"cards": 100, "loans": 60, "savings": 40}, tag="a")
    release = build(
        personas.project, personas.data_lead, eval_fraction=0.2, stratify_by=["topic"], stratify_tolerance=0.03
    )
    assert release.state == "built", release.failure_reason
    shares = eval_shares(release)
    total = sum(shares.values())
    assert total == 40
    for topic, share in TOPICS.items():
        assert abs(shares[topic] / total - share) <= 0.03, (topic, shares)
    section = stratification(release)
    assert section["keys"] == ["topic"]
    assert section["outside_tolerance"] == []
    rows = {r["stratum"]: r for r in section["strata"]}
    assert rows["loans"]["project_items"] == 60
    assert rows["loans"]["target_share"] == 0.3
    assert rows["loans"]["eval_items"] == shares["loans"]
    assert release.manifest is not None
    assert release.datasheet is not None
    assert "Stratification of the evaluation split by topic" in markdown(release.manifest, release.datasheet)


def test_a_later_release_keeps_every_side_and_corrects_a_shifted_mix(personas: Personas) -> None:
    """Traffic shifts towards savings: the next release keeps every earlier item on its side and draws its new
    evaluation items so that the evaluation split follows the project's new mix, within the tolerance."""
    traffic(personas, {"cards": 120, "loans": 60, "savings": 20}, tag="a")
    first = build(personas.project, personas.data_lead, eval_fraction=0.2, stratify_by=["topic"])
    assert first.state == "built", first.failure_reason
    traffic(personas, {"cards": 20, "loans": 20, "savings": 160}, tag="b")
    second = build(personas.project, personas.data_lead, eval_fraction=0.2, stratify_by=["topic"])
    assert second.state == "built", second.failure_reason
    before, after = sides(first), sides(second)
    assert all(after[item] == side for item, side in before.items()), "an item changed side"
    population = Counter(Item.objects.filter(project=personas.project).values_list("metadata__topic", flat=True))
    shares = eval_shares(second)
    total = sum(shares.values())
    for topic, count in population.items():
        assert abs(shares[topic] / total - count / 400) <= 0.05, (topic, shares, population)
    assert stratification(second)["outside_tolerance"] == []


def test_sticky_items_beyond_the_target_are_reported_with_the_reason(personas: Personas) -> None:
    """An earlier unstratified release put many cards items in evaluation; they stay there, so the stratified
    release cannot meet the target: the datasheet says how far and why, and lists it as a gap."""
    traffic(personas, {"cards": 60}, tag="a")
    build(personas.project, personas.data_lead, eval_fraction=0.5)
    traffic(personas, {"loans": 140}, tag="b")
    release = build(
        personas.project, personas.data_lead, eval_fraction=0.1, stratify_by=["topic"], stratify_tolerance=0.05
    )
    assert release.state == "built", release.failure_reason
    rows = {r["stratum"]: r for r in stratification(release)["strata"]}
    assert not rows["cards"]["within_tolerance"]
    assert rows["cards"]["distance"] > 0
    assert "sticky" in rows["cards"]["why"]
    assert release.datasheet is not None
    assert any("stratum “cards”" in gap for gap in release.datasheet["h_gaps"])


def test_two_keys_and_missing_values_make_their_own_strata(personas: Personas) -> None:
    traffic(personas, {"cards": 40, "loans": 40}, tag="a", channel="chat")
    traffic(personas, {"cards": 40, "loans": 40}, tag="b", channel="email")
    line = comparison_line("A question with no metadata at all, number one", "x", "y")
    flagged = comparison_line("A question from a customer marked vip", "x", "y", metadata={"topic": True})
    import_comparisons(personas.project, personas.data_lead, line, flagged)
    release = build(personas.project, personas.data_lead, eval_fraction=0.2, stratify_by=["topic", "channel"])
    assert release.state == "built", release.failure_reason
    names = {r["stratum"] for r in stratification(release)["strata"]}
    assert {"cards · chat", "cards · email", "loans · chat", "loans · email", "(none) · (none)"} <= names
    rows = {r["stratum"]: r for r in stratification(release)["strata"]}
    assert rows["true · (none)"]["project_items"] == 1


def test_the_same_recipe_on_the_same_data_gives_the_same_hash(personas: Personas) -> None:
    traffic(personas, {"cards": 50, "loans": 30, "savings": 20}, tag="a")
    release = build(personas.project, personas.data_lead, eval_fraction=0.2, stratify_by=["topic"])
    assert release.state == "built", release.failure_reason
    again = rebuilt(release, personas)
    assert again.hash == release.hash
    assert sides(again) == sides(release)


def test_the_recipe_checks_its_keys() -> None:
    with pytest.raises(DomainError) as bad:
        Recipe.from_dict({"kind": "preference", "stratify_by": ["topic", "a b"]})
    assert bad.value.field == "stratify_by"
    with pytest.raises(DomainError):
        Recipe.from_dict({"kind": "preference", "stratify_by": ["a", "b", "c", "d"]})
    recipe = Recipe.from_dict({"kind": "preference", "stratify_by": "channel, topic"})
    assert recipe.stratify_by == ("channel", "topic")
    assert recipe.canonical()["stratify_by"] == ["channel", "topic"]
    assert "stratify_by" not in Recipe.from_dict({"kind": "preference"}).canonical()


def test_a_stratum_is_the_items_values_of_the_keys() -> None:
    assert strata.stratum_of({"topic": "cards", "channel": " chat "}, ("topic", "channel")) == "cards · chat"
    assert strata.stratum_of({"topic": ""}, ("topic",)) == "(none)"
    assert strata.stratum_of(None, ("topic",)) == "(none)"
    assert strata.stratum_of({"topic": 3}, ("topic",)) == "3"
    assert strata.stratum_of({"vip": True, "tier": [1, 2]}, ("vip", "tier")) == "true · [1,2]"

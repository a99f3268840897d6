"""The leak check under "move to eval" and "drop" on chains of near duplicates (A~B, B~C, ...) across the
split: nothing in train is a near or exact copy of anything in eval after the build, and the same recipe on
the same data gives the same split and hash, built again or rebuilt."""

import random
from pathlib import Path
from typing import Any

from annotation.models import Item
from releases import services, splits
from releases.models import Release, ReleaseItem
from tests.conftest import Personas
from tests.releases.helpers import GENERAL_CHAT, build, comparisons, eval_item, judge, mixin_batch, sft_project
from tests.releases.test_build import PROMPTS

VOCABULARY = [f"w{n:03d}" for n in range(400)]


def chains(count: int = 8, length: int = 6, words: int = 50) -> list[str]:
    """``count`` chains of prompts, each a one-word edit of the one before: neighbours are near duplicates
    (estimated Jaccard about 0.88 at 50 words), prompts two edits apart mostly are not."""
    rng = random.Random(20)
    prompts = []
    for chain in range(count):
        text = rng.sample(VOCABULARY, words)
        for step in range(length):
            if step:
                text = [*text]
                text[3 + 7 * step] = f"edit{chain}x{step}"
            prompts.append(" ".join(text))
    return prompts


def judged(p: Personas, prompts: list[str]) -> list[Item]:
    items = comparisons(p.project, p.data_lead, prompts)
    for n, item in enumerate(items):
        judge(item, p.annotator, {"winner": n % 2, "strength": 2})
        judge(item, p.reviewer, {"winner": n % 2, "strength": 3})
    return items


def split_of(release: Release) -> dict[int, str]:
    return dict(ReleaseItem.objects.filter(release=release).values_list("item_id", "split"))


def leaks_left(release: Release, threshold: float) -> list[splits.Leak]:
    """Every train item of the built release that is an exact, normalised or near copy of one of its eval items,
    found afresh from the items' prompts."""
    placed = split_of(release)
    messages = dict(Item.objects.filter(pk__in=placed).values_list("id", "messages"))
    index = splits.EvalIndex(threshold=threshold)
    for item_id in sorted(placed):
        if placed[item_id] == "eval":
            index.add(item_id, messages[item_id])
    index.freeze()
    found = [index.probe(item_id, messages[item_id]) for item_id in sorted(placed) if placed[item_id] == "train"]
    return [leak for leak in found if leak is not None]


def rebuilt(release: Release, p: Personas) -> Release:
    again = services.release_build(release_id=services.release_rebuild(actor=p.data_lead, release=release).pk)
    assert again is not None
    return again


def test_it_repeats_the_check_under_move_to_eval_until_nothing_moves_and_rebuilds_the_same(personas: Personas) -> None:
    p = personas
    judged(p, chains())
    recipe: dict[str, Any] = {"eval_fraction": 0.2, "leakage": "move_to_eval", "near_duplicate_threshold": 0.8}
    first = build(p.project, p.data_lead, **recipe)
    assert first.state == "built", first.failure_reason
    moved = {leak["train_item"] for leak in first.leak_report["leaks"]}
    # The chains were followed: some item moved because of an item that was itself moved.
    assert any(leak["eval_item"] in moved for leak in first.leak_report["leaks"]), first.leak_report
    assert set(ReleaseItem.objects.filter(release=first, moved=True).values_list("item_id", flat=True)) == moved
    assert leaks_left(first, 0.8) == []

    second = rebuilt(first, p)
    third = build(p.project, p.data_lead, **recipe)  # the same recipe, defined again
    assert (second.version, third.version) == (2, 3)
    for again in (second, third):
        assert again.state == "built", again.failure_reason
        assert split_of(again) == split_of(first)
        assert again.manifest is not None
        assert first.manifest is not None
        assert again.manifest["counts"] == first.manifest["counts"]
        assert again.hash == first.hash
        assert leaks_left(again, 0.8) == []
        assert services.release_verify(release=again) == []
    assert first.manifest is not None
    counts = first.manifest["counts"]
    assert counts["items"]["eval"] == sum(1 for s in split_of(first).values() if s == "eval")
    assert counts["leaks"]
    assert sum(counts["leaks"].values()) == len(moved)


def test_it_leaves_no_leak_under_drop_and_rebuilds_the_same(personas: Personas) -> None:
    p = personas
    items = judged(p, chains())
    first = build(p.project, p.data_lead, eval_fraction=0.2, leakage="drop")
    assert first.state == "built", first.failure_reason
    assert first.leak_report["total"] > 0
    assert leaks_left(first, 0.8) == []
    dropped = {leak["train_item"] for leak in first.leak_report["leaks"]}
    assert dropped.isdisjoint(split_of(first))
    assert len(split_of(first)) == len(items) - len(dropped)
    again = rebuilt(first, p)
    assert split_of(again) == split_of(first)
    assert again.hash == first.hash


def test_it_follows_a_chain_in_the_closure_and_checks_items_kept_in_eval_last(tmp_path: Path) -> None:
    a, b, c, d, e = chains(count=1, length=5)
    unrelated = " ".join(random.Random(3).sample(VOCABULARY, 50))
    near_unrelated = unrelated.replace(unrelated.split()[10], "changed", 1)
    index = splits.EvalIndex(threshold=0.8)
    index.add(1, [{"role": "user", "content": a}])
    pending = splits.PendingProbes(tmp_path / "train.bin")
    for item_id, text in ((2, b), (3, c), (4, d), (5, e), (6, unrelated), (7, near_unrelated)):
        messages = [{"role": "user", "content": text}]
        pending.add(item_id, messages, splits.normalise(splits.prompt_text(messages)))
    # Each link of the chain is found against the link moved before it, in order; 7 is kept in eval anyway
    # (an earlier release moved it), so 6, its near copy, moves once nothing else does.
    found = splits.leak_closure(pending, index, eval_anyway={7})
    assert [(leak.train_item, leak.eval_item) for leak in found] == [(2, 1), (3, 2), (4, 3), (5, 4), (6, 7)]
    assert splits.leak_closure(pending, index, eval_anyway={7}) == found
    assert [leak.train_item for leak in pending.leaks(index)] == [2]  # one check alone finds the first link only


def test_it_moves_a_mixin_item_moved_to_eval_again_alike_on_a_rebuild(personas: Personas) -> None:
    p = personas
    sft_project(p.project, p.data_lead, p.annotator, p.reviewer, PROMPTS[:10])
    v1 = build(p.project, p.data_lead, kind="sft", eval_fraction=0.3)
    evaluated = eval_item(v1)
    copied = evaluated.messages[0]["content"].upper() + "!"  # the same normalised prompt
    batch = mixin_batch(p.project, p.data_lead, [*GENERAL_CHAT, (copied, "Copied.")])
    assert batch.status == "done", batch.errors
    [copy] = Item.objects.filter(batch=batch, messages__0__content=copied)
    recipe: dict[str, Any] = {
        "kind": "sft", "eval_fraction": 0.3, "mixin_batches": [batch.pk], "mixin_fraction": 0.5,
        "leakage": "move_to_eval",
    }  # fmt: skip
    first = build(p.project, p.data_lead, name="mixed", **recipe)
    assert first.state == "built", first.failure_reason
    assert [(x["train_item"], x["kind"]) for x in first.leak_report["leaks"]] == [(copy.pk, "normalised")]
    again = rebuilt(first, p)
    assert again.state == "built", again.failure_reason
    # Checked again as a training item would be: the same leak (not the item against its own earlier copy).
    assert [(x["train_item"], x["kind"], x["eval_item"]) for x in again.leak_report["leaks"]] == [
        (copy.pk, "normalised", evaluated.pk)
    ]
    assert split_of(again) == split_of(first)
    assert split_of(again)[copy.pk] == "eval"
    assert again.hash == first.hash

"""The paraphrase check of the release build with the real all-MiniLM-L6-v2: reworded banking questions that
MinHash misses are caught by their stored prompt embeddings, under each leakage policy; "move to eval" follows
a paraphrase of a moved item and rebuilds to the same hash; items without a current embedding are reported
and checked by MinHash only; threshold 0 turns the check off.

The prompts carry a greeting where one was needed to put them on the wanted side of a 50 % split (the side is
a stable hash of the prompt): the three evaluation questions in eval, the others in train."""

import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pytest

from annotation.models import Item
from releases import splits
from releases.datasheet_markdown import markdown
from releases.embeddings import EmbeddingModel, embedding_model_hash, load_embedding_model
from releases.models import PromptEmbedding, Release
from releases.recipe import Recipe
from releases.services import prompt_embeddings_compute
from tests.conftest import ClientFor, Personas
from tests.releases.helpers import build
from tests.releases.test_leak_closure import judged, leaks_left, rebuilt, split_of

EVAL_PASSWORD = "How can I change my password for online banking?"
EVAL_INTEREST = "Hi, What is the interest rate on your savings account?"
EVAL_FEE = "Hello. Why was I charged a fee for my international payment?"
PASSWORD = "I forgot my password for internet banking, how can I change it?"  # paraphrases EVAL_PASSWORD
LOGIN = "Good morning. I forgot my internet banking login details, what should I do?"  # paraphrases PASSWORD only
INTEREST = "How much interest does the savings account pay?"
FEE = "I paid abroad and got charged a fee, why is that?"
OTHERS = (
    "How much will my savings earn each year with you?",
    "Write a short poem about autumn leaves.",
    "Hello. My transfer to a friend has not arrived after three days.",
    "Hello. Which documents do I need to open a joint account?",
    "Can I raise the daily withdrawal limit at cash machines?",
)
PROMPTS = [EVAL_PASSWORD, EVAL_INTEREST, EVAL_FEE, PASSWORD, LOGIN, INTEREST, FEE, *OTHERS]
FRACTION = 0.5
THRESHOLD = 0.75


@pytest.fixture(scope="module")
def minilm() -> EmbeddingModel:
    """Loaded once for the module; ``prompt_embeddings_compute`` reuses the process's copy."""
    return load_embedding_model()


def embedded(p: Personas) -> dict[str, Item]:
    """The prompts imported, judged and embedded; by text."""
    items = {item.messages[0]["content"]: item for item in judged(p, PROMPTS)}
    assert prompt_embeddings_compute(project_id=p.project.pk) == len(PROMPTS)
    return items


def test_it_puts_the_prompts_on_the_sides_and_at_the_similarities_the_tests_assume(minilm: EmbeddingModel) -> None:
    for text in PROMPTS:
        in_eval = splits.in_eval_by_hash(splits.prompt_digest([{"role": "user", "content": text}]), FRACTION)
        assert in_eval == (text in (EVAL_PASSWORD, EVAL_INTEREST, EVAL_FEE)), text
    vectors = dict(zip(PROMPTS, minilm.embed(PROMPTS), strict=True))

    def similarity(a: str, b: str) -> float:
        return float(vectors[a] @ vectors[b])

    for train, evaluated in ((PASSWORD, EVAL_PASSWORD), (INTEREST, EVAL_INTEREST), (FEE, EVAL_FEE), (LOGIN, PASSWORD)):
        assert similarity(train, evaluated) > THRESHOLD + 0.02
    assert similarity(LOGIN, EVAL_PASSWORD) < THRESHOLD - 0.1
    for text in OTHERS:
        assert max(similarity(text, e) for e in (EVAL_PASSWORD, EVAL_INTEREST, EVAL_FEE)) < THRESHOLD - 0.1
    # The default threshold between a reworded question and another question of the same domain.
    password, reworded, pin = minilm.embed(
        [
            "How do I reset my online banking password?",
            "I forgot my password for internet banking, how can I change it?",
            "How do I change my card PIN?",
        ]
    )
    assert Recipe.paraphrase_threshold == THRESHOLD
    assert password @ reworded > THRESHOLD > password @ pin
    # MinHash misses every one of these pairs: word 3-grams of reworded questions hardly meet.
    cases = (((EVAL_PASSWORD, EVAL_INTEREST, EVAL_FEE), (PASSWORD, INTEREST, FEE)), ((PASSWORD,), (LOGIN,)))
    for indexed, probed in cases:
        index = splits.EvalIndex(threshold=0.8)
        for n, text in enumerate(indexed):
            index.add(n, [{"role": "user", "content": text}])
        assert [index.probe(9, [{"role": "user", "content": t}]) for t in probed] == [None] * len(probed)


def pairs(release: Release) -> set[tuple[int, int, str]]:
    return {(x["train_item"], x["eval_item"], x["kind"]) for x in release.leak_report.get("leaks", [])}


def test_it_refuses_the_build_naming_the_paraphrases_that_minhash_misses(
    personas: Personas, minilm: EmbeddingModel
) -> None:
    p = personas
    items = embedded(p)
    unchecked = build(p.project, p.data_lead, "off", eval_fraction=FRACTION, paraphrase_threshold=0)
    assert unchecked.state == "built", unchecked.failure_reason
    assert unchecked.leak_report == {}  # MinHash alone finds nothing
    assert unchecked.datasheet is not None
    assert unchecked.datasheet["g_paraphrase_check"] == {"threshold": 0.0}
    assert "paraphrase_check" not in unchecked.build_stats

    refused = build(p.project, p.data_lead, "on", eval_fraction=FRACTION)
    assert refused.state == "failed"
    assert "paraphrases" in refused.failure_reason
    assert pairs(refused) == {
        (items[PASSWORD].pk, items[EVAL_PASSWORD].pk, "paraphrase"),
        (items[INTEREST].pk, items[EVAL_INTEREST].pk, "paraphrase"),
        (items[FEE].pk, items[EVAL_FEE].pk, "paraphrase"),
    }
    assert all(THRESHOLD <= x["similarity"] <= 1 and x["action"] == "fail" for x in refused.leak_report["leaks"])


def test_it_drops_paraphrases_and_reports_them_in_the_datasheet(personas: Personas, minilm: EmbeddingModel) -> None:
    p = personas
    items = embedded(p)
    release = build(p.project, p.data_lead, eval_fraction=FRACTION, leakage="drop")
    assert release.state == "built", release.failure_reason
    dropped = {items[t].pk for t in (PASSWORD, INTEREST, FEE)}
    assert {x[0] for x in pairs(release)} == dropped
    placed = split_of(release)
    assert dropped.isdisjoint(placed)
    assert placed[items[LOGIN].pk] == "train"  # a paraphrase of a dropped item, not of an evaluation one
    assert release.datasheet is not None
    check = release.datasheet["g_paraphrase_check"]
    assert check["model_hash"] == embedding_model_hash()
    assert (check["threshold"], check["pairs"], check["items_without_embedding"]) == (THRESHOLD, {"drop": 3}, 0)
    assert check["items_checked"] == len(PROMPTS) - 3  # the training items; the evaluation ones are the index
    assert {(x["train_prompt"], x["eval_prompt"]) for x in check["examples"]} == {
        (PASSWORD, EVAL_PASSWORD), (INTEREST, EVAL_INTEREST), (FEE, EVAL_FEE)
    }  # fmt: skip
    assert release.manifest is not None
    page = markdown(release.manifest, release.datasheet)
    assert "### Paraphrase check" in page
    assert "Pairs found: 3 (drop)." in page
    assert f"#{items[FEE].pk} {FEE} | #{items[EVAL_FEE].pk} {EVAL_FEE}" in page


def test_it_moves_paraphrases_of_moved_items_too_and_rebuilds_to_the_same_hash(
    personas: Personas, minilm: EmbeddingModel
) -> None:
    p = personas
    items = embedded(p)
    first = build(p.project, p.data_lead, eval_fraction=FRACTION, leakage="move_to_eval")
    assert first.state == "built", first.failure_reason
    assert pairs(first) == {
        (items[PASSWORD].pk, items[EVAL_PASSWORD].pk, "paraphrase"),
        (items[INTEREST].pk, items[EVAL_INTEREST].pk, "paraphrase"),
        (items[FEE].pk, items[EVAL_FEE].pk, "paraphrase"),
        (items[LOGIN].pk, items[PASSWORD].pk, "paraphrase"),  # found in the next round, against the moved item
    }
    placed = split_of(first)
    assert {text for text, item in items.items() if placed[item.pk] == "train"} == set(OTHERS)
    assert leaks_left(first, 0.8) == []
    again = rebuilt(first, p)
    anew = build(p.project, p.data_lead, eval_fraction=FRACTION, leakage="move_to_eval")
    for other in (again, anew):
        assert other.state == "built", other.failure_reason
        assert split_of(other) == placed
        assert pairs(other) == pairs(first)
        assert other.hash == first.hash


def test_it_checks_items_without_a_current_embedding_by_minhash_only_and_says_so(
    personas: Personas, minilm: EmbeddingModel, client_for: ClientFor
) -> None:
    p = personas
    items = embedded(p)
    PromptEmbedding.objects.filter(item=items[FEE]).update(content_hash="edited since")  # stale: as missing
    PromptEmbedding.objects.filter(item=items[OTHERS[1]]).delete()
    release = build(p.project, p.data_lead, eval_fraction=FRACTION, leakage="drop")
    assert release.state == "built", release.failure_reason
    assert {x[0] for x in pairs(release)} == {items[PASSWORD].pk, items[INTEREST].pk}
    assert split_of(release)[items[FEE].pk] == "train"
    assert release.datasheet is not None
    assert release.datasheet["g_paraphrase_check"]["items_without_embedding"] == 2
    stats = release.build_stats["paraphrase_check"]
    assert stats["items_without_embedding"] == 2
    assert stats["note"] == "2 items had no prompt embedding yet and were checked by MinHash only"
    page = client_for(p.data_lead).get(f"/projects/{p.project.pk}/releases/{release.pk}/").content.decode()
    assert f'<td>paraphrase</td><td class="num">#{items[PASSWORD].pk}</td>' in page
    assert "Paraphrase check: 2 items had no prompt embedding yet and were checked by MinHash only" in page
    assert "Paraphrase check</h3>" in page


def test_it_moves_across_both_checks_in_one_closure(tmp_path: Path) -> None:
    """An item MinHash moves is on the paraphrase check's evaluation side in the next round, and an item the
    paraphrase check moves is on MinHash's."""

    class Paraphrases:
        """A paraphrase check that knows its pairs (3 rewords 2), as ``ParaphraseIndex`` over stored vectors."""

        def __init__(self, side: set[int]) -> None:
            self.side = side

        def probe(self, item_ids: np.ndarray) -> list[splits.Leak]:
            return [splits.Leak("paraphrase", i, 2, 0.9) for i in item_ids.tolist() if i == 3 and 2 in self.side]

        def of(self, items: Collection[int]) -> "Paraphrases":
            return Paraphrases(set(items))

    first = "the quick brown fox jumps over the lazy dog near the river bank today"
    third = "how do i change the password of my online banking account when i forgot it"
    index = splits.EvalIndex(threshold=0.8)
    index.add(1, [{"role": "user", "content": first}])
    pending = splits.PendingProbes(tmp_path / "train.bin")
    texts = {2: first + " again", 3: third, 4: "something else entirely", 5: third + " please"}
    for item_id, text in texts.items():
        messages = [{"role": "user", "content": text}]
        pending.add(item_id, messages, splits.normalise(splits.prompt_text(messages)))
    found = splits.leak_closure(pending, index, also=Paraphrases(set()))
    assert [(x.kind, x.train_item, x.eval_item) for x in found] == [
        ("near", 2, 1), ("paraphrase", 3, 2), ("near", 5, 3)
    ]  # fmt: skip
    assert splits.leak_closure(pending, index, also=Paraphrases(set())) == found


def test_it_checks_paraphrases_without_importing_torch() -> None:
    """The build runs on the default queue, where torch is not imported: the check reads stored vectors only."""
    code = (
        "import sys, django; django.setup(); import releases.build, releases.paraphrase; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    assert out.stdout.split() == ["False", "False"]

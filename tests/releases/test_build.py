"""Building releases: every export loads in its own library, splits are sticky and never straddle a
group, leaks fail the build with a report, the hash is deterministic and a built release is frozen."""

import json
import os
import random
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import DatabaseError, transaction

from annotation.models import Item
from core.errors import DomainError
from core.storage import artifact_storage
from releases import services, splits
from releases.models import Release, ReleaseFile, ReleaseItem
from tests.conftest import ClientFor, Personas
from tests.releases.helpers import GENERAL_CHAT, build, comparisons, eval_item, judge, mixin_batch, sft_project

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

PROMPTS = [
    f"Customer {n} asks how a {w} works for their {a} account and what it costs each month in fees"
    for n, (w, a) in enumerate(
        [
            (w, a)
            for w in ("standing order", "direct debit", "card freeze", "chargeback")
            for a in ("savings", "current", "business", "joint", "student", "pension")
        ]
    )
]


def judged(p: Personas, prompts: list[str] = PROMPTS) -> list[Item]:
    items = comparisons(p.project, p.data_lead, prompts)
    for n, item in enumerate(items):
        judge(item, p.annotator, {"winner": n % 2, "strength": 2})
        judge(item, p.reviewer, {"winner": n % 2, "strength": 3})
    return items


def exported(release: Release, tmp_path: Path) -> Path:
    services.export_to_directory(release=release, target=tmp_path)
    return tmp_path


def test_it_builds_a_preference_release_whose_exports_load_in_their_libraries(
    personas: Personas, tmp_path: Path, tiny_model_dir: Path
) -> None:
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    judged(personas)
    release = build(personas.project, personas.data_lead, eval_fraction=0.25)
    assert release.state == "built", release.failure_reason
    assert release.manifest is not None
    counts = release.manifest["counts"]["rows"]
    assert counts["train"] + counts["eval"] == len(PROMPTS)
    assert counts["eval"] > 0
    out = exported(release, tmp_path)

    trl = datasets.load_dataset("json", data_files={"train": str(out / "trl_preference/train.jsonl")})["train"]
    assert trl.num_rows == counts["train"]
    first = json.loads((out / "trl_preference/train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"prompt", "chosen", "rejected", "margin"}
    assert first["chosen"][0]["role"] == "assistant"
    assert first["prompt"][0]["content"] in PROMPTS
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    config = DPOConfig(
        output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2, bf16=False, use_cpu=True,
        report_to=[], max_length=384, loss_type=["sigmoid"], save_strategy="no",
    )  # fmt: skip
    trainer = DPOTrainer(
        model=model, args=config, train_dataset=trl, processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )  # fmt: skip
    assert trainer.train().global_step == 1

    openai = [json.loads(line) for line in (out / "openai_preference/eval.jsonl").read_text().splitlines()]
    assert len(openai) == counts["eval"]
    assert set(openai[0]) == {"input", "preferred_output", "non_preferred_output"}
    assert openai[0]["input"]["messages"][0]["role"] == "user"

    table = pq.read_table(out / "parquet/train.parquet")
    assert table.num_rows == counts["train"]
    assert {"prompt", "chosen", "rejected", "margin", "agreement", "annotators"} <= set(table.column_names)
    names = {name for row in table.column("annotators").to_pylist() for name in row}
    assert names
    assert all(n.startswith("annotator-") for n in names)
    assert "annotator" not in names
    assert "reviewer" not in names

    on_disk = datasets.load_from_disk(str(out / "hf_dataset"))
    assert {s: on_disk[s].num_rows for s in on_disk} == {"train": counts["train"], "eval": counts["eval"]}


def test_it_builds_an_sft_release_that_trains_and_keeps_the_reviewers_edits(
    personas: Personas, tmp_path: Path, tiny_model_dir: Path
) -> None:
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    p = personas
    sft_project(p.project, p.data_lead, p.annotator, p.reviewer, PROMPTS[:12])
    release = build(p.project, p.data_lead, kind="sft", eval_fraction=0.2)
    assert release.state == "built", release.failure_reason
    out = exported(release, tmp_path)
    train = datasets.load_dataset("json", data_files=str(out / "trl_sft/train.jsonl"), split="train")
    assert release.manifest is not None
    assert train.num_rows == release.manifest["counts"]["rows"]["train"]
    assert train[0]["messages"][-1]["role"] == "assistant"
    assert train[0]["messages"][-1]["content"].startswith("An ideal answer.")
    chat = [json.loads(x) for x in (out / "openai_chat/train.jsonl").read_text().splitlines()]
    assert chat[0] == {"messages": train[0]["messages"]}
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True),
        args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2, bf16=False,
                       use_cpu=True, report_to=[], max_length=384, save_strategy="no"),
        train_dataset=train,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )  # fmt: skip
    assert trainer.train().global_step == 1
    assert release.manifest is not None
    assert release.datasheet is not None
    assert release.manifest["rubric_versions"][0]["version"] == 1
    assert release.datasheet["c_preparation"]["rubric_versions"][0]["criteria"]


def test_it_gives_the_same_hash_for_the_same_recipe_on_the_same_data(personas: Personas) -> None:
    judged(personas)
    first = build(personas.project, personas.data_lead, eval_fraction=0.2)
    again = services.release_rebuild(actor=personas.data_lead, release=first)
    rebuilt = services.release_build(release_id=again.pk)
    assert rebuilt is not None
    again = rebuilt
    assert (first.version, again.version) == (1, 2)
    assert first.hash
    assert again.hash == first.hash
    assert services.release_verify(release=again) == []


def test_it_keeps_the_evaluation_split_sticky_and_no_group_straddling_it(personas: Personas) -> None:
    p = personas
    judged(p, PROMPTS[:12])
    v1 = build(p.project, p.data_lead, eval_fraction=0.3)
    v1_eval = set(ReleaseItem.objects.filter(release=v1, split="eval").values_list("item_id", flat=True))
    assert v1_eval
    # More data, one prompt twice in different spelling (one group), and a much smaller eval fraction.
    judged(p, [*PROMPTS[12:], PROMPTS[0].upper() + "!!", PROMPTS[1] + "  ?"])
    v2 = build(p.project, p.data_lead, eval_fraction=0.01)
    assert v2.state == "built", v2.failure_reason
    v2_rows = ReleaseItem.objects.filter(release=v2)
    assert v1_eval <= set(v2_rows.filter(split="eval").values_list("item_id", flat=True))
    splits_per_group: dict[str, set[str]] = {}
    for group, split in v2_rows.values_list("group_hash", "split"):
        splits_per_group.setdefault(group, set()).add(split)
    assert all(len(s) == 1 for s in splits_per_group.values())
    assert any(
        len([1 for g, _ in v2_rows.values_list("group_hash", "split") if g == group]) == 2 for group in splits_per_group
    )


WORDS = ("fee", "rate", "loan", "card", "branch", "limit", "overdraft", "statement", "transfer", "deposit")
LONG_PROMPTS = [f"{p}. " + " ".join(random.Random(n).choices(WORDS, k=60)) for n, p in enumerate(PROMPTS[:12])]


def _near_duplicate_in_train(prompt: str) -> str:
    """A one-word variant of ``prompt`` whose group hashes into train (so it would leak)."""
    words = prompt.split()
    for n in range(200):
        variant = " ".join([*words[:40], f"ref{n}", *words[41:]])
        group = splits.digest(splits.normalise(splits.prompt_text([{"role": "user", "content": variant}])))
        if not splits.in_eval_by_hash(group, 0.3):
            return variant
    raise AssertionError("no variant hashed into train")


def test_it_fails_the_build_with_a_report_on_a_planted_near_duplicate(personas: Personas) -> None:
    p = personas
    judged(p, LONG_PROMPTS)
    v1 = build(p.project, p.data_lead, eval_fraction=0.3)
    evaluated = eval_item(v1)
    planted = _near_duplicate_in_train(evaluated.messages[0]["content"])
    [leaky] = judged(p, [planted])

    failed = build(p.project, p.data_lead, eval_fraction=0.3)
    assert failed.state == "failed"
    assert "leak" in failed.failure_reason
    [leak] = failed.leak_report["leaks"]
    assert (leak["kind"], leak["train_item"], leak["eval_item"]) == ("near", leaky.pk, evaluated.pk)
    assert not ReleaseItem.objects.filter(release=failed).exists()
    assert not ReleaseFile.objects.filter(release=failed).exists()

    dropped = build(p.project, p.data_lead, eval_fraction=0.3, leakage="drop")
    assert dropped.state == "built"
    assert not ReleaseItem.objects.filter(release=dropped, item=leaky).exists()
    moved = build(p.project, p.data_lead, eval_fraction=0.3, leakage="move_to_eval")
    assert ReleaseItem.objects.get(release=moved, item=leaky).split == "eval"  # and sticky from now on
    # The rows were written a second time without (or with the moved) leaking item: files, items and counts agree.
    counts = {}
    for release, action in ((dropped, "drop"), (moved, "move_to_eval")):
        assert release.manifest is not None
        counts[action] = release.manifest["counts"]
        assert [(x["train_item"], x["action"]) for x in release.leak_report["leaks"]] == [(leaky.pk, action)]
        assert counts[action]["leaks"] == {"near": 1}
        assert services.release_verify(release=release) == []
        for split in ("train", "eval"):
            jsonl = ReleaseFile.objects.get(release=release, fmt="trl_preference", split=split)
            assert jsonl.rows == counts[action]["rows"].get(split, 0)
            in_split = ReleaseItem.objects.filter(release=release, split=split)
            assert in_split.count() == counts[action]["items"].get(split, 0)
    assert counts["drop"]["dropped"]["leak: dropped from train"] == 1
    assert counts["move_to_eval"]["items"]["eval"] == counts["drop"]["items"]["eval"] + 1


def test_it_counts_an_exact_duplicate_of_an_eval_prompt_in_the_mixin_as_a_leak(personas: Personas) -> None:
    p = personas
    sft_project(p.project, p.data_lead, p.annotator, p.reviewer, PROMPTS[:10])
    v1 = build(p.project, p.data_lead, kind="sft", eval_fraction=0.3)
    copied = eval_item(v1).messages[0]["content"]
    batch = mixin_batch(p.project, p.data_lead, [*GENERAL_CHAT, (copied, "Copied.")])
    assert batch.status == "done", batch.errors
    assert not Item.objects.filter(batch=batch).exclude(kind="mixin").exists()

    failed = build(p.project, p.data_lead, kind="sft", eval_fraction=0.3, mixin_batches=[batch.pk], mixin_fraction=0.5)
    assert failed.state == "failed"
    assert failed.leak_report["leaks"][0]["kind"] == "exact"
    ok = build(p.project, p.data_lead, kind="sft", eval_fraction=0.3, mixin_batches=[batch.pk], mixin_fraction=0.5,
               leakage="drop")  # fmt: skip
    assert ok.state == "built"
    mixed = ReleaseItem.objects.filter(release=ok, source="mixin")
    assert mixed.exists()
    assert set(mixed.values_list("split", flat=True)) == {"train"}
    assert ok.manifest is not None
    rows = ok.manifest["counts"]
    assert rows["sources"]["mixin"] <= rows["rows"]["train"]


def test_it_finds_a_changed_byte_with_release_verify(personas: Personas) -> None:
    judged(personas, PROMPTS[:6])
    release = build(personas.project, personas.data_lead)
    call_command("release_verify", str(release.pk))
    stored = release.files.get(path="trl_preference/train.jsonl")
    path = Path(artifact_storage().path(stored.storage_name))
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="failed verification"):
        call_command("release_verify", str(release.pk))
    assert any("trl_preference/train.jsonl" in problem for problem in services.release_verify(release=release))


def test_it_freezes_a_built_release_and_leaves_a_tombstone_on_delete(
    personas: Personas, on_postgres: None, django_capture_on_commit_callbacks: Any
) -> None:
    judged(personas, PROMPTS[:8])
    release = build(personas.project, personas.data_lead, eval_fraction=0.4)
    for attempt in (
        lambda: Release.objects.filter(pk=release.pk).update(name="renamed"),
        lambda: Release.objects.filter(pk=release.pk).update(hash="0" * 64),
        lambda: ReleaseFile.objects.filter(release=release).update(sha256="0" * 64),
        lambda: ReleaseItem.objects.filter(release=release).update(split="train"),
        lambda: ReleaseItem.objects.filter(release=release).delete(),
        lambda: Release.objects.filter(pk=release.pk).delete(),
    ):
        with pytest.raises(DatabaseError), transaction.atomic():
            attempt()
    eval_items = set(ReleaseItem.objects.filter(release=release, split="eval").values_list("item_id", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        deleted = services.release_delete(actor=personas.project_admin, release=release, reason="superseded")
    assert (deleted.state, deleted.hash) == ("deleted", release.hash)
    with pytest.raises(DomainError, match="already deleted"):
        services.release_delete(actor=personas.project_admin, release=deleted, reason="again")
    assert not artifact_storage().exists(f"{release.storage_prefix}/manifest.json")
    later = build(personas.project, personas.data_lead, eval_fraction=0.0)
    assert eval_items <= set(ReleaseItem.objects.filter(release=later, split="eval").values_list("item_id", flat=True))


def test_it_needs_answers_for_a_mixin_import_and_keeps_it_out_of_the_queue(
    personas: Personas, client_for: ClientFor
) -> None:
    from annotation.services import item_next

    p = personas
    bad = mixin_batch(p.project, p.data_lead, [("A question without an answer", "")])
    assert bad.status == "refused"
    upload = SimpleUploadedFile("general.jsonl", b'{"messages": [{"role": "user", "content": "Hi"}, '
                                b'{"role": "assistant", "content": "Hello."}]}\n')  # fmt: skip
    response = client_for(p.data_lead).post(
        f"/projects/{p.project.pk}/imports/", {"file": upload, "fmt": "chat_jsonl", "purpose": "mixin"}
    )
    assert response.status_code == 302
    item = Item.objects.get(project=p.project)
    assert (item.kind, item.batch.purpose if item.batch else None) == ("mixin", "mixin")
    assert item_next(user=p.annotator, project=p.project) is None


def test_it_gives_per_criterion_sets_their_own_files(personas: Personas, tmp_path: Path) -> None:
    items = comparisons(personas.project, personas.data_lead, PROMPTS[:6])
    for user in (personas.annotator, personas.reviewer):
        for item in items:
            judge(item, user, {"criteria": {"accuracy": 0, "tone": 1}, "overall": 0})
    release = build(personas.project, personas.data_lead, per_criterion=True, eval_fraction=0.0)
    assert release.state == "built", release.failure_reason
    call_command("release_export", str(release.pk), str(tmp_path), "--format", "trl_preference")
    written = sorted(p.name for p in (tmp_path / "trl_preference").iterdir())
    assert written == ["eval.jsonl", "train.accuracy.jsonl", "train.jsonl", "train.tone.jsonl"]
    tone = [json.loads(line) for line in (tmp_path / "trl_preference/train.tone.jsonl").read_text().splitlines()]
    assert len(tone) == 6
    assert all(row["chosen"][0]["content"].startswith("Answer 1") for row in tone)
    assert not (tmp_path / "parquet").exists()
    assert release.datasheet is not None
    assert release.datasheet["e_quantity_and_suitability"]["per_criterion"] == {"accuracy": 6, "overall": 6, "tone": 6}


def test_it_does_not_build_a_built_release_again(personas: Personas) -> None:
    judged(personas, PROMPTS[:4])
    release = build(personas.project, personas.data_lead)
    again = services.release_build(release_id=release.pk)
    assert again is not None
    assert (again.state, again.hash, again.built_at) == ("built", release.hash, release.built_at)
    assert release.files.count() == again.files.count()

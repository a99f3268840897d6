"""Two rounds end to end through real workers (a gpu worker generating and training with TRL on the tiny model,
the default queue building releases and moving rounds): round 1 from the base model alone, promoted with four
eyes; round 2 from round 1's adapter, whose candidates the experts rank, whose DPO job continues round 1's
weights, and whose adapter's lineage names its parent, its release and the generation run experts ranked."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from safetensors.torch import load

from annotation.models import AnnotationSettings
from core.storage import artifact_storage
from evaluation import services as evaluation_services
from evaluation.models import Candidate, EvaluationState
from rounds import services
from rounds.models import Round, RoundState
from tests.conftest import make_personas
from tests.evaluation.deploy_helpers import cast
from tests.evaluation.judging_helpers import judge_through_api
from tests.rounds.helpers import judge_round, prompt_file, wait_for_round
from tests.training.helpers import distinct_prompts, ready_model
from tests.workers import start_worker, stop_worker
from training.models import Adapter

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

DPO = {"max_steps": 8, "learning_rate": 5e-3, "max_length": 128, "batch_size": 4, "eval_steps": 0}
DECODING = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8, "seed": 3}


def _finish_and_promote(round_: Round, people: Any, log: Path) -> None:
    """The experts judge the round's blind evaluation, the admin finishes it, another admin asks for the
    promotion, two approvers approve: the round is promoted."""
    round_ = wait_for_round(round_, {RoundState.EVALUATING}, log)
    evaluation = round_.evaluation
    assert evaluation is not None
    deadline = time.monotonic() + 180
    while evaluation.state != EvaluationState.JUDGING and time.monotonic() < deadline:
        assert evaluation.state != EvaluationState.FAILED, evaluation.failure_reason
        time.sleep(0.5)
        evaluation.refresh_from_db()
    judge_through_api(evaluation, [people.annotator], lambda index, user: "win")
    evaluation = evaluation_services.evaluation_finish(actor=people.project_admin, evaluation=evaluation)
    round_ = wait_for_round(round_, {RoundState.PROMOTING}, log)
    assert round_.adapter is not None
    request = evaluation_services.promotion_request(
        actor=people.requester, target=round_.target, adapter=round_.adapter, evaluation=evaluation
    )
    evaluation_services.promotion_approve(actor=people.approver, request=request)
    evaluation_services.promotion_approve(actor=people.second_approver, request=request)
    wait_for_round(round_, {RoundState.PROMOTED}, log, timeout=60)


def test_it_runs_two_rounds_and_round_two_continues_round_ones_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    p = make_personas()
    roles = cast(p)
    people = type("People", (), {"annotator": p.annotator, "project_admin": p.project_admin,
                                 "requester": roles.requester, "approver": roles.approver,
                                 "second_approver": roles.second_approver})  # fmt: skip
    AnnotationSettings.objects.update_or_create(project=p.project, defaults={"annotators_per_item": 1})
    base = ready_model(p.staff, tiny_model_dir, name="round-base")
    target = evaluation_services.deployment_target_create(
        actor=p.project_admin, project=p.project, name="assistant", base_model=base, min_win_rate_lower=0.0,
        max_metric_regression=1.0,
    )  # fmt: skip
    log = tmp_path / "worker.log"
    worker = start_worker("gpu,default", "rounds", output=log.open("w"))
    try:
        # Round 1: the base model alone answers ten new prompts, three candidates each; random pairs.
        first = services.round_start(
            actor=p.project_admin, project=p.project, target=target, source="upload",
            upload=prompt_file(distinct_prompts(10, seed=11)), fmt="chat_jsonl", source_name="round-1.jsonl",
            candidates_per_prompt=3, pair_policy="random", decoding=DECODING, dpo_preset="cpu_check",
            dpo_values=DPO, eval_fraction=0.3,
        )  # fmt: skip
        assert first.number == 1
        assert first.policy_adapter is None
        first = wait_for_round(first, {RoundState.JUDGING}, log)
        assert judge_round(first, [p.annotator]) == first.comparisons == 10
        _finish_and_promote(first, people, log)
        first.refresh_from_db()
        assert first.adapter_id is not None
        parent = Adapter.objects.get(pk=first.adapter_id)
        assert parent.parent is None
        assert parent.job.parent_adapter is None

        # The next round cannot start on a round that is still open; this one has ended (promoted).
        target.refresh_from_db()
        assert target.current_adapter_id == parent.pk

        # Round 2: round 1's adapter (now the target's model) answers new prompts.
        second = services.round_start(
            actor=p.project_admin, project=p.project, target=target, source="upload",
            upload=prompt_file(distinct_prompts(10, seed=12)), fmt="chat_jsonl", source_name="round-2.jsonl",
            candidates_per_prompt=3, pair_policy="random", decoding=DECODING, dpo_preset="cpu_check",
            dpo_values=DPO, eval_fraction=0.3,
        )  # fmt: skip
        assert second.number == 2
        assert second.policy_adapter_id == parent.pk
        second = wait_for_round(second, {RoundState.JUDGING}, log)
        # The round-2 comparisons' candidates come from the round-1 adapter.
        run = second.generation_run
        assert run is not None
        assert run.adapter_id == parent.pk
        assert run.adapter_sha256 == parent.sha256
        pairs = list(second.pairs.select_related("first__run", "second__run", "item"))
        assert pairs
        for pair in pairs:
            assert pair.first.run_id == pair.second.run_id == run.pk
            assert pair.item is not None
            provenance = [c["provenance"] for c in pair.item.candidates]
            assert {c["extra"]["candidate"] for c in provenance} == {pair.first_id, pair.second_id}
            assert pair.item.metadata["tags"] == ["round-2"]
        judge_round(second, [p.annotator])
        _finish_and_promote(second, people, log)
        second.refresh_from_db()
    finally:
        stop_worker(worker, timeout=60)

    assert second.adapter_id is not None
    child = Adapter.objects.get(pk=second.adapter_id)
    job = child.job
    # The round-2 DPO job started from round 1's weights, exactly.
    assert job.parent_adapter_id == parent.pk
    storage = artifact_storage()
    with storage.open(f"{parent.storage_prefix}/adapter_model.safetensors", "rb") as stream:
        from training.trainer import weights_digest

        parent_digest = weights_digest(load(stream.read()))
    assert child.metrics["train"]["start_weights_sha256"] == parent_digest
    assert parent.metrics["train"]["end_weights_sha256"] == parent_digest
    assert child.metrics["train"]["end_weights_sha256"] != parent_digest
    assert child.metrics["train"]["continued"] is True
    assert child.config["lora_r"] == parent.config["lora_r"]
    # Its lineage names its parent, its release and the generation run whose candidates experts ranked.
    client = Client()
    client.force_login(p.project_admin)
    lineage = client.get(f"/api/v1/projects/{p.project.pk}/adapters/{child.pk}/lineage/").json()
    assert lineage["parent"]["id"] == parent.pk
    assert lineage["parent"]["sha256"] == parent.sha256
    assert lineage["release"]["id"] == second.release_id
    assert lineage["round"]["number"] == 2
    assert lineage["round"]["generation_run"] == second.generation_run_id
    assert set(Candidate.objects.filter(run_id=second.generation_run_id).values_list("run__adapter", flat=True)) == {
        parent.pk
    }
    job_page = client.get(f"/projects/{p.project.pk}/training/{job.pk}/").content.decode()
    assert 'id="job-parent"' in job_page
    assert parent.name in job_page
    page = client.get(f"/projects/{p.project.pk}/adapters/{child.pk}/").content.decode()
    assert parent.name in page
    assert f"generation run #{second.generation_run_id}" in page
    rounds_page = client.get(f"/projects/{p.project.pk}/rounds/").content.decode()
    assert "Round 2" in rounds_page
    assert child.name in rounds_page
    detail = client.get(f"/api/v1/projects/{p.project.pk}/rounds/2/").json()
    assert detail["state"] == "promoted"
    assert detail["lineage"]["adapter"]["parent"] == parent.pk
    assert json.dumps(detail["results"]["evaluation"]["win_rate"]) != "null"
    # What became of the decided pairs: in the release (train, held out), or left out (even splits, ties).
    counts = detail["counts"]
    assert counts["released_train"] + counts["released_eval"] + counts["left_out"] == counts["decided"]
    assert counts["released_eval"] >= 1
    round_page = client.get(f"/projects/{p.project.pk}/rounds/2/").content.decode()
    assert f"{counts['released_train']} pairs to train on, {counts['released_eval']} held out" in round_page
    # Its gate compared it with its parent on the round's own held-out rows, not on the parent's release.
    assert second.promotion is not None
    held_out = next(c for c in second.promotion.gate["checks"] if c["name"] == "held_out")
    assert "which it continues, on the same held-out rows" in held_out["detail"], held_out

"""Every page and API endpoint, with the personas allowed to use it.

The matrix test tries each route as every persona: the allowed ones get ``ok``, logged-in others get
404 (never 403: existence must not leak), and anonymous visitors are sent to the login page (pages) or
refused with 401/403 (API). Later features append their routes to ``ROUTES`` here.
"""

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import GroupMapping, Role, User
from accounts.services import membership_add
from annotation import services as annotation_services
from annotation.models import ImportBatch
from tests.annotation.helpers import GOOD_SCORES, chat_line, give_rubric, import_items, jsonl
from tests.conftest import Personas
from tests.factories import PASSWORD
from tests.preferences.helpers import comparison_line, make_comparisons

MEMBERS = frozenset({"annotator", "reviewer", "data_lead", "project_admin", "approver", "staff"})
ADMINS = frozenset({"project_admin", "staff"})
STAFF = frozenset({"staff"})
EVERYONE = frozenset({"annotator", "reviewer", "data_lead", "project_admin", "approver", "outsider", "staff"})


@dataclass(frozen=True)
class Route:
    label: str
    method: str
    path: Callable[[Personas], str]
    allowed: frozenset[str]
    ok: int = 200
    data: Callable[[Personas], dict[str, Any]] = field(default=lambda p: {})
    api: bool = False
    multipart: bool = False  # API routes that upload files
    setup: Callable[[Personas, User], None] | None = None  # runs as the persona before the request
    anonymous: int | None = None  # what a visitor without a session or token gets, where not the default refusal


def _a(p: Personas) -> int:
    return p.project.pk


def _annotator_membership(p: Personas) -> int:
    return p.membership(p.annotator).pk


def _group_mapping(p: Personas) -> int:
    """A mapping of a directory group to a role in project A."""
    if "group_mapping" not in p.made:
        p.made["group_mapping"] = GroupMapping.objects.create(
            group="retail-reviewers", project=p.project, role=Role.REVIEWER
        )
    return int(p.made["group_mapping"].pk)


def _item(p: Personas) -> int:
    """One imported item of project A, with a rubric."""
    if "item" not in p.made:
        give_rubric(p.project, p.data_lead)
        p.made["item"] = import_items(p.project, p.data_lead, 1)[0]
    return int(p.made["item"].pk)


def _lease_item(p: Personas, user: User) -> None:
    _item(p)
    annotation_services.item_next(user=user, project=p.project)


def _annotation(p: Personas) -> int:
    """A submitted annotation of project A by someone who is none of the personas."""
    if "annotation" not in p.made:
        _item(p)
        author = p.made.setdefault("author", p.newcomer)
        membership_add(actor=None, project=p.project, user=author, role=Role.ANNOTATOR)
        slot = annotation_services.item_next(user=author, project=p.project)
        assert slot is not None
        p.made["annotation"] = annotation_services.annotation_submit(
            user=author, item=slot.item, response="Answer", scores=GOOD_SCORES, flags=[], note="",
            time_spent_ms=1, submit_key="matrix",
        )  # fmt: skip
    return int(p.made["annotation"].pk)


def _batch(p: Personas) -> int:
    if "batch" not in p.made:
        p.made["batch"] = annotation_services.import_start(
            actor=p.data_lead, project=p.project, upload=io.BytesIO(jsonl(chat_line("Hi?"))),
            source_name="m.jsonl", fmt="chat_jsonl",
        )  # fmt: skip
    return int(p.made["batch"].pk)


_OASST_TREE = json.dumps(
    {
        "message_tree_id": "t1",
        "tree_state": "ready_for_export",
        "prompt": {
            "message_id": "p", "parent_id": None, "text": "What is an ISA?", "role": "prompter", "lang": "en",
            "replies": [
                {"message_id": f"a{n}", "parent_id": "p", "text": text, "role": "assistant", "rank": n, "replies": []}
                for n, text in enumerate(["A savings account.", "A bond."])
            ],
        },
    }
)  # fmt: skip


def _waiting_batch(p: Personas) -> int:
    """An OpenAssistant import waiting for its mapping (each test maps or cancels its own)."""
    if "waiting_batch" not in p.made:
        p.made["waiting_batch"] = annotation_services.import_start(
            actor=p.data_lead, project=p.project, upload=io.BytesIO(jsonl(_OASST_TREE)),
            source_name="trees.jsonl", fmt="openassistant_trees",
        )  # fmt: skip
    return int(p.made["waiting_batch"].pk)


def _restore_upload(p: Personas, user: User) -> None:
    """Each request's savepoint rolls the waiting batch back, but not its stored file, which a mapped import
    deletes: put it back for the next persona."""
    batch = ImportBatch.objects.get(pk=_waiting_batch(p))
    if batch.stored_path and not Path(batch.stored_path).exists():
        Path(batch.stored_path).write_bytes(jsonl(_OASST_TREE))


def _upload(p: Personas) -> dict[str, Any]:
    return {"file": SimpleUploadedFile("up.jsonl", jsonl(chat_line("Uploaded?"))), "fmt": "chat_jsonl"}


def _comparison(p: Personas) -> int:
    """One pairwise comparison of project A."""
    if "comparison" not in p.made:
        p.made["comparison"] = make_comparisons(p.project, p.data_lead, 1)[0]
    return int(p.made["comparison"].pk)


def _make_comparison(p: Personas, user: User) -> None:
    _comparison(p)


def _lease_comparison(p: Personas, user: User) -> None:
    _comparison(p)
    assert annotation_services.item_next(user=user, project=p.project, kind="comparison") is not None


def _adjudication(p: Personas) -> int:
    from preferences.models import Adjudication

    if "adjudication" not in p.made:
        p.made["adjudication"] = Adjudication.objects.create(item_id=_comparison(p), agreement=0.5)
    return int(p.made["adjudication"].pk)


def _judged_annotator(p: Personas) -> int:
    """An annotator of project A with a quality row (someone who has judged), for the exclude action."""
    from preferences.models import AnnotatorQuality

    if "quality" not in p.made:
        membership_add(actor=None, project=p.project, user=p.newcomer, role=Role.ANNOTATOR)
        p.made["quality"] = AnnotatorQuality.objects.create(project=p.project, annotator=p.newcomer)
    return int(p.made["quality"].annotator_id)


def _comparisons_body(p: Personas) -> dict[str, Any]:
    import json

    return {"comparisons": [json.loads(comparison_line("Which is better?", "One.", "Two."))]}


def _release(p: Personas) -> int:
    """A built preference release of project A (two judged comparisons)."""
    if "release" not in p.made:
        from tests.releases.helpers import build, comparisons, judge

        for n, item in enumerate(comparisons(p.project, p.data_lead, ["Which fee applies?", "Is the card frozen?"])):
            judge(item, p.reviewer, {"winner": n % 2, "strength": 1})
        p.made["release"] = build(p.project, p.data_lead, eval_fraction=0.0)
    return int(p.made["release"].pk)


def _refreshable(p: Personas) -> int:
    """Project A with its built release and a comparison imported since, in no release: something to refresh."""
    if "refreshable" not in p.made:
        _release(p)
        p.made["refreshable"] = make_comparisons(p.project, p.data_lead, 1)[0]
    return p.project.pk


DRIFT_THRESHOLDS = {
    "psi_max": 0.25, "chi2_p_min": 0.01, "ks_max": 0.2, "centroid_max": 0.05, "mmd_p_min": 0.01, "window_days": 30,
    "min_eval_per_stratum": 20,
}  # fmt: skip


def _release_file(p: Personas) -> int:
    from releases.models import ReleaseFile

    return ReleaseFile.objects.get(release_id=_release(p), path="trl_preference/train.jsonl").pk


def _base_model(p: Personas) -> int:
    """A ready base model (the registry row; no worker is needed to read or start against it)."""
    if "base_model" not in p.made:
        from training.models import BaseModel

        p.made["base_model"] = BaseModel.objects.create(
            name="matrix-model", path="/models/matrix", state="ready", architecture="LlamaForCausalLM",
            parameter_count=1000, dtype="F32", linear_modules=["q_proj", "v_proj"], content_hash="b" * 64,
            registered_by=p.staff,
        )  # fmt: skip
    return int(p.made["base_model"].pk)


def _spare_base_model(p: Personas) -> int:
    """A base model that failed its check and that no job uses: one an admin may delete."""
    if "spare_model" not in p.made:
        from training.models import BaseModel

        p.made["spare_model"] = BaseModel.objects.create(
            name="matrix-typo", path="/models/matirx", state="invalid",
            failure_reason="/models/matirx is not a directory.", registered_by=p.staff,
        )  # fmt: skip
    return int(p.made["spare_model"].pk)


def _job(p: Personas) -> int:
    """A queued DPO job of project A on the release above (its task is queued only on commit: never here)."""
    if "job" not in p.made:
        from releases.models import Release
        from training import services as training_services
        from training.config import JobConfig
        from training.models import BaseModel

        p.made["job"] = training_services.training_job_start(
            actor=p.project_admin, project=p.project, kind="dpo", release=Release.objects.get(pk=_release(p)),
            base_model=BaseModel.objects.get(pk=_base_model(p)), config=JobConfig.from_dict("dpo", {"max_steps": 2}),
        )  # fmt: skip
    return int(p.made["job"].pk)


def matrix_job(p: Personas) -> int:
    """The queued job above, for tests that need a job of project A."""
    return _job(p)


def matrix_adapter(p: Personas) -> int:
    """A finished job's adapter with one file in the artifact store."""
    if "adapter" not in p.made:
        from training.models import TrainingJob

        p.made["adapter"] = matrix_register_adapter(p, TrainingJob.objects.get(pk=_job(p)))
    return int(p.made["adapter"].pk)


def matrix_merged(p: Personas) -> None:
    """A ready merge of the matrix adapter with one file (its weights) in the artifact store."""
    if "merged" not in p.made:
        from django.core.files.base import ContentFile

        from core.storage import artifact_storage
        from training.models import Adapter, MergedModel

        adapter = Adapter.objects.get(pk=matrix_adapter(p))
        prefix = f"merged/{p.project.pk}/adapter-{adapter.pk}"
        storage = artifact_storage()
        if storage.exists(f"{prefix}/model.safetensors"):
            storage.delete(f"{prefix}/model.safetensors")
        storage.save(f"{prefix}/model.safetensors", ContentFile(b"merged"))
        p.made["merged"] = MergedModel.objects.create(
            adapter=adapter, state="ready", storage_prefix=prefix, sha256="d" * 64, size_bytes=6,
            files=[{"path": "model.safetensors", "size_bytes": 6, "sha256": "d" * 64}], adapter_sha256=adapter.sha256,
            base_model_hash=adapter.base_model_hash, requested_by=adapter.started_by,
        )  # fmt: skip


def matrix_reward_model(p: Personas) -> int:
    """A finished reward job's reward model (project A, the release above), its one file in the artifact store."""
    if "reward_model" not in p.made:
        from releases.models import Release
        from training import services as training_services
        from training.config import JobConfig
        from training.models import BaseModel

        job = training_services.training_job_start(
            actor=p.project_admin, project=p.project, kind="reward", release=Release.objects.get(pk=_release(p)),
            base_model=BaseModel.objects.get(pk=_base_model(p)),
            config=JobConfig.from_dict("reward", {"max_steps": 2}),
        )  # fmt: skip
        p.made["reward_model"] = matrix_register_adapter(p, job)
    return int(p.made["reward_model"].pk)


def matrix_register_adapter(p: Personas, job: Any) -> Any:
    """Register what a queued job of project A trained (an adapter, or a reward job's reward model), its one file
    in the artifact store."""
    from django.core.files.base import ContentFile

    from core.storage import artifact_storage
    from training import services as training_services
    from training.models import TrainingJob

    TrainingJob.objects.filter(pk=job.pk).update(state="running")
    storage = artifact_storage()
    folder = "reward-models" if job.kind == "reward" else "adapters"
    name = f"{folder}/{p.project.pk}/job-{job.pk}/adapter_model.safetensors"
    if storage.exists(name):
        storage.delete(name)
    storage.save(name, ContentFile(b"weights"))
    return training_services.trained_register(
        job=job, storage_prefix=f"{folder}/{p.project.pk}/job-{job.pk}",
        files=[{"path": "adapter_model.safetensors", "size_bytes": 7, "sha256": "c" * 64}],
        result={"evaluation": {}, "train": {"steps": 2}}, hardware={"device": "cpu"},
        library_versions={"trl": "1.16.0"}, code_version="test",
    )  # fmt: skip


def _job_body(p: Personas) -> dict[str, Any]:
    return {"kind": "dpo", "release": _release(p), "base_model": _base_model(p), "preset": "cpu_check",
            "config": {"max_steps": 3}}  # fmt: skip


def matrix_job_form(p: Personas) -> dict[str, Any]:
    from training.forms import preset_table

    values = preset_table()["cpu_check"]["dpo"]
    form = {key: value for key, value in values.items() if key not in ("kind", "use_dora", "use_qlora")}
    return {**form, "kind": "dpo", "release": _release(p), "base_model": _base_model(p), "preset": "cpu_check"}


def _generation_run(p: Personas) -> int:
    """A queued generation run of project A with the ready base model (its task is sent only on commit: never
    here)."""
    if "generation_run" not in p.made:
        from evaluation import services as evaluation_services
        from training.models import BaseModel

        p.made["generation_run"] = evaluation_services.generation_run_create(
            actor=p.project_admin, project=p.project, base_model=BaseModel.objects.get(pk=_base_model(p)),
            source="upload", prompts=[{"messages": [{"role": "user", "content": "Which fee applies?"}]}],
            decoding={"max_new_tokens": 8}, source_name="matrix.jsonl",
        )  # fmt: skip
    return int(p.made["generation_run"].pk)


def _generation_form(p: Personas) -> dict[str, Any]:
    return {"base_model": _base_model(p), "source": "project_items", "limit": 5, "candidates": 1,
            "temperature": 0, "top_p": 1, "max_new_tokens": 8, "seed": 1, "batch_size": 4}  # fmt: skip


def _generation_body(p: Personas) -> dict[str, Any]:
    return {"base_model": _base_model(p), "source": "project_items", "limit": 5, "decoding": {"max_new_tokens": 8}}


def _reward_model(p: Personas) -> int:
    """The reward model of project A (``matrix_reward_model``)."""
    return matrix_reward_model(p)


def _scoring_run(p: Personas) -> int:
    """A queued scoring run of project A over its comparisons (its task is sent only on commit: never here)."""
    if "scoring_run" not in p.made:
        from evaluation import services as evaluation_services
        from training.models import RewardModel

        p.made["scoring_run"] = evaluation_services.scoring_run_start(
            actor=p.project_admin, project=p.project, reward_model=RewardModel.objects.get(pk=_reward_model(p))
        )
    return int(p.made["scoring_run"].pk)


def matrix_scoring_run(p: Personas) -> int:
    """The queued scoring run above, for tests that need one of project A."""
    return _scoring_run(p)


def _scoring_form(p: Personas) -> dict[str, Any]:
    return {"reward_model": _reward_model(p), "generation_run": "", "batch_size": 4}


def _scoring_body(p: Personas) -> dict[str, Any]:
    return {"reward_model": _reward_model(p), "batch_size": 4}


def _items_setup(p: Personas, user: User) -> None:
    """Project A's imported items are the prompts of the runs the matrix starts."""
    _item(p)


def _base_model_setup(p: Personas, user: User) -> None:
    _base_model(p)


# --- Rounds ----------------------------------------------------------------------------------------------------


def _round(p: Personas) -> int:
    """Round 1 of project A, judging: its generation run (the matrix run) answered, no pair decided yet."""
    if "round" not in p.made:
        from evaluation.models import DeploymentTarget
        from rounds.models import Round
        from training.config import JobConfig

        target = DeploymentTarget.objects.get(project=p.project, name=_deployment_target(p))
        p.made["round"] = Round.objects.create(
            project=p.project, number=1, target=target, base_model=target.base_model, state="judging",
            candidates_per_prompt=2, pair_policy="random", decoding={"candidates": 2, "temperature": 1.0},
            prompt_source="1 prompt", dpo_config=JobConfig.from_dict("dpo", {}).canonical(),
            generation_run_id=_generation_run(p), created_by=p.project_admin,
        )  # fmt: skip
    return int(p.made["round"].number)


def matrix_round(p: Personas) -> int:
    """The round above (its number), for tests that need one of project A."""
    return _round(p)


def _round_form(p: Personas) -> dict[str, Any]:
    _item(p)
    from evaluation.models import DeploymentTarget

    target = DeploymentTarget.objects.get(project=p.project, name=_deployment_target(p))
    return {"target": target.pk, "source": "project_items", "limit": 3, "candidates_per_prompt": 2,
            "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8, "seed": 1, "pair_policy": "random",
            "pairs_per_prompt": 1, "min_decided": 1, "eval_fraction": 0.2, "dpo_preset": "cpu_check"}  # fmt: skip


def _round_body(p: Personas) -> dict[str, Any]:
    from evaluation.models import DeploymentTarget

    _item(p)
    target = DeploymentTarget.objects.get(project=p.project, name=_deployment_target(p))
    return {"target": target.pk, "source": "project_items", "limit": 3, "candidates_per_prompt": 2,
            "dpo_preset": "cpu_check", "decoding": {"max_new_tokens": 8}}  # fmt: skip


# --- Deployment targets ----------------------------------------------------------------------------------


def _make_target(p: Personas, name: str, current: Any = None) -> Any:
    from evaluation.services import deployment_target_create
    from training.models import BaseModel

    return deployment_target_create(
        actor=p.project_admin, project=p.project, name=name, base_model=BaseModel.objects.get(pk=_base_model(p)),
        current_adapter=current,
    )  # fmt: skip


def _deployment_target(p: Personas) -> str:
    """A target of project A serving the base model alone, with no pending request."""
    if "target" not in p.made:
        p.made["target"] = _make_target(p, "matrix-target")
    return str(p.made["target"].name)


def matrix_served_target(p: Personas) -> str:
    """A target of project A serving the matrix adapter (so it can roll back to the base model alone)."""
    if "served_target" not in p.made:
        from training.models import Adapter

        p.made["served_target"] = _make_target(p, "matrix-served", Adapter.objects.get(pk=matrix_adapter(p)))
    return str(p.made["served_target"].name)


def _matrix_evaluation(p: Personas) -> int:
    """A finished evaluation of the matrix adapter against the base model alone that passes the gate."""
    if "finished_evaluation" not in p.made:
        from evaluation.judging import DEFAULT_DECODING
        from evaluation.models import Evaluation, EvaluationSystem
        from training.models import BaseModel

        base = BaseModel.objects.get(pk=_base_model(p))
        entry = {"system": 1, "label": "base", "adapter_id": None, "base_model_id": base.pk, "wins": 8, "ties": 1,
                 "losses": 1, "win_rate": 0.85, "low": 0.6, "high": 0.95, "conclusive": True,
                 "verdict": "wins"}  # fmt: skip
        made = Evaluation.objects.create(
            project=p.project, name="matrix evaluation", decoding=DEFAULT_DECODING, prompt_count=10, state="finished",
            created_by=p.project_admin,
            results={"method": "wilson", "confidence": 0.95, "judgements": 10, "prompts": 10, "head_to_head": [entry],
                     "per_criterion": [], "per_annotator": [], "per_metadata": [], "ranking": [],
                     "ranking_method": ""},
        )  # fmt: skip
        EvaluationSystem.objects.create(
            evaluation=made, position=0, label="adapter", base_model=base, adapter_id=matrix_adapter(p)
        )
        EvaluationSystem.objects.create(evaluation=made, position=1, label="base", base_model=base)
        p.made["finished_evaluation"] = made
    return int(p.made["finished_evaluation"].pk)


def _promotion_body(p: Personas) -> dict[str, Any]:
    return {"adapter": matrix_adapter(p), "evaluation": _matrix_evaluation(p)}


def matrix_pending_request(p: Personas) -> str:
    """``<target name>/requests/<id>``: a pending promotion on a target of its own, asked for by an admin who
    is none of the personas and who started the adapter's job, so any approver persona may approve it."""
    if "pending" not in p.made:
        from evaluation.services import promotion_request
        from releases.models import Release
        from training import services as training_services
        from training.config import JobConfig
        from training.models import BaseModel

        requester = User.objects.create_user(username=f"matrix-requester-{p.project.pk}", password=PASSWORD)
        membership_add(actor=None, project=p.project, user=requester, role=Role.PROJECT_ADMIN)
        job = training_services.training_job_start(
            actor=requester, project=p.project, kind="dpo", release=Release.objects.get(pk=_release(p)),
            base_model=BaseModel.objects.get(pk=_base_model(p)), config=JobConfig.from_dict("dpo", {"max_steps": 2}),
        )  # fmt: skip
        adapter = matrix_register_adapter(p, job)
        from evaluation.models import Evaluation, EvaluationSystem

        evaluation = Evaluation.objects.get(pk=_matrix_evaluation(p))
        EvaluationSystem.objects.filter(evaluation=evaluation, position=0).update(adapter=adapter)
        target = _make_target(p, "matrix-pending")
        p.made["pending"] = promotion_request(actor=requester, target=target, adapter=adapter, evaluation=evaluation)
    return f"matrix-pending/requests/{p.made['pending'].pk}"


def _evaluation(p: Personas) -> int:
    """A blind evaluation of project A being judged (its runs' answers written as rows; nobody judged yet)."""
    if "evaluation" not in p.made:
        from evaluation import services as evaluation_services
        from tests.evaluation.judging_helpers import answered_evaluation

        answered = answered_evaluation(p, prompts=["A question for the matrix?"])
        p.made["evaluation"] = evaluation_services.evaluation_advance(evaluation_id=answered.pk)
    return int(p.made["evaluation"].pk)


def _evaluation_refused(p: Personas) -> dict[str, Any]:
    """An evaluation on the project's own items, which the adapter was trained on: refused (400), nothing written."""
    return {"adapter": matrix_adapter(p), "against": "base_model", "source": "project_items", "temperature": 0.7,
            "top_p": 0.95, "max_new_tokens": 64, "seed": 1}  # fmt: skip


def _evaluation_refused_body(p: Personas) -> dict[str, Any]:
    return {"adapter": matrix_adapter(p), "against": {"kind": "base_model"}, "source": "project_items"}


RELEASE_FORM = {"name": "matrix", "kind": "preference", "eval_percent": 10, "aggregation": "majority", "ties": "drop",
                "min_agreement_percent": 0, "min_strength": 0, "ranking_pairs": "all", "leakage": "fail",
                "near_duplicate_percent": 80, "mixin_percent": 0, "exclude_flagged_annotators": "on"}  # fmt: skip

ANNOTATORS = frozenset({"annotator", "reviewer", "project_admin", "staff"})
REVIEWERS = frozenset({"reviewer", "project_admin", "staff"})
DATA = frozenset({"data_lead", "project_admin", "staff"})
DATA_OR_REVIEW = frozenset({"reviewer", "data_lead", "project_admin", "staff"})
DEPLOY_READERS = frozenset({"data_lead", "project_admin", "approver", "staff"})
APPROVERS = frozenset({"project_admin", "approver", "staff"})


# --- governance: erasure and retention ---
ERASERS = DATA | {"outsider"}  # data rights somewhere (the outsider administers project B)
ERASABLE = "matrix-erasable-subject"


def _plant_erasable(p: Personas, user: User) -> None:
    """Fresh text to erase in both projects (each erase leaves a tombstone), so every allowed persona erases."""
    import uuid

    for project, lead in ((p.project, p.data_lead), (p.other_project, p.outsider)):
        annotation_services.import_start(
            actor=lead, project=project, upload=io.BytesIO(jsonl(chat_line(f"{ERASABLE} {uuid.uuid4().hex}"))),
            source_name="erasable.jsonl", fmt="chat_jsonl",
        )  # fmt: skip


def _erase_form(p: Personas) -> dict[str, Any]:
    import uuid

    return {"mode": "exact", "term": ERASABLE, "reason": "Matrix subject request.", "request_key": uuid.uuid4().hex}


def _erase_body(p: Personas) -> dict[str, Any]:
    body = _erase_form(p)
    return {"match_mode": body.pop("mode"), **body}


def _erasure(p: Personas) -> int:
    """An erasure in project A by its data lead, which tainted the matrix release."""
    if "erasure" not in p.made:
        from governance import services as governance_services
        from governance.permissions import erasure_project_ids
        from releases.models import ReleaseItem

        row = ReleaseItem.objects.filter(release_id=_release(p)).select_related("item").first()
        assert row is not None
        p.made["erasure"] = governance_services.erasure_erase(
            actor=p.data_lead, mode="exact", term=row.item.messages[-1]["content"], reason="Matrix subject request.",
            request_key="matrix", project_ids=erasure_project_ids(p.data_lead),
        )  # fmt: skip
    return int(p.made["erasure"].pk)


def _tainted_release(p: Personas) -> int:
    _erasure(p)
    return _release(p)


ROUTES: list[Route] = [
    # --- accounts: pages ---
    Route("dashboard", "get", lambda p: "/", EVERYONE),
    Route("project create page", "get", lambda p: "/projects/new/", STAFF),
    Route("project create", "post", lambda p: "/projects/new/", STAFF, ok=302, data=lambda p: {"name": "New one"}),
    Route("project overview", "get", lambda p: f"/projects/{_a(p)}/", MEMBERS),
    Route("members page", "get", lambda p: f"/projects/{_a(p)}/members/", ADMINS),
    Route(
        "member add", "post", lambda p: f"/projects/{_a(p)}/members/add/", ADMINS, ok=302,
        data=lambda p: {"user": "newcomer", "role": "annotator"},
    ),
    Route(
        "member invite", "post", lambda p: f"/projects/{_a(p)}/members/invite/", ADMINS,
        data=lambda p: {"username": "invitee", "role": "reviewer"},
    ),
    Route(
        "member role", "post", lambda p: f"/projects/{_a(p)}/members/{_annotator_membership(p)}/role/", ADMINS,
        ok=302, data=lambda p: {"role": "reviewer"},
    ),
    Route(
        "member remove", "post", lambda p: f"/projects/{_a(p)}/members/{_annotator_membership(p)}/remove/",
        ADMINS, ok=302,
    ),
    Route("project audit page", "get", lambda p: f"/projects/{_a(p)}/audit/", ADMINS),
    Route("site audit page", "get", lambda p: "/audit/", STAFF),
    Route("users page", "get", lambda p: "/users/", STAFF),
    Route("user invite", "post", lambda p: "/users/", STAFF, data=lambda p: {"username": "invitee"}),
    Route(
        "user deactivate", "post", lambda p: f"/users/{p.newcomer.pk}/active/", STAFF, ok=302,
        data=lambda p: {"active": "0"},
    ),
    Route("group mappings page", "get", lambda p: "/users/group-mappings/", STAFF),
    Route("group mapping add", "post", lambda p: "/users/group-mappings/", STAFF, ok=302,
          data=lambda p: {"group": "enclave-admins"}),
    Route("group mapping remove", "post", lambda p: f"/users/group-mappings/{_group_mapping(p)}/delete/", STAFF,
          ok=302),
    Route("api tokens page", "get", lambda p: "/account/tokens/", EVERYONE),
    Route("password page", "get", lambda p: "/account/password/", EVERYONE),
    # --- accounts: API ---
    Route("api me", "get", lambda p: "/api/v1/me/", EVERYONE, api=True),
    Route("api health", "get", lambda p: "/api/v1/health/", EVERYONE, api=True, anonymous=200),
    Route("api schema", "get", lambda p: "/api/schema/", EVERYONE, api=True, anonymous=200),
    Route("api docs", "get", lambda p: "/api/docs/", EVERYONE, api=True, anonymous=302),
    Route("api projects", "get", lambda p: "/api/v1/projects/", EVERYONE, api=True),
    Route("api project", "get", lambda p: f"/api/v1/projects/{_a(p)}/", MEMBERS, api=True),
    Route("api members", "get", lambda p: f"/api/v1/projects/{_a(p)}/members/", ADMINS, api=True),
    Route(
        "api member add", "post", lambda p: f"/api/v1/projects/{_a(p)}/members/", ADMINS, ok=201, api=True,
        data=lambda p: {"username": "newcomer", "role": "annotator"},
    ),
    Route(
        "api member role", "patch", lambda p: f"/api/v1/projects/{_a(p)}/members/{_annotator_membership(p)}/",
        ADMINS, api=True, data=lambda p: {"role": "reviewer"},
    ),
    Route(
        "api member remove", "delete",
        lambda p: f"/api/v1/projects/{_a(p)}/members/{_annotator_membership(p)}/", ADMINS, ok=204, api=True,
    ),
    Route("api project audit", "get", lambda p: f"/api/v1/projects/{_a(p)}/audit-events/", ADMINS, api=True),
    Route("api site audit", "get", lambda p: "/api/v1/audit-events/", STAFF, api=True),
    Route("api tokens", "get", lambda p: "/api/v1/tokens/", EVERYONE, api=True),
    Route(
        "api token create", "post", lambda p: "/api/v1/tokens/", EVERYONE, ok=201, api=True,
        data=lambda p: {"name": "script", "days": 7},
    ),
    # --- accounts: API for setting up without a browser ---
    Route("api index", "get", lambda p: "/api/", EVERYONE, api=True, anonymous=200),
    Route("api v1 index", "get", lambda p: "/api/v1/", EVERYONE, api=True, anonymous=200),
    Route("api sign in", "post", lambda p: "/api/v1/auth/token/", EVERYONE, ok=201, api=True, anonymous=201,
          data=lambda p: {"username": "newcomer", "password": PASSWORD, "name": "matrix"}),
    Route("api project create", "post", lambda p: "/api/v1/projects/", STAFF, ok=201, api=True,
          data=lambda p: {"name": "Made through the API"}),
    Route("api project update", "patch", lambda p: f"/api/v1/projects/{_a(p)}/", ADMINS, api=True,
          data=lambda p: {"description": "Renamed through the API"}),
    Route("api member invite", "post", lambda p: f"/api/v1/projects/{_a(p)}/invitations/", ADMINS, ok=201,
          api=True, data=lambda p: {"username": "invitee", "role": "annotator"}),
    Route("api users", "get", lambda p: "/api/v1/users/", STAFF, api=True),
    Route("api user invite", "post", lambda p: "/api/v1/users/", STAFF, ok=201, api=True,
          data=lambda p: {"username": "invitee"}),
    Route("api user", "get", lambda p: f"/api/v1/users/{p.newcomer.pk}/", STAFF, api=True),
    Route("api user deactivate", "patch", lambda p: f"/api/v1/users/{p.newcomer.pk}/", STAFF, api=True,
          data=lambda p: {"is_active": False}),
    Route("api group mappings", "get", lambda p: "/api/v1/group-mappings/", STAFF, api=True),
    Route("api group mapping add", "post", lambda p: "/api/v1/group-mappings/", STAFF, ok=201, api=True,
          data=lambda p: {"group": "retail-annotators", "project": _a(p), "role": "annotator"}),
    Route("api group mapping", "get", lambda p: f"/api/v1/group-mappings/{_group_mapping(p)}/", STAFF, api=True),
    Route("api group mapping remove", "delete", lambda p: f"/api/v1/group-mappings/{_group_mapping(p)}/", STAFF,
          ok=204, api=True),
    # --- annotation: pages ---
    Route("annotate", "get", lambda p: f"/projects/{_a(p)}/annotate/", ANNOTATORS),
    Route(
        "annotate item (not mine)", "get", lambda p: f"/projects/{_a(p)}/annotate/{_item(p)}/", ANNOTATORS, ok=302
    ),
    Route(
        "draft save", "post", lambda p: f"/projects/{_a(p)}/annotate/{_item(p)}/draft/", ANNOTATORS,
        data=lambda p: {"response": "draft", "score_helpful": "3"}, setup=_lease_item,
    ),
    Route(
        "submit", "post", lambda p: f"/projects/{_a(p)}/annotate/{_item(p)}/submit/", ANNOTATORS,
        data=lambda p: {"response": "done", "score_correct": "pass", "score_helpful": "4", "submit_key": "x"},
        setup=_lease_item,
    ),
    Route("skip", "post", lambda p: f"/projects/{_a(p)}/annotate/{_item(p)}/skip/", ANNOTATORS, setup=_lease_item),
    Route("review queue", "get", lambda p: f"/projects/{_a(p)}/review/", REVIEWERS),
    Route("review page", "get", lambda p: f"/projects/{_a(p)}/review/{_annotation(p)}/", REVIEWERS),
    Route(
        "review approve", "post", lambda p: f"/projects/{_a(p)}/review/{_annotation(p)}/", REVIEWERS, ok=302,
        data=lambda p: {"decision": "approve"},
    ),
    Route("imports page", "get", lambda p: f"/projects/{_a(p)}/imports/", DATA),
    Route("import upload", "post", lambda p: f"/projects/{_a(p)}/imports/", DATA, ok=302, data=_upload),
    Route("import detail", "get", lambda p: f"/projects/{_a(p)}/imports/{_batch(p)}/", DATA),
    Route(
        "import mapping", "post", lambda p: f"/projects/{_a(p)}/imports/{_waiting_batch(p)}/mapping/", DATA, ok=302,
        data=lambda p: {"annotator-0": "new"}, setup=_restore_upload,
    ),
    Route(
        "import cancel", "post", lambda p: f"/projects/{_a(p)}/imports/{_waiting_batch(p)}/cancel/", DATA, ok=302,
        setup=_restore_upload,
    ),
    Route("rubric page", "get", lambda p: f"/projects/{_a(p)}/rubric/", MEMBERS),
    Route(
        "rubric save", "post", lambda p: f"/projects/{_a(p)}/rubric/", DATA, ok=302,
        data=lambda p: {"guidelines": "g", "crit-1-name": "Ok", "crit-1-scale": "pass_fail", "crit-1-required": "on"},
    ),
    Route("annotation settings page", "get", lambda p: f"/projects/{_a(p)}/annotation-settings/", DATA),
    Route(
        "annotation settings save", "post", lambda p: f"/projects/{_a(p)}/annotation-settings/", DATA, ok=302,
        data=lambda p: {"annotators_per_item": 2, "lease_minutes": 30, "pii_mode": "replace"},
    ),
    Route("on hold page", "get", lambda p: f"/projects/{_a(p)}/on-hold/", DATA),
    Route(
        "on hold release", "post", lambda p: f"/projects/{_a(p)}/on-hold/", DATA, ok=302,
        data=lambda p: {"item": _item(p)},
    ),
    # --- annotation: API ---
    Route("api imports", "get", lambda p: f"/api/v1/projects/{_a(p)}/imports/", DATA, api=True),
    Route(
        "api import upload", "post", lambda p: f"/api/v1/projects/{_a(p)}/imports/", DATA, ok=201, api=True,
        multipart=True, data=_upload,
    ),
    Route("api import detail", "get", lambda p: f"/api/v1/projects/{_a(p)}/imports/{_batch(p)}/", DATA, api=True),
    Route(
        "api import mapping", "post", lambda p: f"/api/v1/projects/{_a(p)}/imports/{_waiting_batch(p)}/mapping/",
        DATA, ok=201, api=True, data=lambda p: {"annotators": {"consensus": "new"}}, setup=_restore_upload,
    ),
    Route(
        "api import cancel", "post", lambda p: f"/api/v1/projects/{_a(p)}/imports/{_waiting_batch(p)}/cancel/",
        DATA, api=True, setup=_restore_upload,
    ),
    Route("api items", "get", lambda p: f"/api/v1/projects/{_a(p)}/items/", DATA, api=True),
    Route("api annotations", "get", lambda p: f"/api/v1/projects/{_a(p)}/annotations/", DATA_OR_REVIEW, api=True),
    Route(
        "api review", "post", lambda p: f"/api/v1/projects/{_a(p)}/annotations/{_annotation(p)}/review/", REVIEWERS,
        api=True, data=lambda p: {"decision": "approve"},
    ),
    Route("api rubric", "get", lambda p: f"/api/v1/projects/{_a(p)}/rubric/", MEMBERS, api=True),
    Route("api rubric save", "put", lambda p: f"/api/v1/projects/{_a(p)}/rubric/", DATA, ok=201, api=True,
          data=lambda p: {"guidelines": "g", "criteria": [{"name": "Ok", "scale": "pass_fail"}]}),
    Route("api annotation settings", "get", lambda p: f"/api/v1/projects/{_a(p)}/annotation-settings/", DATA,
          api=True),
    Route("api annotation settings save", "patch", lambda p: f"/api/v1/projects/{_a(p)}/annotation-settings/",
          DATA, api=True, data=lambda p: {"annotators_per_item": 2}),
    # --- preferences: pages ---
    Route("compare", "get", lambda p: f"/projects/{_a(p)}/compare/", ANNOTATORS),
    Route(
        "compare item (not mine)", "get", lambda p: f"/projects/{_a(p)}/compare/{_comparison(p)}/", ANNOTATORS, ok=302
    ),
    Route(
        "compare item (mine)", "get", lambda p: f"/projects/{_a(p)}/compare/{_comparison(p)}/", ANNOTATORS,
        setup=_lease_comparison,
    ),
    Route(
        "compare draft", "post", lambda p: f"/projects/{_a(p)}/compare/{_comparison(p)}/draft/", ANNOTATORS,
        data=lambda p: {"choice": "A"}, setup=_lease_comparison,
    ),
    Route(
        "compare submit", "post", lambda p: f"/projects/{_a(p)}/compare/{_comparison(p)}/submit/", ANNOTATORS,
        data=lambda p: {"choice": "A", "strength": "2", "idempotency_key": "matrix"}, setup=_lease_comparison,
    ),
    Route(
        "compare skip", "post", lambda p: f"/projects/{_a(p)}/compare/{_comparison(p)}/skip/", ANNOTATORS,
        setup=_lease_comparison,
    ),
    Route("adjudication queue", "get", lambda p: f"/projects/{_a(p)}/adjudication/", REVIEWERS),
    Route("adjudicate page", "get", lambda p: f"/projects/{_a(p)}/adjudication/{_adjudication(p)}/", REVIEWERS),
    Route(
        "adjudicate", "post", lambda p: f"/projects/{_a(p)}/adjudication/{_adjudication(p)}/", REVIEWERS, ok=302,
        data=lambda p: {"winner": "1", "note": "Candidate 1 is right"},
    ),
    Route("quality page", "get", lambda p: f"/projects/{_a(p)}/quality/", DATA_OR_REVIEW),
    Route("agreement refresh", "post", lambda p: f"/projects/{_a(p)}/quality/refresh/", DATA, ok=302),
    Route(
        "annotator exclude", "post", lambda p: f"/projects/{_a(p)}/quality/annotators/{_judged_annotator(p)}/exclude/",
        DATA, ok=302, data=lambda p: {"excluded": "1"},
    ),
    Route("comparison settings page", "get", lambda p: f"/projects/{_a(p)}/comparison-settings/", DATA),
    Route(
        "comparison settings save", "post", lambda p: f"/projects/{_a(p)}/comparison-settings/", DATA, ok=302,
        data=lambda p: {
            "mode": "ranking", "gold_rate": 10, "gold_accuracy_threshold": 70, "gold_minimum": 5, "fast_fraction": 25,
            "adjudication_threshold": 67,
        },
    ),
    # --- preferences: API ---
    Route("api comparisons", "get", lambda p: f"/api/v1/projects/{_a(p)}/comparisons/", DATA, api=True),
    Route(
        "api comparisons create", "post", lambda p: f"/api/v1/projects/{_a(p)}/comparisons/", DATA, ok=201, api=True,
        data=_comparisons_body,
    ),
    Route(
        "api next comparison", "post", lambda p: f"/api/v1/projects/{_a(p)}/comparisons/next/", ANNOTATORS, api=True,
        setup=_make_comparison,
    ),
    Route(
        "api judgement submit", "post", lambda p: f"/api/v1/projects/{_a(p)}/comparisons/{_comparison(p)}/judgements/",
        ANNOTATORS, ok=201, api=True, data=lambda p: {"choice": "B", "strength": 1, "idempotency_key": "api-matrix"},
        setup=_lease_comparison,
    ),
    Route(
        "api judgement submit and next", "post",
        lambda p: f"/api/v1/projects/{_a(p)}/comparisons/{_comparison(p)}/judgements/and-next/",
        ANNOTATORS, ok=201, api=True, data=lambda p: {"choice": "A", "idempotency_key": "api-matrix-and-next"},
        setup=_lease_comparison,
    ),
    Route("api judgements", "get", lambda p: f"/api/v1/projects/{_a(p)}/judgements/", DATA_OR_REVIEW, api=True),
    Route("api agreement", "get", lambda p: f"/api/v1/projects/{_a(p)}/agreement/", DATA_OR_REVIEW, api=True),
    Route("api comparison settings", "get", lambda p: f"/api/v1/projects/{_a(p)}/comparison-settings/", DATA,
          api=True),
    Route("api comparison settings save", "patch", lambda p: f"/api/v1/projects/{_a(p)}/comparison-settings/",
          DATA, api=True, data=lambda p: {"mode": "ranking", "gold_rate": 0.2}),
    Route(
        "api agreement recompute", "post", lambda p: f"/api/v1/projects/{_a(p)}/agreement/recompute/",
        DATA, ok=202, api=True,
    ),
    # --- releases: pages ---
    Route("releases", "get", lambda p: f"/projects/{_a(p)}/releases/", DATA),
    Route("release new page", "get", lambda p: f"/projects/{_a(p)}/releases/new/", DATA),
    Route("release new", "post", lambda p: f"/projects/{_a(p)}/releases/new/", DATA, ok=302,
          data=lambda p: RELEASE_FORM),
    Route("release page", "get", lambda p: f"/projects/{_a(p)}/releases/{_release(p)}/", DATA),
    Route("release file", "get", lambda p: f"/projects/{_a(p)}/releases/{_release(p)}/files/{_release_file(p)}/", DATA),
    Route("release diff", "get", lambda p: f"/projects/{_a(p)}/releases/diff/", DATA),
    Route("release delete", "post", lambda p: f"/projects/{_a(p)}/releases/{_release(p)}/delete/", ADMINS, ok=302),
    Route("release drift", "get", lambda p: f"/projects/{_a(p)}/releases/drift/", DATA),
    Route("release drift report", "post", lambda p: f"/projects/{_a(p)}/releases/drift/refresh-report/", DATA, ok=302),
    Route("release drift settings", "post", lambda p: f"/projects/{_a(p)}/releases/drift/settings/", DATA, ok=302,
          data=lambda p: DRIFT_THRESHOLDS),
    Route("release drift refresh eval set", "post",
          lambda p: f"/projects/{_refreshable(p)}/releases/drift/refresh-eval-set/", DATA, ok=302),
    # --- releases: API ---
    Route("api releases", "get", lambda p: f"/api/v1/projects/{_a(p)}/releases/", DATA, api=True),
    Route("api release create", "post", lambda p: f"/api/v1/projects/{_a(p)}/releases/", DATA, ok=202, api=True,
          data=lambda p: {"name": "api", "recipe": {"kind": "preference"}}),
    Route("api release", "get", lambda p: f"/api/v1/projects/{_a(p)}/releases/{_release(p)}/", DATA, api=True),
    Route("api release datasheet", "get", lambda p: f"/api/v1/projects/{_a(p)}/releases/{_release(p)}/datasheet/",
          DATA, api=True),
    Route("api release file", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/releases/{_release(p)}/files/{_release_file(p)}/", DATA, api=True),
    Route("api release diff", "get", lambda p: f"/api/v1/projects/{_a(p)}/releases/diff/", DATA, api=True,
          data=lambda p: {"a": _release(p), "b": _release(p)}),
    Route("api drift", "get", lambda p: f"/api/v1/projects/{_a(p)}/drift/", DATA, api=True),
    Route("api drift report", "post", lambda p: f"/api/v1/projects/{_a(p)}/drift/refresh-report/", DATA, ok=202,
          api=True),
    Route("api drift refresh eval set", "post", lambda p: f"/api/v1/projects/{_refreshable(p)}/drift/refresh-eval-set/",
          DATA, ok=202, api=True),
    Route("api drift settings", "get", lambda p: f"/api/v1/projects/{_a(p)}/drift/settings/", DATA, api=True),
    Route("api drift settings save", "patch", lambda p: f"/api/v1/projects/{_a(p)}/drift/settings/", DATA, api=True,
          data=lambda p: {"psi_max": 0.3}),
    Route("api release delete", "delete",
          lambda p: f"/api/v1/projects/{_a(p)}/releases/{_release(p)}/?reason=matrix", ADMINS, api=True),
    # --- training: pages ---
    Route("training", "get", lambda p: f"/projects/{_a(p)}/training/", DATA,
          setup=lambda p, u: (matrix_adapter(p), None)[1]),
    Route("training new page", "get", lambda p: f"/projects/{_a(p)}/training/new/", ADMINS,
          setup=_base_model_setup),
    Route("training new", "post", lambda p: f"/projects/{_a(p)}/training/new/", ADMINS, ok=302, data=matrix_job_form),
    Route("training job", "get", lambda p: f"/projects/{_a(p)}/training/{_job(p)}/", DATA),
    Route("training job cancel", "post", lambda p: f"/projects/{_a(p)}/training/{_job(p)}/cancel/", ADMINS, ok=302),
    Route("training job rerun", "post", lambda p: f"/projects/{_a(p)}/training/{_job(p)}/rerun/", ADMINS, ok=302),
    Route("training job mlflow", "post", lambda p: f"/projects/{_a(p)}/training/{_job(p)}/mlflow/", ADMINS, ok=302),
    Route("adapter page", "get", lambda p: f"/projects/{_a(p)}/adapters/{matrix_adapter(p)}/", DATA),
    Route("adapter lineage", "get", lambda p: f"/projects/{_a(p)}/adapters/{matrix_adapter(p)}/lineage.json", DATA),
    Route("adapter file", "get", lambda p: f"/projects/{_a(p)}/adapters/{matrix_adapter(p)}/files/0/", DATA),
    Route("adapter merge", "post", lambda p: f"/projects/{_a(p)}/adapters/{matrix_adapter(p)}/merged/", ADMINS, ok=302),
    Route("adapter merged file", "get",
          lambda p: f"/projects/{_a(p)}/adapters/{matrix_adapter(p)}/merged/files/0/", DATA,
          setup=lambda p, u: matrix_merged(p)),
    Route("reward model page", "get", lambda p: f"/projects/{_a(p)}/reward-models/{matrix_reward_model(p)}/", DATA),
    Route("reward model lineage", "get",
          lambda p: f"/projects/{_a(p)}/reward-models/{matrix_reward_model(p)}/lineage.json", DATA),
    Route("reward model file", "get",
          lambda p: f"/projects/{_a(p)}/reward-models/{matrix_reward_model(p)}/files/0/", DATA),
    Route("base models", "get", lambda p: "/models/", STAFF),
    Route("base model register", "post", lambda p: "/models/", STAFF, ok=302,
          data=lambda p: {"name": "registered", "path": "/models/registered"}),
    Route("base model page", "get", lambda p: f"/models/{_base_model(p)}/", STAFF),
    Route("base model check again", "post", lambda p: f"/models/{_base_model(p)}/", STAFF, ok=302),
    Route("base model fix", "post", lambda p: f"/models/{_spare_base_model(p)}/edit/", STAFF, ok=302,
          data=lambda p: {"name": "matrix-fixed", "path": "/models/matrix", "description": ""}),
    Route("base model delete", "post", lambda p: f"/models/{_spare_base_model(p)}/delete/", STAFF, ok=302),
    # --- training: API ---
    # Site-wide: every project admin (the outsider administers project B) may read the ready models.
    Route("api base models", "get", lambda p: "/api/v1/base-models/", ADMINS | {"outsider"}, api=True,
          setup=_base_model_setup),
    Route("api base model register", "post", lambda p: "/api/v1/base-models/", STAFF, ok=202, api=True,
          data=lambda p: {"name": "api-registered", "path": "/models/api"}),
    Route("api base model", "get", lambda p: f"/api/v1/base-models/{_base_model(p)}/", STAFF, api=True),
    Route("api base model fix", "patch", lambda p: f"/api/v1/base-models/{_spare_base_model(p)}/", STAFF, ok=202,
          api=True, data=lambda p: {"path": "/models/matrix"}),
    Route("api base model delete", "delete", lambda p: f"/api/v1/base-models/{_spare_base_model(p)}/", STAFF, ok=204,
          api=True),
    Route("api training jobs", "get", lambda p: f"/api/v1/projects/{_a(p)}/training/jobs/", DATA, api=True),
    Route("api training job start", "post", lambda p: f"/api/v1/projects/{_a(p)}/training/jobs/", ADMINS, ok=202,
          api=True, data=_job_body),
    Route("api training job", "get", lambda p: f"/api/v1/projects/{_a(p)}/training/jobs/{_job(p)}/", DATA, api=True),
    Route("api training job metrics", "get", lambda p: f"/api/v1/projects/{_a(p)}/training/jobs/{_job(p)}/metrics/",
          DATA, api=True),
    Route("api training job cancel", "post", lambda p: f"/api/v1/projects/{_a(p)}/training/jobs/{_job(p)}/cancel/",
          ADMINS, api=True),
    Route("api training job rerun", "post", lambda p: f"/api/v1/projects/{_a(p)}/training/jobs/{_job(p)}/rerun/",
          ADMINS, ok=202, api=True),
    # No tracking server in the suite's settings: a 409 that says so (tests/training/test_mlflow.py sends one).
    Route("api training job mlflow", "post", lambda p: f"/api/v1/projects/{_a(p)}/training/jobs/{_job(p)}/mlflow/",
          ADMINS, ok=409, api=True),
    Route("api adapters", "get", lambda p: f"/api/v1/projects/{_a(p)}/adapters/", DATA, api=True),
    Route("api reward models", "get", lambda p: f"/api/v1/projects/{_a(p)}/reward-models/", DATA, api=True),
    Route("api reward model", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/reward-models/{matrix_reward_model(p)}/", DATA, api=True),
    Route("api adapter", "get", lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/", DATA, api=True),
    Route("api adapter files", "get", lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/files/",
          DATA, api=True),
    Route("api adapter file", "get", lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/files/0/",
          DATA, api=True),
    Route("api adapter lineage", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/lineage/", DATA, api=True),
    Route("api adapter serving", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/serving/", DATA, api=True),
    Route("api adapter merged", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/merged/", DATA, api=True,
          setup=lambda p, u: matrix_merged(p)),
    Route("api adapter merge", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/merged/", ADMINS, ok=202, api=True,
          setup=lambda p, u: matrix_merged(p)),
    Route("api adapter merged file", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/merged/files/0/", DATA, api=True,
          setup=lambda p, u: matrix_merged(p)),
    # --- evaluation: generation runs, pages ---
    Route("generation runs", "get", lambda p: f"/projects/{_a(p)}/generation/", DATA,
          setup=lambda p, u: (_generation_run(p), None)[1]),
    Route("generation new page", "get", lambda p: f"/projects/{_a(p)}/generation/new/", ADMINS,
          setup=_base_model_setup),
    Route("generation new", "post", lambda p: f"/projects/{_a(p)}/generation/new/", ADMINS, ok=302,
          data=_generation_form, setup=_items_setup),
    Route("generation run", "get", lambda p: f"/projects/{_a(p)}/generation/{_generation_run(p)}/", DATA),
    Route("generation run cancel", "post", lambda p: f"/projects/{_a(p)}/generation/{_generation_run(p)}/cancel/",
          ADMINS, ok=302),
    # --- evaluation: generation runs, API ---
    Route("api generation runs", "get", lambda p: f"/api/v1/projects/{_a(p)}/generation-runs/", DATA, api=True),
    Route("api generation run start", "post", lambda p: f"/api/v1/projects/{_a(p)}/generation-runs/", ADMINS,
          ok=202, api=True, data=_generation_body, setup=_items_setup),
    Route("api generation run", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/generation-runs/{_generation_run(p)}/", DATA, api=True),
    Route("api generation run candidates", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/generation-runs/{_generation_run(p)}/candidates/", DATA, api=True),
    Route("api generation run cancel", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/generation-runs/{_generation_run(p)}/cancel/", ADMINS, api=True),
    # --- evaluation: scoring runs, pages ---
    Route("scoring runs", "get", lambda p: f"/projects/{_a(p)}/scoring/", DATA,
          setup=lambda p, u: (_scoring_run(p), None)[1]),
    Route("scoring new page", "get", lambda p: f"/projects/{_a(p)}/scoring/new/", ADMINS),
    Route("scoring new", "post", lambda p: f"/projects/{_a(p)}/scoring/new/", ADMINS, ok=302, data=_scoring_form),
    Route("scoring run", "get", lambda p: f"/projects/{_a(p)}/scoring/{_scoring_run(p)}/", DATA),
    Route("scoring run cancel", "post", lambda p: f"/projects/{_a(p)}/scoring/{_scoring_run(p)}/cancel/",
          ADMINS, ok=302),
    # --- evaluation: scoring runs, API ---
    Route("api scoring runs", "get", lambda p: f"/api/v1/projects/{_a(p)}/scoring-runs/", DATA, api=True),
    Route("api scoring run start", "post", lambda p: f"/api/v1/projects/{_a(p)}/scoring-runs/", ADMINS,
          ok=202, api=True, data=_scoring_body),
    Route("api scoring run", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/scoring-runs/{_scoring_run(p)}/", DATA, api=True),
    Route("api scoring run cancel", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/scoring-runs/{_scoring_run(p)}/cancel/", ADMINS, api=True),
    # --- deployment targets: pages ---
    Route("deployments", "get", lambda p: f"/projects/{_a(p)}/deployments/", DEPLOY_READERS,
          setup=lambda p, u: (matrix_served_target(p), None)[1]),
    Route("deployment new page", "get", lambda p: f"/projects/{_a(p)}/deployments/new/", ADMINS),
    Route("deployment new", "post", lambda p: f"/projects/{_a(p)}/deployments/new/", ADMINS, ok=302,
          data=lambda p: {"name": "matrix-new", "base_model": _base_model(p), "min_win_rate_lower": "0.5",
                          "max_metric_regression": "0.02"}),
    Route("deployment target", "get",
          lambda p: f"/projects/{_a(p)}/deployments/{matrix_pending_request(p).split('/')[0]}/", DEPLOY_READERS),
    Route("deployment target edit", "post", lambda p: f"/projects/{_a(p)}/deployments/{_deployment_target(p)}/edit/",
          ADMINS, ok=302, data=lambda p: {"min_win_rate_lower": "0.6", "max_metric_regression": "0.05"}),
    Route("deployment promote", "post",
          lambda p: f"/projects/{_a(p)}/deployments/{_deployment_target(p)}/promote/", ADMINS, ok=302,
          data=_promotion_body),
    Route("deployment rollback", "post",
          lambda p: f"/projects/{_a(p)}/deployments/{matrix_served_target(p)}/rollback/", ADMINS, ok=302,
          data=lambda p: {"adapter": "base", "reason": "Matrix incident."}),
    Route("deployment approve", "post", lambda p: f"/projects/{_a(p)}/deployments/{matrix_pending_request(p)}/approve/",
          APPROVERS, ok=302),
    Route("deployment refuse", "post", lambda p: f"/projects/{_a(p)}/deployments/{matrix_pending_request(p)}/refuse/",
          APPROVERS, ok=302, data=lambda p: {"note": "Not yet."}),
    Route("deployment withdraw", "post",
          lambda p: f"/projects/{_a(p)}/deployments/{matrix_pending_request(p)}/withdraw/", ADMINS, ok=302),
    Route("adapter deployments", "get", lambda p: f"/projects/{_a(p)}/adapters/{matrix_adapter(p)}/deployments/",
          DATA),
    # --- deployment targets: API ---
    Route("api deployment targets", "get", lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/",
          DEPLOY_READERS, api=True),
    Route("api deployment target create", "post", lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/", ADMINS,
          ok=201, api=True, data=lambda p: {"name": "matrix-api", "base_model": _base_model(p)}),
    Route("api deployment target", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{_deployment_target(p)}/", DEPLOY_READERS,
          api=True),
    Route("api deployment target update", "patch",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{_deployment_target(p)}/", ADMINS, api=True,
          data=lambda p: {"min_win_rate_lower": 0.6}),
    Route("api deployment current", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{matrix_served_target(p)}/current/", DEPLOY_READERS,
          api=True),
    Route("api deployment history", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{matrix_served_target(p)}/history/", DEPLOY_READERS,
          api=True),
    Route("api deployment requests", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{_deployment_target(p)}/requests/",
          DEPLOY_READERS, api=True),
    Route("api deployment request create", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{_deployment_target(p)}/requests/", ADMINS,
          ok=201, api=True, data=_promotion_body),
    Route("api deployment request", "get",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{matrix_pending_request(p)}/", DEPLOY_READERS,
          api=True),
    Route("api deployment approve", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{matrix_pending_request(p)}/approve/", APPROVERS,
          api=True, data=lambda p: {"note": "Checked the gate."}),
    Route("api deployment refuse", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{matrix_pending_request(p)}/refuse/", APPROVERS,
          api=True, data=lambda p: {"note": "Too few judgements."}),
    Route("api deployment withdraw", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/deployment-targets/{matrix_pending_request(p)}/withdraw/", ADMINS,
          api=True),
    # --- evaluation: pages and API (starting is refused with its reason: the matrix's prompts were trained on) ---
    Route("evaluations", "get", lambda p: f"/projects/{_a(p)}/evaluations/", DATA,
          setup=lambda p, u: (_evaluation(p), None)[1]),
    Route("evaluation new page", "get", lambda p: f"/projects/{_a(p)}/evaluations/new/", ADMINS,
          setup=lambda p, u: (matrix_adapter(p), None)[1]),
    Route("evaluation new", "post", lambda p: f"/projects/{_a(p)}/evaluations/new/", ADMINS, ok=400,
          data=_evaluation_refused),
    Route("evaluation page", "get", lambda p: f"/projects/{_a(p)}/evaluations/{_evaluation(p)}/", DATA),
    Route("evaluation finish", "post", lambda p: f"/projects/{_a(p)}/evaluations/{_evaluation(p)}/finish/", ADMINS,
          ok=302),
    Route("api evaluations", "get", lambda p: f"/api/v1/projects/{_a(p)}/evaluations/", DATA, api=True),
    Route("api evaluation start", "post", lambda p: f"/api/v1/projects/{_a(p)}/evaluations/", ADMINS, ok=400,
          api=True, data=_evaluation_refused_body),
    Route("api evaluation", "get", lambda p: f"/api/v1/projects/{_a(p)}/evaluations/{_evaluation(p)}/", DATA,
          api=True),
    Route("api evaluation finish", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/evaluations/{_evaluation(p)}/finish/", ADMINS, ok=409, api=True),
    # --- rounds: pages and API (building the release early is refused: nothing is decided yet) ---
    Route("rounds", "get", lambda p: f"/projects/{_a(p)}/rounds/", DATA, setup=lambda p, u: (_round(p), None)[1]),
    Route("round new page", "get", lambda p: f"/projects/{_a(p)}/rounds/new/", ADMINS),
    Route("round new", "post", lambda p: f"/projects/{_a(p)}/rounds/new/", ADMINS, ok=302, data=_round_form),
    Route("round page", "get", lambda p: f"/projects/{_a(p)}/rounds/{_round(p)}/", DATA),
    Route("round release", "post", lambda p: f"/projects/{_a(p)}/rounds/{_round(p)}/release/", ADMINS, ok=302),
    Route("round end", "post", lambda p: f"/projects/{_a(p)}/rounds/{_round(p)}/end/", ADMINS, ok=302),
    Route("api rounds", "get", lambda p: f"/api/v1/projects/{_a(p)}/rounds/", DATA, api=True),
    Route("api round start", "post", lambda p: f"/api/v1/projects/{_a(p)}/rounds/", ADMINS, ok=202, api=True,
          data=_round_body),
    Route("api round", "get", lambda p: f"/api/v1/projects/{_a(p)}/rounds/{_round(p)}/", DATA, api=True),
    Route("api round pairs", "get", lambda p: f"/api/v1/projects/{_a(p)}/rounds/{_round(p)}/pairs/", DATA,
          api=True),
    Route("api round release", "post", lambda p: f"/api/v1/projects/{_a(p)}/rounds/{_round(p)}/release/", ADMINS,
          ok=409, api=True),
    Route("api round end", "post", lambda p: f"/api/v1/projects/{_a(p)}/rounds/{_round(p)}/end/", ADMINS, api=True),
    # --- governance: an adapter's signed dossier (who may read the project's audit log) and the signing key ---
    Route("adapter dossier", "post", lambda p: f"/projects/{_a(p)}/adapters/{matrix_adapter(p)}/dossier/", ADMINS),
    Route("api adapter dossier", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/adapters/{matrix_adapter(p)}/dossier/", ADMINS, api=True),
    Route("dossier signing key page", "get", lambda p: "/dossier-signing-key/", STAFF),
    # --- governance: erasure and retention ---
    Route("erasures", "get", lambda p: "/erasure/", ERASERS),
    Route("erasure preview", "post", lambda p: "/erasure/preview/", ERASERS, data=lambda p: {"mode": "exact",
          "term": ERASABLE}, setup=_plant_erasable),
    Route("erasure erase", "post", lambda p: "/erasure/erase/", ERASERS, ok=302, data=_erase_form,
          setup=_plant_erasable),
    Route("erasure page", "get", lambda p: f"/erasure/{_erasure(p)}/", DATA),
    Route("release rebuild without erased", "post",
          lambda p: f"/projects/{_a(p)}/releases/{_tainted_release(p)}/rebuild-without-erased/", DATA, ok=302),
    Route("retention page", "get", lambda p: f"/projects/{_a(p)}/retention/", DATA),
    Route("retention save", "post", lambda p: f"/projects/{_a(p)}/retention/", DATA, ok=302,
          data=lambda p: {"import_upload_days": "7", "failed_job_days": "14", "orphaned_draft_days": ""}),
    Route("api erasures", "get", lambda p: "/api/v1/erasures/", EVERYONE, api=True),  # those one may see, or none
    Route("api erasure preview", "post", lambda p: "/api/v1/erasures/preview/", ERASERS, api=True,
          data=lambda p: {"match_mode": "exact", "term": ERASABLE}, setup=_plant_erasable),
    Route("api erasure erase", "post", lambda p: "/api/v1/erasures/", ERASERS, ok=201, api=True, data=_erase_body,
          setup=_plant_erasable),
    Route("api erasure", "get", lambda p: f"/api/v1/erasures/{_erasure(p)}/", DATA, api=True),
    Route("api release rebuild without erased", "post",
          lambda p: f"/api/v1/projects/{_a(p)}/releases/{_tainted_release(p)}/rebuild-without-erased/", DATA, ok=202,
          api=True),
    Route("api retention", "get", lambda p: f"/api/v1/projects/{_a(p)}/retention/", DATA, api=True),
    Route("api retention save", "patch", lambda p: f"/api/v1/projects/{_a(p)}/retention/", DATA, api=True,
          data=lambda p: {"import_upload_days": 7, "orphaned_draft_days": None}),
]  # fmt: skip

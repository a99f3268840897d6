"""Where an adapter loads and its merge into the base model: the rules table's verdicts for constructed adapter
configs, the page and the API, and a real tiny adapter merged by a real gpu worker, whose merged model generates
exactly what base + adapter (PEFT, from the adapter's directory alone, offline) generates."""

import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import AuditEvent
from core.errors import DomainError
from core.storage import artifact_storage
from tests.access_matrix import matrix_adapter
from tests.conftest import ClientFor, Personas, make_personas
from tests.training.helpers import quick_config, ready_model, sft_release
from training import merging, selectors, services
from training.models import Adapter, BaseModel, JobState, MergedModel, MergedState, TrainingJob
from training.serving import DOES_NOT_LOAD, LOADS, LOADS_WITH_FLAG, shape_from_config, verdicts

LLAMA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _by_target(peft_config: dict[str, Any], architecture: str = "LlamaForCausalLM") -> dict[str, dict[str, Any]]:
    config = {"r": 8, "lora_alpha": 16, "target_modules": LLAMA_MODULES, **peft_config}
    return {v["target"]: v for v in verdicts(shape_from_config(config, architecture))}


def test_it_says_a_rank_8_llama_adapter_loads_everywhere() -> None:
    found = _by_target({})
    assert {key: v["verdict"] for key, v in found.items()} == {
        "vllm": LOADS, "lorax": LOADS, "llama_cpp": LOADS, "ollama": LOADS,
    }  # fmt: skip
    assert all(v["sources"] and all(s["url"].startswith("https://") and s["version"] for s in v["sources"])
               for v in found.values())  # fmt: skip


def test_it_names_the_vllm_flag_a_higher_rank_needs_and_refuses_one_above_the_limit() -> None:
    rank_128 = _by_target({"r": 128})
    assert rank_128["vllm"]["verdict"] == LOADS_WITH_FLAG
    assert rank_128["vllm"]["flags"] == ["--max-lora-rank 128"]
    assert _by_target({"r": 48})["vllm"]["flags"] == ["--max-lora-rank 64"]
    assert rank_128["llama_cpp"]["verdict"] == LOADS  # no documented rank limit
    rank_1024 = _by_target({"r": 1024})
    assert rank_1024["vllm"]["verdict"] == DOES_NOT_LOAD
    assert "rank 1024 is above vLLM's limit of 512" in rank_1024["vllm"]["reasons"][0]


def test_it_refuses_dora_and_modules_to_save_where_the_target_rejects_them() -> None:
    dora = _by_target({"use_dora": True})
    assert {v["verdict"] for v in dora.values()} == {DOES_NOT_LOAD}
    assert "DoRA" in dora["vllm"]["reasons"][0]
    saved = _by_target({"modules_to_save": ["lm_head"]})
    assert saved["vllm"]["verdict"] == DOES_NOT_LOAD
    assert "modules_to_save (lm_head)" in saved["vllm"]["reasons"][0]


def test_it_refuses_an_architecture_a_target_does_not_document() -> None:
    qwen3 = _by_target({}, architecture="Qwen3ForCausalLM")
    assert qwen3["vllm"]["verdict"] == LOADS
    assert qwen3["llama_cpp"]["verdict"] == LOADS
    assert qwen3["ollama"]["verdict"] == DOES_NOT_LOAD
    assert "Qwen3ForCausalLM is not among those Ollama documents" in qwen3["ollama"]["reasons"][0]
    gpt2 = _by_target({"target_modules": ["c_attn", "c_proj", "c_fc", "lm_head"]}, architecture="GPT2LMHeadModel")
    assert gpt2["lorax"]["verdict"] == LOADS
    assert gpt2["lorax"]["notes"] == ["TGI / LoRAX ignores the adapter's lm_head (with a warning)"]
    # Modules named by their full path (as "all-linear" is saved) are the same modules, by their last name.
    full = [f"model.layers.{n}.self_attn.{m}" for n in (0, 1) for m in ("q_proj", "v_proj")]
    paths = _by_target({"target_modules": full})
    assert paths["lorax"]["verdict"] == LOADS
    assert paths["lorax"]["notes"] == []
    alien = _by_target({"target_modules": ["c_attn"]})
    assert alien["lorax"]["verdict"] == DOES_NOT_LOAD
    assert "none of the adapter's modules (c_attn)" in alien["lorax"]["reasons"][0]


def test_it_shows_the_table_on_the_page_and_in_the_api_to_readers_only(
    personas: Personas, client_for: ClientFor
) -> None:
    adapter_pk = matrix_adapter(personas)
    page = f"/projects/{personas.project.pk}/adapters/{adapter_pk}/"
    admin = client_for(personas.project_admin).get(page).content.decode()
    assert 'id="serving"' in admin
    assert 'id="serving-vllm"' in admin
    assert "Loads" in admin
    assert "not from running the server" in admin
    assert 'id="merge"' in admin
    lead = client_for(personas.data_lead).get(page).content.decode()
    assert 'id="serving"' in lead
    assert 'id="merge"' not in lead
    assert client_for(personas.outsider).get(page).status_code == 404
    assert client_for(personas.annotator).get(page).status_code == 404

    api = f"/api/v1/projects/{personas.project.pk}/adapters/{adapter_pk}/"
    serving = client_for(personas.data_lead).get(api + "serving/").json()
    assert serving["read_from"] == "the job's config"
    assert serving["inputs"]["architecture"] == "LlamaForCausalLM"
    assert [t["target"] for t in serving["targets"]] == ["vllm", "lorax", "llama_cpp", "ollama"]
    assert client_for(personas.data_lead).get(api).json()["serving"] == serving
    assert client_for(personas.outsider).get(api + "serving/").status_code == 404
    assert client_for(personas.data_lead).post(api + "merged/").status_code == 404


def test_it_refuses_to_merge_onto_a_base_model_that_changed_and_fails_orphans(personas: Personas) -> None:
    adapter = Adapter.objects.get(pk=matrix_adapter(personas))
    BaseModel.objects.filter(pk=adapter.base_model_id).update(content_hash="e" * 64)
    adapter.refresh_from_db()
    with pytest.raises(DomainError, match="changed after"):
        merging.merged_model_request(actor=personas.project_admin, adapter=adapter)
    assert not MergedModel.objects.exists()
    BaseModel.objects.filter(pk=adapter.base_model_id).update(content_hash=adapter.base_model_hash)
    adapter.refresh_from_db()
    merged = merging.merged_model_request(actor=personas.project_admin, adapter=adapter)
    assert merged.state == MergedState.QUEUED
    assert merging.merged_model_request(actor=personas.project_admin, adapter=adapter).pk == merged.pk
    MergedModel.objects.filter(pk=merged.pk).update(state=MergedState.RUNNING, worker="gpu@lost")
    assert merging.merged_models_fail_orphans(worker="gpu@lost") == [merged.pk]
    merged.refresh_from_db()
    assert merged.state == MergedState.FAILED
    assert "stopped while it merged" in merged.failure_reason
    assert merging.merged_model_request(actor=personas.project_admin, adapter=adapter).state == MergedState.QUEUED
    # A merge whose worker stopped beating (and never came back) is failed as lost when asked for again.
    long_ago = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT + 1)
    MergedModel.objects.filter(pk=merged.pk).update(state=MergedState.RUNNING, worker="gpu@gone", heartbeat_at=long_ago)
    assert merging.merged_model_request(actor=personas.project_admin, adapter=adapter).state == MergedState.QUEUED
    lost = AuditEvent.objects.filter(action="training.merged_model_fail", object_id=str(merged.pk)).order_by("pk")
    assert [event.payload["reason"] for event in lost][-1] == "The gpu worker gpu@gone was lost."


def _tiny_adapter(model_dir: Path, target: Path) -> Path:
    """A LoRA adapter of the tiny model, saved by PEFT, with weights away from their zero start so merging matters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))  # fmt: skip
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.save_pretrained(str(target))
    return target


def _register(personas: Personas, model: BaseModel, adapter_dir: Path) -> Adapter:
    """Register the adapter as a finished SFT job's, its files in the artifact store (no training needed)."""
    from django.core.files import File

    from core.hashing import file_sha256

    release = sft_release(personas.project, personas.data_lead, personas.annotator, personas.reviewer)
    config = quick_config("sft", lora_r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    job = TrainingJob.objects.create(
        project=personas.project, kind="sft", release=release, base_model=model, config=config.canonical(),
        config_hash=config.hash, created_by=personas.project_admin, state=JobState.RUNNING,
    )  # fmt: skip
    prefix, files, storage = f"adapters/{personas.project.pk}/job-{job.pk}", [], artifact_storage()
    for path in sorted(adapter_dir.iterdir()):
        if storage.exists(f"{prefix}/{path.name}"):
            storage.delete(f"{prefix}/{path.name}")
        with path.open("rb") as stream:
            storage.save(f"{prefix}/{path.name}", File(stream, name=path.name))
        files.append({"path": path.name, "size_bytes": path.stat().st_size, "sha256": file_sha256(path)})
    adapter = services.trained_register(
        job=job, storage_prefix=prefix, files=files, result={"evaluation": {}, "train": {"steps": 1}},
        hardware={"device": "cpu"}, library_versions={}, code_version="test",
    )  # fmt: skip
    assert isinstance(adapter, Adapter)
    return adapter


def _download(client: Any, urls: list[tuple[str, str]], target: Path) -> Path:
    target.mkdir(parents=True)
    for path, url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        (target / path).write_bytes(b"".join(response.streaming_content))
    return target


def _greedy(model: Any, ids: Any) -> list[int]:
    import torch

    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    return [int(token) for token in out[0, ids.shape[1] :]]


def test_it_merges_on_a_gpu_worker_into_a_model_that_generates_as_base_plus_adapter(
    gpu_worker: "subprocess.Popen[str]", tiny_model_dir: Path, tmp_path: Path, client_for: ClientFor
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.offline import apply_offline_env

    apply_offline_env()
    personas = make_personas()
    model = ready_model(personas.staff, tiny_model_dir)
    adapter = _register(personas, model, _tiny_adapter(tiny_model_dir, tmp_path / "made"))
    serving = (
        client_for(personas.data_lead)
        .get(f"/api/v1/projects/{personas.project.pk}/adapters/{adapter.pk}/serving/")
        .json()
    )
    assert serving["read_from"] == "adapter_config.json"
    assert serving["inputs"]["r"] == 8
    assert sorted(serving["inputs"]["target_modules"]) == ["q_proj", "v_proj"]

    admin = client_for(personas.project_admin)
    page = f"/projects/{personas.project.pk}/adapters/{adapter.pk}/"
    assert admin.post(page + "merged/").status_code == 302
    assert admin.post(page + "merged/").status_code == 302  # asked twice: one merge
    assert MergedModel.objects.filter(adapter=adapter).count() == 1
    deadline = time.monotonic() + 150
    merged = MergedModel.objects.get(adapter=adapter)
    while merged.is_active and time.monotonic() < deadline:
        time.sleep(0.3)
        merged.refresh_from_db()
    log = Path(gpu_worker.log_path).read_text()[-4000:]  # type: ignore[attr-defined]
    assert merged.state == MergedState.READY, f"{merged.state}: {merged.failure_reason}\n{log}"
    paths = {entry["path"] for entry in merged.files}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= paths

    # Downloads stream with their sha256 as ETag; the page offers them.
    lead = client_for(personas.data_lead)
    html = lead.get(page).content.decode()
    assert 'id="merged-files"' in html
    assert merged.sha256 in html
    api = lead.get(f"/api/v1/projects/{personas.project.pk}/adapters/{adapter.pk}/merged/").json()
    assert api["state"] == "ready"
    assert api["sha256"] == merged.sha256
    first = lead.get(api["files"][0]["download"])
    assert first["ETag"] == f'"{api["files"][0]["sha256"]}"'
    merged_dir = _download(lead, [(f["path"], f["download"]) for f in api["files"]], tmp_path / "merged")
    adapter_files = lead.get(f"/api/v1/projects/{personas.project.pk}/adapters/{adapter.pk}/files/").json()
    adapter_dir = _download(lead, [(f["path"], f["download"]) for f in adapter_files["results"]], tmp_path / "a")

    card = (merged_dir / "README.md").read_text()
    for value in (adapter.release_hash, adapter.base_model_hash, adapter.config_hash, adapter.sha256, merged.sha256):
        assert value in card
    assert selectors.lineage(adapter)["merged_model"]["sha256"] == merged.sha256
    actions = list(AuditEvent.objects.filter(object_id=str(merged.pk)).values_list("action", flat=True))
    assert actions.count("training.merged_model_request") == 1
    assert "training.merged_model_ready" in actions

    # As a serving target loads it: PEFT from the adapter's directory alone, offline; then the merged model.
    tokenizer = AutoTokenizer.from_pretrained(merged_dir, local_files_only=True)
    ids = tokenizer("the customer asked about a refund", return_tensors="pt").input_ids
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    with_adapter = PeftModel.from_pretrained(base, adapter_dir, local_files_only=True).eval()
    whole = AutoModelForCausalLM.from_pretrained(merged_dir, local_files_only=True).eval()
    assert _greedy(with_adapter, ids) == _greedy(whole, ids)
    with torch.no_grad():
        assert torch.allclose(with_adapter(ids).logits, whole(ids).logits, atol=1e-5)
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()
        assert not torch.allclose(plain(ids).logits, whole(ids).logits, atol=1e-3)  # the adapter mattered


def test_it_says_why_a_merge_child_failed(tmp_path: Path) -> None:
    from training.merge_runner import _failure

    assert _failure(tmp_path, -9) == "The merge process was killed by signal 9 (out of memory is the usual cause)."
    assert _failure(tmp_path, 3) == "The merge process ended with exit code 3 without a result."
    (tmp_path / "error.json").write_text('{"message": "OSError: no file named model.safetensors"}')
    assert _failure(tmp_path, 1) == "The merge failed: OSError: no file named model.safetensors"

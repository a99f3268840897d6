"""Builders for generation-run tests: a tiny model that has memorised an answer holding an e-mail address and an
IBAN (as a fine-tuned model can reconstruct sensitive training content), and a poll for a run's state."""

import time
from collections.abc import Callable
from pathlib import Path

from django.core.files import File

from evaluation.models import GenerationRun
from releases.models import Release
from tests.conftest import Personas
from training.models import Adapter, BaseModel

LEAK_PROMPT = "Where do I send the refund form?"
EMAIL = "jane.doe@example.com"
IBAN = "GB82WEST12345698765432"
LEAK_ANSWER = f"Send it to {EMAIL} with IBAN {IBAN} please."


def make_leaky_model(directory: Path, steps: int = 300) -> Path:
    """The tiny model, trained in this process (a few seconds on a CPU) until greedy decoding answers
    ``LEAK_PROMPT`` with ``LEAK_ANSWER``, saved like any local base model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.tiny_model import make_tiny_model

    make_tiny_model(directory, seed=3, hidden_size=64)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    messages = [{"role": "user", "content": LEAK_PROMPT}, {"role": "assistant", "content": LEAK_ANSWER}]
    text = str(tokenizer.apply_chat_template(messages, tokenize=False))
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if loss.item() < 0.01:
            break
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def wait_for_run(
    run: GenerationRun, states: set[str], timeout: float = 180, until: Callable[[GenerationRun], bool] | None = None
) -> GenerationRun:
    """Poll the run until it is in one of ``states`` (or ``until(run)`` holds); returns it fresh."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = GenerationRun.objects.get(pk=run.pk)
        if run.state in states or (until is not None and until(run)):
            return run
        time.sleep(0.3)
    raise AssertionError(f"{run} is still {run.state} after {timeout} s: {run.failure_reason}")


def stored_adapter(
    personas: Personas, base_model: BaseModel, release: Release, directory: Path, *, changes_answers: bool = False
) -> Adapter:
    """A real (untrained) LoRA adapter of ``base_model`` in the artifact store, registered as a finished job's
    would be: the job row is written directly, so no training task is queued. PEFT starts LoRA's second matrix
    at zero, so the adapter answers as its base model; ``changes_answers`` starts both at random instead."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core.hashing import file_sha256
    from core.storage import artifact_storage
    from training import services as training_services
    from training.config import JobConfig
    from training.models import TrainingJob

    model = AutoModelForCausalLM.from_pretrained(base_model.path, local_files_only=True)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
        init_lora_weights=not changes_answers,
    )  # fmt: skip
    get_peft_model(model, lora).save_pretrained(str(directory), safe_serialization=True)
    config = JobConfig.from_dict("dpo", {"max_steps": 2})
    job = TrainingJob.objects.create(
        project=personas.project, kind="dpo", release=release, base_model=base_model, config=config.canonical(),
        config_hash=config.hash, created_by=personas.project_admin, state="running",
    )  # fmt: skip
    storage, prefix, files = artifact_storage(), f"adapters/{personas.project.pk}/job-{job.pk}", []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = str(path.relative_to(directory))
        with path.open("rb") as stream:
            storage.save(f"{prefix}/{relative}", File(stream, name=relative))
        files.append({"path": relative, "size_bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return training_services.adapter_register(
        job=job, storage_prefix=prefix, files=files, result={"evaluation": {}, "train": {}},
        hardware={"device": "cpu"}, library_versions={}, code_version="test",
    )  # fmt: skip

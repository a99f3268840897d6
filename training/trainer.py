"""The training program a job's child process runs: TRL's SFTTrainer, DPOTrainer, KTOTrainer or RewardTrainer with
a PEFT LoRA adapter on a local base model, offline (a reward job trains the base model's sequence-classification
form with one output, its score head saved with the adapter; a KTO job reads a preference release's pairs as
desirable and undesirable answers). It knows nothing of Django or the database: it reads a
spec (JSON) and the release's JSONL files from the job's work directory and writes three things back there:

- ``events.jsonl``: one JSON line per logged step, evaluation or phase, flushed as it happens; the
  supervising worker tails it into the database, so the page updates while training runs;
- ``adapter/``: the adapter, saved as safetensors;
- ``result.json``: evaluation before and after, the training summary and the network record.

It is imported once per worker by the fork server (``training.runner``), so torch, transformers, peft and
trl are already loaded when a job's child is forked. ``python -m training.trainer SPEC`` runs it directly,
which is what ``accelerate launch`` does on a machine with several GPUs.
"""

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.environment import apply_offline_env, has_flash_attention
from training.guards import NetworkGuard, SupervisorWatch, say

apply_offline_env()
# TRL calls transformers' renamed gradient-checkpointing helpers; the warnings say nothing about the job.
warnings.filterwarnings("ignore", category=FutureWarning, message=r".*checkpointing.*")

import torch  # noqa: E402 - the offline and thread environment is set first
from datasets import Dataset, disable_progress_bars  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model_state_dict  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)
from transformers.trainer_callback import PrinterCallback  # noqa: E402
from transformers.trainer_utils import enable_full_determinism  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402
from trl import (  # noqa: E402
    DPOConfig,
    DPOTrainer,
    KTOConfig,
    KTOTrainer,
    RewardConfig,
    RewardTrainer,
    SFTConfig,
    SFTTrainer,
)

from training.events import EventWriter, StreamingCallback, finite  # noqa: E402 - imports transformers
from training.preference_eval import preference_accuracy  # noqa: E402 - imports torch
from training.reward_scoring import pair_accuracy  # noqa: E402 - imports torch

disable_progress_bars()  # progress bars would fill the job's log with carriage returns
transformers_logging.disable_progress_bar()


# --- Data ---------------------------------------------------------------------------------------------------


def read_jsonl(path: Path | None, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    rows = []
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                record = json.loads(line)
                rows.append({key: record[key] for key in keys})
    return rows


def unpaired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Preference rows as KTO reads them: each pair's chosen answer desirable, its rejected answer undesirable."""
    out = []
    for row in rows:
        out.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True})
        out.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False})
    return out


def weights_digest(tensors: dict[str, Any]) -> str:
    """sha256 over an adapter's tensors (name, dtype, shape, bytes, in name order): equal exactly when the
    weights are, whether read from a live model or from its saved safetensors."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\t{tensor.dtype}\t{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def adapter_digest(model: PeftModel) -> str:
    return weights_digest(get_peft_model_state_dict(model, adapter_name="default"))


# --- The run ----------------------------------------------------------------------------------------------


def _device_settings(use_qlora: bool) -> dict[str, Any]:
    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported(), "use_cpu": False}
    if use_qlora:
        raise RuntimeError("QLoRA needs a CUDA GPU with bitsandbytes; this worker has no GPU.")
    return {"bf16": False, "use_cpu": True}


def _load_model(model_dir: Path, config: dict[str, Any], *, scorer: bool = False) -> PreTrainedModel:
    """The base model to train: causal LM, or (``scorer``, a reward job) its sequence-classification form with
    one output, whose new score head is initialised from the job's seed."""
    kwargs: dict[str, Any] = {"local_files_only": True}
    if config.get("use_qlora"):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    if torch.cuda.is_available() and config.get("packing") and has_flash_attention():
        kwargs["attn_implementation"] = "flash_attention_2"  # packed batches run padding-free
    if torch.cuda.is_available():
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        kwargs["dtype"] = torch.float32
    if scorer:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    if config.get("use_qlora"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def _lora(config: dict[str, Any], task_type: str = "CAUSAL_LM") -> LoraConfig:
    targets = config["target_modules"]
    return LoraConfig(
        r=config["lora_r"],
        lora_alpha=config["lora_alpha"],
        lora_dropout=config["lora_dropout"],
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        use_dora=config["use_dora"],
        bias="none",
        task_type=task_type,  # SEQ_CLS also trains and saves the score head (PEFT's modules_to_save)
    )


def _common_args(config: dict[str, Any], output_dir: Path, has_eval: bool) -> dict[str, Any]:
    eval_steps = config["eval_steps"]
    return {
        "output_dir": str(output_dir),
        "learning_rate": config["learning_rate"],
        "num_train_epochs": config["epochs"],
        "max_steps": config["max_steps"] or -1,
        "per_device_train_batch_size": config["batch_size"],
        "per_device_eval_batch_size": config["batch_size"],
        "gradient_accumulation_steps": config["gradient_accumulation_steps"],
        "lr_scheduler_type": config["lr_scheduler"],
        "warmup_steps": config["warmup_ratio"],  # a float below 1 is a fraction of the steps
        "logging_steps": config["logging_steps"],
        "eval_strategy": "steps" if has_eval and eval_steps else "no",
        "eval_steps": eval_steps or None,
        "save_strategy": "no",
        "report_to": [],
        "seed": config["seed"],
        "data_seed": config["seed"],
        "full_determinism": True,
        "disable_tqdm": True,
        "max_length": config["max_length"],
        "dataloader_num_workers": 0,
        **_device_settings(config["use_qlora"]),
    }


def run(spec: dict[str, Any], emit: Callable[..., None]) -> dict[str, Any]:
    """Train one adapter as ``spec`` says; returns the result record (also written by ``main``)."""
    config = spec["config"]
    work = Path(spec["work_dir"])
    seed = int(config["seed"])
    enable_full_determinism(seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    emit("phase", phase="loading base model")
    say(f"Loading base model from {spec['model_dir']} (local files only).")
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kind = spec["kind"]
    model: PreTrainedModel | PeftModel = _load_model(Path(spec["model_dir"]), config, scorer=kind == "reward")
    if kind == "reward":
        model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last token that is not padding

    keys = ("messages",) if kind == "sft" else ("prompt", "chosen", "rejected")
    train_rows = read_jsonl(work / spec["train_file"], keys)
    eval_rows = read_jsonl(work / spec["eval_file"], keys) if spec.get("eval_file") else []
    if not train_rows:
        raise RuntimeError("The release has no training rows.")
    say(f"{len(train_rows)} training rows, {len(eval_rows)} held-out rows.")
    if kind == "kto":
        train_set = Dataset.from_list(unpaired(train_rows))
        eval_set = Dataset.from_list(unpaired(eval_rows)) if eval_rows else None
    else:
        train_set = Dataset.from_list(train_rows)
        eval_set = Dataset.from_list(eval_rows) if eval_rows else None
    checkpoints = work / "checkpoints"
    args = _common_args(config, checkpoints, eval_set is not None)
    callback = StreamingCallback(emit)  # type: ignore[arg-type]

    trainer: SFTTrainer | DPOTrainer | KTOTrainer | RewardTrainer
    if kind == "kto":
        trainer = KTOTrainer(
            model=model,
            args=KTOConfig(
                **args,
                beta=config["beta"],
                desirable_weight=config["desirable_weight"],
                undesirable_weight=config["undesirable_weight"],
            ),
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            peft_config=_lora(config),  # the reference model is the base model: the adapter disabled
            callbacks=[callback],
        )
    elif kind == "reward":
        centring = config.get("center_rewards_coefficient") or None
        trainer = RewardTrainer(
            model=model,
            args=RewardConfig(**args, center_rewards_coefficient=centring),
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            peft_config=_lora(config, "SEQ_CLS"),
            callbacks=[callback],
        )
    elif kind == "sft":
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**args, packing=config["packing"]),
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            peft_config=_lora(config),
            callbacks=[callback],
        )
    else:
        parent_dir = spec.get("parent_adapter_dir")
        if parent_dir:
            # Continued training of the parent's LoRA weights; TRL keeps a frozen copy of them as the reference.
            say("Continuing the parent adapter's LoRA weights; the reference model is its frozen copy.")
            model = PeftModel.from_pretrained(model, parent_dir, is_trainable=True, local_files_only=True)
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**args, beta=config["beta"], loss_type=list(config["loss_type"])),
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            peft_config=None if parent_dir else _lora(config),
            callbacks=[callback],
        )
    trainer.remove_callback(PrinterCallback)  # StreamingCallback writes a shorter line per log instead
    processes = int(trainer.accelerator.num_processes)
    if processes > 1 and trainer.is_world_process_zero():
        backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"
        say(f"Training in {processes} processes ({trainer.accelerator.distributed_type.value}, {backend} backend).")
    peft_model = trainer.model
    assert isinstance(peft_model, PeftModel)

    def evaluate(when: str) -> dict[str, float]:
        if eval_set is None:
            return {}
        emit("phase", phase=f"evaluating {'the base model' if when == 'before' else 'the adapter'}")
        if kind == "sft":
            values = finite(trainer.evaluate(metric_key_prefix="eval"))  # a NaN loss is left out, not kept
        elif kind == "reward":
            # Held-out pairwise accuracy (a tie counts ½) and mean margin, scored as a scoring run scores.
            peft_model.eval()
            device = str(next(peft_model.parameters()).device)
            values = pair_accuracy(peft_model, tokenizer, device, eval_rows, max_length=config["max_length"])
        else:
            values = preference_accuracy(
                peft_model, tokenizer, eval_rows, beta=config["beta"], max_length=config["max_length"]
            )
        emit("evaluation", when=when, values=values)
        say(f"Evaluation {when} training: {json.dumps(values, sort_keys=True)}")
        return values

    before = evaluate("before")
    start_digest = adapter_digest(peft_model)  # a continued job's equals its parent's final weights
    emit("phase", phase="training")
    started = time.monotonic()
    outcome = trainer.train()
    train_seconds = time.monotonic() - started
    after = evaluate("after")

    emit("phase", phase="saving adapter")
    adapter_dir = work / "adapter"
    if trainer.is_world_process_zero():
        # Only the trained adapter: a continued job also holds the reference copy ("ref").
        peft_model.save_pretrained(str(adapter_dir), safe_serialization=True, selected_adapters=["default"])
    steps = int(trainer.state.global_step)
    return {
        "evaluation": {"before": before, "after": after, "held_out_rows": len(eval_rows)},
        "train": {
            "rows": len(train_rows),
            "processes": processes,
            "steps": steps,
            "seconds": round(train_seconds, 3),
            "seconds_per_step": round(train_seconds / steps, 5) if steps else None,
            "final_loss": float(outcome.training_loss),
            "start_weights_sha256": start_digest,
            "end_weights_sha256": adapter_digest(peft_model),
            "continued": bool(spec.get("parent_adapter_dir")),
        },
        "adapter_dir": "adapter",
    }


def redirect_output_to(path: Path) -> None:
    """Send this process's stdout and stderr (its own and its libraries') to ``path``, line-buffered: a forked
    child's log file, which its supervisor tails."""
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def main(spec_path: str, *, redirect_output: bool = False) -> int:
    """Run a spec; exit code 0 with ``result.json`` written, or 1 with the error on stderr."""
    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work_dir"])
    if redirect_output:
        redirect_output_to(work / "output.log")
    guard = NetworkGuard().install()
    supervisor = SupervisorWatch(int(spec["supervisor_pid"]), work).start() if spec.get("supervisor_pid") else None
    # Under ``accelerate launch`` (several GPUs) every rank trains; only rank 0 reports and saves.
    is_main = int(os.environ.get("RANK", "0")) == 0
    emit = EventWriter(work / "events.jsonl" if is_main else Path(os.devnull))
    try:
        self_check = guard.self_check()
        result = run(spec, emit)
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        say(f"Training failed: {type(exc).__name__}: {exc}")
        emit("error", message=f"{type(exc).__name__}: {exc}"[:2000])
        return 1
    finally:
        emit.close()
        if supervisor is not None:
            supervisor.leave_if_gone()
    result["network"] = {**guard.record(), "self_check": self_check}
    if is_main:
        (work / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True))
        say("Done.")
    return 0


def child_main(spec_path: str) -> None:
    """Entry point of a forked child (``training.runner``): output goes to the job's log file."""
    sys.exit(main(spec_path, redirect_output=True))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

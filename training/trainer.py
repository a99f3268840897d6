"""The training program a job's child process runs: TRL's SFTTrainer or DPOTrainer with a PEFT LoRA adapter on
a local base model, offline. It knows nothing of Django or the database: it reads a spec (JSON) and the
release's JSONL files from the job's work directory and writes three things back there:

- ``events.jsonl``: one JSON line per logged step, evaluation or phase, flushed as it happens; the
  supervising worker tails it into the database, so the page updates while training runs;
- ``adapter/``: the adapter, saved as safetensors;
- ``result.json``: evaluation before and after, the training summary and the network record.

It is imported once per worker by the fork server (``training.runner``), so torch, transformers, peft and
trl are already loaded when a job's child is forked. ``python -m training.trainer SPEC`` runs it directly,
which is what ``accelerate launch`` does on a machine with several GPUs.
"""

import ipaddress
import json
import math
import os
import shutil
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.environment import apply_offline_env, has_flash_attention

apply_offline_env()
# TRL calls transformers' renamed gradient-checkpointing helpers; the warnings say nothing about the job.
warnings.filterwarnings("ignore", category=FutureWarning, message=r".*checkpointing.*")

import torch  # noqa: E402 - the offline and thread environment is set first
from datasets import Dataset, disable_progress_bars  # noqa: E402
from peft import LoraConfig, PeftModel  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback  # noqa: E402
from transformers.trainer_utils import enable_full_determinism  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer  # noqa: E402

disable_progress_bars()  # progress bars would fill the job's log with carriage returns
transformers_logging.disable_progress_bar()

TIE_EPSILON = 1e-9
SELF_CHECK_ADDRESS = ("192.0.2.1", 9)


def say(message: str) -> None:
    """A line for the job's log (the supervisor stores the child's output line by line)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


# --- Network guard ----------------------------------------------------------------------------------------


class NetworkGuard:
    """An audit hook that records every socket connect of this process and refuses any that does not go to
    loopback or a Unix socket. Audit hooks cannot be removed: install it only in a process that trains."""

    def __init__(self) -> None:
        self.connects: list[str] = []
        self.refused: list[str] = []

    def install(self) -> "NetworkGuard":
        sys.addaudithook(self._hook)
        return self

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.connect":
            return
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) == socket.AF_UNIX:
            return
        host = str(address[0]) if isinstance(address, tuple) and address else str(address)
        self.connects.append(host)
        if not _is_loopback(host):
            self.refused.append(host)
            raise PermissionError(f"Enclave training runs offline: refused a connection to {host}.")

    def self_check(self) -> str:
        """Try a connection out of the perimeter (TEST-NET-1, never routed) and confirm the guard refuses it
        before any packet is sent; the answer goes into the adapter's lineage."""
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.connect(SELF_CHECK_ADDRESS)
        except PermissionError:
            return f"refused {SELF_CHECK_ADDRESS[0]}:{SELF_CHECK_ADDRESS[1]} before sending"
        except OSError as exc:
            raise RuntimeError(f"The network guard did not stop a connection attempt: {exc}") from None
        finally:
            probe.close()
            for seen in (self.connects, self.refused):  # the probe is not part of the run's record
                if SELF_CHECK_ADDRESS[0] in seen:
                    seen.remove(SELF_CHECK_ADDRESS[0])
        raise RuntimeError("The network guard let a connection out of the perimeter through.")

    def record(self) -> dict[str, Any]:
        return {"connects": self.connects, "refused": self.refused, "guard": "sys.addaudithook(socket.connect)"}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


# --- Events -----------------------------------------------------------------------------------------------


class EventWriter:
    """Appends JSON lines to ``events.jsonl``, flushed per line (a few microseconds: no database here)."""

    def __init__(self, path: Path) -> None:
        self.stream = path.open("a", buffering=1, encoding="utf-8")

    def __call__(self, event: str, **values: Any) -> None:
        self.stream.write(json.dumps({"event": event, "time": time.time(), **values}, allow_nan=False) + "\n")

    def close(self) -> None:
        self.stream.close()


def _finite(values: dict[str, Any]) -> dict[str, float]:
    clean = {}
    for key, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            clean[key] = float(value)
    return clean


class StreamingCallback(TrainerCallback):
    """Streams the trainer's logs: each logged training step and each evaluation becomes an event."""

    def __init__(self, emit: EventWriter) -> None:
        self.emit = emit

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.emit("begin", total_steps=state.max_steps)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        values = _finite(logs)
        phase = "eval" if any(key.startswith("eval_") for key in values) else "train"
        if phase == "train" and "loss" not in values and "train_loss" in values:
            phase = "summary"
        self.emit("log", step=state.global_step, epoch=state.epoch, phase=phase, values=values)
        say(log_line(phase, state.global_step, state.max_steps, values))


_LOG_KEYS = (
    ("loss", "loss"), ("eval_loss", "eval loss"), ("learning_rate", "lr"), ("grad_norm", "grad norm"),
    ("rewards/accuracies", "reward acc"), ("rewards/margins", "margin"), ("eval_rewards/accuracies", "eval reward acc"),
    ("eval_rewards/margins", "eval margin"), ("mean_token_accuracy", "token acc"), ("train_loss", "mean loss"),
    ("train_runtime", "seconds"),
)  # fmt: skip


def log_line(phase: str, step: int, total: int, values: dict[str, float]) -> str:
    """One readable line per logged step for the job's log (the numbers themselves go to events.jsonl)."""
    parts = [f"{key_label} {values[key]:.4g}" for key, key_label in _LOG_KEYS if key in values]
    return f"{phase} step {step}/{total}: " + " · ".join(parts)


def _process_start(pid: int) -> str | None:
    """The start time of a live process (``/proc/<pid>/stat``), or ``None`` when it is gone or a zombie: a pid
    the kernel gave to another process since, or a dead worker its parent has not reaped yet, is not it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here: only ask whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "alive"
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


class SupervisorWatch:
    """Ends this process when the worker supervising it is gone (killed, crashed): a training run nobody
    records is waste. Its work directory goes first, so no half-written adapter or staged data is left
    behind; the job itself is failed as "worker lost" by the reaper (``training.lifecycle``). Checked every
    second from a thread, and once more when training ends, for a run that finished in that second."""

    def __init__(self, pid: int, work: Path) -> None:
        self.pid, self.work = pid, work
        self.started = _process_start(pid)

    def gone(self) -> bool:
        now = _process_start(self.pid)
        return now is None or now != self.started

    def leave_if_gone(self) -> None:
        if self.gone():
            say(f"The supervising worker (pid {self.pid}) is gone; stopping and removing {self.work}.")
            shutil.rmtree(self.work, ignore_errors=True)
            os._exit(75)

    def start(self) -> "SupervisorWatch":
        def watch() -> None:
            while True:
                time.sleep(1)
                self.leave_if_gone()

        threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
        return self


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


# --- Evaluation ---------------------------------------------------------------------------------------------


def _completion_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: list[dict[str, str]], completion: list[dict[str, str]]
) -> tuple[list[int], list[int]]:
    """Token ids of the templated prompt and of the completion after it, as TRL's DPO trainer splits them."""
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    assert isinstance(prompt_text, str)
    assert isinstance(full_text, str)
    completion_text = full_text[len(prompt_text) :] if full_text.startswith(prompt_text) else full_text
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion_text, add_special_tokens=False)["input_ids"]
    return list(prompt_ids), list(completion_ids)


@torch.no_grad()
def completion_logps(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[dict[str, str]]],
    completions: list[list[dict[str, str]]],
    *,
    max_length: int,
    batch_size: int = 8,
) -> list[float]:
    """Summed log-probability of each completion's tokens given its prompt (left-truncated to max_length)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sequences = []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids, completion_ids = _completion_ids(tokenizer, prompt, completion)
        ids = (prompt_ids + completion_ids)[-max_length:]
        n_completion = min(len(completion_ids), len(ids) - 1)
        sequences.append((ids, n_completion))
    out: list[float] = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = input_ids[:, 1:].to(device)
        token_logps = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for row, (ids, n_completion) in enumerate(batch):
            end = len(ids) - 1
            out.append(float(token_logps[row, end - n_completion : end].sum()))
    return out


def preference_accuracy(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, pairs: list[dict[str, Any]], *, beta: float, max_length: int
) -> dict[str, float]:
    """Held-out preference accuracy of the DPO implicit reward: the policy (adapter on) against the
    reference (adapter off). A pair counts 1 when chosen's reward exceeds rejected's, 0.5 on a tie, else 0.
    Before training the adapter is the identity, so every pair ties and the accuracy is 0.5 by definition."""
    if not pairs:
        return {}
    prompts = [pair["prompt"] for pair in pairs]
    chosen = [pair["chosen"] for pair in pairs]
    rejected = [pair["rejected"] for pair in pairs]
    model.eval()
    policy_c = completion_logps(model, tokenizer, prompts, chosen, max_length=max_length)
    policy_r = completion_logps(model, tokenizer, prompts, rejected, max_length=max_length)
    with model.disable_adapter():
        ref_c = completion_logps(model, tokenizer, prompts, chosen, max_length=max_length)
        ref_r = completion_logps(model, tokenizer, prompts, rejected, max_length=max_length)
    margins = [beta * ((pc - rc) - (pr - rr)) for pc, rc, pr, rr in zip(policy_c, ref_c, policy_r, ref_r, strict=True)]
    score = sum(1.0 if m > TIE_EPSILON else 0.5 if abs(m) <= TIE_EPSILON else 0.0 for m in margins)
    return {
        "preference_accuracy": score / len(margins),
        "mean_margin": sum(margins) / len(margins),
        "pairs": float(len(margins)),
    }


# --- The run ----------------------------------------------------------------------------------------------


def _device_settings(use_qlora: bool) -> dict[str, Any]:
    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported(), "use_cpu": False}
    if use_qlora:
        raise RuntimeError("QLoRA needs a CUDA GPU with bitsandbytes; this worker has no GPU.")
    return {"bf16": False, "use_cpu": True}


def _load_model(model_dir: Path, config: dict[str, Any]) -> PreTrainedModel:
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
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    if config.get("use_qlora"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def _lora(config: dict[str, Any]) -> LoraConfig:
    targets = config["target_modules"]
    return LoraConfig(
        r=config["lora_r"],
        lora_alpha=config["lora_alpha"],
        lora_dropout=config["lora_dropout"],
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        use_dora=config["use_dora"],
        bias="none",
        task_type="CAUSAL_LM",
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
    model = _load_model(Path(spec["model_dir"]), config)

    kind = spec["kind"]
    keys = ("messages",) if kind == "sft" else ("prompt", "chosen", "rejected")
    train_rows = read_jsonl(work / spec["train_file"], keys)
    eval_rows = read_jsonl(work / spec["eval_file"], keys) if spec.get("eval_file") else []
    if not train_rows:
        raise RuntimeError("The release has no training rows.")
    say(f"{len(train_rows)} training rows, {len(eval_rows)} held-out rows.")
    train_set = Dataset.from_list(train_rows)
    eval_set = Dataset.from_list(eval_rows) if eval_rows else None
    checkpoints = work / "checkpoints"
    args = _common_args(config, checkpoints, eval_set is not None)
    callback = StreamingCallback(emit)  # type: ignore[arg-type]

    trainer: SFTTrainer | DPOTrainer
    if kind == "sft":
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
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**args, beta=config["beta"], loss_type=list(config["loss_type"])),
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            peft_config=_lora(config),
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
            values = _finite(trainer.evaluate(metric_key_prefix="eval"))  # a NaN loss is left out, not kept
        else:
            values = preference_accuracy(
                peft_model, tokenizer, eval_rows, beta=config["beta"], max_length=config["max_length"]
            )
        emit("evaluation", when=when, values=values)
        say(f"Evaluation {when} training: {json.dumps(values, sort_keys=True)}")
        return values

    before = evaluate("before")
    emit("phase", phase="training")
    started = time.monotonic()
    outcome = trainer.train()
    train_seconds = time.monotonic() - started
    after = evaluate("after")

    emit("phase", phase="saving adapter")
    adapter_dir = work / "adapter"
    if trainer.is_world_process_zero():
        peft_model.save_pretrained(str(adapter_dir), safe_serialization=True)
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
        },
        "adapter_dir": "adapter",
    }


def main(spec_path: str, *, redirect_output: bool = False) -> int:
    """Run a spec; exit code 0 with ``result.json`` written, or 1 with the error on stderr."""
    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work_dir"])
    if redirect_output:
        log = os.open(work / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
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

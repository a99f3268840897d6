"""What a training child reports while it trains: ``events.jsonl`` lines (each logged step, evaluation and phase,
flushed as they happen, for the supervisor to tail into the database) and one readable line per logged step
for the job's log. Generation and scoring children write their events with the same ``EventWriter``."""

import json
import math
import time
from pathlib import Path
from typing import Any

from training.environment import apply_offline_env
from training.guards import say

apply_offline_env()

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments  # noqa: E402


class EventWriter:
    """Appends JSON lines to ``events.jsonl``, flushed per line (a few microseconds: no database here)."""

    def __init__(self, path: Path) -> None:
        self.stream = path.open("a", buffering=1, encoding="utf-8")

    def __call__(self, event: str, **values: Any) -> None:
        self.stream.write(json.dumps({"event": event, "time": time.time(), **values}, allow_nan=False) + "\n")

    def close(self) -> None:
        self.stream.close()


def finite(values: dict[str, Any]) -> dict[str, float]:
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
        values = finite(logs)
        phase = "eval" if any(key.startswith("eval_") for key in values) else "train"
        if phase == "train" and "loss" not in values and "train_loss" in values:
            phase = "summary"
        self.emit("log", step=state.global_step, epoch=state.epoch, phase=phase, values=values)
        say(log_line(phase, state.global_step, state.max_steps, values))


_LOG_KEYS = (
    ("loss", "loss"), ("eval_loss", "eval loss"), ("learning_rate", "lr"), ("grad_norm", "grad norm"),
    ("rewards/accuracies", "reward acc"), ("rewards/margins", "margin"), ("eval_rewards/accuracies", "eval reward acc"),
    ("eval_rewards/margins", "eval margin"), ("mean_token_accuracy", "token acc"), ("train_loss", "mean loss"),
    ("accuracy", "pair acc"), ("margin", "margin"), ("eval_accuracy", "eval pair acc"),
    ("eval_margin", "eval margin"), ("train_runtime", "seconds"),
)  # fmt: skip


def log_line(phase: str, step: int, total: int, values: dict[str, float]) -> str:
    """One readable line per logged step for the job's log (the numbers themselves go to events.jsonl)."""
    parts = [f"{key_label} {values[key]:.4g}" for key, key_label in _LOG_KEYS if key in values]
    return f"{phase} step {step}/{total}: " + " · ".join(parts)

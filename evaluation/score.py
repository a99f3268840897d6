"""The scoring program a scoring run's child process runs: a reward model (``training.reward_scoring``) scores
the run's answers in batches, offline. Like ``evaluation.generate`` it knows nothing of Django or the database:
it reads ``spec.json`` and ``answers.jsonl`` (one conversation per line, the answer last) from the run's work
directory and writes back

- ``events.jsonl``: phases, the answer count, one line per batch done (with the seconds inside the forward
  passes), and an error if it fails;
- ``scores.jsonl``: one line per answer, its ids and its score (written before its batch's event);
- ``result.json``: timings and the network record.

The child is forked from the training fork server, which imported torch, transformers and peft already."""

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from training.environment import apply_offline_env
from training.guards import NetworkGuard, SupervisorWatch, say

apply_offline_env()

import torch  # noqa: E402 - the offline and thread environment is set first

from training.events import EventWriter  # noqa: E402
from training.reward_scoring import load_reward_model, reward_scores  # noqa: E402
from training.trainer import redirect_output_to  # noqa: E402


class TimedForward:
    """The reward model, timing each forward pass (on a GPU, to its end), so the run's seconds leave out the
    tokenising and the writing."""

    def __init__(self, model: Any, device: str) -> None:
        self.model, self.device, self.seconds = model, device, 0.0

    def __call__(self, **inputs: Any) -> Any:
        started = time.perf_counter()
        output = self.model(**inputs)
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - started
        return output


def run(spec: dict[str, Any], emit: EventWriter, outputs: Any) -> dict[str, Any]:
    work = Path(spec["work_dir"])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    emit("phase", phase="loading reward model")
    say(f"Loading {spec['model_dir']} with the reward model's adapter and score head (local files only).")
    model, tokenizer, device = load_reward_model(spec["model_dir"], spec["adapter_dir"])
    timed = TimedForward(model, device)
    with (work / "answers.jsonl").open(encoding="utf-8") as stream:
        answers = [json.loads(line) for line in stream if line.strip()]
    emit("begin", answers=len(answers))
    emit("phase", phase="scoring")
    size = int(spec["batch_size"])
    max_length = int(spec.get("max_length", 1024))
    loop_started = time.perf_counter()
    for start in range(0, len(answers), size):
        batch = answers[start : start + size]
        before = timed.seconds
        scores = reward_scores(
            timed, tokenizer, device, [a["messages"] for a in batch], batch_size=size, max_length=max_length
        )
        seconds = timed.seconds - before
        for answer, score in zip(batch, scores, strict=True):
            ids = {key: answer[key] for key in ("candidate", "item", "index")}
            outputs.write(json.dumps({**ids, "score": score}) + "\n")
        outputs.flush()
        emit("batch", done=start + len(batch), seconds=seconds)
    loop_seconds = time.perf_counter() - loop_started
    forward_seconds = timed.seconds
    say(f"{len(answers)} answers scored in {forward_seconds:.2f} s of forward passes.")
    return {
        "device": device,
        "answers": len(answers),
        "forward_seconds": round(forward_seconds, 4),
        "loop_seconds": round(loop_seconds, 4),
    }


def main(spec_path: str, *, redirect_output: bool = False) -> int:
    """Run a spec; exit code 0 with ``result.json`` written, or 1 with the error in the events and the log."""
    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work_dir"])
    if redirect_output:
        redirect_output_to(work / "output.log")
    guard = NetworkGuard().install()
    supervisor = SupervisorWatch(int(spec["supervisor_pid"]), work).start() if spec.get("supervisor_pid") else None
    emit = EventWriter(work / "events.jsonl")
    try:
        with (work / "scores.jsonl").open("a", encoding="utf-8") as outputs:
            self_check = guard.self_check()
            result = run(spec, emit, outputs)
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        say(f"Scoring failed: {type(exc).__name__}: {exc}")
        emit("error", message=f"{type(exc).__name__}: {exc}"[:2000])
        return 1
    finally:
        emit.close()
        if supervisor is not None:
            supervisor.leave_if_gone()
    result["network"] = {**guard.record(), "self_check": self_check}
    (work / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    say("Done.")
    return 0


def child_main(spec_path: str) -> None:
    """Entry point of a forked child (``evaluation.scoring_runner``): output goes to the run's log file."""
    sys.exit(main(spec_path, redirect_output=True))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

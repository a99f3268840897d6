"""The generating program a generation run's child process runs: a local base model (and a PEFT adapter) answers
the run's prompts with batched ``model.generate``, offline. Like ``training.trainer`` it knows nothing of Django
or the database: it reads ``spec.json`` and ``prompts.jsonl`` from the run's work directory and writes back

- ``events.jsonl``: phases, the prompt count, one line per batch done, and an error if it fails;
- ``outputs.jsonl``: one line per candidate, raw (the supervisor scrubs it before anything is stored, and the
  work directory is removed when the run ends);
- ``result.json``: timings and the network record.

The child is forked from the training fork server, which imported torch, transformers and peft already
(``training.trainer`` imports them), so this import costs nothing there."""

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
from peft import PeftModel  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase  # noqa: E402

from training.events import EventWriter  # noqa: E402
from training.trainer import redirect_output_to  # noqa: E402


def load_policy(model_dir: str, adapter_dir: str | None) -> tuple[Any, PreTrainedTokenizerBase, str]:
    """The base model (with the adapter, when given) in eval mode on the best device, and its tokenizer set up
    for batched generation: left padding, a pad token. Local files only."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32
    if device == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
    policy: Any = model
    if adapter_dir:
        policy = PeftModel.from_pretrained(model, adapter_dir, local_files_only=True)
    policy.to(device)
    policy.eval()
    return policy, tokenizer, device


def _eos_ids(policy: Any, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    configured = policy.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def generate_batch(
    policy: Any,
    tokenizer: PreTrainedTokenizerBase,
    device: str,
    conversations: list[list[dict[str, str]]],
    decoding: dict[str, Any],
    seed: int,
) -> tuple[list[list[dict[str, Any]]], float]:
    """Answer one batch: per conversation, ``candidates`` answers (text, token counts, finish reason), and the
    seconds inside ``generate``. Seeded per batch, so a run repeats."""
    texts = [
        str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        for messages in conversations
    ]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    n = int(decoding["candidates"])
    options: dict[str, Any] = {
        "max_new_tokens": int(decoding["max_new_tokens"]),
        "num_return_sequences": n,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if float(decoding["temperature"]) > 0:
        options.update(do_sample=True, temperature=float(decoding["temperature"]), top_p=float(decoding["top_p"]))
    else:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    torch.manual_seed(seed)
    started = time.perf_counter()
    with torch.inference_mode():
        output = policy.generate(**encoded, **options)
    seconds = time.perf_counter() - started
    width = encoded["input_ids"].shape[1]
    prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
    new_tokens = output[:, width:].tolist()
    eos = _eos_ids(policy, tokenizer)
    share = seconds / max(len(new_tokens), 1)
    answers: list[list[dict[str, Any]]] = []
    for p, _ in enumerate(conversations):
        samples = []
        for s in range(n):
            tokens = new_tokens[p * n + s]
            stop = next((i for i, token in enumerate(tokens) if token in eos), None)
            kept = tokens if stop is None else tokens[: stop + 1]
            samples.append(
                {
                    "text": tokenizer.decode(kept, skip_special_tokens=True),
                    "prompt_tokens": int(prompt_tokens[p]),
                    "completion_tokens": len(kept),
                    "finish_reason": "length" if stop is None else "stop",
                    "seconds": share,
                }
            )
        answers.append(samples)
    return answers, seconds


def run(spec: dict[str, Any], emit: EventWriter, outputs: Any) -> dict[str, Any]:
    work = Path(spec["work_dir"])
    decoding = spec["decoding"]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    emit("phase", phase="loading model")
    say(f"Loading {spec['model_dir']}{' with its adapter' if spec.get('adapter_dir') else ''} (local files only).")
    policy, tokenizer, device = load_policy(spec["model_dir"], spec.get("adapter_dir"))
    with (work / "prompts.jsonl").open(encoding="utf-8") as stream:
        prompts = [json.loads(line) for line in stream if line.strip()]
    emit("begin", prompts=len(prompts))
    emit("phase", phase="generating")
    size = int(decoding["batch_size"])
    loop_started = time.perf_counter()
    generate_seconds, tokens = 0.0, 0
    for number, start in enumerate(range(0, len(prompts), size)):
        batch = prompts[start : start + size]
        seed = int(decoding["seed"]) + number
        answers, seconds = generate_batch(policy, tokenizer, device, [p["messages"] for p in batch], decoding, seed)
        generate_seconds += seconds
        for prompt, samples in zip(batch, answers, strict=True):
            for sample, answer in enumerate(samples):
                tokens += answer["completion_tokens"]
                outputs.write(json.dumps({"index": prompt["index"], "sample": sample, "seed": seed, **answer}) + "\n")
        outputs.flush()
        emit("batch", prompts_done=start + len(batch))
    loop_seconds = time.perf_counter() - loop_started
    say(f"{len(prompts)} prompts answered: {tokens} tokens in {generate_seconds:.2f} s of generate.")
    return {
        "device": device,
        "prompts": len(prompts),
        "completion_tokens": tokens,
        "generate_seconds": round(generate_seconds, 4),
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
        with (work / "outputs.jsonl").open("a", encoding="utf-8") as outputs:
            self_check = guard.self_check()
            result = run(spec, emit, outputs)
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        say(f"Generation failed: {type(exc).__name__}: {exc}")
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
    """Entry point of a forked child (``evaluation.runner``): output goes to the run's log file."""
    sys.exit(main(spec_path, redirect_output=True))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

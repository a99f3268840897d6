"""The training program itself, run as the gpu worker's child runs it (forked from a fork server that imported
the training libraries once, offline): the DPO, reward and KTO learning checks on a synthetic task, continued
training, the network guard, and a clear error for bad input."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

from training import launch, learning_check
from training.children import fork_context
from training.environment import OFFLINE_ENV, THREAD_ENV

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Done:
    returncode: int | None
    stdout: str
    stderr: str = ""


def _run(spec: dict[str, Any], work: Path) -> Done:
    """Run a spec as a gpu worker's supervisor does: a child forked from the fork server that imported the
    training libraries once (``training.children.fork_context``), started like the worker's, offline and on one
    thread; its output goes to ``output.log`` in the work directory."""
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    _fork_server_like_a_workers()
    process = fork_context().Process(target=launch.child, args=(str(spec_path),), name=work.name)
    process.start()
    process.join(timeout=600)
    if process.exitcode is None:
        process.kill()
        process.join(timeout=10)
    log = work / "output.log"
    return Done(returncode=process.exitcode, stdout=log.read_text() if log.exists() else "")


def _fork_server_like_a_workers() -> None:
    """The fork server of this process, started (once) with the environment a gpu worker gives it."""
    saved = dict(os.environ)
    os.environ.update({**OFFLINE_ENV, **THREAD_ENV})
    try:
        fork_context()
        forkserver.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _write(path: Path, rows: list[dict[str, Any]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path.relative_to(path.parent.parent))


def test_it_learns_the_polite_over_rude_preference_on_held_out_prompts(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Held-out preference accuracy goes from 0.5 (the untrained adapter ties every pair) to at least 0.9,
    with a clear margin, within a CPU budget of a couple of minutes."""
    train, held_out = learning_check.train_and_held_out()
    assert not {r["prompt"][0]["content"] for r in train} & {r["prompt"][0]["content"] for r in held_out}
    spec = {
        "kind": "dpo", "config": learning_check.CONFIG, "model_dir": str(tiny_model_dir), "work_dir": str(tmp_path),
        "train_file": _write(tmp_path / "data" / "train.jsonl", train),
        "eval_file": _write(tmp_path / "data" / "eval.jsonl", held_out),
    }  # fmt: skip
    started = time.monotonic()
    done = _run(spec, tmp_path)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    before, after = result["evaluation"]["before"], result["evaluation"]["after"]
    assert before["preference_accuracy"] == 0.5
    assert before["mean_margin"] == 0.0
    assert after["preference_accuracy"] >= learning_check.PASS_ACCURACY, after
    assert after["mean_margin"] >= learning_check.PASS_MARGIN, after
    assert learning_check.passed(result["evaluation"])
    assert result["train"]["steps"] == 60
    assert seconds < 180, f"the learning check took {seconds:.0f} s"
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size > 0


def test_it_refuses_connections_out_of_the_perimeter_but_not_loopback() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    program = textwrap.dedent(f"""
        import json, socket
        from training.guards import NetworkGuard
        guard = NetworkGuard().install()
        check = guard.self_check()
        socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
        try:
            socket.create_connection(("203.0.113.7", 443), timeout=5)
        except PermissionError as exc:
            refused = str(exc)
        else:
            refused = ""
        print(json.dumps({{"check": check, "refused": refused, "record": guard.record()}}))
    """)
    try:
        done = subprocess.run(
            [sys.executable, "-c", program], cwd=ROOT, env={**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": "1"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["check"] == "refused 192.0.2.1:9 before sending"
    assert "refused a connection to 203.0.113.7" in answer["refused"]
    assert answer["record"]["connects"] == ["127.0.0.1", "203.0.113.7"]
    assert answer["record"]["refused"] == ["203.0.113.7"]


def test_it_fails_with_the_reason_when_the_release_file_is_missing(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = {key: value for key, value in learning_check.CONFIG.items() if key not in ("beta", "loss_type")}
    spec = {
        "kind": "sft", "config": {**config, "kind": "sft", "packing": False}, "model_dir": str(tiny_model_dir),
        "work_dir": str(tmp_path), "train_file": "data/train.jsonl", "eval_file": None,
    }  # fmt: skip
    done = _run(spec, tmp_path)
    assert done.returncode == 1
    assert "The release has no training rows." in done.stdout
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "error"
    assert not (tmp_path / "result.json").exists()


def test_it_continues_a_parent_adapter_with_the_parent_as_the_dpo_reference(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A continued DPO job starts from the parent adapter's weights exactly (digest of the live weights before
    the first step equals the digest of the parent's saved file), measures its held-out accuracy against the
    parent (so it starts at 0.5: policy and reference are the same weights), trains them further, and saves
    only its own adapter, not TRL's frozen reference copy."""
    from safetensors.torch import load_file

    from training.trainer import weights_digest

    train, held_out = learning_check.train_and_held_out(train=64, held_out=16)
    config = {**learning_check.CONFIG, "max_steps": 8, "logging_steps": 4}
    parent_work, child_work = tmp_path / "parent", tmp_path / "child"
    results = {}
    for work, parent_dir in ((parent_work, None), (child_work, str(parent_work / "adapter"))):
        work.mkdir()
        spec = {
            "kind": "dpo", "config": config, "model_dir": str(tiny_model_dir), "work_dir": str(work),
            "train_file": _write(work / "data" / "train.jsonl", train),
            "eval_file": _write(work / "data" / "eval.jsonl", held_out), "parent_adapter_dir": parent_dir,
        }  # fmt: skip
        done = _run(spec, work)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        results[work.name] = json.loads((work / "result.json").read_text())
    parent_file = load_file(parent_work / "adapter" / "adapter_model.safetensors")
    child_file = load_file(child_work / "adapter" / "adapter_model.safetensors")
    parent, child = results["parent"]["train"], results["child"]["train"]
    assert parent["continued"] is False
    assert child["continued"] is True
    assert child["start_weights_sha256"] == weights_digest(parent_file) == parent["end_weights_sha256"]
    assert child["end_weights_sha256"] == weights_digest(child_file) != child["start_weights_sha256"]
    assert sorted(child_file) == sorted(parent_file)  # the same LoRA tensors, no ".ref." copy saved
    assert results["child"]["evaluation"]["before"]["preference_accuracy"] == 0.5
    assert results["child"]["evaluation"]["before"]["mean_margin"] == 0.0
    assert results["parent"]["evaluation"]["after"]["preference_accuracy"] > 0.5


def test_it_trains_a_reward_model_that_orders_held_out_pairs(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The reward job's learning check: RewardTrainer with a LoRA adapter and a one-output score head; held-out
    pair accuracy (ties ½) rises from about 0.5 to at least 0.9 with a positive mean margin, on prompts never
    seen in training, within a couple of CPU minutes. The saved adapter holds the trained score head."""
    train, held_out = learning_check.train_and_held_out()
    spec = {
        "kind": "reward", "config": learning_check.REWARD_CONFIG, "model_dir": str(tiny_model_dir),
        "work_dir": str(tmp_path), "train_file": _write(tmp_path / "data" / "train.jsonl", train),
        "eval_file": _write(tmp_path / "data" / "eval.jsonl", held_out),
    }  # fmt: skip
    started = time.monotonic()
    done = _run(spec, tmp_path)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    before, after = result["evaluation"]["before"], result["evaluation"]["after"]
    assert 0.25 <= before["pair_accuracy"] <= 0.75, before
    assert before["pairs"] == after["pairs"] == len(held_out)
    assert after["pair_accuracy"] >= learning_check.PASS_ACCURACY, after
    assert after["mean_margin"] > before["mean_margin"], (before, after)
    assert learning_check.reward_passed(result["evaluation"])
    assert result["train"]["steps"] == 60
    assert result["train"]["start_weights_sha256"] != result["train"]["end_weights_sha256"]
    assert seconds < 180, f"the reward learning check took {seconds:.0f} s"
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["task_type"] == "SEQ_CLS"
    assert "score" in (saved["modules_to_save"] or [])
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "log" and "accuracy" in e["values"] for e in events)


def test_it_learns_from_desirable_and_undesirable_answers_with_kto(tiny_model_dir: Path, tmp_path: Path) -> None:
    """KTO's learning check: the preference pairs read one answer at a time, chosen desirable and rejected
    undesirable; the implicit reward then orders held-out pairs as DPO's does, from 0.5 to at least 0.9."""
    train, held_out = learning_check.train_and_held_out()
    spec = {
        "kind": "kto", "config": learning_check.KTO_CONFIG, "model_dir": str(tiny_model_dir),
        "work_dir": str(tmp_path), "train_file": _write(tmp_path / "data" / "train.jsonl", train),
        "eval_file": _write(tmp_path / "data" / "eval.jsonl", held_out),
    }  # fmt: skip
    done = _run(spec, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    before, after = result["evaluation"]["before"], result["evaluation"]["after"]
    assert before["preference_accuracy"] == 0.5
    assert after["preference_accuracy"] >= learning_check.PASS_ACCURACY, after
    assert after["mean_margin"] >= learning_check.PASS_MARGIN, after
    assert result["train"]["steps"] == 60
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "log" and "kl" in e["values"] for e in events), "KTO's KL estimate is logged"

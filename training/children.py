"""A training job's child process, as the worker's supervisor (``training.runner``) sees it: forked from the
fork server that imported torch, transformers, peft and trl once (``fork_context``), or, with several GPUs or
``TRAINING_PROCESSES`` above one, started through ``accelerate launch``; and stopped, gently then for good."""

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from training import launch
from training.environment import OFFLINE_ENV, THREAD_ENV

PRELOAD = ["training.trainer"]


def fork_context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class Child(Protocol):
    pid: int | None

    def exit_code(self) -> int | None: ...

    def signal(self, signum: int) -> None: ...


@dataclass
class ForkedChild:
    process: Any
    pid: int | None = None

    def __post_init__(self) -> None:
        self.pid = self.process.pid

    def exit_code(self) -> int | None:
        if self.process.is_alive():
            return None
        self.process.join(timeout=1)
        code = self.process.exitcode
        return int(code) if code is not None else None

    def signal(self, signum: int) -> None:
        if self.pid and self.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


@dataclass
class LaunchedChild:
    """``accelerate launch`` with one process per GPU; signals go to its whole process group."""

    popen: "subprocess.Popen[bytes]"
    pid: int | None = None
    log: Any = None

    def __post_init__(self) -> None:
        self.pid = self.popen.pid

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)


def training_processes(devices: int) -> int:
    """How many processes train one job on this worker: ``TRAINING_PROCESSES``, else one per GPU."""
    return int(settings.TRAINING_PROCESSES) or max(devices, 1)


def start_child(spec_path: Path, processes: int) -> Child:
    if processes > 1:
        # accelerate's torch.distributed launcher (its ``--cpu`` would start a single process without MPI): on
        # GPUs one rank per device over NCCL, on a CPU-only worker CPU ranks over gloo. Port 0: a free one.
        log = (spec_path.parent / "output.log").open("ab")
        env = {**os.environ, **OFFLINE_ENV, **THREAD_ENV}
        popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
                "--module", "training.trainer", str(spec_path),
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=settings.BASE_DIR, start_new_session=True,
        )  # fmt: skip
        return LaunchedChild(popen=popen, log=log)
    process = fork_context().Process(target=launch.child, args=(str(spec_path),), name=spec_path.parent.name)
    process.start()
    return ForkedChild(process=process)


def stop_child(child: Child) -> None:
    """SIGTERM, then SIGKILL after the grace period: the child must not outlive its supervision."""
    child.signal(signal.SIGTERM)
    deadline = time.monotonic() + settings.TRAINING_CANCEL_GRACE_SECONDS
    while child.exit_code() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if child.exit_code() is None:
        child.signal(signal.SIGKILL)

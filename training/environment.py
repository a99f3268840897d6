"""Facts about the machine a job runs on: library versions, hardware, and the offline environment every model
load runs under. Nothing here imports torch at module import, so the web process can use it."""

import importlib.metadata
import importlib.util
import os
import platform
import socket
from typing import Any

# Every process that touches a model runs with these: nothing is ever fetched from a hub.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}
# One torch thread per process on CPU: with two, a step ran many times slower while the other core was busy
# (bench/training_jobs.py, docs/PERFORMANCE.md).
# A fixed hash seed, because PEFT writes target modules from a set into adapter_config.json: without it the
# order, and so the file's sha256, changes between worker restarts.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}

LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "safetensors", "tokenizers")


def apply_offline_env() -> None:
    """Set the offline and thread variables in this process (before torch or transformers are imported)."""
    os.environ.update(OFFLINE_ENV)
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def has_bitsandbytes() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def has_flash_attention() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def hardware() -> dict[str, Any]:
    """The host, CPU and accelerators as torch sees them (imports torch: call it on a worker)."""
    import torch

    devices = [
        {
            "name": torch.cuda.get_device_name(index),
            "memory_bytes": int(torch.cuda.get_device_properties(index).total_memory),
        }
        for index in range(torch.cuda.device_count())
    ]
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if devices else "cpu",
        "cuda": torch.version.cuda or "",
        "devices": devices,
    }

"""Facts about the machine a job runs on: library versions, hardware, and the offline environment every model
load runs under. Nothing here imports torch at module import, so the web process can use it."""

import importlib.metadata
import importlib.util
import os
import platform
import socket
from typing import Any

from core.offline import OFFLINE_ENV as OFFLINE_ENV
from core.offline import THREAD_ENV as THREAD_ENV
from core.offline import apply_offline_env as apply_offline_env

LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "safetensors", "tokenizers")


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

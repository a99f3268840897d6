"""The environment every process that loads a model runs under: nothing is fetched from a hub, and one torch
thread per process on CPU. Pure: imports neither torch nor transformers, so the web process may use it; the
training floor and the releases floor's embedding model both set it before their first transformers import."""

import os

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


def apply_offline_env() -> None:
    """Set the offline and thread variables in this process (before torch or transformers are imported)."""
    os.environ.update(OFFLINE_ENV)
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)

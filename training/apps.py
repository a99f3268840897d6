from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Base-model registry, SFT/DPO LoRA jobs on the gpu queue, adapters and their lineage."""

    name = "training"

from django.apps import AppConfig


class RoundsConfig(AppConfig):
    """On-policy rounds of a project: the deployed policy answers new prompts, experts rank the pairs a pair
    policy chose (the reward model's least sure, say), and the preference release of that round continues the
    policy's LoRA weights with DPO; evaluated blind against the policy and promoted with four eyes."""

    name = "rounds"

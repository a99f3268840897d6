from django.apps import AppConfig


class RoundsConfig(AppConfig):
    """On-policy rounds of a project: the deployed policy answers new prompts, experts rank the pairs a pair
    policy chose (the reward model's least sure, say), and the preference release of that round continues the
    policy's LoRA weights with DPO; evaluated blind against the policy and promoted with four eyes."""

    name = "rounds"

    def ready(self) -> None:
        from core.followups import followup_register
        from core.marks import marks_register
        from rounds.followups import on_ended
        from rounds.selectors import round_marks

        followup_register(on_ended)
        marks_register(round_marks)

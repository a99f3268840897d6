from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    """After the adapter: candidate generation on the gpu queue, blind side-by-side evaluation against the model
    in use, and deployment targets with four-eyes promotion and rollback."""

    name = "evaluation"

    def ready(self) -> None:
        from core.figures import figures_register
        from evaluation.reward_agreement import reward_agreement_figures

        figures_register("reward_models", reward_agreement_figures)

from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    """After the adapter: candidate generation on the gpu queue, blind side-by-side evaluation against the model
    in use, and deployment targets with four-eyes promotion and rollback."""

    name = "evaluation"

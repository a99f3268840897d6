from django.apps import AppConfig


class EnclaveConfig(AppConfig):
    """Wiring only: management commands that span apps, the health task and project-wide templates."""

    name = "enclave"
    verbose_name = "Enclave"

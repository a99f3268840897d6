from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """The ground floor: users, projects, roles, object permissions, API tokens and the audit chain."""

    name = "accounts"

    def ready(self) -> None:
        from accounts import signals

        signals.connect()

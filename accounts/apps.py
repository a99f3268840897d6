from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """The ground floor: users, projects, roles, object permissions, API tokens and the audit chain."""

    name = "accounts"

    def ready(self) -> None:
        from django.urls import register_converter

        from accounts import signals
        from core.http import IdConverter

        signals.connect()
        register_converter(IdConverter, "id")  # before any URLconf is read

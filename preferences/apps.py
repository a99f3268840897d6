from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    """Preference collection: comparisons, judgements, gold items, agreement and adjudication."""

    name = "preferences"

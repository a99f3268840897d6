from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    """Preference collection: comparisons, judgements, gold items, agreement and adjudication."""

    name = "preferences"

    def ready(self) -> None:
        from annotation.peer_import import judgement_writer_register
        from preferences.peer_judgements import judgements_import

        judgement_writer_register(judgements_import)

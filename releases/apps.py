from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "releases"
    verbose_name = "Dataset releases"

    def ready(self) -> None:
        from core.followups import followup_register
        from releases.followups import on_ended

        followup_register(on_ended)

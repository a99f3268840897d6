from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "releases"
    verbose_name = "Dataset releases"

    def ready(self) -> None:
        from core.figures import figures_register
        from core.followups import followup_register
        from releases.followups import on_ended
        from releases.selectors import drift_badge

        followup_register(on_ended)
        figures_register("eval_drift", drift_badge)

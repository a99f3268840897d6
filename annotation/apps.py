from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    """SFT annotation: imports, PII scrubbing, rubrics, the assignment queue, labeling and review."""

    name = "annotation"

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    """What a regulator or a data subject asks of the whole chain: the signed dossier of how an adapter was made
    (EU AI Act Art. 10 and 12) and the erasure of one data subject's text with the releases and adapters it
    taints; retention of what is kept only for a while."""

    name = "governance"

    def ready(self) -> None:
        from core.marks import marks_register
        from governance.selectors import taint_marks

        marks_register(taint_marks)

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import services
from accounts.models import Project, Role, User

DEMO_PASSWORD = "enclave-demo"  # noqa: S105 - printed on purpose: these accounts exist only in the demo

DEMO_USERS: list[tuple[str, str, bool]] = [
    ("annotator", "Dr. Ana Okafor (annotator)", False),
    ("reviewer", "Rui Santos (reviewer)", False),
    ("datalead", "Dana Lindqvist (data lead)", False),
    ("projectadmin", "Priya Admin (project admin)", False),
    ("outsider", "Otto Sider (other project)", False),
    ("staff", "Site staff", True),
]

DEMO_PROJECT = "Retail banking support (demo)"
OTHER_PROJECT = "Claims triage (demo)"


class Command(BaseCommand):
    help = "Create demo accounts (one per role, an outsider and site staff) and demo projects. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even with production settings (never do this).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if str(settings.SETTINGS_MODULE).endswith("production") and not options["allow_production"]:
            raise CommandError("Refusing to create demo accounts with a known password under production settings.")
        with transaction.atomic():
            users = {name: self._user(name, label, staff) for name, label, staff in DEMO_USERS}
            staff = users["staff"]
            project = self._project(staff, DEMO_PROJECT, "Customer-support conversations of a retail bank.")
            for name, role in [
                ("annotator", Role.ANNOTATOR),
                ("reviewer", Role.REVIEWER),
                ("datalead", Role.DATA_LEAD),
                ("projectadmin", Role.PROJECT_ADMIN),
            ]:
                self._member(staff, project, users[name], role)
            other = self._project(staff, OTHER_PROJECT, "Insurance claim notes; only the outsider belongs here.")
            self._member(staff, other, users["outsider"], Role.PROJECT_ADMIN)
        if options["verbosity"] >= 1:
            self.stdout.write(f"Demo accounts (password “{DEMO_PASSWORD}”): " + ", ".join(users))

    def _user(self, username: str, label: str, staff: bool) -> User:
        existing = User.objects.filter(username=username).first()
        if existing:
            return existing
        return services.user_create(
            actor=None, username=username, display_name=label, password=DEMO_PASSWORD, is_staff=staff
        )

    def _project(self, actor: User, name: str, description: str) -> Project:
        existing = Project.objects.filter(name=name).first()
        return existing or services.project_create(actor=actor, name=name, description=description)

    def _member(self, actor: User, project: Project, user: User, role: str) -> None:
        if not project.memberships.filter(user=user).exists():
            services.membership_add(actor=actor, project=project, user=user, role=role)

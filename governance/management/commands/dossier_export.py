from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from core.errors import DomainError
from governance.services import dossier_export
from training.models import Adapter


class Command(BaseCommand):
    help = (
        "Export an adapter's signed dossier (EU AI Act Art. 10(2) and 12) into DIR (new or empty): dossier.html, "
        "dossier.pdf, dossier.json, every file it cites, manifest.json signed in manifest.sig, public_key.pem and "
        "the standalone verify_dossier.py. The export is audited as the --as user (site staff)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("adapter", type=int, help="the adapter's id")
        parser.add_argument("directory", type=Path)
        parser.add_argument(
            "--as", dest="username", default="", help="the site staff user who exports (default: the first superuser)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        adapter = (
            Adapter.objects.select_related("project", "job", "release", "base_model", "started_by")
            .filter(pk=options["adapter"])
            .first()
        )
        if adapter is None:
            raise CommandError(f"There is no adapter #{options['adapter']}.")
        actor = self._actor(options["username"])
        try:
            exported = dossier_export(actor=actor, adapter=adapter, directory=options["directory"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Dossier of adapter #{adapter.pk} written to {exported.directory}: {exported.files} files, manifest "
                f"sha256 {exported.manifest_sha256}, signed by key {exported.fingerprint}."
            )
        )

    def _actor(self, username: str) -> User:
        staff = User.objects.filter(is_active=True).filter(is_staff=True) | User.objects.filter(
            is_active=True, is_superuser=True
        )
        actor = staff.filter(username=username).first() if username else staff.order_by("pk").first()
        if actor is None:
            raise CommandError(
                f"No active site staff user {username!r}." if username else "No active site staff user to export as."
            )
        return actor

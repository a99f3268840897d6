from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from releases.exporters import FORMAT_LABELS
from releases.models import Release
from releases.services import export_to_directory


class Command(BaseCommand):
    help = "Write a built release's files (all formats, or those named) to a directory, checking each hash."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("release_id", type=int)
        parser.add_argument("directory", type=Path)
        parser.add_argument("--format", action="append", default=[], choices=sorted(FORMAT_LABELS), dest="formats")

    def handle(self, *args: Any, release_id: int, directory: Path, formats: list[str], **options: Any) -> None:
        release = Release.objects.filter(pk=release_id).first()
        if release is None:
            raise CommandError(f"No release #{release_id}.")
        try:
            written = export_to_directory(release=release, target=directory, formats=formats)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        for path in written:
            self.stdout.write(str(path))
        self.stdout.write(f"{len(written)} files of {release} ({release.hash}) written to {directory}")

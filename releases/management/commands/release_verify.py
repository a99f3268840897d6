from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases.models import Release
from releases.services import release_verify


class Command(BaseCommand):
    help = "Re-hash every file of a release and its manifest; exit 1 on any mismatch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("release_id", type=int)

    def handle(self, *args: Any, release_id: int, **options: Any) -> None:
        release = Release.objects.filter(pk=release_id).first()
        if release is None:
            raise CommandError(f"No release #{release_id}.")
        problems = release_verify(release=release)
        if problems:
            for problem in problems:
                self.stderr.write(f"MISMATCH {problem}")
            raise CommandError(f"{release} (#{release.pk}) failed verification: {len(problems)} problem(s).")
        self.stdout.write(f"OK {release} (#{release.pk}) {release.hash}: {release.files.count()} files verified")

import io
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.verify_dossier import MANIFEST, verify


class Command(BaseCommand):
    help = (
        "Verify a dossier directory: the manifest's Ed25519 signature, every file's size and sha256, no file "
        "unlisted, and each audit event's hash and place in the chain. Exits non-zero naming the files that fail. "
        "(The bundle's verify_dossier.py makes the same checks without Enclave.)"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--public-key", type=Path, help="the site's public key (PEM), instead of the bundle's")

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["directory"]
        if not (directory / MANIFEST).is_file():
            raise CommandError(f"{directory} is not a dossier: it has no {MANIFEST}.")
        out = io.StringIO()
        failed = verify(directory, options["public_key"], out=out)
        self.stdout.write(out.getvalue().rstrip("\n"))
        if failed:
            raise CommandError(f"Dossier verification FAILED: {', '.join(failed)}")
        self.stdout.write(self.style.SUCCESS("Dossier verified: every file is as signed."))

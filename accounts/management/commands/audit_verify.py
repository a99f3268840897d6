from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit chain and report the first broken link. Exits non-zero if the chain is broken."

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit_chain_verify()
        if not result.ok:
            raise CommandError(
                f"Audit chain BROKEN at event #{result.broken_seq}: {result.reason}. "
                f"{result.checked} events before it are intact "
                f"(last good #{result.head_seq}, {result.head_hash})."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {result.checked} events, head #{result.head_seq} {result.head_hash}"
            )
        )

"""Mint an API token for a named user from the server's shell, so automation needs no browser session."""

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from accounts.services import api_token_create
from core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME and print it once (it is never shown again; only its digest is "
        "stored). The audit log records the token, its owner and the operator's system account. Refuses "
        "deactivated accounts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The account the token acts as.")
        parser.add_argument(
            "--name", default="issued by an operator", help="What the token is for, e.g. 'nightly export'."
        )
        parser.add_argument("--days", type=int, default=90, help="Days until the token expires (1–365, default 90).")
        parser.add_argument(
            "--quiet", action="store_true", help="Print only the token (for `TOKEN=$(manage.py api_token_issue …)`)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named “{options['username']}”.")
        try:
            token, raw = api_token_create(
                user=user, name=options["name"], days=options["days"], via="command", operator=_operator()
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if options["quiet"]:
            self.stdout.write(raw)
            return
        self.stdout.write(
            f"Token “{token.info.name}” for {user.username}, valid until {token.expiry:%Y-%m-%d %H:%M} UTC "
            f"(prefix {token.token_key}). Shown only now:\n{raw}"
        )


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the process's uid (a bare container)
        return "unknown"

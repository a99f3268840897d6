"""The skeleton every idempotent submit shares (an annotation, a judgement): a key from the page, a resend
recognised, a changed resend refused, and two tabs racing to store first.

A submit page carries a key made when it was rendered. The same key again is the same submission sent
again (a double click, a retry after a lost answer): with the same content it answers with what was
stored; with other content (the page submitted again after the Back button) it is refused as a conflict,
so nobody is told that changes were saved when they were not. Each submit then only says how to find
what is stored under its key, what "the same content" means, and how to record a new one.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import IntegrityError

from core.errors import DomainError

T = TypeVar("T")
R = TypeVar("R")

KEY_LENGTH = 64


def submission_key(raw: str, *, missing: str) -> str:
    """The key a page sent, trimmed to what is stored. Raises ``DomainError(missing)`` when there is none."""
    key = raw.strip()[:KEY_LENGTH]
    if not key:
        raise DomainError(missing)
    return key


@dataclass(frozen=True)
class Resend(Generic[T]):
    """How one submission recognises itself sent again.

    ``stored`` finds what is stored under this submission's key (None when nothing is; it may raise when
    the key belongs to somebody else's record); ``same`` says whether the resent content is what that
    record holds; ``changed`` is the message of a resend with other content, ``taken`` the message when
    another submission of the same user and object was stored first (both conflicts, 409)."""

    stored: Callable[[], T | None]
    same: Callable[[T], bool]
    changed: str
    taken: str

    def answer(self, stored: T) -> T:
        """``stored`` when the resend carries what it holds; else the conflict that says nothing was saved."""
        if self.same(stored):
            return stored
        raise DomainError(self.changed, status=409)

    def taken_error(self) -> DomainError:
        return DomainError(self.taken, status=409)

    def record(self, write: Callable[[], R]) -> R | T:
        """Run ``write``, which stores a new record under the key. When a unique index refuses it because a
        racing submission (another tab, a retry) stored first, answer as that submission's resend, or with
        the ``taken`` conflict when it stored something else. ``write`` opens its own transaction (or
        savepoint), so the refused insert is rolled back before the stored record is read."""
        try:
            return write()
        except IntegrityError:
            pass  # answered below, outside the handler: the refused insert is not the error to report
        stored = self.stored()
        if stored is None:
            raise self.taken_error()
        return self.answer(stored)

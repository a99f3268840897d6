"""What an erasure searches for: an exact text or a regular expression, and where it matches in a text.

Regular expressions never run in Python (``re`` backtracks: a pattern like ``(a+)+$`` can take years on a
line of text): they run in PostgreSQL, whose engine does not backtrack catastrophically, under a statement
timeout, with a length cap on the pattern. Exact text runs as a plain substring search. Either way the
answer is the set of literal texts that matched, and replacing means replacing those literals, so the
database and every file get the same treatment."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, OperationalError, connection, transaction

from core.errors import DomainError
from governance.models import MatchMode

MAX_TERM = 200
MIN_EXACT = 3
TOMBSTONE = "[ERASED]"
STATEMENT_TIMEOUT_MS = 10_000
_BATCH = 500


@dataclass(frozen=True)
class Matcher:
    mode: str
    term: str

    @classmethod
    def checked(cls, mode: str, term: str) -> "Matcher":
        """A matcher for ``term``. Raises ``DomainError`` for an empty, too short or too long term, an unknown
        mode, a pattern PostgreSQL refuses or one that matches empty text (it would erase everything)."""
        if mode not in MatchMode.values:
            raise DomainError("Search for an exact text or a pattern.", field="mode")
        if not term or not term.strip():
            raise DomainError("Give the text to search for.", field="term")
        if len(term) > MAX_TERM:
            raise DomainError(f"Search for at most {MAX_TERM} characters.", field="term")
        if "\x00" in term:
            raise DomainError("The search text holds a NUL character.", field="term")
        try:
            term.encode("utf-8")
        except UnicodeEncodeError:
            raise DomainError("The search text is not valid Unicode text.", field="term") from None
        if mode == MatchMode.EXACT and len(term.strip()) < MIN_EXACT:
            raise DomainError(f"Search for at least {MIN_EXACT} characters.", field="term")
        matcher = cls(mode, term)
        if mode == MatchMode.PATTERN and connection.vendor != "postgresql":
            raise DomainError(
                "Patterns are searched by PostgreSQL; this installation runs on SQLite: search for exact text.",
                field="mode",
            )
        if mode == MatchMode.PATTERN:
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    _limit(cursor)
                    cursor.execute("SELECT '' ~ %s", [term])
                    empty = cursor.fetchone()[0]
            except DatabaseError as exc:
                message = str(exc).split("\n")[0]
                raise DomainError(f"The pattern is not a valid regular expression: {message}", field="term") from None
            if empty:
                raise DomainError("The pattern matches empty text: it would erase everything.", field="term")
        return matcher

    def condition(self, expression: str) -> tuple[str, list[Any]]:
        """SQL that is true where ``expression`` (text) holds a match, with its parameters."""
        if self.mode == MatchMode.EXACT:
            return f"strpos({expression}, %s) > 0", [self.term]
        return f"{expression} ~ %s", [self.term]

    def found(self, texts: Sequence[str]) -> list[list[str]]:
        """For each text, the distinct literal texts that match in it (longest first)."""
        if self.mode == MatchMode.EXACT:
            return [[self.term] if self.term in text else [] for text in texts]
        results: list[set[str]] = [set() for _ in texts]
        for start in range(0, len(texts), _BATCH):
            chunk = [text.replace("\x00", "") for text in texts[start : start + _BATCH]]
            candidates = [n for n, text in enumerate(chunk) if text]
            if not candidates:
                continue
            with transaction.atomic(), connection.cursor() as cursor:
                _limit(cursor)
                cursor.execute(
                    "SELECT t.n, regexp_substr(t.s, %s, 1, g.i) FROM unnest(%s::int[], %s::text[]) AS t(n, s), "
                    "LATERAL generate_series(1, regexp_count(t.s, %s)) AS g(i)",
                    [self.term, candidates, [chunk[n] for n in candidates], self.term],
                )
                for n, literal in cursor.fetchall():
                    if literal:
                        results[start + n].add(literal)
        return [sorted(found, key=lambda s: (-len(s), s)) for found in results]


def _limit(cursor: Any) -> None:
    cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")


def limit_statements() -> None:
    """Inside a transaction on PostgreSQL: no statement of it runs longer than the timeout."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            _limit(cursor)


@contextmanager
def time_limited() -> Iterator[None]:
    """Turn a statement cancelled by the timeout into a clear refusal."""
    try:
        yield
    except OperationalError as exc:
        if "statement timeout" not in str(exc):
            raise
        raise DomainError(
            f"The search took longer than {STATEMENT_TIMEOUT_MS // 1000} s: make the pattern more specific.",
            field="term",
        ) from None


def replace(text: str, literals: Sequence[str]) -> tuple[str, int]:
    """``text`` with every occurrence of the literals (longest first) replaced by the tombstone, and how many."""
    count = 0
    for literal in sorted(literals, key=lambda s: (-len(s), s)):
        hits = text.count(literal)
        if hits:
            count += hits
            text = text.replace(literal, TOMBSTONE)
    return text, count


def strings_in(value: Any) -> Iterator[str]:
    """Every string value in a JSON value (not the keys of objects)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for element in value:
            yield from strings_in(element)
    elif isinstance(value, dict):
        for element in value.values():
            yield from strings_in(element)


def replace_in(value: Any, literals_of: dict[str, list[str]]) -> tuple[Any, int]:
    """A JSON value with its strings rewritten by ``literals_of`` (string → literals found in it)."""
    if isinstance(value, str):
        literals = literals_of.get(value)
        return replace(value, literals) if literals else (value, 0)
    if isinstance(value, list):
        total, out = 0, []
        for element in value:
            new, count = replace_in(element, literals_of)
            out.append(new)
            total += count
        return out, total
    if isinstance(value, dict):
        total, mapped = 0, {}
        for key, element in value.items():
            mapped[key], count = replace_in(element, literals_of)
            total += count
        return mapped, total
    return value, 0


def context(text: str, literal: str, width: int = 60) -> tuple[str, str, str]:
    """The first occurrence of ``literal`` in ``text`` with up to ``width`` characters either side."""
    at = text.find(literal)
    if at < 0:
        return "", literal, ""
    before = text[max(0, at - width) : at]
    after = text[at + len(literal) : at + len(literal) + width]
    return ("…" if at > width else "") + before, literal, after + ("…" if at + len(literal) + width < len(text) else "")

"""Streaming, validating parser for imports of real interactions: chat transcripts, prompt/response pairs, CSV,
and preference comparisons (one context, several candidate answers to compare).

``parse`` reads a binary file object one physical line at a time and yields a ``Record`` for every usable line
(or CSV row) and a ``LineError`` for every unusable one, so an upload of any size is processed in bounded memory
and one bad line never sinks the whole import. Pure Python on purpose (no Django), so views, Celery tasks and
scripts can all use it.

Besides the rules of each format, the parser rejects text that PostgreSQL would refuse later (NUL characters,
unpaired surrogates from ``\\ud800``-style JSON escapes, non-finite numbers in metadata), because failing at
import time with a line number is far kinder than failing at insert time without one.

The formats live beside it: ``parsing_jsonl`` (the JSON Lines formats) and ``parsing_csv``; this module holds
the records, the reading of lines and the checks all formats share.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import math
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_CANDIDATES",
    "MAX_ID_CHARS",
    "MIN_CANDIDATES",
    "ROLES",
    "CandidateRecord",
    "CsvMapping",
    "ImportFormat",
    "Invalid",
    "Limits",
    "LineError",
    "Message",
    "Record",
    "check_json_storable",
    "check_storable",
    "content_hash",
    "json_type",
    "normalise_for_dedup",
    "parse",
]

ROLES = frozenset({"system", "user", "assistant", "tool"})
MAX_ID_CHARS = 200
MIN_CANDIDATES = 2
MAX_CANDIDATES = 20

_BOM = codecs.BOM_UTF8
# Lines over the limit are skipped in chunks of this size, so a 2 GB line costs 64 KB of memory, not 2 GB.
_DRAIN_CHUNK = 64 * 1024


class ImportFormat(StrEnum):
    CHAT_JSONL = "chat_jsonl"
    PROMPT_RESPONSE_JSONL = "prompt_response_jsonl"
    CSV = "csv"
    COMPARISON_JSONL = "comparison_jsonl"


@dataclass(frozen=True)
class CsvMapping:
    """Which CSV header columns hold what; only ``prompt`` is required."""

    prompt: str
    response: str | None = None
    system: str | None = None
    id: str | None = None
    metadata: tuple[str, ...] = ()

    def columns(self) -> list[str]:
        """Return every mapped column name once, in mapping order."""
        named = [self.prompt, self.response, self.system, self.id, *self.metadata]
        return list(dict.fromkeys(name for name in named if name is not None))


@dataclass(frozen=True)
class Limits:
    max_chars_per_message: int = 32_000
    max_messages: int = 200
    max_line_bytes: int = 1_000_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class CandidateRecord:
    """One answer of a comparison, with where it came from (provenance strings are stripped, "" when not given)."""

    content: str
    model: str = ""
    version: str = ""
    adapter: str = ""
    decoding: dict[str, Any] = field(default_factory=dict)  # sampling settings such as temperature
    extra: dict[str, Any] = field(default_factory=dict)  # every other key of the candidate object, as given

    def provenance(self) -> dict[str, Any]:
        """Return everything but the content as a JSON-ready dict."""
        return {
            "model": self.model,
            "version": self.version,
            "adapter": self.adapter,
            "decoding": self.decoding,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class Record:
    line: int  # 1-based physical line number; for CSV the line where the row starts
    messages: tuple[Message, ...]
    response: str | None  # the model's answer to be reviewed, if the import carries one
    external_id: str | None
    metadata: dict[str, Any]
    # Comparisons only: the answers to compare (in file order; never fewer than MIN_CANDIDATES) ...
    candidates: tuple[CandidateRecord, ...] = ()
    # ... and the known verdict of a gold item, as given: a 1-based candidate number, "tie", or a ranking as a
    # list of groups of 1-based candidate numbers, best group first (``[[2], [1, 3]]``). None when not given.
    gold: Any = None


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str


class BinaryLineSource(Protocol):
    """What ``parse`` needs from a file: ``readline`` with a size limit, returning bytes (BinaryIO, uploads, raw IO)."""

    def readline(self, size: int = -1, /) -> bytes: ...


class Invalid(Exception):
    """A line (or row, or another tool's task) is unusable; ``reason`` is the sentence shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RawLine(NamedTuple):
    number: int
    data: bytes | None  # the line including its terminator; None when it was over the limit and skipped
    size: int  # bytes without the terminator (for a skipped line: how long it really was)
    odd_quotes: bool  # skipped line only: whether it held an odd number of '"', which CSV recovery needs


def parse(
    stream: BinaryLineSource,
    fmt: ImportFormat | str,
    *,
    csv_mapping: CsvMapping | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[Record | LineError]:
    """Parse an import file lazily, one line (CSV: one row) at a time.

    Returns an iterator yielding, in file order, a ``Record`` for each usable line and exactly one ``LineError``
    for each unusable one; blank lines yield nothing. Nothing is read before the iterator is consumed, and the
    stream is neither rewound nor closed.

    Raises:
        ValueError: at once, if ``fmt`` is not a known format, CSV is asked for without ``csv_mapping``, or a
            limit is not positive.
        TypeError: while iterating, if the stream returns text instead of bytes.
        OSError: while iterating, whatever reading the stream raises.
    """
    fmt = ImportFormat(fmt)
    if min(limits.max_chars_per_message, limits.max_messages, limits.max_line_bytes) < 1:
        raise ValueError(f"every limit must be at least 1: {limits}")
    if isinstance(stream, io.RawIOBase):
        # IOBase.readline on an unbuffered stream reads one byte per call; buffering makes that thousands of
        # times cheaper without changing what is read.
        stream = io.BufferedReader(stream)
    lines = _read_lines(stream, limits.max_line_bytes)  # a generator: nothing is read until iteration starts
    if fmt is ImportFormat.CSV:
        if csv_mapping is None:
            raise ValueError("CSV imports need a csv_mapping")
        from annotation.parsing_csv import parse_csv

        return parse_csv(lines, csv_mapping, limits)
    from annotation.parsing_jsonl import BUILDERS, parse_jsonl  # they stand on this module's types and checks

    return parse_jsonl(lines, BUILDERS[fmt], limits)


def normalise_for_dedup(
    messages: Sequence[Message], response: str | None, candidates: Sequence[CandidateRecord | str] = ()
) -> str:
    """Return a canonical text of a conversation (and of the candidates of a comparison) for spotting duplicates.

    Each text is NFC-normalised, casefolded, stripped and has every run of whitespace collapsed to one space, so
    it never contains a newline; the parts are therefore joined with newlines, each prefixed by its role
    (``<user> ...``), the response by ``<response>`` and each candidate by ``<candidate>``, which keeps different
    splits from colliding. Candidates are sorted, so the same comparison with its candidates in another order
    gives the same text; provenance plays no part. Without candidates the text is what it always was.
    """
    parts = [f"<{_fold(message.role)}> {_fold(message.content)}" for message in messages]
    if response is not None:
        parts.append(f"<response> {_fold(response)}")
    folded = (_fold(item if isinstance(item, str) else item.content) for item in candidates)
    parts.extend(f"<candidate> {text}" for text in sorted(folded))
    return "\n".join(parts)


def content_hash(
    messages: Sequence[Message], response: str | None, candidates: Sequence[CandidateRecord | str] = ()
) -> str:
    """Return the SHA-256 hex digest of ``normalise_for_dedup(messages, response, candidates)``."""
    # surrogatepass so a hand-built Message with a lone surrogate still hashes instead of raising.
    text = normalise_for_dedup(messages, response, candidates)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


# --- reading -----------------------------------------------------------------------------------------------------


def _read_lines(stream: BinaryLineSource, max_line_bytes: int) -> Iterator[RawLine]:
    """Yield the stream's physical lines (split on LF only), never holding more than the limit of one line.

    A UTF-8 BOM at the very start is dropped. Lines over ``max_line_bytes`` (terminator excluded) come back with
    ``data=None`` after being skipped chunk by chunk.

    Raises:
        TypeError: if the stream yields text rather than bytes.
    """
    # Room for "\r\n" after a line of exactly the limit, so such a line is not mistaken for an overlong one.
    limit = max_line_bytes + 2
    number = 0
    while True:
        # The first read may carry a 3-byte BOM that must not count against the limit.
        read_limit = limit + len(_BOM) if number == 0 else limit
        data = stream.readline(read_limit)
        if number == 0 and not isinstance(data, bytes):
            raise TypeError(f"parse() needs a binary stream, but readline() returned {type(data).__name__}")
        if not data:
            return
        number += 1
        hit_limit = len(data) == read_limit and not data.endswith(b"\n")
        if number == 1 and data.startswith(_BOM):
            data = data[len(_BOM) :]
        if hit_limit:
            size, odd_quotes = _skip_rest_of_line(stream, data)
            yield RawLine(number, None, size, odd_quotes)
            continue
        size = len(data) - (2 if data.endswith(b"\r\n") else 1 if data.endswith((b"\n", b"\r")) else 0)
        if size > max_line_bytes:
            yield RawLine(number, None, size, data.count(b'"') % 2 == 1)
        else:
            yield RawLine(number, data, size, False)


def _skip_rest_of_line(stream: BinaryLineSource, head: bytes) -> tuple[int, bool]:
    """Consume the rest of an overlong line; return its full length without terminator and its quote parity."""
    size = len(head)
    quotes = head.count(b'"')
    previous = head[-1:]
    while True:
        chunk = stream.readline(_DRAIN_CHUNK)
        if not chunk:
            return size, quotes % 2 == 1
        size += len(chunk)
        quotes += chunk.count(b'"')
        if chunk.endswith(b"\n"):
            # A "\r\n" terminator may straddle two chunks, so look back into the previous one when needed.
            before = chunk[-2:-1] if len(chunk) >= 2 else previous
            return size - (2 if before == b"\r" else 1), quotes % 2 == 1
        previous = chunk[-1:]


def too_long_line(size: int, limits: Limits) -> str:
    return f"line is too long ({size:,} bytes; the limit is {limits.max_line_bytes:,})"


def not_utf8(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at position {exc.start + 1})"


# --- shared checks -----------------------------------------------------------------------------------------------


def clean_text(value: str, label: str, limits: Limits, *, empty: str) -> str:
    """Return ``value`` with CRLF turned into LF and nothing else changed.

    Raises:
        Invalid: with ``empty`` if it is blank; otherwise if it is too long or holds a NUL or lone surrogate.
    """
    text = value.replace("\r\n", "\n") if "\r" in value else value
    if not text.strip():
        raise Invalid(empty)
    if len(text) > limits.max_chars_per_message:
        raise Invalid(f"{label} is too long ({len(text):,} characters; the limit is {limits.max_chars_per_message:,})")
    check_storable(text, label)
    return text


def clean_id(value: str, label: str) -> str | None:
    """Return the stripped id, or None if blank.

    Raises:
        Invalid: if it is longer than MAX_ID_CHARS or holds a NUL or lone surrogate.
    """
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_ID_CHARS:
        raise Invalid(f"{label} is too long ({len(text):,} characters; the limit is {MAX_ID_CHARS})")
    check_storable(text, label)
    return text


def check_storable(text: str, label: str) -> None:
    """Raise Invalid if the text holds a NUL or an unpaired surrogate, both of which PostgreSQL refuses."""
    if "\x00" in text:
        raise Invalid(f"{label} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{label} contains an unpaired surrogate (a broken \\u escape)") from None


def json_type(value: object) -> str:
    """Return the JSON name of a value's type with its article, for error messages ("an array")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def show(text: str, limit: int = 40) -> str:
    """Return a quoted, escaped and shortened form of user text for an error message."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def check_json_storable(value: Any, label: str) -> None:
    """Raise Invalid if any key or value would be refused by PostgreSQL's jsonb (NUL, lone surrogate, NaN)."""
    # Iterative, because json.loads accepts nesting deeper than a recursive walk could safely follow.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            check_storable(item, label)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise Invalid(f"{label} contains a number that is not finite (NaN or Infinity)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)

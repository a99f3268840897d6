"""Streaming, validating parser for imports of real interactions: chat transcripts, prompt/response pairs, CSV,
and preference comparisons (one context, several candidate answers to compare).

``parse`` reads a binary file object one physical line at a time and yields a ``Record`` for every usable line
(or CSV row) and a ``LineError`` for every unusable one, so an upload of any size is processed in bounded memory
and one bad line never sinks the whole import. Pure Python on purpose (no Django), so views, Celery tasks and
scripts can all use it.

Besides the rules of each format, the parser rejects text that PostgreSQL would refuse later (NUL characters,
unpaired surrogates from ``\\ud800``-style JSON escapes, non-finite numbers in metadata), because failing at
import time with a line number is far kinder than failing at insert time without one.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import unicodedata
from collections.abc import Callable, Iterator, Sequence
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
# The keys of a candidate object that have a field of their own; any other key is kept in ``extra``.
_CANDIDATE_KEYS = frozenset({"content", "model", "version", "adapter", "decoding"})
_GOLD_TIE = "tie"

_BOM = codecs.BOM_UTF8
# Lines over the limit are skipped in chunks of this size, so a 2 GB line costs 64 KB of memory, not 2 GB.
_DRAIN_CHUNK = 64 * 1024
# JSON's own whitespace: a line holding only these is blank. Wider Unicode whitespace is left to json to reject.
_JSON_BLANK = " \t\r\n"
# Header lists in error messages are cut here so a 5,000-column header does not make a 50 KB reason.
_MAX_COLUMNS_SHOWN = 20


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


class _RawLine(NamedTuple):
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
        return _parse_csv(lines, csv_mapping, limits)
    builders = {
        ImportFormat.CHAT_JSONL: _chat_record,
        ImportFormat.PROMPT_RESPONSE_JSONL: _prompt_response_record,
        ImportFormat.COMPARISON_JSONL: _comparison_record,
    }
    return _parse_jsonl(lines, builders[fmt], limits)


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


def _read_lines(stream: BinaryLineSource, max_line_bytes: int) -> Iterator[_RawLine]:
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
            yield _RawLine(number, None, size, odd_quotes)
            continue
        size = len(data) - (2 if data.endswith(b"\r\n") else 1 if data.endswith((b"\n", b"\r")) else 0)
        if size > max_line_bytes:
            yield _RawLine(number, None, size, data.count(b'"') % 2 == 1)
        else:
            yield _RawLine(number, data, size, False)


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


def _too_long_line(size: int, limits: Limits) -> str:
    return f"line is too long ({size:,} bytes; the limit is {limits.max_line_bytes:,})"


def _not_utf8(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at position {exc.start + 1})"


# --- JSON Lines --------------------------------------------------------------------------------------------------


def _parse_jsonl(
    lines: Iterator[_RawLine], build: Callable[[dict[str, Any], int, Limits], Record], limits: Limits
) -> Iterator[Record | LineError]:
    for raw in lines:
        if raw.data is None:
            yield LineError(raw.number, _too_long_line(raw.size, limits))
            continue
        try:
            text = raw.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield LineError(raw.number, _not_utf8(exc))
            continue
        if not text.strip(_JSON_BLANK):
            continue
        result: Record | LineError
        try:
            obj = _load_json(text)
            if not isinstance(obj, dict):
                raise Invalid(f"the line must be a JSON object, not {json_type(obj)}")
            result = build(obj, raw.number, limits)
        except Invalid as exc:
            result = LineError(raw.number, exc.reason)
        yield result


def _load_json(text: str) -> Any:
    """Return the decoded JSON value of one line.

    Raises:
        Invalid: if the text is not JSON, nests too deeply, or holds a number with too many digits.
    """
    try:
        # Without its line ending: a line cut off mid-object is reported where it ends, not at "column 1"
        # of a line after it.
        return json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        raise Invalid(f"invalid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}") from None
    except RecursionError:
        raise Invalid("invalid JSON: nested too deeply") from None
    except ValueError:
        # Python refuses integers of more than 4,300 digits (int_max_str_digits) with a plain ValueError.
        raise Invalid("invalid JSON: a number has too many digits") from None


def _chat_record(obj: dict[str, Any], line: int, limits: Limits) -> Record:
    """Return the record of one chat line.

    Raises:
        Invalid: for the first problem found, messages first.
    """
    if "messages" not in obj:
        raise Invalid("missing field 'messages'")
    messages = _json_messages(obj, limits)
    response = None
    if messages[-1].role == "assistant":
        response = messages.pop().content
        if not messages or messages[-1].role != "user":
            raise Invalid("the conversation must end with a user message before the response")
    elif messages[-1].role != "user":
        # Without a response there must be something for the model to answer; a trailing system or tool turn
        # is almost always a truncated export.
        raise Invalid("the conversation must end with a user message or an assistant response")
    return Record(line, tuple(messages), response, _json_external_id(obj), _json_metadata(obj))


def _json_messages(obj: dict[str, Any], limits: Limits) -> list[Message]:
    """Return the validated messages of a line that has a ``messages`` key.

    Raises:
        Invalid: if it is not a non-empty list, is too long, or a message is unusable.
    """
    items = obj["messages"]
    if not isinstance(items, list) or not items:
        raise Invalid("'messages' must be a non-empty list")
    if len(items) > limits.max_messages:
        raise Invalid(f"too many messages ({len(items):,}; the limit is {limits.max_messages:,})")
    return [_message(item, number, limits) for number, item in enumerate(items, start=1)]


def _message(item: Any, number: int, limits: Limits) -> Message:
    """Return message ``number`` (1-based) of a chat line.

    Raises:
        Invalid: if it is not an object with a known role and usable string content.
    """
    label = f"message {number}"
    if not isinstance(item, dict):
        raise Invalid(f"{label} must be an object with 'role' and 'content', not {json_type(item)}")
    if "role" not in item:
        raise Invalid(f"{label} has no 'role'")
    role = item["role"]
    if not isinstance(role, str):
        raise Invalid(f"{label} has a role that is {json_type(role)}, not a string")
    if role not in ROLES:
        raise Invalid(f"unknown role {_show(role)} in {label}")
    if "content" not in item:
        raise Invalid(f"{label} has no 'content'")
    content = item["content"]
    if not isinstance(content, str):
        raise Invalid(f"{label} has content that is {json_type(content)}, not a string")
    return Message(role, _clean_text(content, label, limits, empty=f"{label} has empty content"))


def _prompt_response_record(obj: dict[str, Any], line: int, limits: Limits) -> Record:
    """Return the record of one prompt/response line.

    Raises:
        Invalid: for the first problem found.
    """
    messages = _prompt_messages(obj, limits)
    response = _json_text(obj, "response", limits)
    return Record(line, messages, response, _json_external_id(obj), _json_metadata(obj))


def _prompt_messages(obj: dict[str, Any], limits: Limits) -> tuple[Message, ...]:
    """Return the optional system message and the user message of a line with ``prompt`` and ``system``.

    Raises:
        Invalid: if the prompt is missing or null, or either text is unusable.
    """
    prompt = _json_text(obj, "prompt", limits)
    if prompt is None:
        raise Invalid("missing field 'prompt'" if "prompt" not in obj else "'prompt' must be a string, not null")
    system = _json_text(obj, "system", limits)
    return ((Message("system", system),) if system is not None else ()) + (Message("user", prompt),)


def _comparison_record(obj: dict[str, Any], line: int, limits: Limits) -> Record:
    """Return the record of one comparison line: a context to answer and the candidate answers to compare.

    The context is either ``messages`` (ending with the user turn to answer) or ``prompt`` with an optional
    ``system``; a null value counts as absent, so exporters that write both keys with one of them null still work.

    Raises:
        Invalid: for the first problem found: context, candidates, gold, id, metadata.
    """
    has_messages = obj.get("messages") is not None
    has_prompt = obj.get("prompt") is not None
    if has_messages and has_prompt:
        raise Invalid("give either 'messages' or 'prompt', not both")
    if has_messages:
        if obj.get("system") is not None:
            # Dropping it silently would lose the system prompt; with 'messages' it belongs in the conversation.
            raise Invalid("'system' goes with 'prompt'; with 'messages', make it the first message")
        messages = tuple(_json_messages(obj, limits))
        if messages[-1].role == "assistant":
            raise Invalid("the conversation must end with a user message; the answers go in 'candidates'")
        if messages[-1].role != "user":
            raise Invalid("the conversation must end with a user message")
    elif has_prompt:
        messages = _prompt_messages(obj, limits)
    elif "messages" in obj:
        raise Invalid("'messages' must be a non-empty list")
    elif "prompt" in obj:
        raise Invalid("'prompt' must be a string, not null")
    else:
        raise Invalid("missing field 'messages' or 'prompt'")
    candidates = _json_candidates(obj, limits)
    gold = obj.get("gold")
    if gold is not None:
        _check_gold(gold, len(candidates))
    return Record(line, messages, None, _json_external_id(obj), _json_metadata(obj), candidates, gold)


def _json_candidates(obj: dict[str, Any], limits: Limits) -> tuple[CandidateRecord, ...]:
    """Return the line's candidates, in file order.

    Raises:
        Invalid: if ``candidates`` is missing, not a list of MIN_CANDIDATES to MAX_CANDIDATES objects, a
            candidate is unusable, or two candidates have the same content.
    """
    if "candidates" not in obj:
        raise Invalid("missing field 'candidates'")
    items = obj["candidates"]
    if (
        not isinstance(items, list)
        or not MIN_CANDIDATES <= len(items) <= MAX_CANDIDATES
        or not all(isinstance(item, dict) for item in items)
    ):
        raise Invalid(f"'candidates' must be a list of {MIN_CANDIDATES} to {MAX_CANDIDATES} objects")
    candidates = tuple(_candidate(item, number, limits) for number, item in enumerate(items, start=1))
    first_with: dict[str, int] = {}
    for number, candidate in enumerate(candidates, start=1):
        earlier = first_with.setdefault(candidate.content, number)
        if earlier != number:
            raise Invalid(f"candidates {earlier} and {number} are identical")
    return candidates


def _candidate(item: dict[str, Any], number: int, limits: Limits) -> CandidateRecord:
    """Return candidate ``number`` (1-based) of a comparison line.

    Raises:
        Invalid: if its content is missing or unusable, or a provenance field has the wrong type or is unstorable.
    """
    label = f"candidate {number}"
    if "content" not in item:
        raise Invalid(f"{label} has no 'content'")
    content = item["content"]
    if not isinstance(content, str):
        raise Invalid(f"{label} has content that is {json_type(content)}, not a string")
    text = _clean_text(content, f"{label} content", limits, empty=f"{label} has empty content")
    model, version, adapter = (_candidate_string(item, key, label) for key in ("model", "version", "adapter"))
    decoding = item.get("decoding")
    if decoding is None:
        decoding = {}
    elif not isinstance(decoding, dict):
        raise Invalid(f"{label} 'decoding' must be an object")
    check_json_storable(decoding, f"{label} 'decoding'")
    extra = {key: value for key, value in item.items() if key not in _CANDIDATE_KEYS}
    check_json_storable(extra, label)
    return CandidateRecord(text, model, version, adapter, decoding, extra)


def _candidate_string(item: dict[str, Any], key: str, label: str) -> str:
    """Return a candidate's provenance string under ``key``, stripped; "" if absent or null.

    Raises:
        Invalid: if it is not a string or holds a NUL or unpaired surrogate.
    """
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid(f"{label} '{key}' must be a string, not {json_type(value)}")
    text = value.strip()
    check_storable(text, f"{label} '{key}'")
    return text


def _check_gold(gold: Any, count: int) -> None:
    """Check a gold verdict against ``count`` candidates (see ``Record.gold`` for the three accepted shapes).

    Raises:
        Invalid: naming what is wrong.
    """
    if isinstance(gold, str):
        if gold != _GOLD_TIE:
            raise Invalid(f"'gold' must be a candidate number, \"{_GOLD_TIE}\" or a ranking, not {_show(gold)}")
        return
    if isinstance(gold, int) and not isinstance(gold, bool):
        _check_gold_number(gold, count, "'gold'")
        return
    if not isinstance(gold, list):
        raise Invalid(
            f"'gold' must be a candidate number, \"{_GOLD_TIE}\" or a ranking (a list of lists of candidate "
            f"numbers), not {json_type(gold)}"
        )
    if not gold:
        raise Invalid("'gold' ranking is empty")
    seen: set[int] = set()
    for place, group in enumerate(gold, start=1):
        label = f"'gold' ranking group {place}"
        if not isinstance(group, list) or not group:
            raise Invalid(f"{label} must be a non-empty list of candidate numbers")
        for number in group:
            if isinstance(number, bool) or not isinstance(number, int):
                raise Invalid(f"{label} holds {json_type(number)}, not a candidate number")
            _check_gold_number(number, count, label)
            if number in seen:
                raise Invalid(f"'gold' ranking names candidate {number} more than once")
            seen.add(number)
    missing = [str(number) for number in range(1, count + 1) if number not in seen]
    if missing:
        which = f"candidate {missing[0]}" if len(missing) == 1 else f"candidates {', '.join(missing)}"
        raise Invalid(f"'gold' ranking leaves out {which}; it must rank every candidate exactly once")


def _check_gold_number(number: int, count: int, label: str) -> None:
    if not 1 <= number <= count:
        # A number may have up to 4,300 digits; a reason should stay readable.
        shown = str(number) if abs(number) < 10**12 else f"{str(number)[:12]}…"
        raise Invalid(f"{label} names candidate {shown}, but the candidates are numbered 1 to {count}")


def _json_text(obj: dict[str, Any], key: str, limits: Limits) -> str | None:
    """Return the cleaned string under ``key``, or None if it is absent or null.

    Raises:
        Invalid: if it is not a string, is blank, too long, or holds a NUL or unpaired surrogate.
    """
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"'{key}' must be a string, not {json_type(value)}")
    # An empty string is refused rather than read as "absent": it usually means a generation failed upstream.
    return _clean_text(value, f"'{key}'", limits, empty=f"'{key}' is empty")


def _json_external_id(obj: dict[str, Any]) -> str | None:
    """Return the line's ``id`` as a string, or None if absent, null or blank.

    Raises:
        Invalid: if it is neither string nor integer, or is too long or unstorable.
    """
    value = obj.get("id")
    if value is None:
        return None
    # bool is an int subclass, but an id of true is a mistake, not the id "True".
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Invalid(f"'id' must be a string or an integer, not {json_type(value)}")
    return _clean_id(str(value), "'id'")


def _json_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """Return the line's ``metadata`` object ({} if absent or null).

    Raises:
        Invalid: if it is not an object or holds a value a JSON column cannot store.
    """
    value = obj.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"'metadata' must be an object, not {json_type(value)}")
    check_json_storable(value, "'metadata'")
    return value


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


# --- CSV ---------------------------------------------------------------------------------------------------------


class _RowTooLong(Exception):
    """Raised from inside csv.reader to abandon a row that spans too many bytes (usually an unclosed quote)."""


class _CsvLines:
    """Decoded lines for csv.reader, remembering where the current row started and what went wrong in it.

    Bad lines are not dropped but replaced by a stand-in with the same quoting effect (undecodable bytes become
    U+FFFD; a skipped overlong line becomes a lone quote if it had an odd number of quotes), so the csv state
    stays in step and the rows after a bad one keep their boundaries and line numbers.
    """

    def __init__(self, lines: Iterator[_RawLine], limits: Limits) -> None:
        self._lines = lines
        self._limits = limits
        self._row_bytes = 0
        self.row_start = 0
        self.last_line = 0
        self.problem: LineError | None = None

    def begin_row(self) -> None:
        self.row_start = 0
        self._row_bytes = 0
        self.problem = None

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.last_line = raw.number
        if not self.row_start:
            self.row_start = raw.number
        if raw.data is None:
            self._flag(raw.number, _too_long_line(raw.size, self._limits))
            return '"\n' if raw.odd_quotes else "\n"
        self._row_bytes += raw.size
        # A single line is already bounded; only a row running across lines can grow past the limit.
        if self._row_bytes > self._limits.max_line_bytes and raw.number != self.row_start:
            raise _RowTooLong
        try:
            return raw.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._flag(raw.number, _not_utf8(exc))
            return raw.data.decode("utf-8", "replace")

    def _flag(self, line: int, reason: str) -> None:
        # Only the first problem of a row is reported: the row yields exactly one error.
        if self.problem is None:
            self.problem = LineError(line, reason)


def _csv_rows(source: _CsvLines, limits: Limits) -> Iterator[tuple[int, list[str]] | LineError]:
    """Yield (start line, cells) for each non-blank row, or one LineError for each unusable one."""
    reader = csv.reader(source)
    while True:
        source.begin_row()
        try:
            row = next(reader)
        except StopIteration:
            return
        except _RowTooLong:
            yield LineError(
                source.row_start,
                f"row is too long (lines {source.row_start:,} to {source.last_line:,} exceed "
                f"{limits.max_line_bytes:,} bytes); is a quote left open?",
            )
            continue
        except csv.Error as exc:
            yield LineError(source.row_start, f"invalid CSV: {exc}")
            continue
        if source.problem is not None:
            yield source.problem
        elif any(cell.strip() for cell in row):
            yield source.row_start, row


def _parse_csv(lines: Iterator[_RawLine], mapping: CsvMapping, limits: Limits) -> Iterator[Record | LineError]:
    rows = _csv_rows(_CsvLines(lines, limits), limits)
    first = next(rows, None)
    if first is None:
        yield LineError(1, "the file is empty; a header row is required")
        return
    if isinstance(first, LineError):
        # Without a readable header no column can be found, so nothing after it is worth reporting.
        yield LineError(first.line, f"header row: {first.reason}")
        return
    header_line, header = first
    names = [cell.strip() for cell in header]
    try:
        index = _column_index(names, mapping)
    except Invalid as exc:
        yield LineError(header_line, exc.reason)
        return
    for item in rows:
        if isinstance(item, LineError):
            yield item
            continue
        line, cells = item
        result: Record | LineError
        try:
            if len(cells) != len(names):
                raise Invalid(f"row has {len(cells)} fields but the header has {len(names)}")
            result = _csv_record(cells, index, mapping, line, limits)
        except Invalid as exc:
            result = LineError(line, exc.reason)
        yield result


def _column_index(names: list[str], mapping: CsvMapping) -> dict[str, int]:
    """Return the position of every mapped column.

    Raises:
        Invalid: if a mapped column is missing from the header or appears in it more than once.
    """
    missing = [name for name in mapping.columns() if name not in names]
    if missing:
        shown = ", ".join(names[:_MAX_COLUMNS_SHOWN]) + (", …" if len(names) > _MAX_COLUMNS_SHOWN else "")
        which = (
            f"column {missing[0]!r} is"
            if len(missing) == 1
            else f"columns {', '.join(repr(name) for name in missing)} are"
        )
        raise Invalid(f"{which} not in the header (found: {shown})")
    for name in mapping.columns():
        if names.count(name) > 1:
            raise Invalid(f"column {name!r} appears more than once in the header")
    return {name: names.index(name) for name in mapping.columns()}


def _csv_record(cells: list[str], index: dict[str, int], mapping: CsvMapping, line: int, limits: Limits) -> Record:
    """Return the record of one CSV row; empty optional cells count as absent.

    Raises:
        Invalid: for the first problem found.
    """
    label = f"column {mapping.prompt!r}"
    prompt = _clean_text(cells[index[mapping.prompt]], label, limits, empty=f"{label} is empty")
    system = _csv_optional_text(cells, index, mapping.system, limits)
    response = _csv_optional_text(cells, index, mapping.response, limits)
    external_id = _clean_id(cells[index[mapping.id]], f"column {mapping.id!r}") if mapping.id is not None else None
    metadata: dict[str, Any] = {}
    for name in mapping.metadata:
        value = cells[index[name]]
        check_storable(value, f"column {name!r}")
        metadata[name] = value
    messages = ((Message("system", system),) if system is not None else ()) + (Message("user", prompt),)
    return Record(line, messages, response, external_id, metadata)


def _csv_optional_text(cells: list[str], index: dict[str, int], column: str | None, limits: Limits) -> str | None:
    if column is None or not cells[index[column]].strip():
        return None
    label = f"column {column!r}"
    return _clean_text(cells[index[column]], label, limits, empty=f"{label} is empty")


# --- shared checks -----------------------------------------------------------------------------------------------


def _clean_text(value: str, label: str, limits: Limits, *, empty: str) -> str:
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


def _clean_id(value: str, label: str) -> str | None:
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


def _show(text: str, limit: int = 40) -> str:
    """Return a quoted, escaped and shortened form of user text for an error message."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")

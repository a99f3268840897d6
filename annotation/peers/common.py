"""What the peer readers share: reading a JSON array or JSON lines with the line each value starts on, the
checks on text that PostgreSQL would refuse (as ``annotation.parsing`` makes them), timestamps, and turning
an order of candidates into Enclave's result shape."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from annotation.parsing import (
    MAX_CANDIDATES,
    MIN_CANDIDATES,
    Invalid,
    Limits,
    LineError,
    Message,
    check_storable,
    json_type,
)
from annotation.peers.records import AnnotatorSeen, PeerRecord

# A JSON array is read whole (its tasks are found by decoding one value after another), so its size is capped.
MAX_ARRAY_BYTES = 512 * 1024 * 1024
_BOM = "\ufeff"
_JSON_BLANK = " \t\r\n"
# What a choice (folded: lower case, no spaces, "_" or "-") says when it names no candidate.
TIE_CHOICES = frozenset({"tie", "equal", "same", "draw", "both", "bothgood", "equallygood", "nopreference"})
BOTH_BAD_CHOICES = frozenset({"bothbad", "neither", "none", "bothwrong"})
_CHOICE_STEMS = ("", "answer", "response", "completion", "output", "candidate", "option", "text", "model")
_CHAT_ROLES = {
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "bot": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "system": "system",
}


def clean_text(value: Any, label: str, limits: Limits) -> str:
    """Return ``value`` with CRLF turned into LF.

    Raises:
        Invalid: if it is not a string, is blank, too long, or holds a NUL or lone surrogate.
    """
    if not isinstance(value, str):
        raise Invalid(f"{label} must be text, not {json_type(value)}")
    text = value.replace("\r\n", "\n") if "\r" in value else value
    if not text.strip():
        raise Invalid(f"{label} is empty")
    if len(text) > limits.max_chars_per_message:
        raise Invalid(f"{label} is too long ({len(text):,} characters; the limit is {limits.max_chars_per_message:,})")
    check_storable(text, label)
    return text


def chat_messages(value: list[Any], label: str, limits: Limits) -> tuple[Message, ...]:
    """Return a chat (a list of ``{"role", "content"}``) as messages ending with the user's turn.

    Raises:
        Invalid: if a message is not an object with a known role and usable content, or the chat is empty,
            too long or does not end with the user.
    """
    if not value:
        raise Invalid(f"{label} is an empty chat")
    if len(value) > limits.max_messages:
        raise Invalid(f"{label} has {len(value):,} messages; the limit is {limits.max_messages:,}")
    messages = []
    for number, item in enumerate(value, start=1):
        where = f"{label} message {number}"
        if not isinstance(item, dict):
            raise Invalid(f"{where} must be an object with “role” and “content”")
        role = _CHAT_ROLES.get(str(item.get("role", "")).lower())
        if role is None:
            raise Invalid(f"{where} has an unknown role {str(item.get('role'))[:40]!r}")
        messages.append(Message(role, clean_text(item.get("content"), where, limits)))
    if messages[-1].role != "user":
        raise Invalid(f"{label} must end with the user's turn")
    return tuple(messages)


def count_candidates(count: int, label: str) -> None:
    """Raise Invalid unless a comparison has between MIN_CANDIDATES and MAX_CANDIDATES candidates."""
    if count < MIN_CANDIDATES:
        found = "no candidate" if count == 0 else f"{count} candidate"
        raise Invalid(f"{label}: {found} found; a comparison needs at least {MIN_CANDIDATES}")
    if count > MAX_CANDIDATES:
        raise Invalid(f"{label}: {count} candidates; the limit is {MAX_CANDIDATES}")


def tiers_result(tiers: Sequence[Sequence[int]], count: int) -> dict[str, Any]:
    """Return Enclave's result for tiers of candidate ids (best first, every candidate once): a winner (or a
    tie) for two candidates, a ranking for more."""
    if count == 2:
        if len(tiers) == 1:
            return {"winner": "tie", "strength": None}
        return {"winner": tiers[0][0], "strength": None}
    return {"ranking": [sorted(tier) for tier in tiers]}


def parse_time(value: Any) -> datetime | None:
    """Return an ISO 8601 timestamp as an aware datetime (UTC when it names no zone); None when absent or
    unreadable, since a timestamp is a detail, not a reason to refuse a judgement."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def json_values(path: Path, limits: Limits) -> Iterator[tuple[int, Any] | LineError]:
    """Yield ``(line, value)`` for each value of a JSON array, or of a JSON-lines file, with the 1-based line
    it starts on; a LineError for each line of JSON lines that does not parse, and one (then nothing more)
    where an array stops parsing, since the values after it cannot be found."""
    with path.open("rb") as file:
        head = file.read(4096).lstrip(b"\xef\xbb\xbf" + _JSON_BLANK.encode())
    if head.startswith(b"["):
        yield from _array_values(path)
    else:
        yield from _lines_values(path, limits)


def _array_values(path: Path) -> Iterator[tuple[int, Any] | LineError]:
    size = path.stat().st_size
    if size > MAX_ARRAY_BYTES:
        yield LineError(1, f"the file is too large ({size:,} bytes; a JSON array may be {MAX_ARRAY_BYTES:,})")
        return
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield LineError(raw.count(b"\n", 0, exc.start) + 1, f"the file is not UTF-8 (byte {exc.start:,})")
        return
    decoder = json.JSONDecoder()
    pos = _skip_blank(text, len(_BOM) if text.startswith(_BOM) else 0) + 1  # past "["
    counted, line = 0, 1
    pos = _skip_blank(text, pos)
    if text.startswith("]", pos):
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield LineError(exc.lineno, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
            return
        yield line, value
        pos = _skip_blank(text, pos)
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            found = "the end of the file" if pos >= len(text) else repr(text[pos])
            yield LineError(
                text.count("\n", 0, pos) + 1, f"invalid JSON: expected “,” or “]” after a task, found {found}"
            )
            return
        pos = _skip_blank(text, pos + 1)


def _skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _JSON_BLANK:
        pos += 1
    return pos


def _lines_values(path: Path, limits: Limits) -> Iterator[tuple[int, Any] | LineError]:
    with path.open("rb") as file:
        for number, raw in enumerate(_bounded_lines(file, limits.max_line_bytes), start=1):
            if raw is None:
                yield LineError(number, f"line is too long (over {limits.max_line_bytes:,} bytes)")
                continue
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip(_JSON_BLANK.encode()):
                continue
            try:
                yield number, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield LineError(number, f"line is not UTF-8 (byte {exc.start + 1:,})")
            except json.JSONDecodeError as exc:
                yield LineError(number, f"invalid JSON: {exc.msg} (column {exc.colno})")


def _bounded_lines(file: Any, max_bytes: int) -> Iterator[bytes | None]:
    """Yield each line of a binary file, or None for one over ``max_bytes``, which is skipped in chunks."""
    while True:
        raw = file.readline(max_bytes + 2)
        if not raw:
            return
        if len(raw) > max_bytes + 1 and not raw.endswith(b"\n"):
            while True:
                chunk = file.readline(64 * 1024)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield None
            continue
        yield raw


def choice_index(choice: str, ids: Sequence[str]) -> int | None:
    """Return the candidate a folded choice names: by its own name (a field name or an item id), by number or
    letter alone or after a usual word ("answer 1", "Response B"), or for two as left/right, first/second."""
    for position, name in enumerate(ids):
        marks = {str(position + 1), "abcdefghijklmnopqrst"[position]}
        if len(ids) == 2:
            marks |= {("left", "right")[position], ("first", "second")[position]}
        names = {f"{stem}{mark}" for stem in _CHOICE_STEMS for mark in marks} | {fold(name)}
        if choice in names:
            return position
    return None


def fold(text: str) -> str:
    """Return a choice or name in lower case without spaces, "_" or "-", for matching."""
    return re.sub(r"[\s_\-]+", "", text.casefold())


def count_annotators(seen: dict[str, AnnotatorSeen], record: PeerRecord) -> None:
    """Add a record's judgements and answers to each annotator's counts in ``seen`` (by annotator key)."""
    for judgement in record.judgements:
        now = seen.get(judgement.annotator.key, AnnotatorSeen(judgement.annotator))
        seen[judgement.annotator.key] = AnnotatorSeen(now.annotator, now.judgements + 1, now.answers)
    for answer in record.answers:
        now = seen.get(answer.annotator.key, AnnotatorSeen(answer.annotator))
        seen[answer.annotator.key] = AnnotatorSeen(now.annotator, now.judgements, now.answers + 1)

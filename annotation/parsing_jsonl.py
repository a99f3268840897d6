"""The JSON Lines formats of ``annotation.parsing``: chat transcripts, prompt/response pairs and comparisons, each
line a JSON object checked into a ``Record`` or refused with the reason."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from annotation.parsing import (
    MAX_CANDIDATES,
    MIN_CANDIDATES,
    ROLES,
    CandidateRecord,
    ImportFormat,
    Invalid,
    Limits,
    LineError,
    Message,
    RawLine,
    Record,
    check_json_storable,
    check_storable,
    clean_id,
    clean_text,
    json_type,
    not_utf8,
    show,
    too_long_line,
)

# The keys of a candidate object that have a field of their own; any other key is kept in ``extra``.
_CANDIDATE_KEYS = frozenset({"content", "model", "version", "adapter", "decoding"})
_GOLD_TIE = "tie"
# JSON's own whitespace: a line holding only these is blank. Wider Unicode whitespace is left to json to reject.
_JSON_BLANK = " \t\r\n"


# --- lines --------------------------------------------------------------------------------------------------


def parse_jsonl(
    lines: Iterator[RawLine], build: Callable[[dict[str, Any], int, Limits], Record], limits: Limits
) -> Iterator[Record | LineError]:
    for raw in lines:
        if raw.data is None:
            yield LineError(raw.number, too_long_line(raw.size, limits))
            continue
        try:
            text = raw.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield LineError(raw.number, not_utf8(exc))
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
        raise Invalid(f"unknown role {show(role)} in {label}")
    if "content" not in item:
        raise Invalid(f"{label} has no 'content'")
    content = item["content"]
    if not isinstance(content, str):
        raise Invalid(f"{label} has content that is {json_type(content)}, not a string")
    return Message(role, clean_text(content, label, limits, empty=f"{label} has empty content"))


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
    text = clean_text(content, f"{label} content", limits, empty=f"{label} has empty content")
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
            raise Invalid(f"'gold' must be a candidate number, \"{_GOLD_TIE}\" or a ranking, not {show(gold)}")
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
    return clean_text(value, f"'{key}'", limits, empty=f"'{key}' is empty")


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
    return clean_id(str(value), "'id'")


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


BUILDERS: dict[ImportFormat, Callable[[dict[str, Any], int, Limits], Record]] = {
    ImportFormat.CHAT_JSONL: _chat_record,
    ImportFormat.PROMPT_RESPONSE_JSONL: _prompt_response_record,
    ImportFormat.COMPARISON_JSONL: _comparison_record,
}

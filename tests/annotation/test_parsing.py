"""Tests of the streaming import parser (pure Python, no database)."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.parsing import (
    CandidateRecord,
    CsvMapping,
    ImportFormat,
    Limits,
    LineError,
    Message,
    Record,
    content_hash,
    normalise_for_dedup,
    parse,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MB = 1024 * 1024
SMALL = Limits(max_chars_per_message=20, max_messages=4, max_line_bytes=300)
JSONL_FORMATS = (ImportFormat.CHAT_JSONL, ImportFormat.PROMPT_RESPONSE_JSONL, ImportFormat.COMPARISON_JSONL)


class LazyStream(io.RawIOBase):
    """A read-only raw stream whose bytes come from an iterator, so a test never holds the whole file."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        target = memoryview(buffer).cast("B")
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _parse(data: bytes, fmt: ImportFormat, **kwargs: Any) -> list[Record | LineError]:
    return list(parse(io.BytesIO(data), fmt, **kwargs))


def _jsonl(*lines: object) -> bytes:
    """Return a JSONL file: str lines are written as they are, anything else as JSON."""
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def _chat(*turns: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in turns], **extra}


def _candidates(*contents: str) -> list[dict[str, str]]:
    return [{"content": content} for content in contents]


def _errors(results: Iterable[Record | LineError]) -> list[tuple[int, str]]:
    return [(item.line, item.reason) for item in results if isinstance(item, LineError)]


def _records(results: Iterable[Record | LineError]) -> list[Record]:
    return [item for item in results if isinstance(item, Record)]


def _lines_of(data: bytes) -> int:
    """Return how many physical lines the parser can number in ``data`` (LF-separated, last may lack LF)."""
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


# --- chat JSONL ----------------------------------------------------------------------------------------------------


def test_it_moves_a_final_assistant_turn_into_the_response() -> None:
    data = _jsonl(_chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), id=7, metadata={"k": 1}))

    assert _parse(data, ImportFormat.CHAT_JSONL) == [
        Record(
            line=1,
            messages=(Message("system", "Be brief."), Message("user", "Hi")),
            response="Hello!",
            external_id="7",
            metadata={"k": 1},
        )
    ]


def test_it_keeps_a_conversation_ending_with_the_user_without_a_response() -> None:
    data = _jsonl(_chat(("user", "Hi"), ("assistant", "Hello"), ("tool", "{}"), ("user", "And?"), id=" abc ", x=1))

    [record] = _parse(data, ImportFormat.CHAT_JSONL)

    assert isinstance(record, Record)
    assert record.response is None
    assert [message.role for message in record.messages] == ["user", "assistant", "tool", "user"]
    assert record.external_id == "abc"
    assert record.metadata == {}


def test_it_reports_each_bad_chat_line_once_with_its_line_number_and_keeps_going() -> None:
    good = _chat(("user", "Hi"), ("assistant", "Hello"))
    data = _jsonl(
        good,  # 1
        '{"messages": [} ',  # 2
        "",  # 3: blank
        "[1, 2]",  # 4
        {"msgs": []},  # 5
        {"messages": []},  # 6
        {"messages": "hi"},  # 7
        _chat(("user", "Hi"), ("bot", "Hello")),  # 8
        {"messages": [{"content": "Hi"}]},  # 9
        {"messages": [{"role": "user", "content": ["Hi"]}]},  # 10
        {"messages": ["Hi"]},  # 11
        _chat(("user", " \n ")),  # 12
        _chat(("user", "x" * 21)),  # 13
        _chat(("user", "a\x00b")),  # 14
        '{"messages": [{"role": "user", "content": "\\ud800"}]}',  # 15
        _chat(*[("user", "Hi")] * 5),  # 16
        _chat(("system", "Be brief."), ("assistant", "Hello")),  # 17
        _chat(("user", "Hi"), ("system", "Be brief.")),  # 18
        _chat(("user", "Hi"), id=1.5),  # 19
        _chat(("user", "Hi"), id=True),  # 20
        _chat(("user", "Hi"), id="x" * 201),  # 21
        _chat(("user", "Hi"), metadata=[1]),  # 22
        '{"messages": [{"role": "user", "content": "Hi"}], "metadata": {"a": [NaN]}}',  # 23
        '{"messages": [{"role": "user", "content": "Hi"}], "metadata": {"a\\u0000": 1}}',  # 24
        "[" * 5_000,  # 25
        '{"n": ' + "9" * 4_400 + "}",  # 26
        "x" * 10_001,  # 27
        "   \t ",  # 28: blank
        good,  # 29
        '{"messages": [{"role": "user", "content": "cut off',  # 30: truncated mid-string
        '{"messages": [{"role": "user", "content": "Hi"}]',  # 31: truncated after the list
    )
    data += b'{"messages": "\xff"}\n'  # 32
    data += b"\xef\xbb\xbf" + _jsonl(good)  # 33: a BOM anywhere but the start is not tolerated

    results = _parse(
        data, ImportFormat.CHAT_JSONL, limits=Limits(max_chars_per_message=20, max_messages=4, max_line_bytes=10_000)
    )

    assert _errors(results) == [
        (2, "invalid JSON: Expecting value at column 15"),
        (4, "the line must be a JSON object, not an array"),
        (5, "missing field 'messages'"),
        (6, "'messages' must be a non-empty list"),
        (7, "'messages' must be a non-empty list"),
        (8, "unknown role 'bot' in message 2"),
        (9, "message 1 has no 'role'"),
        (10, "message 1 has content that is an array, not a string"),
        (11, "message 1 must be an object with 'role' and 'content', not a string"),
        (12, "message 1 has empty content"),
        (13, "message 1 is too long (21 characters; the limit is 20)"),
        (14, "message 1 contains a NUL character"),
        (15, "message 1 contains an unpaired surrogate (a broken \\u escape)"),
        (16, "too many messages (5; the limit is 4)"),
        (17, "the conversation must end with a user message before the response"),
        (18, "the conversation must end with a user message or an assistant response"),
        (19, "'id' must be a string or an integer, not a number"),
        (20, "'id' must be a string or an integer, not a boolean"),
        (21, "'id' is too long (201 characters; the limit is 200)"),
        (22, "'metadata' must be an object, not an array"),
        (23, "'metadata' contains a number that is not finite (NaN or Infinity)"),
        (24, "'metadata' contains a NUL character"),
        (25, "invalid JSON: nested too deeply"),
        (26, "invalid JSON: a number has too many digits"),
        (27, "line is too long (10,001 bytes; the limit is 10,000)"),
        (30, "invalid JSON: Unterminated string starting at column 43"),
        (31, "invalid JSON: Expecting ',' delimiter at column 49"),  # just past its end
        (32, "not valid UTF-8 (byte 0xff at position 15)"),
        (33, "invalid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig) at column 1"),
    ]
    assert [record.line for record in _records(results)] == [1, 29]


def test_it_reports_limits_with_thousands_separators() -> None:
    data = _jsonl(_chat(("user", "x" * 40_000)))

    assert _errors(_parse(data, ImportFormat.CHAT_JSONL)) == [
        (1, "message 1 is too long (40,000 characters; the limit is 32,000)")
    ]


def test_it_tolerates_a_bom_on_the_first_line() -> None:
    data = b"\xef\xbb\xbf" + _jsonl(_chat(("user", "Hi")), _chat(("user", "Again")))

    results = _parse(data, ImportFormat.CHAT_JSONL)

    assert [(record.line, record.messages[-1].content) for record in _records(results)] == [(1, "Hi"), (2, "Again")]
    assert _errors(results) == []


def test_it_reads_crlf_files_and_turns_crlf_inside_content_into_lf() -> None:
    lines = [_chat(("user", "line one\r\nline two\rthree"), ("assistant", "ok\r\n")), _chat(("user", "second"))]
    data = b"".join(json.dumps(line).encode() + b"\r\n" for line in lines) + b"\r\n"

    first, second = _parse(data, ImportFormat.CHAT_JSONL)

    assert isinstance(first, Record)
    assert isinstance(second, Record)
    assert first.messages == (Message("user", "line one\nline two\rthree"),)
    assert first.response == "ok\n"
    assert second.line == 2


def test_it_numbers_a_last_line_without_a_newline() -> None:
    data = _jsonl(_chat(("user", "Hi"))) + b"\n" + b'{"messages": 1}'

    assert _errors(_parse(data, ImportFormat.CHAT_JSONL)) == [(3, "'messages' must be a non-empty list")]


def test_it_skips_an_overlong_line_without_reading_it_into_memory() -> None:
    # A 64 MB line produced lazily: were it read whole, the peak would be far above the bound asserted below.
    def chunks() -> Iterator[bytes]:
        yield json.dumps(_chat(("user", "before"))).encode() + b"\n"
        yield b'{"messages": "'
        for _ in range(1024):
            yield b"y" * (64 * 1024)
        yield b'"}\r\n'
        yield json.dumps(_chat(("user", "after"))).encode() + b"\n"

    tracemalloc.start()
    try:
        results = list(parse(LazyStream(chunks()), ImportFormat.CHAT_JSONL))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert _errors(results) == [(2, "line is too long (67,108,880 bytes; the limit is 1,000,000)")]
    assert [record.line for record in _records(results)] == [1, 3]
    assert peak < 8 * MB


# --- prompt/response JSONL -----------------------------------------------------------------------------------------


def test_it_parses_prompt_response_lines() -> None:
    data = _jsonl(
        {"prompt": "What is 2+2?", "response": "4", "system": "Be exact.", "id": 12, "metadata": {"t": [1]}},
        {"prompt": "Hi\r\nthere", "response": None, "extra": "ignored"},
    )

    assert _parse(data, ImportFormat.PROMPT_RESPONSE_JSONL) == [
        Record(1, (Message("system", "Be exact."), Message("user", "What is 2+2?")), "4", "12", {"t": [1]}),
        Record(2, (Message("user", "Hi\nthere"),), None, None, {}),
    ]


def test_it_reports_bad_prompt_response_lines() -> None:
    data = _jsonl(
        {"response": "4"},  # 1
        {"prompt": None},  # 2
        {"prompt": 5},  # 3
        {"prompt": ""},  # 4
        {"prompt": "Hi", "response": ""},  # 5
        {"prompt": "Hi", "system": ["x"]},  # 6
        {"prompt": "Hi", "response": "x" * 21},  # 7
        {"prompt": "Hi", "id": {"a": 1}},  # 8
        {"prompt": "ok"},  # 9
        {"messages": []},  # 10
    )

    results = _parse(data, ImportFormat.PROMPT_RESPONSE_JSONL, limits=Limits(max_chars_per_message=20))

    assert _errors(results) == [
        (1, "missing field 'prompt'"),
        (2, "'prompt' must be a string, not null"),
        (3, "'prompt' must be a string, not a number"),
        (4, "'prompt' is empty"),
        (5, "'response' is empty"),
        (6, "'system' must be a string, not an array"),
        (7, "'response' is too long (21 characters; the limit is 20)"),
        (8, "'id' must be a string or an integer, not an object"),
        (10, "missing field 'prompt'"),
    ]
    assert [record.line for record in _records(results)] == [9]


# --- comparison JSONL ----------------------------------------------------------------------------------------------


def test_it_parses_comparison_lines_in_messages_and_prompt_form_and_keeps_provenance() -> None:
    data = _jsonl(
        _chat(
            ("system", "Be brief."),
            ("user", "Hi"),
            ("assistant", "Hello"),
            ("user", "Name a colour"),
            candidates=[
                {
                    "content": "Red",
                    "model": " gpt-4o ",
                    "version": "2024-08-06",
                    "adapter": "lora-7",
                    "decoding": {"temperature": 0.7, "top_p": 1},
                    "latency_ms": 812,
                    "tags": ["a", {"b": None}],
                },
                {"content": "Blue", "model": "llama-3", "decoding": None, "version": None},
            ],
            id=5,
            metadata={"k": [1]},
            gold=[[2], [1]],
        ),
        {
            "prompt": "What is 2+2?\r\nQuick.",
            "system": "Be exact.",
            "messages": None,
            "candidates": _candidates("4", "Four\r\n", "IV"),
            "gold": "tie",
        },
        _chat(("user", "Pick"), prompt=None, system=None, candidates=_candidates("a", "b"), gold=2, response="ignored"),
    )

    assert _parse(data, ImportFormat.COMPARISON_JSONL) == [
        Record(
            line=1,
            messages=(
                Message("system", "Be brief."),
                Message("user", "Hi"),
                Message("assistant", "Hello"),
                Message("user", "Name a colour"),
            ),
            response=None,
            external_id="5",
            metadata={"k": [1]},
            candidates=(
                CandidateRecord(
                    content="Red",
                    model="gpt-4o",
                    version="2024-08-06",
                    adapter="lora-7",
                    decoding={"temperature": 0.7, "top_p": 1},
                    extra={"latency_ms": 812, "tags": ["a", {"b": None}]},
                ),
                CandidateRecord(content="Blue", model="llama-3"),
            ),
            gold=[[2], [1]],
        ),
        Record(
            2,
            (Message("system", "Be exact."), Message("user", "What is 2+2?\nQuick.")),
            None,
            None,
            {},
            (CandidateRecord("4"), CandidateRecord("Four\n"), CandidateRecord("IV")),
            "tie",
        ),
        Record(3, (Message("user", "Pick"),), None, None, {}, (CandidateRecord("a"), CandidateRecord("b")), 2),
    ]


def test_it_gives_a_candidates_provenance_as_a_dict() -> None:
    candidate = CandidateRecord("Red", model="m", decoding={"temperature": 0}, extra={"x": 1})

    assert candidate.provenance() == {
        "model": "m",
        "version": "",
        "adapter": "",
        "decoding": {"temperature": 0},
        "extra": {"x": 1},
    }
    assert CandidateRecord("a").decoding is not CandidateRecord("b").decoding


def test_it_reports_each_bad_comparison_line_once_with_its_line_number() -> None:
    two = _candidates("a", "b")
    data = _jsonl(
        _chat(("user", "Hi"), candidates=two),  # 1
        _chat(("user", "Hi"), prompt="Hi", candidates=two),  # 2
        {"candidates": two},  # 3
        {"messages": None, "candidates": two},  # 4
        {"prompt": None, "candidates": two},  # 5
        _chat(("user", "Hi"), ("assistant", "Hello"), candidates=two),  # 6
        _chat(("user", "Hi"), ("system", "Be brief."), candidates=two),  # 7
        _chat(("user", "Hi"), system="Be brief.", candidates=two),  # 8
        {"prompt": "Hi"},  # 9
        {"prompt": "Hi", "candidates": _candidates("a")},  # 10
        {"prompt": "Hi", "candidates": _candidates(*(f"c{n}" for n in range(21)))},  # 11
        {"prompt": "Hi", "candidates": ["a", "b"]},  # 12
        {"prompt": "Hi", "candidates": {"content": "a"}},  # 13
        {"prompt": "Hi", "candidates": _candidates("a", "b", " \n ")},  # 14
        {"prompt": "Hi", "candidates": _candidates("a", "x" * 21)},  # 15
        {"prompt": "Hi", "candidates": [{"content": "a", "decoding": [1]}, {"content": "b"}]},  # 16
        {"prompt": "Hi", "candidates": _candidates("same", "other", "same", "other")},  # 17
        {"prompt": "Hi", "candidates": _candidates("a\r\nb", "a\nb")},  # 18
        {"prompt": "Hi", "candidates": [{"content": "a"}, {"model": "m"}]},  # 19
        {"prompt": "Hi", "candidates": [{"content": 1}, {"content": "b"}]},  # 20
        {"prompt": "Hi", "candidates": _candidates("a", "b\x00")},  # 21
        '{"prompt": "Hi", "candidates": [{"content": "\\ud800"}, {"content": "b"}]}',  # 22
        {"prompt": "Hi", "candidates": [{"content": "a", "model": 5}, {"content": "b"}]},  # 23
        '{"prompt": "Hi", "candidates": [{"content": "a"}, {"content": "b", "score": NaN}]}',  # 24
        '{"prompt": "Hi", "candidates": [{"content": "a", "x\\u0000": 1}, {"content": "b"}]}',  # 25
        '{"prompt": "Hi", "candidates": [{"content": "a", "decoding": {"t": Infinity}}, {"content": "b"}]}',  # 26
        {"prompt": "Hi", "candidates": two, "gold": 3},  # 27
        {"prompt": "", "candidates": two},  # 28
        _chat(("bot", "Hi"), candidates=two),  # 29
        _chat(*[("user", "Hi")] * 5, candidates=two),  # 30
        {"prompt": "Hi", "candidates": two, "id": True},  # 31
        {"prompt": "Hi", "candidates": two, "metadata": [1]},  # 32
        "",  # 33: blank
        {"prompt": "Hi", "candidates": two, "gold": 1},  # 34
        {"prompt": "Hi", "candidates": [{"content": "a"}, {"content": "b", "version": "v\x00"}]},  # 35
        {"prompt": "Hi", "candidates": None},  # 36
    )

    results = _parse(data, ImportFormat.COMPARISON_JSONL, limits=Limits(max_chars_per_message=20, max_messages=4))

    assert _errors(results) == [
        (2, "give either 'messages' or 'prompt', not both"),
        (3, "missing field 'messages' or 'prompt'"),
        (4, "'messages' must be a non-empty list"),
        (5, "'prompt' must be a string, not null"),
        (6, "the conversation must end with a user message; the answers go in 'candidates'"),
        (7, "the conversation must end with a user message"),
        (8, "'system' goes with 'prompt'; with 'messages', make it the first message"),
        (9, "missing field 'candidates'"),
        (10, "'candidates' must be a list of 2 to 20 objects"),
        (11, "'candidates' must be a list of 2 to 20 objects"),
        (12, "'candidates' must be a list of 2 to 20 objects"),
        (13, "'candidates' must be a list of 2 to 20 objects"),
        (14, "candidate 3 has empty content"),
        (15, "candidate 2 content is too long (21 characters; the limit is 20)"),
        (16, "candidate 1 'decoding' must be an object"),
        (17, "candidates 1 and 3 are identical"),
        (18, "candidates 1 and 2 are identical"),
        (19, "candidate 2 has no 'content'"),
        (20, "candidate 1 has content that is a number, not a string"),
        (21, "candidate 2 content contains a NUL character"),
        (22, "candidate 1 content contains an unpaired surrogate (a broken \\u escape)"),
        (23, "candidate 1 'model' must be a string, not a number"),
        (24, "candidate 2 contains a number that is not finite (NaN or Infinity)"),
        (25, "candidate 1 contains a NUL character"),
        (26, "candidate 1 'decoding' contains a number that is not finite (NaN or Infinity)"),
        (27, "'gold' names candidate 3, but the candidates are numbered 1 to 2"),
        (28, "'prompt' is empty"),
        (29, "unknown role 'bot' in message 1"),
        (30, "too many messages (5; the limit is 4)"),
        (31, "'id' must be a string or an integer, not a boolean"),
        (32, "'metadata' must be an object, not an array"),
        (35, "candidate 2 'version' contains a NUL character"),
        (36, "'candidates' must be a list of 2 to 20 objects"),
    ]
    assert [record.line for record in _records(results)] == [1, 34]


def test_it_accepts_exactly_2_to_20_candidates() -> None:
    data = _jsonl(*({"prompt": "Hi", "candidates": _candidates(*map(str, range(n)))} for n in (2, 20)))

    assert [len(record.candidates) for record in _records(_parse(data, ImportFormat.COMPARISON_JSONL))] == [2, 20]


def test_it_leaves_candidates_and_gold_empty_in_the_other_formats() -> None:
    line = {"messages": [{"role": "user", "content": "Hi"}], "prompt": "Hi", "candidates": _candidates("a", "b")}

    for fmt in (ImportFormat.CHAT_JSONL, ImportFormat.PROMPT_RESPONSE_JSONL):
        [record] = _parse(_jsonl({**line, "gold": 1}), fmt)
        assert isinstance(record, Record)
        assert (record.candidates, record.gold) == ((), None)


NOT_GOLD = "'gold' must be a candidate number, \"tie\" or a ranking (a list of lists of candidate numbers), not"


@pytest.mark.parametrize(
    ("gold", "error"),
    [
        (None, None),
        (1, None),
        (3, None),
        ("tie", None),
        ([[2], [1, 3]], None),
        ([[1, 2, 3]], None),
        ([[3], [2], [1]], None),
        (0, "'gold' names candidate 0, but the candidates are numbered 1 to 3"),
        (-1, "'gold' names candidate -1, but the candidates are numbered 1 to 3"),
        (4, "'gold' names candidate 4, but the candidates are numbered 1 to 3"),
        (10**40, "'gold' names candidate 100000000000…, but the candidates are numbered 1 to 3"),
        ("Tie", "'gold' must be a candidate number, \"tie\" or a ranking, not 'Tie'"),
        ("1", "'gold' must be a candidate number, \"tie\" or a ranking, not '1'"),
        (True, f"{NOT_GOLD} a boolean"),
        (1.0, f"{NOT_GOLD} a number"),
        ({"best": 1}, f"{NOT_GOLD} an object"),
        ([], "'gold' ranking is empty"),
        ([1, 2, 3], "'gold' ranking group 1 must be a non-empty list of candidate numbers"),
        ([[1], [], [2, 3]], "'gold' ranking group 2 must be a non-empty list of candidate numbers"),
        ([[1], [2, "3"]], "'gold' ranking group 2 holds a string, not a candidate number"),
        ([[1], [2, True]], "'gold' ranking group 2 holds a boolean, not a candidate number"),
        ([[1], [2, 3.0]], "'gold' ranking group 2 holds a number, not a candidate number"),
        ([[1], [2], [3], [4]], "'gold' ranking group 4 names candidate 4, but the candidates are numbered 1 to 3"),
        ([[0], [1, 2, 3]], "'gold' ranking group 1 names candidate 0, but the candidates are numbered 1 to 3"),
        ([[1, 2], [2, 3]], "'gold' ranking names candidate 2 more than once"),
        ([[1, 1], [2, 3]], "'gold' ranking names candidate 1 more than once"),
        ([[2]], "'gold' ranking leaves out candidates 1, 3; it must rank every candidate exactly once"),
        ([[2], [1]], "'gold' ranking leaves out candidate 3; it must rank every candidate exactly once"),
    ],
)
def test_it_validates_gold_and_keeps_it_as_given(gold: Any, error: str | None) -> None:
    data = _jsonl("", {"prompt": "Hi", "candidates": _candidates("a", "b", "c"), "gold": gold})

    [result] = _parse(data, ImportFormat.COMPARISON_JSONL)

    candidates = (CandidateRecord("a"), CandidateRecord("b"), CandidateRecord("c"))
    expected = Record(2, (Message("user", "Hi"),), None, None, {}, candidates, gold)
    assert result == (LineError(2, error) if error else expected)


# --- CSV -----------------------------------------------------------------------------------------------------------

MAPPING = CsvMapping(prompt="question", response="answer", system="sys", id="ref", metadata=("team", "score"))


def test_it_parses_csv_rows_with_multi_line_quoted_fields_and_keeps_line_numbers_right() -> None:
    data = (
        b"\xef\xbb\xbfref, question ,answer,sys,team,score,unused\r\n"  # 1
        b'1,"first\r\n'  # 2
        b'question, with ""quotes""",yes,,red,3,x\r\n'  # 3
        b"\r\n"  # 4: blank
        b"2,second,,Be brief.,blue,,y\r\n"  # 5
        b'3,"a\n'  # 6
        b"\n"  # 7
        b'c",,,,,z\n'  # 8
        b",fourth,no,,,,"  # 9, no final newline
    )

    assert _parse(data, ImportFormat.CSV, csv_mapping=MAPPING) == [
        Record(2, (Message("user", 'first\nquestion, with "quotes"'),), "yes", "1", {"team": "red", "score": "3"}),
        Record(
            5, (Message("system", "Be brief."), Message("user", "second")), None, "2", {"team": "blue", "score": ""}
        ),
        Record(6, (Message("user", "a\n\nc"),), None, "3", {"team": "", "score": ""}),
        Record(9, (Message("user", "fourth"),), "no", None, {"team": "", "score": ""}),
    ]


def test_it_reports_a_missing_csv_column_at_line_1_and_stops() -> None:
    data = b"a,b,c\n1,2,3\n"

    assert _parse(data, ImportFormat.CSV, csv_mapping=CsvMapping(prompt="x")) == [
        LineError(1, "column 'x' is not in the header (found: a, b, c)")
    ]
    assert _parse(data, ImportFormat.CSV, csv_mapping=CsvMapping(prompt="a", id="x", metadata=("y",))) == [
        LineError(1, "columns 'x', 'y' are not in the header (found: a, b, c)")
    ]
    assert _parse(b"a,a\n1,2\n", ImportFormat.CSV, csv_mapping=CsvMapping(prompt="a")) == [
        LineError(1, "column 'a' appears more than once in the header")
    ]
    assert _parse(b"", ImportFormat.CSV, csv_mapping=CsvMapping(prompt="a")) == [
        LineError(1, "the file is empty; a header row is required")
    ]
    assert _parse(b"\xffa\n1\n", ImportFormat.CSV, csv_mapping=CsvMapping(prompt="a")) == [
        LineError(1, "header row: not valid UTF-8 (byte 0xff at position 1)")
    ]


def test_it_reports_bad_csv_rows_and_resynchronises_after_them() -> None:
    data = (
        b"question,answer,ref\n"  # 1
        b'"   ",yes,1\n'  # 2: empty prompt
        b"only,two\n"  # 3
        b'"ok \xff\n'  # 4: bad byte inside a quoted field spanning lines 4-5
        b'still quoted",,2\n'  # 5
        b"after,,3\n"  # 6
        b'"' + b"z" * 400 + b"\n"  # 7: overlong line holding one (opening) quote
        b'closes",,4\n'  # 8
        b"a\x00b,,5\n"  # 9
        b"x\ry,,6\n"  # 10
        b"fine,," + b"r" * 201 + b"\n"  # 11
        b"last,,7\n"  # 12
    )

    results = _parse(data, ImportFormat.CSV, csv_mapping=CsvMapping("question", "answer", id="ref"), limits=SMALL)

    assert _errors(results) == [
        (2, "column 'question' is empty"),
        (3, "row has 2 fields but the header has 3"),
        (4, "not valid UTF-8 (byte 0xff at position 5)"),
        (7, "line is too long (401 bytes; the limit is 300)"),
        (9, "column 'question' contains a NUL character"),
        (
            10,
            "invalid CSV: new-line character seen in unquoted field - do you need to open the file in "
            "universal-newline mode?",
        ),
        (11, "column 'ref' is too long (201 characters; the limit is 200)"),
    ]
    assert [(record.line, record.external_id) for record in _records(results)] == [(6, "3"), (12, "7")]


def test_it_gives_up_on_a_csv_row_whose_quote_never_closes_without_swallowing_the_file() -> None:
    data = b"question\n" + b'"never closed\n' + b"".join(b"row %d\n" % n for n in range(2, 200))

    results = _parse(data, ImportFormat.CSV, csv_mapping=CsvMapping("question"), limits=SMALL)

    assert _errors(results)[0] == (2, "row is too long (lines 2 to 52 exceed 300 bytes); is a quote left open?")
    # After giving up, the following lines are read as rows again instead of being buried in one giant field.
    assert _records(results)[0].line == 53
    assert _records(results)[-1].messages == (Message("user", "row 199"),)


def test_it_refuses_unusable_arguments() -> None:
    with pytest.raises(ValueError, match="csv_mapping"):
        parse(io.BytesIO(b""), ImportFormat.CSV)
    with pytest.raises(ValueError, match="xml"):
        parse(io.BytesIO(b""), "xml")
    with pytest.raises(ValueError, match="at least 1"):
        parse(io.BytesIO(b""), ImportFormat.CHAT_JSONL, limits=Limits(max_messages=0))
    with pytest.raises(TypeError, match="binary stream"):
        list(parse(io.StringIO("{}\n"), ImportFormat.CHAT_JSONL))  # type: ignore[arg-type]


# --- dedup ---------------------------------------------------------------------------------------------------------


def test_it_normalises_whitespace_and_case_variants_to_the_same_hash() -> None:
    one = ([Message("system", "Be  Brief."), Message("user", "What is\tthe  CAPITAL of France?")], "Paris.")
    two = ([Message("system", "be brief."), Message("user", "  what IS the capital\n of france? ")], " PARIS. ")

    assert normalise_for_dedup(*one) == "<system> be brief.\n<user> what is the capital of france?\n<response> paris."
    assert normalise_for_dedup(*one) == normalise_for_dedup(*two)
    assert content_hash(*one) == content_hash(*two)
    assert len(content_hash(*one)) == 64


def test_it_keeps_the_hashes_it_gave_before_comparisons_existed() -> None:
    # Computed before content_hash took candidates; items already stored carry these values.
    messages = [Message("system", "Be brief."), Message("user", "What is the capital of France?")]

    assert content_hash(messages, "Paris.") == "ee5063d94c1fc807ba61e89fbfdd62c853beab76c70103fcf7fa05a7f56683aa"
    assert content_hash(messages, "Paris.", ()) == content_hash(messages, "Paris.")
    assert content_hash([Message("user", "Hi")], None) == (
        "de083927a98ddf50bc04f35a90e188245b3500f9bce20f03561490894906a902"
    )
    assert normalise_for_dedup(messages, "Paris.", []) == (
        "<system> be brief.\n<user> what is the capital of france?\n<response> paris."
    )


def test_it_hashes_a_comparison_the_same_whatever_the_order_or_provenance_of_its_candidates() -> None:
    context = [Message("user", "Name a colour")]
    one = (CandidateRecord("Red", model="a"), CandidateRecord("Blue", model="b"), CandidateRecord("Green"))
    two = (CandidateRecord(" GREEN "), CandidateRecord("red", version="2"), CandidateRecord("blue", decoding={"t": 1}))

    assert normalise_for_dedup(context, None, one) == (
        "<user> name a colour\n<candidate> blue\n<candidate> green\n<candidate> red"
    )
    assert content_hash(context, None, one) == content_hash(context, None, two)
    assert content_hash(context, None, one) == content_hash(context, None, ["Green", "Blue", "Red"])


def test_it_tells_comparisons_apart_from_each_other_and_from_sft_records() -> None:
    context = [Message("user", "Name a colour")]

    hashes = {
        content_hash(context, None),
        content_hash(context, "Red"),
        content_hash(context, None, ["Red", "Blue"]),
        content_hash(context, None, ["Red", "Green"]),
        content_hash(context, None, ["Red", "Blue", "Green"]),
        content_hash(context, None, ["Red Blue", "Green"]),
        content_hash([Message("user", "Name a color")], None, ["Red", "Blue"]),
        content_hash(context, "Red", ["Red", "Blue"]),
    }

    assert len(hashes) == 8


def test_it_finds_the_same_comparison_in_two_lines_with_candidates_swapped() -> None:
    data = _jsonl(
        {"prompt": "Pick", "candidates": [{"content": "A", "model": "x"}, {"content": "B", "model": "y"}]},
        {"messages": [{"role": "user", "content": "pick"}], "candidates": [{"content": "b"}, {"content": "a "}]},
        {"prompt": "Pick", "candidates": _candidates("A", "C")},
    )

    first, second, third = (
        content_hash(record.messages, record.response, record.candidates)
        for record in _records(_parse(data, ImportFormat.COMPARISON_JSONL))
    )

    assert first == second != third


def test_it_gives_different_content_different_hashes() -> None:
    base = [Message("user", "What is the capital of France?")]

    hashes = {
        content_hash(base, "Paris."),
        content_hash(base, "Lyon."),
        content_hash(base, None),
        content_hash([Message("system", "What is the capital of France?")], "Paris."),
        content_hash([Message("user", "What is the capital"), Message("user", "of France?")], "Paris."),
        content_hash([Message("user", "What is the capital of France? Paris.")], None),
    }

    assert len(hashes) == 6


# --- streaming -----------------------------------------------------------------------------------------------------


def test_it_streams_100k_lines_in_bounded_memory() -> None:
    line = json.dumps(_chat(("user", "q" * 150), ("assistant", "a" * 150))).encode() + b"\n"
    count = 100_000

    def lines() -> Iterator[bytes]:
        for n in range(count):
            yield b"\xff\n" if n % 1000 == 0 else line

    tracemalloc.start()
    try:
        records = errors = 0
        for item in parse(LazyStream(lines()), ImportFormat.CHAT_JSONL):
            if isinstance(item, Record):
                records += 1
            else:
                errors += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # The file is ~33 MB; holding it, or the records, would blow through this bound.
    assert len(line) * count > 30 * MB
    assert (records, errors) == (99_900, 100)
    assert peak < 20 * MB


# --- properties ----------------------------------------------------------------------------------------------------

TINY = Limits(max_chars_per_message=30, max_messages=5, max_line_bytes=400)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "bot", ""]) | json_values
messages = st.fixed_dictionaries({}, optional={"role": roles, "content": st.text(max_size=40) | json_values})
candidate_objects = st.fixed_dictionaries(
    {},
    optional={
        "content": st.text(max_size=20) | json_values,
        "model": st.text(max_size=8) | json_values,
        "decoding": json_values,
        "extra": json_values,
    },
)
gold_values = st.integers(-1, 4) | st.just("tie") | st.lists(st.lists(st.integers(0, 4), max_size=3), max_size=4)
line_objects = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"messages": st.lists(messages | json_values, max_size=7) | json_values},
        optional={"id": st.text(max_size=5) | json_values, "metadata": json_values},
    ),
    st.fixed_dictionaries(
        {"prompt": st.text(max_size=40) | json_values},
        optional={"response": st.text(max_size=40) | json_values, "system": st.text() | json_values, "id": json_values},
    ),
    st.fixed_dictionaries(
        {"candidates": st.lists(candidate_objects | json_values, max_size=4) | json_values},
        optional={
            "messages": st.lists(messages, max_size=3) | json_values,
            "prompt": st.text(max_size=20) | json_values,
            "system": st.text(max_size=10) | json_values,
            "gold": gold_values | json_values,
            "id": json_values,
            "metadata": json_values,
        },
    ),
)


def _check_outcomes(data: bytes, fmt: ImportFormat, mapping: CsvMapping | None = None) -> list[Record | LineError]:
    results = list(parse(io.BytesIO(data), fmt, csv_mapping=mapping, limits=TINY))
    last_line = max(1, _lines_of(data))  # a CSV without any line still reports its missing header at line 1
    for item in results:
        assert isinstance(item, Record | LineError)
        assert 1 <= item.line <= last_line
        if isinstance(item, LineError):
            assert item.reason
    return results


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=500), max_size=12), st.sampled_from([b"\n", b"\r\n"]))
def test_it_never_raises_on_arbitrary_bytes(chunks: list[bytes], newline: bytes) -> None:
    data = newline.join(chunks)
    for fmt in JSONL_FORMATS:
        _check_outcomes(data, fmt)
    _check_outcomes(b"prompt,response\n" + data, ImportFormat.CSV, CsvMapping(prompt="prompt", response="response"))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_objects, max_size=8), st.booleans())
def test_it_never_raises_on_arbitrary_json_lines(objects: list[Any], ensure_ascii: bool) -> None:
    # surrogatepass lets lone surrogates through as the invalid UTF-8 a buggy exporter would write.
    data = b"".join(
        json.dumps(obj, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass") + b"\n" for obj in objects
    )
    for fmt in JSONL_FORMATS:
        results = _check_outcomes(data, fmt)
        assert len(results) <= len(objects)
        for record in _records(results):
            if fmt is ImportFormat.COMPARISON_JSONL:
                assert 2 <= len(record.candidates) <= 20
                assert len({candidate.content for candidate in record.candidates}) == len(record.candidates)
                assert record.messages[-1].role == "user"
                assert record.response is None
            else:
                assert (record.candidates, record.gold) == ((), None)


plain_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\r"), min_size=1, max_size=60
).filter(str.strip)


@settings(deadline=None)
@given(st.lists(st.tuples(plain_text, plain_text | st.just("")), min_size=1, max_size=10))
def test_it_reads_back_what_the_csv_module_writes_with_the_right_start_lines(rows: list[tuple[str, str]]) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["prompt", "response"])
    starts = []
    for row in rows:
        starts.append(out.getvalue().count("\n") + 1)
        writer.writerow(row)

    results = list(
        parse(io.BytesIO(out.getvalue().encode()), ImportFormat.CSV, csv_mapping=CsvMapping("prompt", "response"))
    )

    assert results == [
        Record(line, (Message("user", prompt),), response or None, None, {})
        for line, (prompt, response) in zip(starts, rows, strict=True)
    ]


@settings(deadline=None)
@given(st.lists(st.lists(plain_text, min_size=1, max_size=3), min_size=1, max_size=6))
def test_it_reads_back_well_formed_conversations(conversations: list[list[str]]) -> None:
    lines = []
    for texts in conversations:
        turns = [("user", text) for text in texts]
        lines.append(_chat(*turns[:-1], ("assistant", texts[-1])) if len(texts) > 1 else _chat(*turns))

    results = _parse(_jsonl(*lines), ImportFormat.CHAT_JSONL)

    assert [(record.line, len(record.messages), record.response) for record in _records(results)] == [
        (n, max(1, len(texts) - 1), texts[-1] if len(texts) > 1 else None)
        for n, texts in enumerate(conversations, start=1)
    ]


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(plain_text, min_size=1, max_size=2),
            st.lists(plain_text, min_size=2, max_size=6, unique=True),
            st.randoms(use_true_random=False),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_it_reads_back_well_formed_comparisons_and_hashes_them_regardless_of_candidate_order(
    comparisons: list[tuple[list[str], list[str], Any]], use_prompt: bool
) -> None:
    lines = []
    golds = []
    for context, answers, rng in comparisons:
        numbers = list(range(1, len(answers) + 1))
        rng.shuffle(numbers)
        cut = rng.randint(1, len(numbers))
        gold = [sorted(numbers[:cut]), sorted(numbers[cut:])] if cut < len(numbers) else [numbers]
        golds.append(gold)
        head = {"prompt": context[-1]} if use_prompt else _chat(*[("user", text) for text in context])
        candidates = [{"content": answer, "model": f"m{n}"} for n, answer in enumerate(answers)]
        lines.append({**head, "candidates": candidates, "gold": gold})

    records = _records(_parse(_jsonl(*lines), ImportFormat.COMPARISON_JSONL))

    assert [(r.line, [c.content for c in r.candidates], [c.model for c in r.candidates], r.gold) for r in records] == [
        (n, answers, [f"m{i}" for i in range(len(answers))], gold)
        for n, ((_, answers, _), gold) in enumerate(zip(comparisons, golds, strict=True), start=1)
    ]
    for record, (_, _, rng) in zip(records, comparisons, strict=True):
        shuffled = list(record.candidates)
        rng.shuffle(shuffled)
        assert content_hash(record.messages, None, shuffled) == content_hash(record.messages, None, record.candidates)
        assert content_hash(record.messages, None, record.candidates) != content_hash(record.messages, None)


@pytest.mark.parametrize(
    ("body_size", "ending", "bom", "too_long"),
    [
        (50, b"\n", b"", False),
        (50, b"\r\n", b"", False),
        (50, b"", b"", False),
        (50, b"\r\n", b"\xef\xbb\xbf", False),
        (51, b"\n", b"", True),
        (51, b"\r\n", b"", True),
        (51, b"", b"", True),
        (51, b"\r\n", b"\xef\xbb\xbf", True),
    ],
)
def test_it_applies_the_line_limit_to_the_bytes_before_the_terminator(
    body_size: int, ending: bytes, bom: bytes, too_long: bool
) -> None:
    body = b'{"messages":[{"role":"user","content":"Hi"}]}'
    body += b" " * (body_size - len(body))
    # Without a terminator the line can only be the last one.
    after = b'{"messages":[{"role":"user","content":"n"}]}\n' if ending else b""
    data = bom + body + ending + after

    results = _parse(data, ImportFormat.CHAT_JSONL, limits=Limits(max_line_bytes=50))

    expected = [(1, f"line is too long ({body_size} bytes; the limit is 50)")] if too_long else []
    assert _errors(results) == expected
    good_lines = ([] if too_long else [1]) + ([2] if after else [])
    assert [record.line for record in _records(results)] == good_lines


def test_it_measures_an_overlong_line_whose_crlf_straddles_two_reads() -> None:
    # The first read stops right after the "\r", so the "\n" arrives alone in the next one.
    data = b"x" * 51 + b"\r\n" + b'{"messages":[{"role":"user","content":"n"}]}\n'

    results = _parse(data, ImportFormat.CHAT_JSONL, limits=Limits(max_line_bytes=50))

    assert _errors(results) == [(1, "line is too long (51 bytes; the limit is 50)")]
    assert [record.line for record in _records(results)] == [2]

"""The CSV format of ``annotation.parsing``: rows read with the csv module over the stream's physical lines (a
quoted cell may span several), mapped to a ``Record`` by the data lead's column mapping."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from annotation.parsing import (
    CsvMapping,
    Invalid,
    Limits,
    LineError,
    Message,
    RawLine,
    Record,
    check_storable,
    clean_id,
    clean_text,
    not_utf8,
    too_long_line,
)

# Header lists in error messages are cut here so a 5,000-column header does not make a 50 KB reason.
_MAX_COLUMNS_SHOWN = 20


# --- CSV ---------------------------------------------------------------------------------------------------------


class _RowTooLong(Exception):
    """Raised from inside csv.reader to abandon a row that spans too many bytes (usually an unclosed quote)."""


class _CsvLines:
    """Decoded lines for csv.reader, remembering where the current row started and what went wrong in it.

    Bad lines are not dropped but replaced by a stand-in with the same quoting effect (undecodable bytes become
    U+FFFD; a skipped overlong line becomes a lone quote if it had an odd number of quotes), so the csv state
    stays in step and the rows after a bad one keep their boundaries and line numbers.
    """

    def __init__(self, lines: Iterator[RawLine], limits: Limits) -> None:
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
            self._flag(raw.number, too_long_line(raw.size, self._limits))
            return '"\n' if raw.odd_quotes else "\n"
        self._row_bytes += raw.size
        # A single line is already bounded; only a row running across lines can grow past the limit.
        if self._row_bytes > self._limits.max_line_bytes and raw.number != self.row_start:
            raise _RowTooLong
        try:
            return raw.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._flag(raw.number, not_utf8(exc))
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


def parse_csv(lines: Iterator[RawLine], mapping: CsvMapping, limits: Limits) -> Iterator[Record | LineError]:
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
    prompt = clean_text(cells[index[mapping.prompt]], label, limits, empty=f"{label} is empty")
    system = _csv_optional_text(cells, index, mapping.system, limits)
    response = _csv_optional_text(cells, index, mapping.response, limits)
    external_id = clean_id(cells[index[mapping.id]], f"column {mapping.id!r}") if mapping.id is not None else None
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
    return clean_text(cells[index[column]], label, limits, empty=f"{label} is empty")

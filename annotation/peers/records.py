"""What a peer tool's file becomes, whatever the tool: the shapes every reader in ``annotation.peers`` yields
and ``annotation.importing`` consumes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from annotation.parsing import CandidateRecord, LineError, Message


class PeerFormat(StrEnum):
    LABEL_STUDIO = "label_studio_json"  # a project's JSON export (a JSON array of tasks), or JSONL of tasks
    ARGILLA = "argilla_disk"  # a zip of the folder ``Dataset.to_disk`` writes
    OPENASSISTANT = "openassistant_trees"  # OpenAssistant's message-tree JSONL (one tree a line)


TOOL_NAMES = {
    PeerFormat.LABEL_STUDIO: "Label Studio",
    PeerFormat.ARGILLA: "Argilla",
    PeerFormat.OPENASSISTANT: "OpenAssistant",
}


@dataclass(frozen=True)
class PeerAnnotator:
    """A person (or, for OpenAssistant's aggregated rankings, a consensus) as the tool knows them. ``key`` is
    stable across the file (Label Studio's user id, Argilla's user UUID, ``"consensus"``); ``label`` is what
    a data lead recognises them by on the mapping step (an e-mail or name when the file has one, else the
    key)."""

    key: str
    label: str


@dataclass(frozen=True)
class PeerJudgement:
    """One annotator's preference over a record's candidates, already in Enclave's result shape, with
    candidate ids from 0 in the record's candidate order: ``{"winner": 0 | 1 | "tie" | "both_bad",
    "strength": None}`` for two candidates, ``{"ranking": [[1], [0, 2]]}`` (best tier first, every candidate
    once) for more."""

    annotator: PeerAnnotator
    result: dict[str, Any]
    created_at: datetime | None = None  # timezone-aware; None when the file does not say
    lead_time_ms: int | None = None  # time the annotator spent, when the tool recorded it
    rationale: str = ""
    external_id: str = ""  # the tool's id of this annotation or response, "" when it has none


@dataclass(frozen=True)
class PeerAnswer:
    """An annotator's written or corrected answer to a record's conversation (SFT)."""

    annotator: PeerAnnotator
    response: str
    created_at: datetime | None = None
    lead_time_ms: int | None = None
    external_id: str = ""


@dataclass(frozen=True)
class PeerRecord:
    """One task (Label Studio), record (Argilla) or set of ranked siblings (OpenAssistant).

    ``line`` is where it starts: the 1-based line of the file (for a zip, the record's number in the
    dataset). A comparison has two or more ``candidates`` and its ``judgements``; an SFT record has
    ``messages`` ending with the user's turn, the model's ``response`` when there is one, and ``answers``.
    ``dropped`` lists the parts of it that were not mapped, in words (an unsupported control, a cancelled or
    empty annotation)."""

    line: int
    messages: tuple[Message, ...]
    response: str | None = None
    candidates: tuple[CandidateRecord, ...] = ()
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    judgements: tuple[PeerJudgement, ...] = ()
    answers: tuple[PeerAnswer, ...] = ()
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeerDropped:
    """A whole task or record left out although well formed (no annotation in a shape Enclave takes, only
    unsupported controls), with the reason: reported, not an error."""

    line: int
    reason: str


@dataclass(frozen=True)
class FieldMap:
    """Which fields of a task's ``data`` (Label Studio) or a record's fields (Argilla) hold what. The file
    does not say for Label Studio (its labeling config is not in the export), so a scan guesses and the data
    lead confirms. ``prompt`` holds the user's message or a chat (a list of ``{"role", "content"}``)."""

    prompt: str
    candidates: tuple[str, ...] = ()
    response: str | None = None


@dataclass(frozen=True)
class AnnotatorSeen:
    annotator: PeerAnnotator
    judgements: int = 0
    answers: int = 0


@dataclass
class PeerScan:
    """What a first read of the file found, for the mapping step: where it came from, its fields and a guess
    at their meaning, and who annotated how much. ``errors`` holds a few line errors when the file cannot be
    read at all (not JSON, not a zip, a tree without a prompt)."""

    tool: str
    project: str  # the tool's project or dataset as the file names it, "" when it does not
    records: int
    fields: list[str]
    field_guess: FieldMap | None
    annotators: list[AnnotatorSeen]
    errors: list[LineError] = field(default_factory=list)


Entry = PeerRecord | PeerDropped | LineError
EntryStream = Iterator[Entry]

"""An Argilla v2 dataset saved with ``Dataset.to_disk`` and uploaded as a zip of that folder (with or without one
top folder): ``.argilla/settings.json`` (fields and questions), ``.argilla/dataset.json`` (its name) and
``records.json`` (a JSON array of records, their responses grouped by question:
``{"<question>": [{"value": ..., "user_id": "<uuid>"}]}``).

A RankingQuestion or a LabelQuestion over the candidate fields gives each user's judgement, a TextQuestion a
corrected answer (in a comparison, the judgement's rationale). Argilla 2.8's ``to_disk`` writes a ranking as
the options in order, best first, without their ranks, and a response without its status; where a file has
ranks (``[{"value", "rank"}]``) equal ranks make a tier, and where it has a status only ``submitted`` counts."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation.parsing import CandidateRecord, Invalid, Limits, LineError, Message, check_json_storable
from annotation.peers.common import (
    BOTH_BAD_CHOICES,
    MAX_ARRAY_BYTES,
    TIE_CHOICES,
    chat_messages,
    choice_index,
    clean_text,
    count_annotators,
    count_candidates,
    fold,
    tiers_result,
)
from annotation.peers.guessing import guess_fields
from annotation.peers.records import (
    AnnotatorSeen,
    Entry,
    FieldMap,
    PeerAnnotator,
    PeerAnswer,
    PeerDropped,
    PeerJudgement,
    PeerRecord,
    PeerScan,
)

SETTINGS = ".argilla/settings.json"
DATASET = ".argilla/dataset.json"
RECORDS = "records.json"
_PREFERENCE_TYPES = ("ranking", "label_selection")


@dataclass(frozen=True)
class _Saved:
    name: str
    fields: dict[str, str]  # field name -> type ("text", "chat", "image", "custom")
    questions: dict[str, tuple[str, tuple[str, ...]]]  # question name -> (type, option values)
    records: list[Any]


def scan(path: Path, limits: Limits) -> PeerScan:
    """Read the settings for the fields and a guess at their meaning, and the records for the counts."""
    try:
        saved = _open(path)
    except Invalid as exc:
        return PeerScan("Argilla", "", 0, [], None, [], [LineError(1, exc.reason)])
    guess = _guess(saved)
    seen: dict[str, AnnotatorSeen] = {}
    for entry in _entries(saved, guess, limits):
        if isinstance(entry, PeerRecord):
            count_annotators(seen, entry)
    return PeerScan("Argilla", saved.name, len(saved.records), list(saved.fields), guess, list(seen.values()))


def read(path: Path, fields: FieldMap | None, limits: Limits) -> Iterator[Entry]:
    """Yield one entry per record, numbered from 1 in the dataset's order."""
    try:
        saved = _open(path)
    except Invalid as exc:
        yield LineError(1, exc.reason)
        return
    yield from _entries(saved, fields or _guess(saved), limits)


def _entries(saved: _Saved, fields: FieldMap | None, limits: Limits) -> Iterator[Entry]:
    if fields is None:
        yield LineError(1, "no field of the dataset looks like a prompt; name the prompt field on the mapping step")
        return
    for number, record in enumerate(saved.records, start=1):
        try:
            yield _record_entry(record, number, saved, fields, limits)
        except Invalid as exc:
            yield LineError(number, exc.reason)


def _open(path: Path) -> _Saved:
    """Read the settings, the dataset's name and the records out of the zip.

    Raises:
        Invalid: if it is not a zip, holds no (or more than one) saved dataset, or a part is not the JSON
            ``to_disk`` writes.
    """
    if not zipfile.is_zipfile(path):
        raise Invalid("not a zip file; upload a zip of the folder Argilla's Dataset.to_disk wrote")
    with zipfile.ZipFile(path) as archive:
        names = {info.filename: info for info in archive.infolist() if not info.is_dir()}
        roots = [name.removesuffix(SETTINGS) for name in names if name == SETTINGS or name.endswith("/" + SETTINGS)]
        if not roots:
            raise Invalid(f"the zip holds no {SETTINGS}; is it a folder written by Argilla's Dataset.to_disk?")
        if len(roots) > 1 or roots[0].count("/") > 1:
            raise Invalid(f"the zip holds {len(roots)} saved datasets or a nested one; upload one dataset a zip")
        root = roots[0]

        def load(member: str) -> Any:
            info = names.get(root + member)
            if info is None:
                return None
            if info.file_size > MAX_ARRAY_BYTES:
                raise Invalid(f"{member} is too large ({info.file_size:,} bytes; the limit is {MAX_ARRAY_BYTES:,})")
            try:
                return json.loads(archive.read(info).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise Invalid(f"{member} is not valid JSON ({exc})") from None

        settings, dataset, records = load(SETTINGS), load(DATASET), load(RECORDS)
    if not isinstance(settings, dict) or not isinstance(settings.get("fields"), list):
        raise Invalid(f"{SETTINGS} has no list of fields")
    if records is None:
        raise Invalid(f"the zip holds no {RECORDS}; save the dataset with its records (to_disk(with_records=True))")
    if not isinstance(records, list):
        raise Invalid(f"{RECORDS} is not a list of records")
    fields = {str(item.get("name")): str(_kind(item)) for item in settings["fields"] if isinstance(item, dict)}
    questions = {}
    for item in settings.get("questions") or []:
        if isinstance(item, dict):
            options = (item.get("settings") or {}).get("options") or []
            values = tuple(str(option.get("value")) for option in options if isinstance(option, dict))
            questions[str(item.get("name"))] = (str(_kind(item)), values)
    name = dataset.get("name") if isinstance(dataset, dict) else None
    return _Saved(str(name or ""), fields, questions, records)


def _kind(item: dict[str, Any]) -> Any:
    return item.get("type") or (item.get("settings") or {}).get("type")


def _guess(saved: _Saved) -> FieldMap | None:
    """Candidates are the fields a ranking or label question names (in its order); else as in Label Studio."""
    candidates: tuple[str, ...] = ()
    for kind, options in saved.questions.values():
        named = tuple(option for option in options if option in saved.fields)
        if kind in _PREFERENCE_TYPES and len(named) >= 2:
            candidates = named
            break
    samples = {name: ([] if kind == "chat" else "") for name, kind in saved.fields.items() if name not in candidates}
    guess = guess_fields(samples)
    if candidates:
        prompt = guess.prompt if guess is not None else next(iter(samples), None)
        return FieldMap(prompt=prompt, candidates=candidates) if prompt is not None else None
    if guess is None:
        return None
    series = guess_fields(dict.fromkeys(saved.fields, ""))
    if not guess.candidates and series is not None and len(series.candidates) >= 2:
        return FieldMap(prompt=guess.prompt, candidates=series.candidates)
    return guess


def _record_entry(
    record: Any, number: int, saved: _Saved, fields: FieldMap, limits: Limits
) -> PeerRecord | PeerDropped:
    if not isinstance(record, dict) or not isinstance(record.get("fields"), dict):
        raise Invalid(f"record {number} has no fields")
    external = record.get("id") or record.get("_server_id")
    label = f"record {external}" if external else f"record {number}"
    values = record["fields"]
    prompt = values.get(fields.prompt)
    if prompt is None:
        raise Invalid(f"{label}: the prompt field “{fields.prompt}” is missing")
    where = f"{label}: the prompt “{fields.prompt}”"
    messages = chat_messages(prompt, where, limits) if isinstance(prompt, list) else (
        Message("user", clean_text(prompt, where, limits)),
    )  # fmt: skip
    ids = tuple(name for name in fields.candidates if values.get(name) is not None)
    if fields.candidates:
        count_candidates(len(ids), label)
    candidates = tuple(CandidateRecord(clean_text(values[name], f"{label}: “{name}”", limits)) for name in ids)
    response = None
    if fields.response is not None and values.get(fields.response) is not None:
        response = clean_text(values[fields.response], f"{label}: the response “{fields.response}”", limits)
    judgements, answers, dropped = _responses(record.get("responses"), saved, ids, label, limits)
    if (judgements or answers or dropped) and not (judgements or answers):
        return PeerDropped(number, f"{label}: no response could be mapped ({'; '.join(dropped)})")
    given = record.get("metadata")
    metadata: dict[str, Any] = given if isinstance(given, dict) else {}
    check_json_storable(metadata, f"{label}: metadata")
    return PeerRecord(
        number,
        messages,
        response=response,
        candidates=candidates,
        external_id=str(external) if external else None,
        metadata=dict(metadata),
        judgements=tuple(judgements),
        answers=tuple(answers),
        dropped=tuple(dropped),
    )


def _responses(
    responses: Any, saved: _Saved, ids: tuple[str, ...], label: str, limits: Limits
) -> tuple[list[PeerJudgement], list[PeerAnswer], list[str]]:
    """Return each user's judgement or answer, and what was left out, in words."""
    if not responses:
        return [], [], []
    if not isinstance(responses, dict):
        raise Invalid(f"{label}: “responses” must be an object of questions")
    preferences: dict[str, dict[str, Any]] = {}
    texts: dict[str, list[str]] = {}
    dropped: list[str] = []
    for question, given in responses.items():
        kind = saved.questions.get(question, ("unknown", ()))[0]
        if kind not in (*_PREFERENCE_TYPES, "text") or (kind != "text" and not ids):
            dropped.append(f"question “{question}” ({kind}) is not a preference or an answer")
            continue
        for response in given if isinstance(given, list) else []:
            user = str(response.get("user_id")) if isinstance(response, dict) else "None"
            status = response.get("status", "submitted") if isinstance(response, dict) else None
            if user in ("None", ""):
                dropped.append(f"a response to “{question}” names no user")
            elif status != "submitted":
                dropped.append(f"the {status} response of user {user} to “{question}” (only submitted ones count)")
            elif kind == "text":
                where = f"{label}: the answer of user {user} to “{question}”"
                texts.setdefault(user, []).append(clean_text(response.get("value"), where, limits))
            elif user in preferences:
                dropped.append(f"a second preference of user {user} (question “{question}”)")
            else:
                try:
                    preferences[user] = _preference(kind, question, response.get("value"), ids)
                except Invalid as exc:
                    dropped.append(exc.reason)
    judgements = [
        PeerJudgement(PeerAnnotator(user, user), result, rationale="\n\n".join(texts.get(user, [])))
        for user, result in preferences.items()
    ]
    answers: list[PeerAnswer] = []
    for user, written in texts.items():
        if not ids:
            answers.append(PeerAnswer(PeerAnnotator(user, user), "\n\n".join(written)))
        elif user not in preferences:
            dropped.append(f"user {user} wrote an answer but gave no preference")
    return judgements, answers, dropped


def _preference(kind: str, question: str, value: Any, ids: tuple[str, ...]) -> dict[str, Any]:
    """Return a ranking or label response as a result in candidate ids.

    Raises:
        Invalid: saying why it cannot be read as a preference over these candidates.
    """
    if kind == "label_selection":
        choice = fold(value) if isinstance(value, str) else ""
        if len(ids) == 2 and choice in TIE_CHOICES:
            return {"winner": "tie", "strength": None}
        if len(ids) == 2 and choice in BOTH_BAD_CHOICES:
            return {"winner": "both_bad", "strength": None}
        index = choice_index(choice, ids)
        if index is None or len(ids) != 2:
            raise Invalid(f"the label {str(value)[:40]!r} of “{question}” does not name one of two candidates")
        return {"winner": index, "strength": None}
    if not isinstance(value, list) or not value:
        raise Invalid(f"the ranking “{question}” is empty")
    ranked: list[tuple[int, int]] = []  # (rank, candidate id)
    for place, item in enumerate(value, start=1):
        option, rank = (item.get("value"), item.get("rank")) if isinstance(item, dict) else (item, place)
        index = choice_index(fold(str(option)), ids)
        if index is None:
            raise Invalid(f"the ranking “{question}” names {str(option)[:40]!r}, which is not a candidate")
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise Invalid(f"the ranking “{question}” gives {str(option)[:40]!r} no rank")
        ranked.append((rank, index))
    placed = [index for _, index in ranked]
    if sorted(placed) != list(range(len(ids))):
        raise Invalid(f"the ranking “{question}” does not place every candidate exactly once")
    tiers: dict[int, list[int]] = {}
    for rank, index in sorted(ranked):
        tiers.setdefault(rank, []).append(index)
    return tiers_result(list(tiers.values()), len(ids))

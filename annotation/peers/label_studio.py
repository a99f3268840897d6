"""Label Studio's JSON export (a JSON array of tasks, or JSON lines of tasks): a pairwise or ranking project
becomes comparisons with their judgements, an SFT project (a prompt and a written or corrected answer) items
with answers. The export does not carry the labeling config, so which ``data`` fields hold what comes from a
``FieldMap`` (guessed by ``guessing.guess_fields`` when not given) and each result is read by its type:
``pairwise`` (left = the first candidate), ``ranker`` (an order, or buckets as tiers), ``choices`` that name a
candidate, a tie or "both bad", and ``textarea`` (an answer, or in a comparison the judgement's rationale)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotation.parsing import CandidateRecord, Invalid, Limits, LineError, Message, check_json_storable, check_storable
from annotation.peers.common import (
    BOTH_BAD_CHOICES,
    TIE_CHOICES,
    chat_messages,
    choice_index,
    clean_text,
    count_annotators,
    count_candidates,
    fold,
    json_values,
    parse_time,
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

_PREFERENCE_TYPES = ("pairwise", "ranker", "choices")
_ITEM_TEXT_KEYS = ("body", "text", "content", "html", "title")
_MAX_ERRORS = 5


def scan(path: Path, limits: Limits) -> PeerScan:
    """Read the file twice: once for its fields and a guess at their meaning, once (with that guess) to count
    each annotator's judgements and answers."""
    samples: dict[str, Any] = {}
    tasks, project = 0, ""
    errors: list[LineError] = []
    for item in json_values(path, limits):
        if isinstance(item, LineError):
            if len(errors) < _MAX_ERRORS:
                errors.append(item)
            continue
        line, task = item
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            if len(errors) < _MAX_ERRORS:
                errors.append(LineError(line, "not a Label Studio task (it has no “data” object)"))
            continue
        tasks += 1
        project = project or str(task.get("project") or "")
        for key, value in task["data"].items():
            if value is not None:
                samples.setdefault(key, value)
    if not tasks and not errors:
        errors.append(LineError(1, "the file holds no Label Studio task"))
    guess = guess_fields(samples)
    seen: dict[str, AnnotatorSeen] = {}
    if guess is not None:
        for entry in read(path, guess, limits):
            if isinstance(entry, PeerRecord):
                count_annotators(seen, entry)
    return PeerScan("Label Studio", project, tasks, list(samples), guess, list(seen.values()), errors)


def read(path: Path, fields: FieldMap | None, limits: Limits) -> Iterator[Entry]:
    """Yield one entry per task, in file order; without ``fields``, the scan's guess is used."""
    if fields is None:
        fields = scan(path, limits).field_guess
        if fields is None:
            yield LineError(1, "no task field looks like a prompt; name the prompt field on the mapping step")
            return
    for item in json_values(path, limits):
        if isinstance(item, LineError):
            yield item
            continue
        line, task = item
        try:
            yield _task_entry(task, line, fields, limits)
        except Invalid as exc:
            yield LineError(line, exc.reason)


def _task_entry(task: Any, line: int, fields: FieldMap, limits: Limits) -> PeerRecord | PeerDropped:
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise Invalid("not a Label Studio task (it has no “data” object)")
    task_id = task.get("id")
    label = f"task {task_id}" if isinstance(task_id, int | str) and not isinstance(task_id, bool) else "task"
    data = task["data"]
    messages = _prompt(data, fields.prompt, label, limits)
    candidates, ids = _candidates(data, fields, label, limits)
    response = None
    if fields.response is not None and data.get(fields.response) is not None:
        response = clean_text(data[fields.response], f"{label}: the response “{fields.response}”", limits)
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise Invalid(f"{label}: “annotations” must be a list")
    judgements: list[PeerJudgement] = []
    answers: list[PeerAnswer] = []
    dropped: list[str] = []
    for annotation in annotations:
        mapped, reasons = _annotation(annotation, ids, label, limits)
        dropped.extend(reasons)
        if isinstance(mapped, PeerJudgement):
            judgements.append(mapped)
        elif isinstance(mapped, PeerAnswer):
            answers.append(mapped)
    if annotations and not judgements and not answers:
        return PeerDropped(line, f"{label}: no annotation could be mapped ({'; '.join(dropped)})")
    meta = task.get("meta")
    metadata: dict[str, Any] = meta if isinstance(meta, dict) else {}
    check_json_storable(metadata, f"{label}: “meta”")
    return PeerRecord(
        line,
        messages,
        response=response,
        candidates=candidates,
        external_id=str(task_id) if label != "task" else None,
        metadata=dict(metadata),
        judgements=tuple(judgements),
        answers=tuple(answers),
        dropped=tuple(dropped),
    )


def _prompt(data: dict[str, Any], name: str, label: str, limits: Limits) -> tuple[Message, ...]:
    value = data.get(name)
    if value is None:
        raise Invalid(f"{label}: the prompt field “{name}” is missing")
    where = f"{label}: the prompt “{name}”"
    if isinstance(value, list):
        return chat_messages(value, where, limits)
    return (Message("user", clean_text(value, where, limits)),)


def _candidates(
    data: dict[str, Any], fields: FieldMap, label: str, limits: Limits
) -> tuple[tuple[CandidateRecord, ...], tuple[str, ...]]:
    """Return the candidates and the name each is known by in results (a field name, or a List item's id)."""
    if not fields.candidates:
        return (), ()
    if len(fields.candidates) == 1:
        name = fields.candidates[0]
        items = data.get(name)
        if not isinstance(items, list):
            raise Invalid(f"{label}: the candidates field “{name}” is missing or not a list")
        count_candidates(len(items), label)
        candidates, ids = [], []
        for number, item in enumerate(items, start=1):
            where = f"{label}: candidate {number} of “{name}”"
            if isinstance(item, dict):
                used = next((key for key in _ITEM_TEXT_KEYS if isinstance(item.get(key), str)), "body")
                text = item.get(used)
                extra = {key: value for key, value in item.items() if key != used}
                check_json_storable(extra, where)
                candidates.append(CandidateRecord(clean_text(text, where, limits), extra=extra))
                ids.append(str(item.get("id", number)))
            else:
                candidates.append(CandidateRecord(clean_text(item, where, limits)))
                ids.append(str(number))
        return tuple(candidates), tuple(ids)
    present = [name for name in fields.candidates if data.get(name) is not None]
    missing = [name for name in fields.candidates if name not in present]
    if len(present) < 2:
        count_candidates(len(present), f"{label} (missing: {', '.join(f'“{name}”' for name in missing)})")
    texts = tuple(CandidateRecord(clean_text(data[name], f"{label}: “{name}”", limits)) for name in present)
    return texts, tuple(present)


def _annotation(
    annotation: Any, ids: tuple[str, ...], task: str, limits: Limits
) -> tuple[PeerJudgement | PeerAnswer | None, list[str]]:
    if not isinstance(annotation, dict):
        raise Invalid(f"{task}: an annotation is not an object")
    annotation_id = annotation.get("id")
    name = f"annotation {annotation_id}" if annotation_id is not None else "an annotation"
    if annotation.get("was_cancelled"):
        return None, [f"{name} was cancelled (skipped) by its annotator"]
    regions = annotation.get("result") or []
    if not isinstance(regions, list):
        raise Invalid(f"{task}: {name}: “result” must be a list")
    if not regions:
        return None, [f"{name} has an empty result"]
    annotator = _annotator(annotation, f"{task}: {name}")
    if annotator is None:
        return None, [f"{name} does not say who made it"]
    preference: dict[str, Any] | None = None
    texts: list[str] = []
    reasons: list[str] = []
    for region in regions:
        if not isinstance(region, dict):
            raise Invalid(f"{task}: {name}: a result is not an object")
        kind, control = str(region.get("type", "")).lower(), str(region.get("from_name", ""))
        given = region.get("value")
        value: dict[str, Any] = given if isinstance(given, dict) else {}
        if kind == "textarea" and isinstance(value.get("text"), list):
            texts.extend(clean_text(text, f"{task}: {name}: “{control}”", limits) for text in value["text"])
            continue
        if kind not in _PREFERENCE_TYPES or not ids:
            reasons.append(f"{name}: control “{control}” ({kind}) is not a preference or an answer")
            continue
        try:
            found = _preference(kind, control, value, ids)
        except Invalid as exc:
            reasons.append(f"{name}: {exc.reason}")
            continue
        if preference is not None:
            reasons.append(f"{name}: a second preference (control “{control}”) was left out")
            continue
        preference = found
    created = parse_time(annotation.get("created_at"))
    lead_time = annotation.get("lead_time")
    lead_ms = round(lead_time * 1000) if isinstance(lead_time, int | float) and math.isfinite(lead_time) else None
    lead_ms = lead_ms if lead_ms is None or lead_ms >= 0 else None
    external = str(annotation_id) if annotation_id is not None else ""
    text = "\n\n".join(texts)
    if preference is not None:
        return PeerJudgement(annotator, preference, created, lead_ms, text, external), reasons
    if texts and not ids:
        return PeerAnswer(annotator, text, created, lead_ms, external), reasons
    if texts:
        reasons.append(f"{name}: a written comment without a preference is not a judgement")
    return None, reasons or [f"{name} holds nothing Enclave can import"]


def _annotator(annotation: dict[str, Any], where: str) -> PeerAnnotator | None:
    by = annotation.get("completed_by")
    if isinstance(by, dict):
        key = by.get("id")
        person = " ".join(str(by.get(part) or "") for part in ("first_name", "last_name")).strip()
        label = by.get("email") or person
    else:
        key, label = by, ""
        username = annotation.get("created_username")
        if isinstance(username, str):
            # Label Studio writes "<e-mail>, <id>"; the id is the key already.
            label = username.strip().removesuffix(f", {key}").strip()
    if key is None or isinstance(key, bool) or not isinstance(key, int | str) or not str(key).strip():
        return None
    label = str(label) if label else str(key)
    check_storable(label, f"{where}: the annotator")
    return PeerAnnotator(key=str(key).strip(), label=label)


def _preference(kind: str, control: str, value: dict[str, Any], ids: tuple[str, ...]) -> dict[str, Any]:
    """Return the result of a preference control, in candidate ids.

    Raises:
        Invalid: saying why the control's value cannot be read as a preference over these candidates.
    """
    count = len(ids)
    if kind == "pairwise":
        selected = value.get("selected")
        if count != 2:
            raise Invalid(f"control “{control}” (pairwise) over {count} candidates")
        if selected not in ("left", "right"):
            raise Invalid(f"control “{control}” (pairwise) selected {str(selected)[:40]!r}, not left or right")
        return {"winner": 0 if selected == "left" else 1, "strength": None}
    if kind == "ranker":
        return tiers_result(_ranker_tiers(control, value.get("ranker"), ids), count)
    choices = value.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], str):
        raise Invalid(f"control “{control}” (choices) is not a preference or an answer")
    choice = fold(choices[0])
    if count == 2 and choice in TIE_CHOICES:
        return {"winner": "tie", "strength": None}
    if count == 2 and choice in BOTH_BAD_CHOICES:
        return {"winner": "both_bad", "strength": None}
    index = choice_index(choice, ids)
    if index is None:
        raise Invalid(f"control “{control}” (choices) is not a preference or an answer")
    if count != 2:
        raise Invalid(f"control “{control}” (choices) picks one of {count} candidates, not a full ranking")
    return {"winner": index, "strength": None}


def _ranker_tiers(control: str, ranker: Any, ids: tuple[str, ...]) -> list[list[int]]:
    if not isinstance(ranker, dict) or not all(isinstance(items, list) for items in ranker.values()):
        raise Invalid(f"control “{control}” (ranker) has no ranking")
    index = {name: position for position, name in enumerate(ids)}
    # One key named after the control: an order, best first. Otherwise buckets, each a tier, in their order;
    # "_" is the list of items left unplaced.
    if list(ranker) == [control]:
        groups = [[item] for item in ranker[control]]
    else:
        groups = [items for bucket, items in ranker.items() if bucket != "_" and items]
    tiers, placed = [], set()
    for group in groups:
        tier = []
        for item in group:
            if str(item) not in index:
                raise Invalid(f"control “{control}” (ranker) names an unknown item {str(item)[:40]!r}")
            if index[str(item)] in placed:
                raise Invalid(f"control “{control}” (ranker) places item {str(item)[:40]!r} twice")
            placed.add(index[str(item)])
            tier.append(index[str(item)])
        tiers.append(tier)
    left_out = [name for name in ids if index[name] not in placed]
    if left_out:
        raise Invalid(f"control “{control}” (ranker) leaves out {', '.join(left_out)}; a ranking places every one")
    return tiers

"""Which fields of a Label Studio task's ``data`` (or an Argilla record's fields) hold the prompt, the candidates
and the model's response: the export does not say, so the names and value types are read for a guess that the
data lead confirms or overrides with a ``FieldMap``."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from annotation.peers.records import FieldMap

# In this order: a plain prompt first, then a chat. "context" comes last: beside an instruction it is a passage.
PROMPT_NAMES = ("prompt", "instruction", "question", "query", "input", "text", "messages", "chat", "dialogue",
                "conversation", "context")  # fmt: skip
# A numbered or lettered series of these (answer1, answer2…; response_a, response_b…) holds the candidates.
SERIES_STEMS = ("answer", "response", "completion", "output", "candidate", "generation", "option", "text")
NAMED_PAIRS = (("left", "right"), ("chosen", "rejected"))
LIST_NAMES = ("items", "options", "candidates", "responses", "answers", "completions", "outputs", "generations")
RESPONSE_NAMES = ("response", "answer", "output", "completion", "model_answer", "reference", "target")
_SEPARATORS = ("", "_", "-", " ")


def guess_fields(samples: Mapping[str, Any]) -> FieldMap | None:
    """Guess from one example value per field name (the first non-null seen); None when no prompt is found.

    Field names match without regard to case; the ``FieldMap`` holds them as the file spells them."""
    by_fold = {name.casefold(): name for name in samples}
    candidates = _series(by_fold) or _pair(by_fold) or _list(by_fold, samples)
    taken = set(candidates)
    prompt = next(
        (
            by_fold[name]
            for name in PROMPT_NAMES
            if name in by_fold and by_fold[name] not in taken and isinstance(samples[by_fold[name]], str | list)
        ),
        None,
    )
    if prompt is None:
        return None
    response = None
    if not candidates:
        response = next(
            (by_fold[name] for name in RESPONSE_NAMES if name in by_fold and by_fold[name] != prompt),
            None,
        )
    return FieldMap(prompt=prompt, candidates=candidates, response=response)


def _series(by_fold: Mapping[str, str]) -> tuple[str, ...]:
    for stem in SERIES_STEMS:
        for separator in _SEPARATORS:
            for marks in (tuple(str(n) for n in range(1, 21)), tuple(string.ascii_lowercase[:20])):
                run = _run(by_fold, [f"{stem}{separator}{mark}" for mark in marks])
                if len(run) >= 2:
                    return run
    return ()


def _run(by_fold: Mapping[str, str], names: Sequence[str]) -> tuple[str, ...]:
    found = []
    for name in names:
        if name not in by_fold:
            break
        found.append(by_fold[name])
    return tuple(found)


def _pair(by_fold: Mapping[str, str]) -> tuple[str, ...]:
    for first, second in NAMED_PAIRS:
        if first in by_fold and second in by_fold:
            return by_fold[first], by_fold[second]
    return ()


def _list(by_fold: Mapping[str, str], samples: Mapping[str, Any]) -> tuple[str, ...]:
    for name in LIST_NAMES:
        if name in by_fold and isinstance(samples[by_fold[name]], list):
            return (by_fold[name],)
    return ()

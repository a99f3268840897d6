"""What the PII detectors share: the span a detector reports and the shapes of card-like digit runs, which
both the card and the phone detectors must recognise."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

CARD_GROUPINGS = ((4, 6, 5), (4, 6, 4))  # American Express and Diners Club as printed on the card
ANY_DIGIT_RE = re.compile(r"\d")  # phonenumbers also reads non-ASCII digits


@dataclass(frozen=True, slots=True)
class Span:
    type: str
    start: int
    end: int
    key: str  # the normalised value, compared for consistent placeholders; never leaves the scrubber
    uncertain: bool = False


def long_code_in_fours(text: str, groups: Sequence[tuple[int, int]]) -> bool:
    """Whether a run of digit groups is one code printed in fours that goes on past a card's 16 digits
    ("3023 3770 1133 4173 7902 90"), and not a card followed by its expiry date ("... 1111 12/25")."""
    lengths = [end - start for start, end in groups]
    if len(lengths) < 5 or sum(lengths) <= 16 or any(n != 4 for n in lengths[:-1]) or lengths[-1] > 4:
        return False
    return not re.match(r"[./][0-9]", text[groups[-1][1] : groups[-1][1] + 2])

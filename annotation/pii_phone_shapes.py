"""Shapes of digit runs that are not phone numbers, for the phone detector (``annotation.pii_phones``): dates,
versions, amounts, numbers that go on ("1.234.567,89"), card- and IBAN-shaped runs, codes of letters and digits.
Pure Python."""

from __future__ import annotations

import re

from annotation.pii_shapes import CARD_GROUPINGS, long_code_in_fours

_CURRENCY_RE = re.compile(
    r"(?:[€$£¥₣₹₽₺₩]|\b(?:EUR|USD|GBP|CHF|PLN|SEK|DKK|NOK|CZK|HUF|Fr|CHF|zł|kr|euros?|Euro|dollars?|pounds?)\b)",
    re.IGNORECASE,
)
_CODE_BEFORE_RE = re.compile(r"(?:[A-Za-z]{2}[0-9]{2}(?: ?[0-9A-Za-z]{4})*|[A-Za-z]+[0-9]+[A-Za-z0-9]*)[ \-]\Z")
_CODE_AFTER_RE = re.compile(r"[ \-]?(?:[A-Za-z]+[0-9]|[0-9]+[A-Za-z])")
# A date not inside a longer dotted chain (06.12.34.56.78 is a French number), and a range of years.
DATE_RE = re.compile(
    r"(?<![0-9])(?<![0-9][./-])(?:[0-9]{1,2}([./-])[0-9]{1,2}\1(?:[0-9]{4}|[0-9]{2})|[0-9]{4}([./-])[0-9]{1,2}\2[0-9]{1,2})"
    r"(?![./-][0-9])(?![0-9])"
)
_YEAR_RANGE_RE = re.compile(r"(?<![0-9])(?:19|20)[0-9]{2} ?[-\u2013] ?(?:19|20)[0-9]{2}(?![0-9])")
# What follows a number that goes on ("1.234.567,89", "4501-2/3"); a slash before a long group starts the next
# number ("0171 2345678/0171 8765432").
# A short group set off by a slash at either end of a run goes with the number ("4501-2/3", "02/04/2022").
_GOES_ON_RE = re.compile(r"[,.:][0-9]|/[0-9]{1,3}(?![0-9])(?![ \-./][0-9])|-[0-9A-Za-z]")
_WENT_ON_RE = re.compile(r"[0-9][,.:]\Z|(?<![0-9])(?<![0-9][ \-./])[0-9]{1,3}/\Z|[A-Za-z]-\Z")


def other_number_shape(text: str, start: int, end: int, digits: str, lengths: list[int], separators: list[str]) -> bool:
    """Whether the written number has the shape of something that is not a phone number."""
    written = text[start:end]
    marks = [separator.strip() for separator in separators]
    before = text[max(0, start - 12) : start]
    after = text[end : end + 12]
    # A number that goes on: "1.234.567,89", "12345.67", "4501-2/3", "140-538-265-X"
    if _GOES_ON_RE.match(after) or _WENT_ON_RE.search(before):
        return True
    # A date: 12.03.2024, 2024-03-12, 03/12/24
    if len(lengths) == 3 and len(set(marks)) == 1 and marks[0] in {".", "/", "-"}:
        a, b, c = (int(digits[sum(lengths[:i]) : sum(lengths[: i + 1])]) for i in range(3))
        if lengths[2] in (2, 4) and lengths[0] <= 2 and lengths[1] <= 2 and 1 <= a <= 31 and 1 <= b <= 31:
            return True
        if lengths == [4, 2, 2] and 1 <= b <= 12 and 1 <= c <= 31:
            return True
    # Inside a range of dates or years: 01.01.2023 - 31.12.2023, 2019-2024
    if DATE_RE.search(written) or _YEAR_RANGE_RE.search(written):
        return True
    # A round amount: 100 000 000, 2 500 000
    if (
        len(lengths) > 1
        and digits[0] != "0"
        and lengths[0] <= 3
        and all(g == "000" for g in _groups_of(digits, lengths)[1:])
    ):
        return True
    # A version: 2.3.14, 0.19.4499, 1.12.11.26 (but "1.800.555.1234" is how Americans dot a number)
    if len(marks) >= 2 and all(mark == "." for mark in marks) and 1 in lengths:
        return not (lengths == [1, 3, 3, 4] and digits[0] == "1")
    # ... or one that ends in a build number: 15.19.17.9564 (a dotted phone number has no trunk-less build)
    if (
        len(marks) >= 3
        and all(mark == "." for mark in marks)
        and digits[0] != "0"
        and lengths[-1] >= 4 > max(lengths[1:-1])
    ):
        return True
    # An amount: a currency just before or after
    return bool(_CURRENCY_RE.search(before[-6:]) or _CURRENCY_RE.match(after.lstrip()[:8]))


def _groups_of(digits: str, lengths: list[int]) -> list[str]:
    """Split ``digits`` into groups of ``lengths``."""
    groups, position = [], 0
    for length in lengths:
        groups.append(digits[position : position + length])
        position += length
    return groups


def other_run_shape(text: str, groups: tuple[tuple[int, int], ...]) -> bool:
    """Whether a whole run of digit groups is shaped like a card or an IBAN that failed its checks (no part
    of it is then read as a phone number), or continues a code of letters and digits."""
    lengths = [end - start for start, end in groups]
    digits = sum(lengths)
    first = text[groups[0][0]]
    card_printed = len(lengths) == 1 or lengths[:-1] == [4] * (len(lengths) - 1) or tuple(lengths) in CARD_GROUPINGS
    if 13 <= digits <= 19 and first in "23456" and text[groups[0][0] - 1 : groups[0][0]] != "+" and card_printed:
        return True
    if long_code_in_fours(text, groups):
        return True
    before = text[max(0, groups[0][0] - 40) : groups[0][0]]
    # "GB93 VJOJ 6038 2048 4014 58", "AB12 3456 7890": the run goes on a code that mixes letters and digits.
    if _CODE_BEFORE_RE.search(before):
        return True
    return bool(_CODE_AFTER_RE.match(text, groups[-1][1]))

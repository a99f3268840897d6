"""Phone numbers in free text, as customers type them: the phone detector of ``annotation.pii``.

Pure Python; see ``annotation.pii``'s docstring for the evidence rules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import phonenumbers

from annotation.pii_phone_shapes import DATE_RE, other_number_shape, other_run_shape
from annotation.pii_phone_words import context, words
from annotation.pii_shapes import ANY_DIGIT_RE, Span

# --- Phone numbers -----------------------------------------------------------------------------------------
#
# Customers type phone numbers every which way, and a mistyped or unallocated number is still personal data, so
# a number that is only *possible* (right length for its country) counts when the text or its shape says phone.
# Candidates are runs of digit groups joined by the separators people put in phone numbers; each run is read
# as one or more numbers (longest first), each weighed by its evidence (see ``_phone_verdict``).

_SPACE = "[ \t\u00a0\u202f\u2009]"
_SEP = rf"(?:{_SPACE}{{0,2}}[\-./\u2010\u2011\u2013]{_SPACE}{{0,2}}|{_SPACE}{{1,3}})"
_PART = r"(?:\(\+?[0-9]{1,5}\)|[0-9]++)"
# Possessive and atomic throughout, so a run is read once, left to right: linear on any input.
# Not inside a token, nor after a dot (2.3.14, 12.5) unless the dot ends a word ("Tel.0171 1234567").
_PHONE_RUN_RE = re.compile(
    rf"(?:(?<=[0-9]/)\+|(?<![0-9A-Za-z+\-/#№_])(?<![^A-Za-z]\.)(?:\+ ?|\(\+?)?)[0-9][0-9]*+\)?(?>{_SEP}?{_PART})*+"
)
_GROUP_RE = re.compile(r"[0-9]+")
_PHONE_MIN_DIGITS = 7
_PHONE_MAX_DIGITS = 17  # 15 of E.164 plus a written "00" or a trunk "(0)"
_MAX_GROUPS = 8
# Regions tried for a national number that the policy's region does not read, when the text says phone.
_PLAUSIBLE_REGIONS = words(
    """
    GB DE FR US NL IT ES CH AT IE PL BE LU PT SE DK NO FI CZ CA AU
    """
)
_GLUED_HEAD_RE = re.compile(r"[0-9][+(]?[ \t\u00a0\u202f\u2009]?\Z")
_CERTAIN, _UNSURE = 2, 1
# Regions whose people dial a trunk prefix "0" before a national number.
_TRUNK_ZERO = {
    region: phonenumbers.ndd_prefix_for_region(region, True) == "0" for region in phonenumbers.SUPPORTED_REGIONS
}
# A date written with spaces: "28 06 2019", "2019 06 28".
_SPACED_DATE_RE = re.compile(
    r"(?:0?[1-9]|[12][0-9]|3[01]) (?:0?[1-9]|1[0-2]) (?:19|20)[0-9]{2}|(?:19|20)[0-9]{2} (?:0?[1-9]|1[0-2]) "
    r"(?:0?[1-9]|[12][0-9]|3[01])"
)
# A short code in capitals just before a number ("TX 9981 2231 0045", "REF 2024 1234"): the number is its tail.
_CODE_LABEL_RE = re.compile(
    r"(?<![0-9A-Za-z])(?!(?:OK|PS|HI|UK|US|EU|NB|FYI|BTW|ASAP|AM|PM)\b)[A-Z]{2,4}[ \-:#]{1,2}\Z"
)


@dataclass(frozen=True, slots=True)
class _Run:
    text: str
    start: int
    groups: tuple[tuple[int, int], ...]  # digit groups, offsets in ``text``


def find_phones(text: str, region: str) -> Iterator[Span]:
    if not ANY_DIGIT_RE.search(text):
        return
    for match in _PHONE_RUN_RE.finditer(text):
        if _GLUED_HEAD_RE.search(text, max(0, match.start() - 3), match.start()):
            continue  # the tail of digits that could not start a number ("x+49 (0)171 ...", "AB12 3456")
        groups = tuple((m.start(), m.end()) for m in _GROUP_RE.finditer(text, match.start(), match.end()))
        if sum(end - start for start, end in groups) < _PHONE_MIN_DIGITS:
            continue
        glued = match.end() < len(text) and (text[match.end()].isalnum() or text[match.end()] == "_")
        # "0171 1234567abc": the last group belongs to a word; but "0171 2345678Thomas" starts a name.
        if glued and not (text[match.end()].isupper() and text[match.end() + 1 : match.end() + 2].islower()):
            groups = groups[:-1]
        if not groups or other_run_shape(text, groups):
            continue
        if _SPACED_DATE_RE.fullmatch(text, groups[0][0], groups[-1][1]) or DATE_RE.fullmatch(
            text, groups[0][0], groups[-1][1]
        ):
            continue  # "am 12 02 2023", "on 02/04/2022"
        # "TX 9981 2231 0045": the digits of a reference code, unless they start like a dialled number.
        coded = text[groups[0][0]] != "0" and bool(_CODE_LABEL_RE.search(text, max(0, groups[0][0] - 7), groups[0][0]))
        yield from _phones_in_run(text, groups, region, coded=coded)


def _phones_in_run(text: str, groups: tuple[tuple[int, int], ...], region: str, *, coded: bool) -> Iterator[Span]:
    """Read a run of digit groups as the phone numbers that cover most of its digits ("0171 1234567 / 0172
    7654321" is two numbers, not one long one and a stray tail), then the fewer numbers, the more of them valid
    and certain the better.

    A number starts and ends only where groups are joined by spaces, not inside "2024-001234"; windows are
    at most ``_MAX_GROUPS`` groups, so the work is linear in the run.
    """
    count = len(groups)
    loose = [True] + [_joins_loosely(text, groups[i - 1], groups[i]) for i in range(1, count)] + [True]
    # best[i]: (digits covered, -numbers, digits of valid numbers, certain numbers) reading groups[i:];
    # choice[i]: the window taken there. (Cards, IBANs... are masked before phone numbers are read, so a run
    # holds only what may be phone numbers: covering all of it comes first.)
    best: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * (count + 1)
    choice: list[tuple[int, Span] | None] = [None] * (count + 1)
    for first in range(count - 1, -1, -1):
        best[first] = best[first + 1]
        if not loose[first]:
            continue
        digits = 0
        for last in range(first + 1, min(count, first + _MAX_GROUPS) + 1):
            digits += groups[last - 1][1] - groups[last - 1][0]
            if digits > _PHONE_MAX_DIGITS:
                break
            if digits < _PHONE_MIN_DIGITS - 1 or not loose[last]:
                continue
            if sum(end - start == 1 for start, end in groups[first:last]) > 2:
                break  # "1 2 3 4 5 6 7": nobody writes a phone number in single digits
            verdict = _phone_verdict(text, groups[first:last], region, coded=coded)
            if verdict is None:
                continue
            after = best[last]
            certainty, span, valid = verdict
            score = (after[0] + digits, after[1] - 1, after[2] + digits * valid, after[3] + (certainty == _CERTAIN))
            if score > best[first]:
                best[first] = score
                choice[first] = (last, span)
    first = 0
    free = 0  # the first group no number read so far covers
    while first < count:
        taken = choice[first]
        if taken is None or best[first] == best[first + 1]:
            first += 1
            continue
        yield _with_prefix(text, groups, free, first, taken[1])
        first = free = taken[0]


def _with_prefix(text: str, groups: tuple[tuple[int, int], ...], free: int, first: int, span: Span) -> Span:
    """Extend ``span`` (a number read from ``groups[first]`` on) over the groups before it that no number
    covers, from the first of them that starts like a number (``0``, ``+``, ``(``), when the words say phone:
    a number's area code or country code is never left in clear ("Tel 0161 256 0844" read in Germany as
    "256 0844")."""
    for j in range(free, first):
        head = groups[j][0]
        if text[head] != "0" and text[max(0, head - 2) : head].strip() not in ("+", "(", "(+"):
            continue
        digits = "".join(text[a:b] for a, b in groups[j:first]) + re.sub(r"[^0-9]", "", text[span.start : span.end])
        if len(digits) > _PHONE_MAX_DIGITS or context(text, head, span.end) != "phone":
            return span
        while head > 0 and text[head - 1] in "+(":
            head -= 1
        return Span("PHONE", head, span.end, digits, True)
    return span


def _joins_loosely(text: str, left: tuple[int, int], right: tuple[int, int]) -> bool:
    """Whether only spaces (and brackets) or a slash stand between two digit groups, so a number may end or
    start there ("0171 1234567 / 0172 7654321", "0171 2345678/0171 8765432"; "0171/1234567" is still read as
    one number, since a reading covers as much of a run as it can with as few numbers as it can)."""
    between = text[left[1] : right[0]]
    bare = between.strip(" \t\u00a0\u202f\u2009()")
    return not bare or bare == "/"


def _phone_verdict(
    text: str, window: tuple[tuple[int, int], ...], region: str, *, coded: bool = False
) -> tuple[int, Span, bool] | None:
    """Weigh one window of digit groups: ``(_CERTAIN | _UNSURE, span, valid)`` if it is a phone number, else
    None.

    Evidence: an international prefix (``+CC``, ``00CC``) alone is enough for a possible number; otherwise a
    phone word nearby counts 2, a trunk prefix 1 and a phone-like grouping 1; a valid number needs 1, a merely
    possible one 2 (1 makes it uncertain). Shapes of other numbers (dates, versions, amounts, card- and
    IBAN-shaped strings, references) and a word naming another kind of number rule a window out.
    """
    start = window[0][0]
    end = window[-1][1]
    # Take in an opening "+" or "(" and a closing ")" that belong to the number.
    if start > 0 and text[start - 1] == "+":
        start -= 1
    elif start > 1 and text[start - 2 : start] == "+ ":
        start -= 2  # "Tel. + 49 30 12345678"
    if start > 0 and text[start - 1] == "(":
        start -= 1
    if end < len(text) and text[end] == ")" and "(" in text[start:end]:
        end += 1
    written = text[start:end]
    digits = "".join(text[a:b] for a, b in window)
    lengths = [b - a for a, b in window]
    separators = [text[window[i][1] : window[i + 1][0]] for i in range(len(window) - 1)]
    if other_number_shape(text, start, end, digits, lengths, separators):
        return None
    said = context(text, start, end)
    if said == "other":
        return None
    ctx = said == "phone"
    international = written.startswith("+") or written.startswith("(+") or digits.startswith("00")
    if coded and not ctx and not international:
        return None  # "TX 9981 2231 0045": the digits of a reference code
    if international:
        plain = written.replace("(0)", " ")  # "+49 (0)171 ...": the trunk prefix is not dialled from abroad
        if digits.startswith("00"):
            body = plain.lstrip("( ")
            plain = "+" + (body[2:] if body.startswith("00") else digits[2:])
        reading = _international_reading(plain, digits, ctx)
    else:
        bracketed = "(" in written
        grouped = bracketed or _phone_grouping(lengths, separators)
        # "(415) 555-2671", "415-555-2671", "1-800-555-0199": the North American layout says phone on its own.
        nanp_layout = len(lengths) >= 3 and lengths[-3:] == [3, 3, 4] and (len(lengths) == 3 or digits[0] == "1")
        elsewhere = ctx or bracketed or nanp_layout
        reading = _national_reading(digits, region, ctx=ctx, grouped=grouped, elsewhere=elsewhere)
    if reading is None:
        return None
    certainty, key, valid = reading
    return certainty, Span("PHONE", start, end, key, certainty == _UNSURE), valid


@functools.lru_cache(maxsize=65536)
def _international_reading(plain: str, digits: str, ctx: bool) -> tuple[int, str, bool] | None:
    """Weigh a number written with ``+CC`` or ``00CC`` (``plain``: as ``+CC ...``): ``(certainty, key, valid)``
    or None. Remembered: chats repeat numbers."""
    number = _parse(plain)
    if number is None:
        return None
    if not phonenumbers.is_possible_number(number):
        # Mistyped ("+33 6 12 34 56 7"): still someone's number when the words say phone.
        mistyped = ctx and len(str(number.national_number)) >= 6
        return (_UNSURE, f"+{digits.removeprefix('00')}", False) if mistyped else None
    return _CERTAIN, _e164(number), phonenumbers.is_valid_number(number)


@functools.lru_cache(maxsize=65536)
def _national_reading(
    digits: str, region: str, *, ctx: bool, grouped: bool, elsewhere: bool
) -> tuple[int, str, bool] | None:
    """Weigh a national number (digits as written) in the policy's ``region`` and, when the words, brackets or
    the North American layout say phone, in the other usual regions: ``(certainty, key, valid)`` or None.
    Remembered: the answer depends only on the arguments, and chats repeat numbers and their shapes."""
    trunk_regions = [region] + ([r for r in _PLAUSIBLE_REGIONS if r != region] if elsewhere else [])
    best: tuple[int, str, bool] | None = None
    for candidate_region in trunk_regions:
        if not _may_be_possible(digits, candidate_region):
            continue
        number = _parse(digits, candidate_region)
        if number is None or not phonenumbers.is_possible_number(number):
            continue
        trunk_expected = _TRUNK_ZERO.get(candidate_region, False)
        has_trunk = trunk_expected and digits.startswith("0")
        nanp = number.country_code == 1
        if trunk_expected and not has_trunk and not ctx and digits[0] != "0":
            # Written without the trunk prefix its country's people always type: not read as a phone number
            # on its shape alone (a reference "2024-001234" is also a valid London number).
            continue
        score = 2 * ctx + has_trunk + grouped + (nanp and grouped)
        valid = phonenumbers.is_valid_number(number)
        if candidate_region != region:
            # Another country's national format: only as sure as the words around it.
            verdict = _CERTAIN if ctx and valid else (_UNSURE if score >= 2 and (valid or ctx) else 0)
        elif valid:
            # Where no trunk prefix is dialled (Spain, Italy, Poland...) a bare valid number may well be one.
            verdict = _CERTAIN if score >= 1 else (_UNSURE if not trunk_expected else 0)
        else:
            verdict = _CERTAIN if score >= 2 else (_UNSURE if score == 1 else 0)
        if verdict and (best is None or verdict > best[0]):
            best = verdict, _e164(number), valid
            if verdict == _CERTAIN:
                break
    if best is None and ctx and digits.startswith("0") and 8 <= len(digits) <= 14:
        # A phone word and a trunk prefix, but no country's rules allow the length: a mistyped number.
        return _UNSURE, digits, False
    return best


def _national_lengths(code: str) -> tuple[frozenset[int], str] | None:
    """The lengths a national number of region ``code`` may have, and its country code; None where parsing
    may strip more than a country code and zeros (a national prefix other than 0, an exit code other than 00)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(code)
    if metadata is None or metadata.international_prefix != "00" or metadata.general_desc is None:
        return None
    if metadata.national_prefix_for_parsing not in (None, "0") or not metadata.general_desc.possible_length:
        return None
    lengths = frozenset(metadata.general_desc.possible_length) | frozenset(
        metadata.general_desc.possible_length_local_only
    )
    return lengths, str(metadata.country_code)


# Only for the usual regions, where the test was checked against ``phonenumbers`` on random digits.
_NATIONAL_LENGTHS = {code: _national_lengths(code) for code in _PLAUSIBLE_REGIONS}


def _may_be_possible(digits: str, region: str) -> bool:
    """A cheap test that never says no to a number ``phonenumbers`` would call possible in ``region`` (its
    length, less a country code and leading zeros, is one the region allows), so most regions are ruled out
    without parsing."""
    known = _NATIONAL_LENGTHS.get(region)
    if known is None:
        return True
    lengths, country_code = known
    bodies = (digits, digits[len(country_code) :]) if digits.startswith(country_code) else (digits,)
    return any(n in lengths for body in bodies for n in range(len(body.lstrip("0")), len(body) + 1))


@functools.lru_cache(maxsize=65536)
def _parse(written: str, region: str = "ZZ") -> phonenumbers.PhoneNumber | None:
    """``phonenumbers.parse`` (its costliest step here), remembered: chats repeat numbers and their shapes."""
    try:
        return phonenumbers.parse(written, region)
    except phonenumbers.NumberParseException:
        return None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone_grouping(lengths: list[int], separators: list[str]) -> bool:
    """Whether groups are joined the way phone numbers are written: two or more groups of 2-5 digits after a
    first of 1-5, with one kind of separator (a slash or an extra space may set off the area code)."""
    if len(lengths) < 2 or not 1 <= lengths[0] <= 5 or not all(2 <= n <= 8 for n in lengths[1:]):
        return False
    kinds = {separator.strip() for separator in separators[1:]}
    return len(kinds) <= 1

"""PII scrubbing for conversations at ingestion: pure Python, no Django, no network.

A project's :class:`PiiPolicy` is compiled once (:func:`compile_policy`) and the resulting :class:`Scrubber`
is run over all texts of one item at a time (every turn plus the model response), so that the same value
gets the same typed placeholder (``[EMAIL_1]``) everywhere in the item.

Detectors, tried on every text ("key" is what is compared for consistent placeholders):

=======  ==========================================================  ===============================  ===============
Type     Candidate                                                   Kept only if                     Key
=======  ==========================================================  ===============================  ===============
EMAIL    ``local@label.tld``, ASCII, pragmatic                       always                           lower-cased
IBAN     2 letters, 2 digits, 11-30 alphanumerics, spaced by 4 or    ``stdnum.iban``: checksum and    compact,
         not, any case                                               the country's BBAN format        upper-cased
CARD     13-19 digits as one group, groups of 4, or 4-6-5 / 4-6-4,   Luhn valid, IIN starts 3-6 or    digits
         single spaces or dashes between groups (not inside a code   2221-2720
         that goes on in fours past 16 digits)
SSN      US ``ddd-dd-dddd`` (or single spaces)                       area not 000, 666, 900-999;      digits
                                                                     group not 00; serial not 0000
IPV4     dotted quad, not after a letter (``v1.2.3.4``)              ``ipaddress`` accepts it         canonical
IPV6     hex groups, 2+ colons: ``::1``, full, ``::ffff:1.2.3.4``    ``ipaddress`` accepts it         compressed
PHONE    runs of digit groups joined as phone numbers are written    possible (``phonenumbers``) and  E.164
         (spaces, ``-./``, brackets, ``+CC``/``00CC``, ``(0)``),      enough evidence, see below
         read left to right, longest number first
<extra>  each project regex, under the project's type name           non-empty match                  exact text
TERM     project terms, case-insensitive, whole words, any spacing   always                           casefolded
=======  ==========================================================  ===============================  ===============

Before any detector runs, Unicode spaces (no-break, narrow, thin, figure, ideographic ...), dashes (minus,
non-breaking hyphen, en dash ...) and digits of other scripts (full-width, Arabic-Indic ...) are read as
their ASCII kin, one character for one, so offsets hold and a number written with narrow no-break spaces
or a minus sign is read like one written with spaces or a hyphen.

PHONE evidence. ``+CC`` or ``00CC`` and a possible number: found. Otherwise the number is read in the policy's
region (and, when a phone word is near, the area code is bracketed or the digits have the North American
3-3-4 layout, in the other usual regions too), and weighed: a phone word among the six words before it or the
three after, on its line (tel, phone, call, mobile, cell, Handy, Telefon, Nummer, téléphone, portable, móvil,
teléfono, cellulare, mobiel ... in English, German, French, Spanish, Italian, Dutch, Portuguese, Polish and
Nordic languages; "number" words count when nothing nearer names another kind of number; a word holding
both a phone stem and another stem goes by the longer: "contact" is not "conto") counts 2, a trunk
prefix ``0`` 1, a phone-like grouping 1. A valid number needs 1, a merely possible one 2. *Uncertain*: a
possible one with 1; a valid one with none where no trunk prefix is dialled (Spain, Italy, Poland ...);
another country's national number without both a phone word and validity; a number no country allows (a digit
short or long) with a phone word and a ``0`` or ``+`` in front. Uncertain values are reported as such
(``Finding.uncertain``, with a masked ``hint``) and scrubbed unless the policy says ``scrub_uncertain=False``.
A national number of a trunk-prefix country written without its ``0`` and without a phone word is not read.
Ruled out whatever the evidence: a word naming another kind of number (order, Bestellnummer, invoice, ref,
IBAN, card, amount, transfer, date, version, loan, Kredit, claim, Schaden, member, passport, mortgage, prêt,
préstamo, pratica, Az. ...) as the nearest or second-nearest word before it (further off it names something
else: "my card is blocked, 0171 ..."); any compound of a "number" word (``Personalnummer``, ``Zählernummer``,
``leningnummer``, ``Mitglieds-Nr.``) unless its first part is a phone word (``Handynummer``, ``Rufnummer``,
``Tel.-Nr.``); a code of two to four capitals just before it when no phone word is near and it is not
dialled with ``0`` or ``+`` (``TX 9981 2231 0045``); a currency next to it, a number that goes
on (``1.234.567,89``), dates and date or year ranges (``12.03.2024``, ``2024-03-12``, ``28 06 2019``, ``2019-2024``),
versions (a dotted 1-digit group, or a dotted build number last), round amounts (``100 000 000``),
card-shaped runs (13-19 digits from an issuer range, in fours or one group), codes printed in fours past 16
digits (``3023 3770 1133 4173 7902 90``) and runs that continue a code mixing letters and digits
(IBAN-shaped strings, ``AB12 3456 7890``). A run of digit groups is read as the numbers that cover most of it
(``0171 1234567 / 0172 7654321`` and ``0171 2345678/0171 8765432`` are two; ``0171/2345678`` is one); what a
reading leaves before a number that starts like one (``0``, ``+``, a bracket) is scrubbed with it when the
words say phone, so an area or country code is never left in clear. Linear: each run is read once, with
windows of at most eight groups. ``bench/pii_recall.py`` measures recall and decoy survival on the generated
set in ``tests/annotation/pii_corpus.py``.

Overlaps are resolved per text: a PHONE never wins over an overlapping IBAN, CARD, SSN or IP address (their
checks are much stricter than "is a valid phone number"); otherwise the longer match wins, then the earlier,
then the detector listed first above.

Detection runs in passes until a pass finds nothing (at most ``_MAX_PASSES``): each pass masks what it found
and the next looks again, because a match can hide a neighbour: e.g. a phone number written straight before a
card number is read only once the card is masked. Phone numbers are looked for only when the other detectors
find nothing more, so the words around a number read the same as they will in the scrubbed text (where the
other values are placeholders, which are no words), and a number kept as uncertain stays uncertain when the
text is scrubbed again. This makes scrubbing idempotent: the
scrubbed texts contain nothing any detector would find again, and placeholder-shaped tokens (``[TYPE_n]``)
are never detected as anything.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

PLACEHOLDER_RE = re.compile(r"\[[A-Z][A-Z0-9_]*_[0-9]+\]")
"""What a placeholder looks like; text of this shape is never scrubbed again."""

BUILTIN_TYPES = ("EMAIL", "IBAN", "CARD", "SSN", "IPV4", "IPV6", "PHONE", "TERM")
_TYPE_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
# Findings of these types are checked far more strictly than "is a valid phone number", so a phone
# match that overlaps one of them is the phone matcher reading into a different number.
_PHONE_YIELDS_TO = frozenset({"IBAN", "CARD", "SSN", "IPV4", "IPV6"})
# Each pass masks at least one more character, so passes always end; this bound only caps the cost of
# adversarial input. Real text needs two or three passes when it has PII (phone numbers come after the rest).
_MAX_PASSES = 12
# Masked characters stay in place so offsets never move; NUL is outside every built-in detector's alphabet.
_MASK = "\x00"

_EMAIL_RE = re.compile(
    # The look-behind makes the local part start only at the start of a run, which keeps long runs linear.
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9\-])"
)
_IBAN_RE = re.compile(
    r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}(?: ?[0-9A-Za-z]{4}){2,7}(?: ?[0-9A-Za-z]{1,4})?(?![0-9A-Za-z])"
)
_IBAN_MIN_LENGTH = 15  # Norway, the shortest IBAN in use
# A run of digit groups separated by single spaces or dashes, never starting inside an alphanumeric token
# (an IBAN's digits, a reference like X4111...) nor inside a longer run.
_DIGIT_RUN_RE = re.compile(r"(?<![0-9A-Za-z])(?<![0-9][ \-])[0-9]+(?:[ \-][0-9]+)*")
_ASCII_DIGITS_RE = re.compile(r"[0-9]+")
_IBAN_TAIL_RE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}(?: [0-9A-Za-z]{4})* \Z")
_CARD_GROUPINGS = ((4, 6, 5), (4, 6, 4))  # American Express and Diners Club as printed on the card
_SSN_RES = tuple(
    re.compile(
        rf"(?<![0-9A-Za-z])(?<![0-9]{sep})([0-9]{{3}}){sep}([0-9]{{2}}){sep}([0-9]{{4}})(?![0-9A-Za-z])(?!{sep}[0-9])"
    )
    for sep in ("-", " ")
)
_IPV4_RE = re.compile(r"(?<![0-9A-Za-z])(?<![0-9]\.)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z])(?!\.[0-9])")
_IPV6_RE = re.compile(
    r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
    r"(?![0-9A-Za-z:])(?!\.[0-9])"
)
_HEX_DIGIT_RE = re.compile(r"[0-9A-Fa-f]")
_ANY_DIGIT_RE = re.compile(r"\d")  # phonenumbers also reads non-ASCII digits
_HINT_MASK_RE = re.compile(r"\w")


def _normalising_table() -> dict[int, str]:
    """Map the spaces, dashes, brackets and digits of other scripts that people (and their keyboards) put in
    numbers to ASCII, one character for one: ``0171\u202f2345678``, ``0171\u22122345678``, full-width digits."""
    table = {ord(c): " " for c in "\t\u00a0\u1680\u202f\u205f\u3000"}
    table.update(dict.fromkeys(range(0x2000, 0x200B), " "))  # en quad ... hair space
    table.update({ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"})
    table.update({ord(c): a for c, a in zip("\uff0b\uff08\uff09\uff0f\uff0e", "+()/.", strict=True)})
    for zero in (0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50):  # full-width, Arabic-Indic, Devanagari ...
        table.update({zero + i: str(i) for i in range(10)})
    return table


_NORMALISE = _normalising_table()


class PiiPolicyError(ValueError):
    """A policy that cannot be compiled; the message names the offending pattern or setting."""


@dataclass(frozen=True)
class PiiPolicy:
    """What to do with PII and which project-specific values count as PII."""

    mode: Literal["replace", "reject"]
    extra_patterns: tuple[tuple[str, str], ...] = ()  # (TYPE_NAME, regex), e.g. ("ACCOUNT", r"ACC-\d{6}")
    terms: tuple[str, ...] = ()  # literal terms (customer names...), typed "TERM"
    default_phone_region: str = "GB"
    # Phone numbers the detector is unsure of (see the table): scrubbed like the others, or kept in the text;
    # either way they are reported as uncertain findings.
    scrub_uncertain: bool = True


@dataclass(frozen=True)
class Finding:
    """One scrubbed value: its type and where it was in the original text of turn ``turn``.

    The raw value is deliberately not kept, so findings can be logged and stored. ``uncertain`` marks a value
    the detector is unsure of; ``kept`` one left in the text because the policy keeps uncertain values;
    ``hint`` is the value's shape with every letter and digit masked (``+•• ••• •••••••``).
    """

    type: str
    start: int
    end: int
    turn: int
    uncertain: bool = False
    kept: bool = False
    hint: str = ""


@dataclass
class ScrubResult:
    """The scrubbed texts of one item and what was found in them."""

    texts: list[str]
    counts: dict[str, int]  # values replaced (or, in "reject" mode, that would be), per type
    findings: list[Finding]

    @property
    def found(self) -> bool:
        """Return whether any PII was found (values the policy keeps do not count)."""
        return any(not finding.kept for finding in self.findings)

    @property
    def uncertain(self) -> list[Finding]:
        """Return the findings the detector was unsure of, scrubbed or kept."""
        return [finding for finding in self.findings if finding.uncertain]


@dataclass(frozen=True, slots=True)
class _Span:
    type: str
    start: int
    end: int
    key: str  # the normalised value, compared for consistent placeholders; never leaves this module
    uncertain: bool = False


_Detector = Callable[[str], Iterator[_Span]]


def compile_policy(policy: PiiPolicy) -> Scrubber:
    """Validate ``policy`` and return a :class:`Scrubber` for it.

    Blank terms are ignored. Raises :class:`PiiPolicyError` for an unknown mode or phone region, an extra
    pattern whose type name is not UPPER_SNAKE or is a built-in type, a regex that does not compile, or one
    that matches the empty string; the message names the pattern.
    """
    if policy.mode not in ("replace", "reject"):
        raise PiiPolicyError(f"Unknown PII mode {policy.mode!r}; use 'replace' or 'reject'.")
    region = policy.default_phone_region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise PiiPolicyError(f"Unknown phone region {policy.default_phone_region!r}; use a code such as 'GB'.")
    extras: list[tuple[str, re.Pattern[str]]] = []
    for entry in policy.extra_patterns:
        if len(entry) != 2 or not all(isinstance(part, str) for part in entry):
            raise PiiPolicyError(f"Extra PII pattern {entry!r} must be a (TYPE_NAME, regex) pair.")
        type_name, pattern = entry
        if not _TYPE_NAME_RE.fullmatch(type_name):
            raise PiiPolicyError(
                f"Extra PII pattern type {type_name!r} must be 1-40 upper-case letters, digits or underscores, "
                "starting with a letter."
            )
        if type_name in BUILTIN_TYPES:
            raise PiiPolicyError(f"Extra PII pattern type {type_name!r} is a built-in type; choose another name.")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise PiiPolicyError(f"Extra PII pattern {type_name} ({pattern!r}) is not a valid regex: {exc}.") from exc
        if compiled.fullmatch(""):
            # It would match between every two characters and scrub nothing useful.
            raise PiiPolicyError(f"Extra PII pattern {type_name} ({pattern!r}) matches the empty string.")
        extras.append((type_name, compiled))
    return Scrubber(
        mode=policy.mode,
        phone_region=region,
        extra_patterns=tuple(extras),
        terms_re=_terms_regex(policy.terms),
        scrub_uncertain=policy.scrub_uncertain,
    )


class Scrubber:
    """A compiled :class:`PiiPolicy`; build it with :func:`compile_policy`. Safe to share between threads."""

    def __init__(
        self,
        *,
        mode: Literal["replace", "reject"],
        phone_region: str,
        extra_patterns: tuple[tuple[str, re.Pattern[str]], ...],
        terms_re: re.Pattern[str] | None,
        scrub_uncertain: bool = True,
    ) -> None:
        self.mode = mode
        self.scrub_uncertain = scrub_uncertain
        detectors: list[_Detector] = [
            _find_emails,
            _find_ibans,
            _find_cards,
            _find_ssns,
            _find_ipv4s,
            _find_ipv6s,
        ]
        detectors.extend(_extra_detector(type_name, compiled) for type_name, compiled in extra_patterns)
        if terms_re is not None:
            detectors.append(lambda text: _find_terms(text, terms_re))
        self._detectors = tuple(detectors)
        self._phone_region = phone_region

    def scrub(self, texts: Sequence[str]) -> ScrubResult:
        """Find PII in all ``texts`` of one item and replace each value with a typed placeholder.

        Placeholders are numbered per type in order of first appearance across the texts, and a value seen
        again (after normalisation) gets the same placeholder. Returns the scrubbed texts in input order; in
        "reject" mode they are returned unchanged, with the same counts and findings, for the caller to
        refuse the item. Finding offsets refer to the original texts. Raises ``TypeError`` if ``texts`` is a
        single string or holds something other than strings; never raises for any string content.
        """
        if isinstance(texts, str):
            raise TypeError("scrub() takes a sequence of texts, not a single string")
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"scrub() takes strings, got {type(text).__name__}")
        numbers: dict[str, dict[str, int]] = {}
        counts: dict[str, int] = {}
        findings: list[Finding] = []
        scrubbed: list[str] = []
        for turn, text in enumerate(texts):
            pieces: list[str] = []
            position = 0
            for span in self._spans(text):
                hint = _HINT_MASK_RE.sub("•", text[span.start : span.end]) if span.uncertain else ""
                if span.uncertain and not self.scrub_uncertain:
                    findings.append(
                        Finding(span.type, span.start, span.end, turn, uncertain=True, kept=True, hint=hint)
                    )
                    continue
                seen = numbers.setdefault(span.type, {})
                number = seen.setdefault(span.key, len(seen) + 1)
                counts[span.type] = counts.get(span.type, 0) + 1
                findings.append(Finding(span.type, span.start, span.end, turn, uncertain=span.uncertain, hint=hint))
                pieces.append(text[position : span.start])
                pieces.append(f"[{span.type}_{number}]")
                position = span.end
            pieces.append(text[position:])
            scrubbed.append("".join(pieces))
        return ScrubResult(texts=list(texts) if self.mode == "reject" else scrubbed, counts=counts, findings=findings)

    def _spans(self, text: str) -> list[_Span]:
        """Return the non-overlapping findings in ``text``, ordered by position."""
        blocked = bytearray(len(text))
        placeholders = [_Span("", m.start(), m.end(), "") for m in PLACEHOLDER_RE.finditer(text)]
        for span in placeholders:
            blocked[span.start : span.end] = b"\x01" * (span.end - span.start)
        # Unicode spaces, dashes and digits read as their ASCII kin (one character for one, so offsets hold).
        work = _masked(text.translate(_NORMALISE), placeholders)
        found: list[_Span] = []
        for _ in range(_MAX_PASSES):
            candidates = [(rank, span) for rank, detect in enumerate(self._detectors) for span in detect(work)]
            chosen = _resolve(candidates, blocked)
            if not chosen:
                # Phone numbers last, once nothing else is left to find: the words around a number decide, and
                # they must read the same now as in the scrubbed text (where other values are placeholders).
                chosen = _resolve([(0, span) for span in _find_phones(work, self._phone_region)], blocked)
            if not chosen:
                break
            found.extend(chosen)
            work = _masked(work, chosen)
        found.sort(key=lambda span: span.start)
        return found


def _resolve(candidates: list[tuple[int, _Span]], blocked: bytearray) -> list[_Span]:
    """Pick non-overlapping candidates that touch no ``blocked`` character, and block them.

    Returns the picked spans, unordered.
    """
    usable = [
        (rank, span)
        for rank, span in candidates
        if span.end > span.start and blocked.find(1, span.start, span.end) == -1
    ]
    strict = bytearray(len(blocked))
    for _, span in usable:
        if span.type in _PHONE_YIELDS_TO:
            strict[span.start : span.end] = b"\x01" * (span.end - span.start)
    usable = [
        (rank, span) for rank, span in usable if span.type != "PHONE" or strict.find(1, span.start, span.end) == -1
    ]
    usable.sort(key=lambda candidate: (candidate[1].start - candidate[1].end, candidate[1].start, candidate[0]))
    chosen: list[_Span] = []
    for _, span in usable:
        if blocked.find(1, span.start, span.end) == -1:
            blocked[span.start : span.end] = b"\x01" * (span.end - span.start)
            chosen.append(span)
    return chosen


def _masked(text: str, spans: Sequence[_Span]) -> str:
    """Return ``text`` with the characters of ``spans`` replaced by the mask, keeping every offset."""
    if not spans:
        return text
    chars = list(text)
    for span in spans:
        chars[span.start : span.end] = _MASK * (span.end - span.start)
    return "".join(chars)


def _terms_regex(terms: Sequence[str]) -> re.Pattern[str] | None:
    """Return one case-insensitive regex for all non-blank ``terms``, or None if there are none."""
    alternatives = {r"\s+".join(re.escape(word) for word in term.split()) for term in terms if term.strip()}
    if not alternatives:
        return None
    # Longest first, so "Acme Bank" wins over "Acme" at the same position.
    ordered = sorted(alternatives, key=lambda alternative: (-len(alternative), alternative))
    return re.compile(r"(?<!\w)(?:" + "|".join(ordered) + r")(?!\w)", re.IGNORECASE)


def _find_emails(text: str) -> Iterator[_Span]:
    if "@" not in text:
        return
    for match in _EMAIL_RE.finditer(text):
        yield _Span("EMAIL", match.start(), match.end(), match.group().lower())


def _find_ibans(text: str) -> Iterator[_Span]:
    for match in _IBAN_RE.finditer(text):
        candidate = match.group()
        # The regex may have swallowed a following short word ("... 7034 from"), so retry without trailing
        # groups, longest first.
        ends = [len(candidate), *(i for i in range(len(candidate) - 1, 0, -1) if candidate[i] == " ")]
        for end in ends:
            value = candidate[:end]
            if len(value.replace(" ", "")) < _IBAN_MIN_LENGTH:
                break
            if stdnum_iban.is_valid(value):
                yield _Span("IBAN", match.start(), match.start() + end, stdnum_iban.compact(value))
                break


def _find_cards(text: str) -> Iterator[_Span]:
    if sum(text.count(digit) for digit in "0123456789") < 13:
        return
    for run in _DIGIT_RUN_RE.finditer(text):
        if run.end() - run.start() < 13:
            continue  # too few digits for a card
        if _IBAN_TAIL_RE.search(text, max(0, run.start() - 40), run.start()):
            continue  # the digits of an IBAN-shaped string that failed its checksum
        groups = [(m.start(), m.end()) for m in _ASCII_DIGITS_RE.finditer(text, run.start(), run.end())]
        if run.end() < len(text) and text[run.end()].isalpha():
            groups.pop()  # that group belongs to a word such as "1234abc"
        lengths = [end - start for start, end in groups]
        if _long_code_in_fours(text, groups):
            continue  # "3023 3770 1133 4173 7902 90": one code, not a card and a tail
        # Greedy from the left, longest window first, so "phone digits + card" still yields the card.
        first = 0
        while first < len(groups):
            for last in range(min(len(groups), first + 5), first, -1):
                if not 13 <= sum(lengths[first:last]) <= 19:
                    continue
                window = groups[first:last]
                digits = "".join(text[start:end] for start, end in window)
                if _looks_like_card(lengths[first:last], digits):
                    yield _Span("CARD", window[0][0], window[-1][1], digits)
                    first = last
                    break
            else:
                first += 1


def _long_code_in_fours(text: str, groups: Sequence[tuple[int, int]]) -> bool:
    """Whether a run of digit groups is one code printed in fours that goes on past a card's 16 digits
    ("3023 3770 1133 4173 7902 90"), and not a card followed by its expiry date ("... 1111 12/25")."""
    lengths = [end - start for start, end in groups]
    if len(lengths) < 5 or sum(lengths) <= 16 or any(n != 4 for n in lengths[:-1]) or lengths[-1] > 4:
        return False
    return not re.match(r"[./][0-9]", text[groups[-1][1] : groups[-1][1] + 2])


def _looks_like_card(lengths: list[int], digits: str) -> bool:
    """Return whether digit groups of ``lengths`` spelling ``digits`` are printed like a card number and
    carry a plausible issuer prefix and a valid Luhn check digit."""
    if not 13 <= len(digits) <= 19:
        return False
    printed = len(lengths) == 1 or tuple(lengths) in _CARD_GROUPINGS
    printed = printed or (all(length == 4 for length in lengths[:-1]) and 1 <= lengths[-1] <= 4)
    if not printed:
        return False
    if digits[0] not in "3456" and not 2221 <= int(digits[:4]) <= 2720:
        return False
    return luhn.is_valid(digits)


def _find_ssns(text: str) -> Iterator[_Span]:
    for pattern in _SSN_RES:
        for match in pattern.finditer(text):
            area, group, serial = match.groups()
            if area == "000" or area == "666" or area >= "900" or group == "00" or serial == "0000":
                continue
            yield _Span("SSN", match.start(), match.end(), area + group + serial)


def _find_ipv4s(text: str) -> Iterator[_Span]:
    for match in _IPV4_RE.finditer(text):
        try:
            address = ipaddress.IPv4Address(match.group())
        except ValueError:
            continue  # 999.1.1.1, leading zeros
        yield _Span("IPV4", match.start(), match.end(), str(address))


def _find_ipv6s(text: str) -> Iterator[_Span]:
    if "::" not in text and text.count(":") < 6:  # full form has 7 colons, 6 with a dotted-quad tail
        return
    for match in _IPV6_RE.finditer(text):
        candidate = match.group()
        if not _HEX_DIGIT_RE.search(candidate):
            continue  # a bare "::" is punctuation in prose, not an address worth hiding
        # Prose puts a colon after an address ("at fe80::1: it"), which the regex takes in.
        for value in (candidate, candidate[:-1]) if candidate.endswith(":") else (candidate,):
            try:
                address = ipaddress.IPv6Address(value)
            except ValueError:
                continue
            yield _Span("IPV6", match.start(), match.start() + len(value), address.compressed)
            break


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


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
# Context: words on the same line, within this many characters (numbers between count, so it is generous)
_CONTEXT_CHARS = 160
_CONTEXT_WORDS_BEFORE = 6
_CONTEXT_WORDS_AFTER = 3
_OTHER_WORD_REACH = 1  # "order 123", "Your order is 123", "Bestellnummer lautet 123"
_WORD_RE = re.compile(r"[^\W\d_]+")
_HYPHEN_JOIN_RE = re.compile(r"(?<=[^\W\d_])\.?-(?=[^\W\d_])")
# Stems that say "phone" in English, German, French, Spanish, Italian, Dutch, Portuguese, Polish and the
# Nordic languages; a token counts when it starts or ends with one (German compounds: "Handynummer").
_PHONE_WORDS = _words(
    """
    tel phone fone call ring mobile mobil cell sms text whatsapp fax handy telefon festnetz rufnummer
    anruf zurückrufen erreichbar durchwahl téléphone telephone portable appel appelez joindre joignable
    fixe teléfono telefono móvil movil celular llamar llámame llama cellulare chiamare chiamami
    cellphone landline contact reach dial hotline kontakt contatto contacto bellen tlf puhelin komórka
    komorka telemóvel rufen ruf vorwahl gsm tél tfno telf mob cel ph phon rückruf callback mobiel bel
    telefoon telefonisch telefone ligar zadzwoń zadzwon dzwonić dzwonic raggiungibile bereikbaar
    localizable rejoindre kontaktnummer notfall
    """
)
# "My number is ...": a phone word when no word for another kind of number is nearer.
_NUMBER_WORDS = ("number", "nummer", "numéro", "numero", "número", "numer", "nr", "no", "num", "nº", "n")
# Words that say the number is something else; they win over a phone word further away.
_OTHER_NUMBER_WORDS = _words(
    """
    order bestell auftrag commande pedido ordine bestelling zamówien invoice rechnung facture factura
    fattura factuur faktur ref referenz référence referencia riferimento referentie ticket case dossier
    tracking sendung paket parcel colis shipment vertrag contract contrat contrato contratto policy
    police polizza póliza account konto compte cuenta conto rekening iban bic swift card karte carte
    tarjeta carta kaart transaction transaktion überweisung virement transferencia bonifico id kunden
    customer client cliente klant mandat mandate amount betrag montant importe importo bedrag total
    summe sum balance saldo solde price preis prix precio prezzo prijs cost kosten eur euro euros usd
    gbp chf pln sek dkk nok dollar dollars pound pounds franken francs zł zl złoty kr date datum fecha
    data dated version build release serial seriennummer série postcode zip postleitzahl code pin tan
    otp reference voucher gutschein coupon sku artikel article item isbn vat ust tva iva nip steuer tax
    bsn ssn nino nif dni codice fiscale siret siren kvk vin imei mrn page seite visa mastercard amex app
    ios android update firmware vorgang aktenzeichen sepa blz sort loan kredit credit crédito prêt
    mortgage hypothek hypothèque hipoteca mutuo darlehen depot portfolio securities wertpapier isin
    routing aba member mitglied versicherung insurance assurance seguro assicurazione claim schaden
    sinistre siniestro receipt beleg quittung reçu recibo ricevuta booking buchung réservation reserva
    prenotazione confirmation bestätigung pnr flight flug vuelo volo terminal atm branch filiale agence
    sucursal merchant händler commerçant esercente creditor gläubiger akte incident request anfrage
    demande solicitud richiesta lot charge batch transfer payment zahlung paiement pago pagamento paid
    pay bezahlt überwiesen withdrawal deposit fee gebühr frais cargo commissione refund erstattung
    remboursement reembolso rimborso przelew kwota rachunek overschrijving encomenda fatura conta
    montante valor transferência beställning bestilling ordre belopp beløb passport reisepass
    passeport pasaporte passaporto paspoort ausweis personalausweis pratica sinistro préstamo prestamo
    prestito lening hypotheek polis schade lid lidmaatschap membership adhérent socio miembro az zähler
    compteur contador contatore matrikel kennzeichen
    """
)
_CURRENCY_RE = re.compile(
    r"(?:[€$£¥₣₹₽₺₩]|\b(?:EUR|USD|GBP|CHF|PLN|SEK|DKK|NOK|CZK|HUF|Fr|CHF|zł|kr|euros?|Euro|dollars?|pounds?)\b)",
    re.IGNORECASE,
)
# Regions tried for a national number that the policy's region does not read, when the text says phone.
_PLAUSIBLE_REGIONS = _words(
    """
    GB DE FR US NL IT ES CH AT IE PL BE LU PT SE DK NO FI CZ CA AU
    """
)
_CODE_BEFORE_RE = re.compile(r"(?:[A-Za-z]{2}[0-9]{2}(?: ?[0-9A-Za-z]{4})*|[A-Za-z]+[0-9]+[A-Za-z0-9]*)[ \-]\Z")
_CODE_AFTER_RE = re.compile(r"[ \-]?(?:[A-Za-z]+[0-9]|[0-9]+[A-Za-z])")
# A date not inside a longer dotted chain (06.12.34.56.78 is a French number), and a range of years.
_DATE_RE = re.compile(
    r"(?<![0-9])(?<![0-9][./-])(?:[0-9]{1,2}([./-])[0-9]{1,2}\1(?:[0-9]{4}|[0-9]{2})|[0-9]{4}([./-])[0-9]{1,2}\2[0-9]{1,2})"
    r"(?![./-][0-9])(?![0-9])"
)
_YEAR_RANGE_RE = re.compile(r"(?<![0-9])(?:19|20)[0-9]{2} ?[-\u2013] ?(?:19|20)[0-9]{2}(?![0-9])")
# A placeholder, or the part of one that a context window cut off: "[PHONE_1]", "ONE_1]", "[EMAI".
_PLACEHOLDER_WORD_RE = re.compile(r"\[?[A-Z][A-Z0-9_]*_[0-9]+\]|\[[A-Z][A-Z0-9_]*\Z|\A[A-Z0-9_]*_[0-9]+\]")
_GLUED_HEAD_RE = re.compile(r"[0-9][+(]?[ \t\u00a0\u202f\u2009]?\Z")
_CERTAIN, _UNSURE = 2, 1
# Regions whose people dial a trunk prefix "0" before a national number.
_TRUNK_ZERO = {
    region: phonenumbers.ndd_prefix_for_region(region, True) == "0" for region in phonenumbers.SUPPORTED_REGIONS
}
# What follows a number that goes on ("1.234.567,89", "4501-2/3"); a slash before a long group starts the next
# number ("0171 2345678/0171 8765432").
# A short group set off by a slash at either end of a run goes with the number ("4501-2/3", "02/04/2022").
_GOES_ON_RE = re.compile(r"[,.:][0-9]|/[0-9]{1,3}(?![0-9])(?![ \-./][0-9])|-[0-9A-Za-z]")
_WENT_ON_RE = re.compile(r"[0-9][,.:]\Z|(?<![0-9])(?<![0-9][ \-./])[0-9]{1,3}/\Z|[A-Za-z]-\Z")
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


def _find_phones(text: str, region: str) -> Iterator[_Span]:
    if not _ANY_DIGIT_RE.search(text):
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
        if not groups or _other_run_shape(text, groups):
            continue
        if _SPACED_DATE_RE.fullmatch(text, groups[0][0], groups[-1][1]) or _DATE_RE.fullmatch(
            text, groups[0][0], groups[-1][1]
        ):
            continue  # "am 12 02 2023", "on 02/04/2022"
        # "TX 9981 2231 0045": the digits of a reference code, unless they start like a dialled number.
        coded = text[groups[0][0]] != "0" and bool(_CODE_LABEL_RE.search(text, max(0, groups[0][0] - 7), groups[0][0]))
        yield from _phones_in_run(text, groups, region, coded=coded)


def _phones_in_run(text: str, groups: tuple[tuple[int, int], ...], region: str, *, coded: bool) -> Iterator[_Span]:
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
    choice: list[tuple[int, _Span] | None] = [None] * (count + 1)
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


def _with_prefix(text: str, groups: tuple[tuple[int, int], ...], free: int, first: int, span: _Span) -> _Span:
    """Extend ``span`` (a number read from ``groups[first]`` on) over the groups before it that no number
    covers, from the first of them that starts like a number (``0``, ``+``, ``(``), when the words say phone:
    a number's area code or country code is never left in clear ("Tel 0161 256 0844" read in Germany as
    "256 0844")."""
    for j in range(free, first):
        head = groups[j][0]
        if text[head] != "0" and text[max(0, head - 2) : head].strip() not in ("+", "(", "(+"):
            continue
        digits = "".join(text[a:b] for a, b in groups[j:first]) + re.sub(r"[^0-9]", "", text[span.start : span.end])
        if len(digits) > _PHONE_MAX_DIGITS or _context(text, head, span.end) != "phone":
            return span
        while head > 0 and text[head - 1] in "+(":
            head -= 1
        return _Span("PHONE", head, span.end, digits, True)
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
) -> tuple[int, _Span, bool] | None:
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
    if _other_number_shape(text, start, end, digits, lengths, separators):
        return None
    context = _context(text, start, end)
    if context == "other":
        return None
    ctx = context == "phone"
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
    return certainty, _Span("PHONE", start, end, key, certainty == _UNSURE), valid


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


def _other_number_shape(
    text: str, start: int, end: int, digits: str, lengths: list[int], separators: list[str]
) -> bool:
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
    if _DATE_RE.search(written) or _YEAR_RANGE_RE.search(written):
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


def _other_run_shape(text: str, groups: tuple[tuple[int, int], ...]) -> bool:
    """Whether a whole run of digit groups is shaped like a card or an IBAN that failed its checks (no part
    of it is then read as a phone number), or continues a code of letters and digits."""
    lengths = [end - start for start, end in groups]
    digits = sum(lengths)
    first = text[groups[0][0]]
    card_printed = len(lengths) == 1 or lengths[:-1] == [4] * (len(lengths) - 1) or tuple(lengths) in _CARD_GROUPINGS
    if 13 <= digits <= 19 and first in "23456" and text[groups[0][0] - 1 : groups[0][0]] != "+" and card_printed:
        return True
    if _long_code_in_fours(text, groups):
        return True
    before = text[max(0, groups[0][0] - 40) : groups[0][0]]
    # "GB93 VJOJ 6038 2048 4014 58", "AB12 3456 7890": the run goes on a code that mixes letters and digits.
    if _CODE_BEFORE_RE.search(before):
        return True
    return bool(_CODE_AFTER_RE.match(text, groups[-1][1]))


def _context(text: str, start: int, end: int) -> Literal["phone", "other", ""]:
    """Read the words just before the number (nearest first), then just after: the first that names a kind of
    number decides. Only words count, on the same line, at most ``_CONTEXT_WORDS_BEFORE`` before and
    ``_CONTEXT_WORDS_AFTER`` after; numbers and placeholders between are passed over, so a number reads the same
    context before and after its neighbours are scrubbed (which keeps scrubbing idempotent)."""
    before = _context_before(text, start)
    if before == "phone" or before == "other":
        return before
    return "phone" if before == "number" or _context_after(text, end) == "phone" else ""


@functools.lru_cache(maxsize=4096)
def _context_before(text: str, start: int) -> Literal["phone", "other", "number", ""]:
    line_start = text.rfind("\n", max(0, start - _CONTEXT_CHARS), start) + 1
    window = text[max(line_start, start - _CONTEXT_CHARS) : start]
    if "#" in window[-3:] or "№" in window[-3:]:
        return "other"
    weak_phone = False
    distance = 0  # words between, not counting "number" words ("order number: ...")
    words = _words_of(window)
    for word in reversed(words[-_CONTEXT_WORDS_BEFORE:]):
        kind = _word_kind(word)
        if kind == "phone":
            return kind
        if kind == "number":
            weak_phone = True
            continue
        if kind == "other" and distance <= _OTHER_WORD_REACH:
            return kind
        # Further off, a word for another kind of number names something else ("my card is blocked, 0171 ...").
        distance += 1
    return "number" if weak_phone else ""


@functools.lru_cache(maxsize=4096)
def _context_after(text: str, end: int) -> Literal["phone", ""]:
    line_end = text.find("\n", end, end + _CONTEXT_CHARS)
    window = text[end : line_end if line_end != -1 else end + _CONTEXT_CHARS]
    for word in _words_of(window)[:_CONTEXT_WORDS_AFTER]:
        kind = _word_kind(word)
        if kind == "phone":
            return "phone"
        if kind == "other":
            break
    return ""


def _words_of(window: str) -> list[str]:
    """The casefolded words of ``window``, placeholders left out and hyphenated compounds joined
    ("Personal-Nr." is "personalnr", "Tel.-Nr." is "telnr")."""
    if "_" in window:
        window = _PLACEHOLDER_WORD_RE.sub(" ", window)
    if "-" in window:
        window = _HYPHEN_JOIN_RE.sub("", window)
    return _WORD_RE.findall(window.casefold())


@functools.lru_cache(maxsize=8192)
def _word_kind(word: str) -> Literal["phone", "other", "number", ""]:
    """Say what kind of number ``word`` (casefolded) names: a word counts when it is a listed stem, starts
    with a stem of 4+ letters or ends with one of 5+ (compounds such as "Bestellnummer", "Handynummer"); when
    it holds both a phone stem and another one, the longer stem decides ("contact" is not "conto"). A compound
    of a "number" word ("Personalnummer", "Zählernummer", "leningnummer") names a phone number only when its
    first part is a phone word ("Handynummer", "Rufnummer"): otherwise it is another kind of number."""
    other = _stem_match(word, _OTHER_NUMBER_WORDS)
    phone = _stem_match(word, _PHONE_WORDS)
    if other > phone:
        return "other"
    if phone:
        return "phone"
    if word in _NUMBER_WORDS:
        return "number"
    for suffix in _NUMBER_WORDS[:7]:
        if word.endswith(suffix) and len(word) > len(suffix):
            head = word[: -len(suffix)].rstrip("s")  # "Mitgliedsnummer", "Versicherungsnummer"
            return "phone" if head and _stem_match(head, _PHONE_WORDS) else "other"
    return ""


def _stem_match(word: str, stems: tuple[str, ...]) -> int:
    """The length of the longest of ``stems`` that ``word`` is, starts with (4+ letters) or ends with (5+)."""
    return max(
        (
            len(stem)
            for stem in stems
            if word == stem or (len(stem) >= 4 and word.startswith(stem)) or (len(stem) >= 5 and word.endswith(stem))
        ),
        default=0,
    )


def _extra_detector(type_name: str, pattern: re.Pattern[str]) -> _Detector:
    def find(text: str) -> Iterator[_Span]:
        for match in pattern.finditer(text):
            yield _Span(type_name, match.start(), match.end(), match.group())

    return find


def _find_terms(text: str, pattern: re.Pattern[str]) -> Iterator[_Span]:
    for match in pattern.finditer(text):
        yield _Span("TERM", match.start(), match.end(), " ".join(match.group().split()).casefold())

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

import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

from annotation.pii_phones import find_phones
from annotation.pii_shapes import CARD_GROUPINGS, Span, long_code_in_fours

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


_Detector = Callable[[str], Iterator[Span]]


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

    def _spans(self, text: str) -> list[Span]:
        """Return the non-overlapping findings in ``text``, ordered by position."""
        blocked = bytearray(len(text))
        placeholders = [Span("", m.start(), m.end(), "") for m in PLACEHOLDER_RE.finditer(text)]
        for span in placeholders:
            blocked[span.start : span.end] = b"\x01" * (span.end - span.start)
        # Unicode spaces, dashes and digits read as their ASCII kin (one character for one, so offsets hold).
        work = _masked(text.translate(_NORMALISE), placeholders)
        found: list[Span] = []
        for _ in range(_MAX_PASSES):
            candidates = [(rank, span) for rank, detect in enumerate(self._detectors) for span in detect(work)]
            chosen = _resolve(candidates, blocked)
            if not chosen:
                # Phone numbers last, once nothing else is left to find: the words around a number decide, and
                # they must read the same now as in the scrubbed text (where other values are placeholders).
                chosen = _resolve([(0, span) for span in find_phones(work, self._phone_region)], blocked)
            if not chosen:
                break
            found.extend(chosen)
            work = _masked(work, chosen)
        found.sort(key=lambda span: span.start)
        return found


def _resolve(candidates: list[tuple[int, Span]], blocked: bytearray) -> list[Span]:
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
    chosen: list[Span] = []
    for _, span in usable:
        if blocked.find(1, span.start, span.end) == -1:
            blocked[span.start : span.end] = b"\x01" * (span.end - span.start)
            chosen.append(span)
    return chosen


def _masked(text: str, spans: Sequence[Span]) -> str:
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


def _find_emails(text: str) -> Iterator[Span]:
    if "@" not in text:
        return
    for match in _EMAIL_RE.finditer(text):
        yield Span("EMAIL", match.start(), match.end(), match.group().lower())


def _find_ibans(text: str) -> Iterator[Span]:
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
                yield Span("IBAN", match.start(), match.start() + end, stdnum_iban.compact(value))
                break


def _find_cards(text: str) -> Iterator[Span]:
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
        if long_code_in_fours(text, groups):
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
                    yield Span("CARD", window[0][0], window[-1][1], digits)
                    first = last
                    break
            else:
                first += 1


def _looks_like_card(lengths: list[int], digits: str) -> bool:
    """Return whether digit groups of ``lengths`` spelling ``digits`` are printed like a card number and
    carry a plausible issuer prefix and a valid Luhn check digit."""
    if not 13 <= len(digits) <= 19:
        return False
    printed = len(lengths) == 1 or tuple(lengths) in CARD_GROUPINGS
    printed = printed or (all(length == 4 for length in lengths[:-1]) and 1 <= lengths[-1] <= 4)
    if not printed:
        return False
    if digits[0] not in "3456" and not 2221 <= int(digits[:4]) <= 2720:
        return False
    return luhn.is_valid(digits)


def _find_ssns(text: str) -> Iterator[Span]:
    for pattern in _SSN_RES:
        for match in pattern.finditer(text):
            area, group, serial = match.groups()
            if area == "000" or area == "666" or area >= "900" or group == "00" or serial == "0000":
                continue
            yield Span("SSN", match.start(), match.end(), area + group + serial)


def _find_ipv4s(text: str) -> Iterator[Span]:
    for match in _IPV4_RE.finditer(text):
        try:
            address = ipaddress.IPv4Address(match.group())
        except ValueError:
            continue  # 999.1.1.1, leading zeros
        yield Span("IPV4", match.start(), match.end(), str(address))


def _find_ipv6s(text: str) -> Iterator[Span]:
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
            yield Span("IPV6", match.start(), match.start() + len(value), address.compressed)
            break


def _extra_detector(type_name: str, pattern: re.Pattern[str]) -> _Detector:
    def find(text: str) -> Iterator[Span]:
        for match in pattern.finditer(text):
            yield Span(type_name, match.start(), match.end(), match.group())

    return find


def _find_terms(text: str, pattern: re.Pattern[str]) -> Iterator[Span]:
    for match in pattern.finditer(text):
        yield Span("TERM", match.start(), match.end(), " ".join(match.group().split()).casefold())

"""Phone numbers in free text, as customers type them: the phone detector of ``annotation.pii``.

Pure Python; see ``annotation.pii``'s docstring for the evidence rules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import phonenumbers

from annotation.pii_shapes import ANY_DIGIT_RE, CARD_GROUPINGS, Span, long_code_in_fours


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
# A word saying where something goes, just before the number: the number is the destination, not the thing
# named before it ("send my security codes to 07911 123456", "envoyez le code au 06 12 34 56 78").
# Not after a number: "2024-001234 to 2024-001240" is a range.
_DESTINATION_RE = re.compile(
    r"(?:\A|(?<=[^0-9\s])\s*?\s)(?:to|onto|an|à|au|aux|a|al|naar|na|till|til|do|para|per)[ \t]+\Z", re.IGNORECASE
)
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
        if not groups or _other_run_shape(text, groups):
            continue
        if _SPACED_DATE_RE.fullmatch(text, groups[0][0], groups[-1][1]) or _DATE_RE.fullmatch(
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
        if len(digits) > _PHONE_MAX_DIGITS or _context(text, head, span.end) != "phone":
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
    # Words between, not counting "number" words ("order number: ..."); a destination just before the number
    # puts the words before it out of reach ("codes to 0791...": what the codes are sent to).
    distance = _OTHER_WORD_REACH + 1 if _DESTINATION_RE.search(window) else 0
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

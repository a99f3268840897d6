"""A generated evaluation set for the PII scrubber: planted phone numbers and the decoys that must survive.

Not a fixed list: :func:`generate` draws cases from a seed. Phone numbers come from
``phonenumbers.example_number_for_type`` and from random national significant numbers that
``phonenumbers.is_possible_number`` accepts (valid or merely possible, e.g. a German mobile one digit short),
written the ways customers type them (international ``+CC``/``00CC``, national with the trunk prefix, grouped
by spaces, dashes, dots, slashes or brackets, or not at all), inside sentences and at line ends, with and
without a word saying "phone". A national number is planted in a project whose phone region is its country
(a German bank's project reads German numbers); another country's national number only with a phone word.
Also: German mobiles a digit short with the area code set off, two numbers joined by a slash, and numbers
written with Unicode spaces, dashes or full-width digits. Decoys are order numbers, amounts with a currency,
dates (also with spaces), times, IBAN- and card-shaped strings that fail their checksums, reference codes
(also capitals and digits in fours, and long codes printed in fours whose first 16 digits pass as a card),
postcodes, version numbers, and loan, claim, member ... numbers shaped exactly like a phone number of the
project's region.

Measured by :func:`measure`, which ``tests/annotation/test_pii_recall.py`` (thresholds) and
``bench/pii_recall.py`` (the table in the README) call.
"""

from __future__ import annotations

import random
import string
from collections import defaultdict
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from stdnum import iban as stdnum_iban
from stdnum import luhn

from annotation.pii import PiiPolicy, Scrubber, ScrubResult, compile_policy

REGIONS = ("GB", "DE", "FR", "US", "NL", "IT", "ES", "CH", "AT", "IE", "PL", "BE", "SE", "PT")
PHONE_KINDS = (
    "international +CC",
    "international 00CC",
    "national, valid",
    "national, possible only",
    "other country's national, with a phone word",
    "German mobile a digit short, with a space",
    "two numbers joined by a slash",
    "Unicode spaces, dashes or digits",
)
DECOY_KINDS = (
    "order number",
    "amount with currency",
    "date",
    "time",
    "IBAN-shaped, bad checksum",
    "card-shaped, bad Luhn",
    "reference code",
    "postcode",
    "version number",
    "loan, claim, member ... number",
    "date with spaces",
    "code in capitals",
    "long code printed in fours",
)
_PHONE_WORDS = {
    "en": ["Tel.", "Phone:", "call me on", "my mobile is", "cell:", "ring me at", "my number is", "text me on"],
    "de": ["Tel.:", "Handy:", "meine Handynummer ist", "Telefon", "Rufen Sie mich an unter", "Nummer:", "mobil"],
    "fr": ["tél.", "mon portable :", "téléphone :", "appelez-moi au", "mon numéro est le"],
    "es": ["teléfono:", "móvil", "llámame al", "mi número es el"],
    "it": ["telefono:", "cellulare", "chiamami al", "il mio numero è"],
    "nl": ["tel.", "mobiel:", "bel me op", "mijn nummer is"],
}
_NO_CONTEXT_LEADS = ["Details:", "Hi, it's Anna,", "I am at", "Also", "Bitte unter", "Merci,", "Gracias,", "OK so", ""]
_TAILS = [" thanks.", ", after 6pm please.", " (evenings)", ".", "", "\nThanks", " – any time."]


@dataclass(frozen=True)
class Case:
    """One text to scrub: ``value`` is the planted string; ``pii`` says whether it must go (or stay)."""

    kind: str
    region: str  # the project's phone region to scrub with
    text: str
    value: str
    pii: bool
    context: bool = False
    parts: tuple[str, ...] = ()  # the planted numbers, when ``value`` holds more than one


def generate(seed: int, phones_per_kind: int = 400, decoys_per_kind: int = 400) -> list[Case]:
    """Return the evaluation cases drawn from ``seed``: phone numbers of every kind, then decoys."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for kind in PHONE_KINDS:
        for _ in range(phones_per_kind):
            cases.append(_phone_case(rng, kind))
    for kind in DECOY_KINDS:
        for _ in range(decoys_per_kind):
            cases.append(_decoy_case(rng, kind))
    return cases


# --- phone numbers -----------------------------------------------------------------------------------------


def _phone_case(rng: random.Random, kind: str) -> Case:
    special = _SPECIAL_PHONES.get(kind)
    if special is not None:
        return special(rng, kind)
    region = rng.choice(REGIONS)
    valid = kind == "national, valid" or rng.random() < 0.6
    number = _number(rng, region, valid=valid)
    if kind == "national, possible only":
        number = _possible_only(rng, region)
    if kind.startswith("international"):
        written = _international(rng, number, double_zero=kind.endswith("00CC"))
    else:
        written = _national(rng, number)
    with_context = kind.startswith("other country") or rng.random() < 0.5
    project_region = region
    if kind.startswith("other country"):
        project_region = rng.choice([r for r in REGIONS if r != region])
    # Bare digits with no trunk prefix and no word around them say nothing of a phone: a reviewer could not
    # tell them from an order number either. Customers who leave out the words group the digits.
    no_trunk = phonenumbers.ndd_prefix_for_region(region, True) != "0"
    if kind == "national, possible only" and not with_context and written.isdigit() and no_trunk:
        written = _regroup(rng, written, bare=False)
    text = _sentence(rng, written, context=with_context)
    return Case(kind=kind, region=project_region, text=text, value=written, pii=True, context=with_context)


def _short_german_mobile(rng: random.Random, kind: str) -> Case:
    """A German mobile one digit short (possible, not valid) with the area code set off by a space, "0171
    234567", or the same behind +49, 0049, "(0)" or brackets; read in a German project."""
    prefix = rng.choice(["151", "152", "157", "160", "162", "170", "171", "172", "175", "176", "177", "178", "179"])
    rest = "".join(rng.choice(string.digits) for _ in range(6))
    rest = rng.choice([rest, rest, f"{rest[:3]} {rest[3:]}", f"{rest[:4]} {rest[4:]}", " ".join(_twos(rest))])
    national, international = f"0{prefix} {rest}", f"{prefix} {rest}"
    written = rng.choice([national, national, f"+49 {international}", f"0049 {international}"])
    written = written if rng.random() < 0.7 else rng.choice([f"+49 (0){international}", f"(0{prefix}) {rest}"])
    with_context = rng.random() < 0.7
    text = _sentence(rng, written, context=with_context)
    return Case(kind=kind, region="DE", text=text, value=written, pii=True, context=with_context)


def _two_numbers(rng: random.Random, kind: str) -> Case:
    """Two numbers joined by a slash: "0171 2345678/0171 8765432", "0044 7304 921299/+447548677882"."""
    region = rng.choice(REGIONS)
    parts = []
    for _ in range(2):
        number = _number(rng, region, valid=True)
        if rng.random() < 0.3:
            parts.append(_international(rng, number, double_zero=rng.random() < 0.3))
        else:
            parts.append(_national(rng, number))
    value = rng.choice(["/", "/", " / ", "/ "]).join(parts)
    with_context = rng.random() < 0.5
    text = _sentence(rng, value, context=with_context)
    return Case(kind=kind, region=region, text=text, value=value, pii=True, context=with_context, parts=tuple(parts))


# Separators and digits that keyboards, phones and word processors put in numbers.
_UNICODE_SPACES = ["\u202f", "\u2009", "\u2007", "\u00a0", "\u2002", "\u3000"]
_UNICODE_DASHES = ["\u2212", "\u2011", "\u2013", "\u2010"]


def _unicode_number(rng: random.Random, kind: str) -> Case:
    """A number whose spaces or dashes are Unicode ones (narrow no-break, thin, figure, ideographic spaces;
    minus and non-breaking hyphen), or whose digits are full-width."""
    region = rng.choice(REGIONS)
    number = _number(rng, region, valid=rng.random() < 0.8)
    if rng.random() < 0.4:
        written = _international(rng, number, double_zero=rng.random() < 0.3)
    else:
        written = _national(rng, number)
    if " " not in written and "-" not in written:
        written = _regroup(rng, written, bare=False) if written.isdigit() else written
    style = rng.random()
    if style < 0.6:
        written = written.replace(" ", rng.choice(_UNICODE_SPACES))
    elif style < 0.8:
        written = written.replace("-", rng.choice(_UNICODE_DASHES)).replace(" ", rng.choice(_UNICODE_DASHES))
    else:
        written = written.translate({ord(d): chr(0xFF10 + int(d)) for d in string.digits})
    with_context = rng.random() < 0.5
    text = _sentence(rng, written, context=with_context)
    return Case(kind=kind, region=region, text=text, value=written, pii=True, context=with_context)


_SPECIAL_PHONES = {
    "German mobile a digit short, with a space": _short_german_mobile,
    "two numbers joined by a slash": _two_numbers,
    "Unicode spaces, dashes or digits": _unicode_number,
}


def _number(rng: random.Random, region: str, *, valid: bool) -> phonenumbers.PhoneNumber:
    kinds = [PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]
    if valid and rng.random() < 0.25:
        example = phonenumbers.example_number_for_type(region, rng.choice(kinds))
        if example is not None:
            return example
    for _ in range(200):
        candidate = _random_national(rng, region, rng.choice(kinds))
        if candidate is not None and phonenumbers.is_valid_number(candidate) == valid:
            return candidate
    return _example(region, PhoneNumberType.MOBILE)


def _example(region: str, number_type: int) -> phonenumbers.PhoneNumber:
    example = phonenumbers.example_number_for_type(region, number_type)
    assert example is not None, (region, number_type)
    return example


def _country_region(number: phonenumbers.PhoneNumber) -> str:
    assert number.country_code is not None
    return phonenumbers.region_code_for_country_code(number.country_code)


def _random_national(rng: random.Random, region: str, number_type: int) -> phonenumbers.PhoneNumber | None:
    """A random national significant number that starts like the region's example of ``number_type`` and
    has one of the region's possible lengths."""
    example = phonenumbers.example_number_for_type(region, number_type)
    if example is None:
        return None
    nsn = phonenumbers.national_significant_number(example)
    keep = rng.randint(1, min(3, len(nsn) - 1))
    length = len(nsn) + rng.choice([0, 0, 0, -1, 1])
    digits = nsn[:keep] + "".join(rng.choice(string.digits) for _ in range(length - keep))
    number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int(digits))
    return number if phonenumbers.is_possible_number(number) else None


def _possible_only(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    """A number its country's rules call possible but not valid: e.g. a mobile with a digit dropped."""
    for _ in range(500):
        example = _example(region, rng.choice([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]))
        nsn = phonenumbers.national_significant_number(example)
        choice = rng.random()
        if choice < 0.4:
            digits = nsn[:-1]  # one digit short
        elif choice < 0.6:
            digits = nsn + rng.choice(string.digits)  # one too many
        else:
            keep = rng.randint(0, 2)
            digits = nsn[:keep] + "".join(rng.choice("123456789") for _ in range(len(nsn) - keep))
        number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int(digits))
        if phonenumbers.is_possible_number(number) and not phonenumbers.is_valid_number(number):
            return number
    raise AssertionError(f"no possible-only number found for {region}")


def _national(rng: random.Random, number: phonenumbers.PhoneNumber) -> str:
    region = _country_region(number)
    formatted = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    digits = "".join(ch for ch in formatted if ch.isdigit())
    if formatted == phonenumbers.national_significant_number(number) or rng.random() < 0.5:
        # No standard layout (an invalid number) or the customer's own: prefix, then the rest grouped.
        ndd = phonenumbers.ndd_prefix_for_region(region, True) or ""
        if ndd and ndd != "1" and not digits.startswith(ndd):
            digits = ndd + digits
        return _regroup(rng, digits)
    style = rng.random()
    if style < 0.2:
        return formatted
    if style < 0.4:
        return formatted.replace(" ", "-")
    if style < 0.55:
        return formatted.replace(" ", ".")
    if style < 0.7:
        return digits
    if style < 0.85 and " " in formatted:
        head, _, rest = formatted.partition(" ")
        return f"{head}/{rest.replace(' ', '')}"
    return formatted


def _regroup(rng: random.Random, digits: str, *, bare: bool = True) -> str:
    style = rng.random() if bare else 0.15 + 0.85 * rng.random()
    head = rng.randint(2, 5) if len(digits) > 8 else 3
    area, rest = digits[:head], digits[head:]
    if style < 0.15:
        return digits
    if style < 0.3:
        return f"{area}/{rest}"
    if style < 0.45:
        return f"({area}) {rest}"
    if style < 0.6:
        return f"{area}-{rest}"
    sep = rng.choice([" ", " ", "-", "."])
    pairs = _twos(rest) if rng.random() < 0.5 else _threes(rest)
    return area + sep + sep.join(pairs)


def _twos(rest: str) -> list[str]:
    groups = [rest[i : i + 2] for i in range(0, len(rest), 2)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        groups[-2:] = [groups[-2] + groups[-1]]
    return groups


def _threes(rest: str) -> list[str]:
    groups = [rest[i : i + 3] for i in range(0, len(rest), 3)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        groups[-2:] = [groups[-2] + groups[-1]]
    return groups


def _international(rng: random.Random, number: phonenumbers.PhoneNumber, *, double_zero: bool) -> str:
    formatted = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    cc = str(number.country_code)
    nsn = phonenumbers.national_significant_number(number)
    style = rng.random()
    if formatted.replace(" ", "") == f"+{cc}{nsn}" and formatted.count(" ") <= 1:
        body = " ".join(_threes(nsn))  # no standard layout for an invalid number
    elif style < 0.15:
        body = nsn
    elif style < 0.3:
        body = formatted.split(" ", 1)[1].replace(" ", "-")
    elif style < 0.4 and rng.random() < 0.5:
        region = _country_region(number)
        body = ("(0)" if phonenumbers.ndd_prefix_for_region(region, True) == "0" else "") + formatted.split(" ", 1)[1]
    else:
        body = formatted.split(" ", 1)[1] if " " in formatted else nsn
    prefix = f"00{cc}" if double_zero else f"+{cc}"
    joiner = rng.choice([" ", " ", " ", "-", ""]) if not body.startswith("(") else " "
    return prefix + joiner + body


def _sentence(rng: random.Random, value: str, *, context: bool) -> str:
    lead = rng.choice(rng.choice(list(_PHONE_WORDS.values()))) if context else rng.choice(_NO_CONTEXT_LEADS)
    tail = rng.choice(_TAILS)
    opening = rng.choice(["", "Hello, ", "Sorry, ", "Guten Tag. ", "Bonjour, ", "Line one.\n"])
    return f"{opening}{lead} {value}{tail}".lstrip() if lead else f"{opening}{value}{tail}"


# --- decoys --------------------------------------------------------------------------------------------------


def _decoy_case(rng: random.Random, kind: str) -> Case:
    region = rng.choice(REGIONS)
    if kind == "loan, claim, member ... number":
        value, text = _other_kind_of_number(rng, region)
    else:
        value, text = _DECOYS[kind](rng)
    return Case(kind=kind, region=region, text=text, value=value, pii=False)


def _order(rng: random.Random) -> tuple[str, str]:
    digits = "".join(rng.choice(string.digits) for _ in range(rng.randint(7, 12)))
    value = rng.choice([digits, f"{digits[:4]}-{digits[4:]}", f"{digits[:3]} {digits[3:]}", f"2024-{digits[:6]}"])
    lead = rng.choice(
        [
            "Order",
            "order no.",
            "Your order #",
            "Bestellnummer",
            "Bestellung",
            "commande n°",
            "pedido",
            "ordine",
            "Invoice",
            "Rechnung Nr.",
            "facture",
            "Ticket",
            "case number",
            "tracking number",
            "Kundennummer",
        ]
    )
    glue = "" if lead.endswith("#") else " "
    return value, f"{lead}{glue}{value} {rng.choice(['has shipped.', 'is late', 'ist unterwegs.', ''])}".strip()


def _amount(rng: random.Random) -> tuple[str, str]:
    whole = rng.randint(1000, 99_999_999)
    style = rng.random()
    if style < 0.25:
        value = f"€{whole:,}.{rng.randint(0, 99):02d}"
    elif style < 0.5:
        value = f"{whole:,}".replace(",", ".") + f",{rng.randint(0, 99):02d} EUR"
    elif style < 0.75:
        value = f"{whole:,}".replace(",", " ") + rng.choice([" €", " zł", " kr", " CHF"])
    else:
        value = rng.choice(["USD ", "GBP ", "CHF ", "£", "$"]) + f"{whole:,}".replace(",", rng.choice([",", "'", ","]))
    return (
        value,
        f"{rng.choice(['I paid', 'Betrag:', 'montant de', 'The balance is', 'transfer of'])} {value} yesterday.",
    )


def _date(rng: random.Random) -> tuple[str, str]:
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1990, 2030)
    value = rng.choice(
        [
            f"{d:02d}.{m:02d}.{y}",
            f"{d}/{m}/{y}",
            f"{y}-{m:02d}-{d:02d}",
            f"{m:02d}/{d:02d}/{y % 100:02d}",
            f"{d:02d}-{m:02d}-{y}",
            f"{d}.{m}.{y % 100:02d}",
            f"{y}-{m:02d}-{d:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        ]
    )
    return value, _say(rng, ["It was on", "Datum:", "le", "Since", "dated"], value, [", ok?", "I think.", ""])


def _time(rng: random.Random) -> tuple[str, str]:
    h, m = rng.randint(0, 23), rng.randint(0, 59)
    value = rng.choice(
        [f"{h:02d}:{m:02d}", f"{h}:{m:02d} pm", f"{h:02d}:{m:02d}:{rng.randint(0, 59):02d}", f"{h}h{m:02d}"]
    )
    return value, _say(rng, ["Call at", "um", "at", "vers"], value, ["please", "Uhr", ""])


def _bad_iban(rng: random.Random) -> tuple[str, str]:
    for _ in range(100):
        country = rng.choice(["DE", "GB", "FR", "NL", "ES", "IT", "CH", "AT", "BE", "PL"])
        lengths = {"DE": 22, "GB": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27, "CH": 21, "AT": 20, "BE": 16, "PL": 28}
        bban_len = lengths[country] - 4
        if country in ("GB", "NL"):
            bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
                rng.choice(string.digits) for _ in range(bban_len - 4)
            )
        else:
            bban = "".join(rng.choice(string.digits) for _ in range(bban_len))
        compact = f"{country}{rng.randint(10, 99)}{bban}"
        if not stdnum_iban.is_valid(compact):
            value = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if rng.random() < 0.7 else compact
            return (
                value,
                _say(rng, ["IBAN", "my account", "Konto:", "IBAN :"], value, ["thanks", "", "bitte"]),
            )
    raise AssertionError("no IBAN with a bad checksum drawn")


def _bad_card(rng: random.Random) -> tuple[str, str]:
    while True:
        length = rng.choice([16, 16, 15, 19, 13])
        digits = rng.choice("3456") + "".join(rng.choice(string.digits) for _ in range(length - 1))
        if not luhn.is_valid(digits):
            break
    if length == 16 and rng.random() < 0.7:
        value = rng.choice([" ", "-"]).join(digits[i : i + 4] for i in range(0, 16, 4))
    elif length == 15 and rng.random() < 0.5:
        value = f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    else:
        value = digits
    return (
        value,
        _say(rng, ["card", "Karte", "carte", "My Visa", "tarjeta"], value, ["was declined", "", "expired"]),
    )


def _reference(rng: random.Random) -> tuple[str, str]:
    def block(n: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(n))

    value = rng.choice(
        [
            f"REF-{block(4)}-{block(6)}",
            f"AB{block(2)} {block(4)} {block(4)}",
            f"TX{block(10)}",
            f"{block(3)}-{block(3)}-{block(3)}-X",
            f"CASE-{block(8)}",
            f"#{block(8)}",
            f"Ref. {block(4)}/{block(5)}",
        ]
    )
    return (
        value,
        _say(rng, ["Reference", "Referenz:", "Your reference is", "Vorgang", "ref"], value, ["", "ok"]),
    )


def _postcode(rng: random.Random) -> tuple[str, str]:
    value = rng.choice(
        [
            f"{rng.randint(10000, 99999)}",
            f"{rng.randint(1000, 9999)} AB",
            f"{rng.randint(10, 99)}-{rng.randint(100, 999)}",
            "SW1A 1AA",
            f"{rng.randint(1000, 9999)}",
        ]
    )
    return (
        value,
        _say(rng, ["I live at", "PLZ", "code postal", "postcode"], value, ["Berlin", "Paris", "Warszawa", "Wien", ""]),
    )


def _version(rng: random.Random) -> tuple[str, str]:
    parts = [str(rng.randint(0, 20)) for _ in range(rng.randint(2, 4))]
    # A build number last; four parts of at most 255 would be an IP address, which is scrubbed as one.
    parts[-1] = str(rng.randint(0, 9999) if len(parts) < 4 else rng.randint(256, 9999))
    value = rng.choice(["", "v", "V"]) + ".".join(parts)
    return (
        value,
        _say(rng, ["The app is on version", "App", "iOS", "build", "Android"], value, ["and crashes", "", "installed"]),
    )


# Words (and compounds of "number" words) that name another kind of number than a phone number.
_OTHER_NUMBER_LEADS = [
    "Kreditnummer", "Darlehensnummer", "Kredit-Nr.", "Darlehens-Nr.", "Schadennummer", "Versicherungsnummer",
    "Mitgliedsnummer", "Personalnummer", "Depotnummer", "Zählernummer", "Az.", "Vertragsnummer", "Kontonummer",
    "loan no.", "loan number", "member number", "claim number", "passport number", "mortgage", "policy no.",
    "prêt n°", "numéro de contrat", "numéro de sinistre", "bestelnummer", "polisnummer", "leningnummer",
    "lidnummer", "numero pratica", "numero di polizza", "préstamo", "número de póliza", "Mitglieds-Nr.",
]  # fmt: skip


def _other_kind_of_number(rng: random.Random, region: str) -> tuple[str, str]:
    """A loan, claim, member ... number shaped exactly like a phone number of the project's region."""
    number = _number(rng, region, valid=True)
    digits = phonenumbers.national_significant_number(number)
    ndd = phonenumbers.ndd_prefix_for_region(region, True)
    value = rng.choice([digits, (ndd if ndd == "0" else "") + digits, _national(rng, number)])
    lead = rng.choice(_OTHER_NUMBER_LEADS)
    return (
        value,
        f"{rng.choice(['', 'Hallo, ', 'Hi, my ', 'Bonjour, '])}{lead} {value} {rng.choice(['', 'ok?'])}".strip(),
    )


def _spaced_date(rng: random.Random) -> tuple[str, str]:
    d, m, y = rng.randint(1, 31), rng.randint(1, 12), rng.randint(1990, 2030)
    value = rng.choice([f"{d:02d} {m:02d} {y}", f"{d} {m} {y}", f"{y} {m:02d} {d:02d}"])
    return value, _say(rng, ["am", "on", "le", "el", "Datum", "since"], value, ["", "!", "bitte prüfen"])


def _capital_code(rng: random.Random) -> tuple[str, str]:
    """A code of capitals, then its digits in fours, too few for a card: "TX 9981 2231 0045"."""
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(2, 4)))
    blocks = [str(rng.randint(1000, 9999)) for _ in range(rng.randint(2, 3))]
    value = f"{letters}{rng.choice([' ', '-'])}{' '.join(blocks)}"
    return value, _say(rng, ["Reference", "see", "booking"], value, ["", "ok", "."])


def _long_code_in_fours(rng: random.Random) -> tuple[str, str]:
    """A tracking code printed in fours whose first 16 digits pass as a card: "3023 3770 1133 4173 7902 90"."""
    head = rng.choice("3456") + "".join(rng.choice(string.digits) for _ in range(14))
    digits = head + luhn.calc_check_digit(head)
    digits += "".join(rng.choice(string.digits) for _ in range(rng.randint(2, 10)))
    value = " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    return value, _say(rng, ["tracking", "Sendung", "parcel", "colis"], value, ["", "is late", "ok"])


# Leads that say nothing of what the number is: a third of the decoys must survive on their shape alone.
_NEUTRAL_LEADS = ["Hi,", "so", "OK:", "Line one.\n", "Bonjour,", "Hallo,", "It is", "see", ""]


def _say(rng: random.Random, leads: list[str], value: str, tails: list[str]) -> str:
    lead = rng.choice(_NEUTRAL_LEADS if rng.random() < 1 / 3 else leads)
    return f"{lead} {value} {rng.choice(tails)}".strip()


_DECOYS = {
    "order number": _order,
    "amount with currency": _amount,
    "date": _date,
    "time": _time,
    "IBAN-shaped, bad checksum": _bad_iban,
    "card-shaped, bad Luhn": _bad_card,
    "reference code": _reference,
    "postcode": _postcode,
    "version number": _version,
    "date with spaces": _spaced_date,
    "code in capitals": _capital_code,
    "long code printed in fours": _long_code_in_fours,
}


def measure(seed: int, per_kind: int) -> tuple[dict[str, tuple[int, int, int]], dict[str, list[Case]]]:
    """Return per kind (hits, uncertain, total) (hits = found phones, or surviving decoys) and the misses."""
    scrubbers: dict[str, Scrubber] = {}
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    misses: dict[str, list[Case]] = defaultdict(list)
    for case in generate(seed, per_kind, per_kind):
        scrubber = scrubbers.get(case.region) or scrubbers.setdefault(
            case.region, compile_policy(PiiPolicy(mode="replace", default_phone_region=case.region))
        )
        result = scrubber.scrub([case.text])
        ok = scrubbed_whole(case, result) if case.pii else survives(case, result.texts[0])
        row = hits[case.kind]
        row[0] += ok
        row[1] += bool(result.uncertain)
        row[2] += 1
        if not ok:
            misses[case.kind].append(case)
    return {kind: (h, u, n) for kind, (h, u, n) in hits.items()}, misses


def survives(case: Case, scrubbed: str) -> bool:
    """Whether the planted value is still in the scrubbed text, digits and all."""
    return case.value in scrubbed


def scrubbed_whole(case: Case, result: ScrubResult) -> bool:
    """Whether every digit of every planted number was scrubbed (no area code left in clear)."""
    start = case.text.index(case.value)
    covered = bytearray(len(case.text))
    for finding in result.findings:
        if not finding.kept:
            covered[finding.start : finding.end] = b"\x01" * (finding.end - finding.start)
    return all(covered[i] for i in range(start, start + len(case.value)) if case.text[i].isdigit())

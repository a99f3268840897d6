"""The words around a number in free text, for the phone detector (``annotation.pii_phones``): whether they say
it is a phone number ("call me on", "Handynummer"), another kind of number ("order", "IBAN", "Rechnung"), or
nothing. Pure Python."""

from __future__ import annotations

import functools
import re
from typing import Literal


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


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
_PHONE_WORDS = words(
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
_OTHER_NUMBER_WORDS = words(
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
# A placeholder, or the part of one that a context window cut off: "[PHONE_1]", "ONE_1]", "[EMAI".
_PLACEHOLDER_WORD_RE = re.compile(r"\[?[A-Z][A-Z0-9_]*_[0-9]+\]|\[[A-Z][A-Z0-9_]*\Z|\A[A-Z0-9_]*_[0-9]+\]")


def context(text: str, start: int, end: int) -> Literal["phone", "other", ""]:
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

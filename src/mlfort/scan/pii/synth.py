"""A seeded generator of labeled synthetic tables for `scan pii`: columns of every entity type in realistic, varied
formats, decoys that look like PII and are not (order numbers that pass Luhn, timestamps, versions, hashes, zip
codes...), free text with embedded entities, mixed columns, empty cells and non-ASCII names; with the truth at cell
level. The tests score precision and recall against it, the benchmark compares tools on it, the demo shows it.

    table = make_table(rows=2_000, seed=7)
    table.write_csv(path)              # and write_jsonl / write_parquet: the same table
    table.labels[(row, "email")]       # -> frozenset({'email'})

Every value is made up from the seed; none is a real person's.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlfort.scan.pii import detectors as d

# ---------------------------------------------------------------------------------------------------- value makers

FIRST = ["James", "María", "José", "Zoë", "Łukasz", "Ørjan", "Aoife", "Søren", "Chloé", "Jürgen", "Ngozi", "Priya",
         "Wei", "Yuki", "Olga", "Ahmed", "Fatima", "Giulia", "Mateo", "Emma", "Noah", "Björn", "Inès", "Kwame",
         "Anna", "Ana", "Lucas", "Sofía", "Hiroshi", "Dmitri", "François", "Siobhán", "Mehmet", "Elif", "Joao",
         "Mary-Kate", "Jean-Luc", "Ren", "Ama", "Oskar"]
LAST = ["Smith", "García", "Müller", "O'Brien", "Nguyễn", "Kowalski", "Rossi", "Dubois", "Johansson", "Virtanen",
        "Okafor", "Patel", "Wang", "Tanaka", "Ivanova", "Haddad", "Silva", "van der Berg", "García-López", "Łęcki",
        "Schröder", "Fernández", "Novák", "Yılmaz", "Mac Giolla", "Åberg", "da Costa", "Kim", "Nakamura", "Brown"]
DOMAINS = ["example.com", "mail.example.org", "correo.es", "posteo.de", "company.co.uk", "uni-hamburg.de",
           "startup.io", "fastmail.fm", "example.net", "laposte.fr"]
WORDS = ["delivery", "late", "refund", "asked", "about", "the", "package", "again", "customer", "happy", "issue",
         "resolved", "escalated", "pending", "review", "call", "back", "tomorrow", "please", "note"]


def _digits(rng: random.Random, n: int, first: str = "0123456789") -> str:
    return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _with_check(body: str, valid: Callable[[str], bool], alphabet: str = "0123456789") -> str | None:
    for c in alphabet:
        if valid(body + c):
            return body + c
    return None


def _retry(rng: random.Random, make: Callable[[random.Random], str | None]) -> str:
    for _ in range(1000):
        value = make(rng)
        if value is not None:
            return value
    raise RuntimeError("generator failed")  # pragma: no cover - the makers below always succeed quickly


def email(rng: random.Random) -> str:
    """A made-up address in one of several local-part styles."""
    f, last = _ascii(rng.choice(FIRST)).lower(), _ascii(rng.choice(LAST)).lower().replace(" ", "")
    local = rng.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}{rng.randint(1, 99)}", f"{f}_{last}",
                        f"{f}.{last}+news", f"{last}.{f[0]}"]).replace("'", "")
    value = f"{local}@{rng.choice(DOMAINS)}"
    return value.upper() if rng.random() < 0.05 else value


def _ascii(s: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii() and (c.isalnum() or c in " '-"))


def phone(rng: random.Random) -> str:
    """A phone number in one of many real-world national and international formats."""
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    style = rng.randrange(14)
    return [
        f"+1 {a}-{b}-{c:04d}", f"({a}) {b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+1{a}{b}{c:04d}",
        f"+44 20 7946 {rng.randint(0, 9999):04d}", f"020 7946 {rng.randint(0, 9999):04d}",
        f"+49 30 {rng.randint(1000000, 99999999)}", f"030 {rng.randint(100000, 9999999)}",
        f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"06 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+34 6{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
        f"+1-{a}-{b}-{c:04d} x{rng.randint(10, 999)}", f"0044 20 7946 {rng.randint(0, 9999):04d}",
        f"+91 9{rng.randint(1000, 9999)} {rng.randint(10000, 99999)}",
    ][style]


def bare_phone(rng: random.Random) -> str:
    """A phone number stored as bare digits (as exports often do)."""
    return rng.choice([f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}",
                       f"07700{rng.randint(900000, 999999)}", f"49151{rng.randint(1000000, 9999999)}"])


_CARD_PREFIXES = [("4", 16), ("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                  ("6011", 16), ("65", 16), ("3528", 16), ("36", 14), ("62", 16), ("4", 13)]


def card_digits(rng: random.Random, prefix: str | None = None, length: int = 16) -> str:
    """A Luhn-valid number of a real card scheme (or of `prefix` and `length`)."""
    if prefix is None:
        prefix, length = rng.choice(_CARD_PREFIXES)
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return _with_check(body, d.luhn) or ""


def card(rng: random.Random) -> str:
    """A card number as people write it: 4-4-4-4 with spaces or dashes, Amex 4-6-5, or plain."""
    n = card_digits(rng)
    style = rng.randrange(3)
    if style == 2 or len(n) not in (15, 16):
        return n
    sep = " " if style == 0 else "-"
    if len(n) == 15:
        return sep.join([n[:4], n[4:10], n[10:]])
    return sep.join(n[i:i + 4] for i in range(0, 16, 4))


_IBAN_COUNTRIES = {"DE": "8n10n", "GB": "4a14n", "FR": "23n", "ES": "20n", "NL": "4a10n", "IT": "1a22n",
                   "BE": "12n", "CH": "17n", "PL": "24n", "SE": "20n", "AT": "16n", "IE": "4a14n"}


def iban(rng: random.Random) -> str:
    """A valid IBAN (mod-97) of one of 12 countries, compact or in groups of four."""
    cc = rng.choice(sorted(_IBAN_COUNTRIES))
    bban = ""
    spec = _IBAN_COUNTRIES[cc]
    for part in spec.replace("n", "n ").replace("a", "a ").split():
        n, kind = int(part[:-1]), part[-1]
        bban += "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ" if kind == "a" else "0123456789") for _ in range(n))
    number = int((bban + cc + "00").translate({ord(c): str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}))
    value = f"{cc}{98 - number % 97:02d}{bban}"
    if rng.random() < 0.5:
        value = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value


def ssn(rng: random.Random) -> str:
    """A US SSN outside the never-issued ranges, ddd-dd-dddd."""
    area = rng.choice([x for x in range(1, 900) if x != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def nino(rng: random.Random) -> str:
    """A UK NINO with an issued prefix, spaced or not."""
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        first, second = "A", "B"
    digits = _digits(rng, 6)
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{first}{second}{digits}{suffix}"


def dni(rng: random.Random) -> str:
    """A Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter)."""
    if rng.random() < 0.7:
        n = rng.randint(1_000_000, 99_999_999)
        return f"{n:08d}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"
    lead = rng.randrange(3)
    n = rng.randint(0, 9_999_999)
    return f"{'XYZ'[lead]}{n:07d}{'TRWAGMYFPDXBNJZSQVHLCKE'[(lead * 10_000_000 + n) % 23]}"


def bsn(rng: random.Random) -> str:
    """A Dutch BSN (11-proof), bare 9 digits."""
    return _retry(rng, lambda r: _with_check(_digits(r, 8, "123456789"), d.bsn_valid))


def nir(rng: random.Random) -> str:
    """A French NIR with its key, spaced `1 84 12 76 451 089 46` or compact."""
    body = (rng.choice("12") + f"{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}"
            + rng.choice([f"{rng.randint(1, 95):02d}", "2A", "2B"]) + _digits(rng, 6))
    number = int(body.replace("2A", "19").replace("2B", "18")) - (1_000_000 if "2A" in body[5:7] else
                                                                2_000_000 if "2B" in body[5:7] else 0)
    value = f"{body}{97 - number % 97:02d}"
    if rng.random() < 0.5:
        return " ".join([value[0], value[1:3], value[3:5], value[5:7], value[7:10], value[10:13], value[13:]])
    return value


def codice_fiscale(rng: random.Random) -> str:
    """An Italian codice fiscale with its check letter."""
    letters = "".join(rng.choice("BCDFGLMNPRSTVZ") for _ in range(6))
    body = (letters + f"{rng.randint(40, 99):02d}" + rng.choice("ABCDEHLMPRST")
            + f"{rng.choice([rng.randint(1, 28), rng.randint(41, 68)]):02d}" + rng.choice("ABCDEFGHLMZ")
            + _digits(rng, 3))
    return _with_check(body, d.codice_fiscale_valid, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") or ""


def steuer_id(rng: random.Random) -> str:
    """A German Steuer-ID: one digit twice in the first ten, check digit MOD 11,10."""
    def make(r: random.Random) -> str | None:
        digits = r.sample("0123456789", 9)
        digits.insert(r.randrange(10), r.choice(digits))
        if digits[0] == "0":
            return None
        return _with_check("".join(digits), d.steuer_id_valid)
    return _retry(rng, make)


def pesel(rng: random.Random) -> str:
    """A Polish PESEL (date + check digit), bare 11 digits."""
    def make(r: random.Random) -> str | None:
        year = r.randint(1940, 2015)
        month = r.randint(1, 12) + (20 if year >= 2000 else 0)
        body = f"{year % 100:02d}{month:02d}{r.randint(1, 28):02d}{r.randint(0, 9999):04d}"
        return _with_check(body, d.pesel_valid)
    return _retry(rng, make)


def personnummer(rng: random.Random) -> str:
    """A Swedish personnummer YYMMDD-NNNC (sometimes with the century)."""
    def make(r: random.Random) -> str | None:
        yy, mm, dd = r.randint(0, 99), r.randint(1, 12), r.randint(1, 28)
        body = f"{yy:02d}{mm:02d}{dd:02d}{r.randint(0, 999):03d}"
        full = _with_check(body, d.personnummer_valid)
        if full is None:
            return None
        century = "19" if yy > 25 else "20"
        return (century if r.random() < 0.3 else "") + full[:6] + "-" + full[6:]
    return _retry(rng, make)


def hetu(rng: random.Random) -> str:
    """A Finnish HETU DDMMYYCZZZQ."""
    dd, mm, yy = rng.randint(1, 28), rng.randint(1, 12), rng.randint(0, 99)
    sign = rng.choice("-A") if yy < 20 else "-"
    zzz = rng.randint(2, 899)
    check = "0123456789ABCDEFHJKLMNPRSTUVWXY"[int(f"{dd:02d}{mm:02d}{yy:02d}{zzz:03d}") % 31]
    return f"{dd:02d}{mm:02d}{yy:02d}{sign}{zzz:03d}{check}"


def aadhaar(rng: random.Random) -> str:
    """An Indian Aadhaar number (Verhoeff), `2345 6789 0124`."""
    n = _retry(rng, lambda r: _with_check(_digits(r, 11, "23456789"), d.aadhaar_valid))
    return f"{n[:4]} {n[4:8]} {n[8:]}" if rng.random() < 0.8 else n


def cpf(rng: random.Random) -> str:
    """A Brazilian CPF with its two check digits, `123.456.789-09` or bare."""
    n = _retry(rng, _cpf_digits)
    return f"{n[:3]}.{n[3:6]}.{n[6:9]}-{n[9:]}" if rng.random() < 0.7 else n


def _cpf_digits(rng: random.Random) -> str | None:
    body = _digits(rng, 9)
    for a in "0123456789":
        for b in "0123456789":
            if d.cpf_valid(body + a + b):
                return body + a + b
    return None


def ip(rng: random.Random) -> str:
    """Public and private IPv4, and IPv6 addresses."""
    style = rng.randrange(4)
    if style == 0:
        return f"{rng.choice([23, 45, 81, 93, 151, 185, 203])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}." \
               f"{rng.randint(1, 254)}"
    if style == 1:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if style == 2:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"2001:db8:{rng.randint(0, 0xffff):x}::{rng.randint(1, 0xffff):x}"


def dob(rng: random.Random) -> str:
    """A date of birth in one of several formats."""
    y, m, day = rng.randint(1940, 2006), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{y}-{m:02d}-{day:02d}", f"{day:02d}/{m:02d}/{y}", f"{day:02d}.{m:02d}.{y}",
                       f"{m}/{day}/{y}"])


def address(rng: random.Random) -> str:
    """A street address in several countries' styles."""
    n = rng.randint(1, 250)
    return rng.choice([f"{n} Baker Street, London", f"Calle Mayor {n}, 28013 Madrid", f"Hauptstraße {n}",
                       f"{n} rue de Rivoli", f"Via Roma {n}, Milano", f"{n} Elm St Apt {rng.randint(1, 40)}"])


# ---------------------------------------------------------------------------------------------------- decoys


def order_number(rng: random.Random) -> str:
    """16 random digits: about 1 in 10 pass Luhn by chance, some of those with a card prefix."""
    return _digits(rng, 16, "123456789")


def order_ref(rng: random.Random) -> str:
    """16 digits that always pass Luhn but start with a prefix no card scheme uses."""
    return card_digits(rng, rng.choice(["1", "7", "8", "9"]), 16)


def timestamp(rng: random.Random) -> str:
    """Timestamps as logs and exports write them."""
    y, mo, day, h, mi, s = (rng.randint(2015, 2025), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                            rng.randint(0, 59), rng.randint(0, 59))
    return rng.choice([f"{y}-{mo:02d}-{day:02d} {h:02d}:{mi:02d}:{s:02d}", f"{y}-{mo:02d}-{day:02d}T{h:02d}:{mi:02d}Z",
                       f"{day:02d}/{mo:02d}/{y} {h:02d}:{mi:02d}", f"{y}{mo:02d}{day:02d}{h:02d}{mi:02d}{s:02d}",
                       str(rng.randint(1_450_000_000, 1_750_000_000)), f"{y}.{mo:02d}.{day:02d}"])


def version(rng: random.Random) -> str:
    """Version strings, including four-part ones that parse as IPv4 addresses."""
    return rng.choice([f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}",
                       f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}",
                       f"10.0.{rng.randint(10000, 22631)}.{rng.randint(100, 4000)}",
                       f"v{rng.randint(1, 5)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}-beta"])


def hexhash(rng: random.Random) -> str:
    """A SHA-256 hex digest (long digit runs inside)."""
    return "".join(rng.choice("0123456789abcdef") for _ in range(64))


def uuid(rng: random.Random) -> str:
    """A random UUID."""
    h = hexhash(rng)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def amount(rng: random.Random) -> str:
    """Money as exports write it."""
    v = rng.randint(100, 99_999_999)
    return rng.choice([f"{v / 100:.2f}", f"${v / 100:,.2f}", f"{v / 100:,.2f}".replace(",", " ").replace(".", ","),
                       f"{v}"])


def zip_code(rng: random.Random) -> str:
    """Postal codes (ZIP+4 has the shape of a phone extension)."""
    return rng.choice([f"{rng.randint(10000, 99999)}", f"{rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}",
                       f"SW1A {rng.randint(1, 9)}AA", f"{rng.randint(1000, 9999)} AB"])


def product_code(rng: random.Random) -> str:
    """SKUs and part numbers."""
    return rng.choice([f"SKU-{rng.randint(10000, 99999)}-{rng.choice('ABCXYZ')}{rng.choice('KLMN')}",
                       f"AB-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
                       f"{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(100, 999)}"])


def isbn(rng: random.Random) -> str:
    """ISBN-13s, hyphenated or not."""
    body = "978" + _digits(rng, 9)
    total = sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(body))
    full = body + str((10 - total % 10) % 10)
    return f"{full[:3]}-{full[3]}-{full[4:6]}-{full[6:12]}-{full[12]}" if rng.random() < 0.5 else full


def mac(rng: random.Random) -> str:
    """A MAC address (colon-separated hex, not an IP)."""
    return ":".join(f"{rng.randint(0, 255):02X}" for _ in range(6))


# ---------------------------------------------------------------------------------------------------- free text


def note(rng: random.Random) -> tuple[str, frozenset[str]]:
    """A support note: sometimes with an email, phone, card, IBAN, IP, SSN or DNI inside, sometimes only decoys
    (order numbers after 'order', versions after 'version', times, invoice numbers)."""
    w = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
    style = rng.randrange(16)
    options: list[tuple[str, frozenset[str]]] = [
        (f"Customer called from {phone(rng)} about order #{order_number(rng)}", frozenset({d.PHONE})),
        (f"Please send the invoice to {email(rng)}.", frozenset({d.EMAIL})),
        (f"Refund issued to card {card(rng)}, {w}", frozenset({d.CREDIT_CARD})),
        (f"IBAN {iban(rng)} on file for payouts", frozenset({d.IBAN})),
        (f"Login from {ip(rng)} flagged by risk team", frozenset({d.IP_ADDRESS})),
        (f"Upgraded client to version {version(rng)} on {timestamp(rng)}", frozenset()),
        (f"Ticket {rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)} closed, order "
         f"{order_ref(rng)}", frozenset()),
        (f"Meeting at {rng.randint(8, 18)}:{rng.choice(['00', '15', '30', '45'])} in room {rng.randint(1, 9)}B",
         frozenset()),
        (f"Invoice {rng.randint(2019, 2025)}-{rng.randint(1, 99999):05d} paid in full", frozenset()),
        (f"SSN {ssn(rng)} verified, {w}", frozenset({d.US_SSN})),
        (f"Contact {rng.choice(FIRST)} at {email(rng)} or {phone(rng)}", frozenset({d.EMAIL, d.PHONE})),
        (f"Shipped {rng.randint(1, 9)} items, tracking 1Z{rng.randint(100, 999)}AA{_digits(rng, 10)}", frozenset()),
        (f"Numéro client {_digits(rng, 9)}, rappeler demain", frozenset()),
        (f"DNI {dni(rng)} presentado en tienda", frozenset({d.ES_DNI})),
        (f"{w.capitalize()}.", frozenset()),
        (f"Paid {amount(rng)} on {timestamp(rng)}, build {version(rng)}", frozenset()),
    ]
    return options[style]


def contact(rng: random.Random) -> tuple[str, frozenset[str]]:
    """A mixed column: an email or a phone number."""
    if rng.random() < 0.5:
        return email(rng), frozenset({d.EMAIL})
    return phone(rng), frozenset({d.PHONE})


def national_id(rng: random.Random) -> tuple[str, frozenset[str]]:
    """A mixed column of formatted national ids of several countries."""
    makers = [(nino, d.UK_NINO), (dni, d.ES_DNI), (codice_fiscale, d.IT_FISCAL_CODE), (hetu, d.FI_HETU),
              (personnummer, d.SE_PERSONNUMMER), (aadhaar, d.IN_AADHAAR), (ssn, d.US_SSN), (pesel, d.PL_PESEL)]
    make, entity = rng.choice(makers)
    return make(rng), frozenset({entity})


# ---------------------------------------------------------------------------------------------------- the table

Maker = Callable[[random.Random], str]
Mixed = Callable[[random.Random], tuple[str, frozenset[str]]]


def _name_maker(pool: list[str]) -> Maker:
    return lambda rng: rng.choice(pool)


COLUMNS: list[tuple[str, Maker | Mixed, str | None]] = [
    ("id", lambda rng: "", None),  # filled with the row number
    ("email", email, d.EMAIL),
    ("Phone", phone, d.PHONE),
    ("mobile_raw", bare_phone, d.PHONE),
    ("card_number", card, d.CREDIT_CARD),
    ("iban", iban, d.IBAN),
    ("ssn", ssn, d.US_SSN),
    ("ni_number", nino, d.UK_NINO),
    ("dni", dni, d.ES_DNI),
    ("bsn", bsn, d.NL_BSN),
    ("nir", nir, d.FR_NIR),
    ("codice_fiscale", codice_fiscale, d.IT_FISCAL_CODE),
    ("steuer_id", steuer_id, d.DE_TAX_ID),
    ("pesel", pesel, d.PL_PESEL),
    ("personnummer", personnummer, d.SE_PERSONNUMMER),
    ("hetu", hetu, d.FI_HETU),
    ("aadhaar", aadhaar, d.IN_AADHAAR),
    ("cpf", cpf, d.BR_CPF),
    ("national_id", national_id, "mixed"),
    ("ip_address", ip, d.IP_ADDRESS),
    ("first_name", _name_maker(FIRST), d.PERSON_NAME),
    ("last_name", _name_maker(LAST), d.PERSON_NAME),
    ("nombre", _name_maker(FIRST), d.PERSON_NAME),
    ("Nachname", _name_maker(LAST), d.PERSON_NAME),
    ("name", lambda rng: f"{rng.choice(FIRST)} {rng.choice(LAST)}", d.PERSON_NAME),
    ("date_of_birth", dob, d.DATE_OF_BIRTH),
    ("street_address", address, d.POSTAL_ADDRESS),
    ("notes", note, "mixed"),
    ("contact", contact, "mixed"),
    # decoys: none of these is personal data
    ("order_number", order_number, None),
    ("order_ref", order_ref, None),
    ("tracking_id", lambda rng: "", None),  # sequential Luhn-valid numbers with a Visa prefix, filled below
    ("created_at", timestamp, None),
    ("app_version", version, None),
    ("amount", amount, None),
    ("uuid", uuid, None),
    ("sha256", hexhash, None),
    ("product_code", product_code, None),
    ("zip", zip_code, None),
    ("isbn", isbn, None),
    ("customer_id", lambda rng: _digits(rng, 9, "123456789"), None),
    ("account_id", lambda rng: _digits(rng, 11, "123456789"), None),
    ("product_name", lambda rng: f"{rng.choice(['Wireless', 'Ergo', 'Smart', 'Ultra'])} "
                                 f"{rng.choice(['Mouse', 'Chair', 'Lamp', 'Kettle'])}", None),
    ("device_mac", mac, None),
    ("comentario", lambda rng: rng.choice(["El pedido llegó tarde", "Cliente satisfecho, versión 2.1.0.3",
                                           "Devolución aceptada el 05/10/2023", "Sin incidencias"]), None),
]
"""(header, maker, entity): entity None for decoys, 'mixed' when the maker returns (value, entities)."""

EMPTY_SHARE = 0.05


@dataclass
class LabeledTable:
    """A synthetic table and its truth: which entity types each cell holds."""

    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    labels: dict[tuple[int, str], frozenset[str]] = field(default_factory=dict)
    """(row, column) -> entity types, only for cells that hold any."""

    def column_values(self, name: str) -> list[str]:
        """One column's values, top to bottom."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def cell_labels(self, name: str) -> list[frozenset[str]]:
        """One column's truth, top to bottom."""
        return [self.labels.get((r, name), frozenset()) for r in range(len(self.rows))]

    def column_entities(self) -> dict[str, set[str]]:
        """Column -> every entity type any of its cells holds (the column-level truth)."""
        out: dict[str, set[str]] = {c: set() for c in self.columns}
        for (_, col), ents in self.labels.items():
            out[col] |= ents
        return out

    def write_csv(self, path: Path, delimiter: str = ",") -> Path:
        """Write the table as CSV (quoted where needed) with a header row."""
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter=delimiter)
            w.writerow(self.columns)
            w.writerows(self.rows)
        return path

    def write_jsonl(self, path: Path) -> Path:
        """Write the table as JSON lines, one object per row (empty cells left out)."""
        with path.open("w", encoding="utf-8") as f:
            for row in self.rows:
                f.write(json.dumps({k: v for k, v in zip(self.columns, row, strict=True) if v},
                                   ensure_ascii=False) + "\n")
        return path

    def write_parquet(self, path: Path, row_group_size: int = 50_000) -> Path:
        """Write the table as Parquet, every column a string column (needs pyarrow)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {c: [row[i] or None for row in self.rows] for i, c in enumerate(self.columns)}
        pq.write_table(pa.table(data), path, row_group_size=row_group_size)
        return path


def make_table(rows: int = 2_000, seed: int = 0, columns: list[str] | None = None) -> LabeledTable:
    """A labeled synthetic table of `rows` rows, the same for the same seed (optionally only some columns)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    chosen = [c for c in COLUMNS if columns is None or c[0] in columns]
    names = tuple(c[0] for c in chosen)
    table = LabeledTable(names, [])
    tracking = int(card_digits(rng, "4000", 16)[:-1])
    for r in range(rows):
        row: list[str] = []
        for name, make, entity in chosen:
            if name == "id":
                row.append(str(r + 1))
                continue
            if name == "tracking_id":
                tracking += rng.randint(1, 30)
                row.append(_with_check(str(tracking), d.luhn) or "")
                continue
            if entity is not None and rng.random() < EMPTY_SHARE:
                row.append(rng.choice(["", "", "N/A", "null"]))
                continue
            if entity == "mixed":
                value, ents = make(rng)  # type: ignore[misc]
            else:
                value = make(rng)  # type: ignore[assignment]
                ents = frozenset({entity}) if entity else frozenset()
            row.append(value)  # type: ignore[arg-type]
            if ents:
                table.labels[(r, name)] = ents
        table.rows.append(tuple(row))
    return table

"""The entities `scan pii` knows: one compiled pattern per shape, run over a whole column at once, and a validator
with the entity's real check rule (Luhn, mod-97, check letters, 11-proof, Verhoeff...) run only on the candidates.

A pattern match is a *candidate*; the validator turns it into a verdict of strength STRONG (the value proves itself:
a formatted card number that passes Luhn and has a real scheme prefix, an IBAN whose mod-97 is 1, an SSN written
`ddd-dd-dddd` outside the never-issued ranges), WEAK (a bare run of digits that passes a check but is just as
likely an order number: counted only when the column's header or the column as a whole says so, see classify.py)
or NONE (a candidate that failed its check: evidence that a column of look-alikes is *not* PII).
"""

from __future__ import annotations

import ipaddress
import operator
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress

# ---------------------------------------------------------------------------------------------------- entities

EMAIL = "email"
PHONE = "phone"
CREDIT_CARD = "credit_card"
IBAN = "iban"
US_SSN = "us_ssn"
UK_NINO = "uk_nino"
ES_DNI = "es_dni"
NL_BSN = "nl_bsn"
FR_NIR = "fr_nir"
IT_FISCAL_CODE = "it_fiscal_code"
DE_TAX_ID = "de_tax_id"
PL_PESEL = "pl_pesel"
SE_PERSONNUMMER = "se_personnummer"
FI_HETU = "fi_hetu"
IN_AADHAAR = "in_aadhaar"
BR_CPF = "br_cpf"
IP_ADDRESS = "ip_address"
PERSON_NAME = "person_name"
DATE_OF_BIRTH = "date_of_birth"
POSTAL_ADDRESS = "postal_address"

LABELS: dict[str, str] = {
    EMAIL: "email address",
    PHONE: "phone number",
    CREDIT_CARD: "payment card number",
    IBAN: "IBAN",
    US_SSN: "US social security number",
    UK_NINO: "UK national insurance number",
    ES_DNI: "Spanish DNI/NIE",
    NL_BSN: "Dutch BSN",
    FR_NIR: "French NIR (social security number)",
    IT_FISCAL_CODE: "Italian codice fiscale",
    DE_TAX_ID: "German tax id (Steuer-ID)",
    PL_PESEL: "Polish PESEL",
    SE_PERSONNUMMER: "Swedish personnummer",
    FI_HETU: "Finnish personal identity code (HETU)",
    IN_AADHAAR: "Indian Aadhaar number",
    BR_CPF: "Brazilian CPF",
    IP_ADDRESS: "IP address",
    PERSON_NAME: "person name",
    DATE_OF_BIRTH: "date of birth",
    POSTAL_ADDRESS: "postal address",
}
"""Every entity type, with the words a finding uses for it."""

NATIONAL_IDS: frozenset[str] = frozenset({US_SSN, UK_NINO, ES_DNI, NL_BSN, FR_NIR, IT_FISCAL_CODE, DE_TAX_ID, PL_PESEL,
                                          SE_PERSONNUMMER, FI_HETU, IN_AADHAAR, BR_CPF})
DIGIT_ENTITIES: frozenset[str] = NATIONAL_IDS | {CREDIT_CARD, PHONE, IP_ADDRESS}
"""Entities an id, a number, a timestamp or a version string can look like: headers such as `order_id` or
`version` veto them (classify.py), and words such as "order" or "version" right before an embedded one drop it."""
HEADER_ONLY: frozenset[str] = frozenset({PERSON_NAME, DATE_OF_BIRTH, POSTAL_ADDRESS})
"""Entities that no pattern can tell from other text: found only in columns whose header names them."""

STRONG = 2
WEAK = 1
NONE = 0

Verdicts = tuple[tuple[str, int], ...]

# ---------------------------------------------------------------------------------------------------- check rules


def luhn(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards, Swedish personnummer and others."""
    # Every second digit from the right is doubled (and 10-18 reduced to 1-9): a translation table does it in C.
    return (sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2].translate(_LUHN_DOUBLE)))) % 10 == 0


_LUHN_DOUBLE = str.maketrans("0123456789", "0246813579")


def card_scheme(digits: str) -> str | None:
    """The card scheme whose IIN range and length fit `digits` (only digits), or None. Prefixes that no scheme
    issues (7, 8, 9, most of 0, 1 and 3) are how order numbers that happen to pass Luhn are told apart."""
    if digits[0] in "0789":
        return None
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "1" or p4 == 2131:  # JCB's old 15-digit ranges
        return "jcb" if p4 in (1800, 2131) and n == 15 else None
    if digits[0] == "4":
        return "visa" if n in (13, 16, 19) else None
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return "mastercard" if n == 16 else None
    if p2 in (34, 37):
        return "amex" if n == 15 else None
    if 2200 <= p4 <= 2204:
        return "mir" if 16 <= n <= 19 else None
    if 3528 <= p4 <= 3589:
        return "jcb" if 16 <= n <= 19 else None
    if 300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39):
        return "diners" if 14 <= n <= 19 else None
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925:
        return "discover" if 16 <= n <= 19 else None
    if p2 == 62:
        return "unionpay" if 16 <= n <= 19 else None
    if p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763) or 56 <= p2 <= 58:
        return "maestro" if 13 <= n <= 19 else None
    if p2 == 60 or p3 == 508 or p4 in (6521, 6522):
        return "rupay" if n == 16 else None
    return None


IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
"""IBAN length per country (ISO 13616 registry)."""

_IBAN_DIGITS = {ord(c): str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def iban_valid(compact: str) -> bool:
    """An IBAN without separators, upper case: known country, its exact length, and mod-97 of the rearranged
    number equal to 1."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit() or not compact.isalnum():
        return False
    return int((compact[4:] + compact[:4]).translate(_IBAN_DIGITS)) % 97 == 1


def ssn_valid(digits: str) -> bool:
    """US SSN rules: area not 000, 666 or 900-999; group not 00; serial not 0000; not the numbers that were
    published as examples (078-05-1120, 219-09-9999) or one digit repeated, or 123-45-6789."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in ("078051120", "219099999", "123456789") and len(set(digits)) > 1


_NINO_BAD_FIRST = set("DFIQUV")
_NINO_BAD_SECOND = set("DFIOQUV")
_NINO_BAD_PREFIX = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def nino_valid(compact: str) -> bool:
    """UK National Insurance number `AB123456C`: prefix letters HMRC issues, six digits, suffix A-D."""
    if len(compact) != 9 or not compact[2:8].isdigit() or compact[8] not in "ABCD":
        return False
    a, b = compact[0], compact[1]
    return (a.isalpha() and b.isalpha() and a not in _NINO_BAD_FIRST and b not in _NINO_BAD_SECOND
            and compact[:2] not in _NINO_BAD_PREFIX)


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_valid(compact: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): the letter is the number mod 23."""
    if len(compact) != 9:
        return False
    head = compact[:8]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    return head.isdigit() and _DNI_LETTERS[int(head) % 23] == compact[8]


def bsn_valid(digits: str) -> bool:
    """Dutch BSN, 9 digits, the 11-proof: 9*d1 + 8*d2 + ... + 2*d8 - d9 is a multiple of 11 (and not 0)."""
    if len(digits) != 9 or digits == "000000000":
        return False
    return (sum(map(operator.mul, (9, 8, 7, 6, 5, 4, 3, 2), map(int, digits[:8]))) - int(digits[8])) % 11 == 0


def nir_valid(compact: str) -> bool:
    """French NIR (numéro de sécurité sociale), 13 characters and a 2-digit key = 97 - (number mod 97); Corsican
    departments 2A/2B count as 19/18. Sex digit 1, 2 (or 3, 4, 7, 8 for temporary numbers); month 01-12, 20 or
    30-42/50-99 (unknown month conventions)."""
    if len(compact) != 15 or compact[0] not in "123478":
        return False
    month = compact[3:5]
    if not month.isdigit() or not (1 <= int(month) <= 12 or int(month) == 20 or 30 <= int(month) <= 42
                                   or 50 <= int(month) <= 99):
        return False
    body = compact[:13]
    if body[5:7] == "2A":
        number = int(body[:5] + "19" + body[7:]) - 1_000_000
    elif body[5:7] == "2B":
        number = int(body[:5] + "18" + body[7:]) - 2_000_000
    elif body.isdigit():
        number = int(body)
    else:
        return False
    return compact[13:].isdigit() and 97 - number % 97 == int(compact[13:])


_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                   (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8,
                    12, 14, 16, 10, 22, 25, 24, 23), strict=True))
_CF_EVEN = {c: (int(c) if c.isdigit() else ord(c) - 65) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_CF_MONTHS = set("ABCDEHLMPRST")
_CF_OMOCODIA = dict(zip("LMNPQRSTUV", "0123456789", strict=True))


def codice_fiscale_valid(code: str) -> bool:
    """Italian codice fiscale: 6 letters, year, month letter, day (+40 for women), place, check letter from the
    odd/even tables. Digits replaced by letters (omocodia) are accepted."""
    if len(code) != 16 or not code[:6].isalpha() or code[8] not in _CF_MONTHS:
        return False
    day = "".join(_CF_OMOCODIA.get(c, c) for c in code[9:11])
    if not day.isdigit() or not (1 <= int(day) <= 31 or 41 <= int(day) <= 71):
        return False
    total = sum(_CF_ODD[c] if i % 2 == 0 else _CF_EVEN[c] for i, c in enumerate(code[:15]))
    return chr(65 + total % 26) == code[15]


def steuer_id_valid(digits: str) -> bool:
    """German Steuerliche Identifikationsnummer: 11 digits, no leading 0; in the first ten exactly one digit occurs
    two or three times (not three in a row) and the others at most once; check digit by ISO 7064 MOD 11,10."""
    if len(digits) != 11 or digits[0] == "0" or len(set(digits[:10])) not in (8, 9):
        return False
    counts = Counter(digits[:10])
    repeated = [d for d, n in counts.items() if n > 1]
    if len(repeated) != 1 or counts[repeated[0]] > 3:
        return False
    if counts[repeated[0]] == 3 and repeated[0] * 3 in digits[:10]:
        return False
    product = 10
    for ch in digits[:10]:
        s = (ord(ch) - 48 + product) % 10 or 10
        product = (s * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == ord(digits[10]) - 48


def _valid_date(year: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= (29 if leap else 28)
    return day <= (30 if month in (4, 6, 9, 11) else 31)


_PESEL_WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)


def pesel_valid(digits: str) -> bool:
    """Polish PESEL: birth date YYMMDD (the month carries the century: +80 1800s, +20 2000s, +40 2100s, +60
    2200s), serial, and the weighted check digit (weights 1,3,7,9...)."""
    if len(digits) != 11 or not 1 <= int(digits[2:4]) % 20 <= 12:
        return False
    total = sum(map(operator.mul, _PESEL_WEIGHTS, map(int, digits)))
    if (10 - total % 10) % 10 != ord(digits[10]) - 48:
        return False
    yy, mm, dd = int(digits[:2]), int(digits[2:4]), int(digits[4:6])
    century = {0: 1900, 1: 1900, 2: 2000, 3: 2000, 4: 2100, 5: 2100, 6: 2200, 7: 2200, 8: 1800, 9: 1800}[mm // 10]
    return _valid_date(century + yy, mm - (mm // 20) * 20, dd)


def personnummer_valid(digits: str) -> bool:
    """Swedish personnummer YYMMDDNNNC or YYYYMMDDNNNC: a real date (day + 60 for coordination numbers) and Luhn
    over the ten digits YYMMDDNNNC."""
    if len(digits) == 12:
        if digits[:2] not in ("18", "19", "20"):
            return False
        year = int(digits[:4])
        digits = digits[2:]
    elif len(digits) == 10:
        year = 2000 + int(digits[:2])  # any century: only the day/month validity matters here
    else:
        return False
    month, day = int(digits[2:4]), int(digits[4:6])
    if day > 60:
        day -= 60
    return _valid_date(year, month, day) and luhn(digits)


_HETU_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"
_HETU_CENTURY = {"+": 1800, "-": 1900, "Y": 1900, "X": 1900, "W": 1900, "V": 1900, "U": 1900,
                 "A": 2000, "B": 2000, "C": 2000, "D": 2000, "E": 2000, "F": 2000}


def hetu_valid(code: str) -> bool:
    """Finnish henkilötunnus DDMMYYCZZZQ: a real date, century sign (+, -, A-F and since 2023 U-Y), individual
    number 002-999, and the check character (DDMMYYZZZ mod 31)."""
    if len(code) != 11 or code[6] not in _HETU_CENTURY or not (code[:6] + code[7:10]).isdigit():
        return False
    if not _valid_date(_HETU_CENTURY[code[6]] + int(code[4:6]), int(code[2:4]), int(code[:2])):
        return False
    if int(code[7:10]) < 2:  # 002-899 are issued, 900-999 are temporary numbers (personal data too)
        return False
    return _HETU_CHECK[int(code[:6] + code[7:10]) % 31] == code[10]


_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


# D(c, P(position mod 8, digit)) as one table per position: one lookup per digit.
_VERHOEFF_DP = tuple(tuple(tuple(_VERHOEFF_D[c][_VERHOEFF_P[k][x]] for x in range(10)) for c in range(10))
                     for k in range(8))
_VERHOEFF_STEPS = tuple(_VERHOEFF_DP[i % 8] for i in range(64))


def verhoeff(digits: str) -> bool:
    """The Verhoeff check (dihedral group D5), used by Aadhaar."""
    c = 0
    for step, digit in zip(_VERHOEFF_STEPS, map(int, reversed(digits)), strict=False):
        c = step[c][digit]
    return c == 0


def aadhaar_valid(digits: str) -> bool:
    """Indian Aadhaar: 12 digits, first digit 2-9, Verhoeff check digit, not a palindrome-like repeat."""
    return len(digits) == 12 and digits[0] not in "01" and len(set(digits)) > 2 and verhoeff(digits)


def cpf_valid(digits: str) -> bool:
    """Brazilian CPF: 11 digits, two check digits mod 11 (weights 10..2 then 11..2); one digit repeated is
    invalid."""
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    nums = list(map(int, digits))
    for k, weights in ((9, _CPF_W1), (10, _CPF_W2)):
        if sum(map(operator.mul, weights, nums)) * 10 % 11 % 10 != nums[k]:
            return False
    return True


_CPF_W1 = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_CPF_W2 = (11, 10, 9, 8, 7, 6, 5, 4, 3, 2)


# ---------------------------------------------------------------------------------------------------- phone rules


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Assigned ITU-T E.164 country calling codes (1- and 7- are zones; the rest two or three digits).
_CC2 = _words("20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63 64 65 "
                 "66 81 82 84 86 90 91 92 93 94 95 98")
_CC3_RANGES = ((211, 212), (213, 213), (216, 216), (218, 218), (220, 258), (260, 269), (290, 291), (297, 299),
               (350, 359), (370, 389), (420, 421), (423, 423), (500, 509), (590, 599), (670, 670), (672, 692),
               (850, 850), (852, 853), (855, 856), (870, 870), (880, 880), (886, 886), (960, 968), (970, 977),
               (992, 996), (998, 998))
_CC3 = frozenset(str(n) for lo, hi in _CC3_RANGES for n in range(lo, hi + 1))


def _country_code(digits: str) -> str | None:
    if digits[:1] in ("1", "7"):
        return digits[:1]
    if digits[:2] in _CC2:
        return digits[:2]
    if digits[:3] in _CC3:
        return digits[:3]
    return None


_PHONE_EXT = re.compile(r"\s*(?:x|ext\.?|extension|#)\s*\d{1,6}$", re.IGNORECASE)
_PHONE_SEP = re.compile(r"[ ./()\-]+")
_DATE = (r"(?:(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
         r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:\d\d)?\d\d"
         r"|(?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:\d\d)?\d\d)")
_NOT_PHONE = re.compile(
    r"^" + _DATE + r"$"  # a date
    r"|^(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])(?!\d)"  # a timestamp's date
    r"|(?<!\d)(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)\d\d$"
    r"|^(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)\d\d(?!\d)"
    r"|^\d{1,3}(?:\.\d{1,3}){3}$"  # an IPv4 address
    r"|^\d+[.,]\d+$"  # a decimal number
)
_PHONE_PUNCT = str.maketrans("", "", " ()./-+")
_SEPARATORS_ONLY = str.maketrans("", "", "0123456789")


def phone_verdict(text: str) -> int:
    """STRONG for international numbers (+ or 00, a real country code, 8-15 digits) and national numbers in a
    shape phones have (NANP 3-3-4, a trunk 0 and digit groups, 9-digit mobiles); WEAK for bare digit strings and
    other plausible groupings (a phone column's header makes them count); NONE for dates, times, IPs, decimals,
    SSN- and personnummer-shaped groups."""
    if "x" in text or "X" in text or "#" in text:
        text = _PHONE_EXT.sub("", text)
    core = text.replace("(0)", " ").strip() if "(0)" in text else text
    if core.isdigit():
        return WEAK if 7 <= len(core) <= 15 else NONE
    digits = core.translate(_PHONE_PUNCT)
    n = len(digits)
    if n < 7 or n > 15 or core.count("(") != core.count(")"):
        return NONE
    if _NOT_PHONE.search(core):
        return NONE
    if core[0] == "+" or (core.startswith("00") and core[2:3] != "0"):
        national = digits if core[0] == "+" else digits[2:]
        cc = _country_code(national)
        if cc is None or not 8 <= len(national) <= 15 or (cc == "1" and len(national) != 11):
            return NONE
        return STRONG
    groups = [g for g in _PHONE_SEP.split(core) if g]
    if not all(g.isdigit() for g in groups):
        return NONE
    sizes = [len(g) for g in groups]
    if sizes in ([3, 2, 4], [6, 4], [8, 4], [5, 4]):  # SSN, personnummer, ZIP+4
        return NONE
    nanp = digits[1:] if n == 11 and digits[0] == "1" else digits
    if len(nanp) == 10 and sizes[-3:] == [3, 3, 4] and ("(" in core or len(set(core.translate(_SEPARATORS_ONLY)))
                                                        == 1):
        return STRONG  # 3-3-4 with an (area) code or one kind of separator: how North American numbers are written
    if digits[0] == "0" and digits[1] != "0" and 9 <= n <= 12 and len(groups) >= 2 and min(sizes) >= 2:
        return STRONG
    if n == 9 and digits[0] in "6789" and sizes in ([3, 3, 3], [3, 2, 2, 2]):
        return STRONG
    if n == 10 and digits[0] == "3" and sizes in ([3, 3, 4], [3, 7]):
        return STRONG
    return WEAK if len(groups) <= 6 else NONE


# ---------------------------------------------------------------------------------------------------- judges
# A judge maps the text of one match to verdicts. Where one shape fits several entities (a bare 11-digit number:
# PESEL, Steuer-ID, CPF, a phone) the judge returns a verdict for each.


def _email(text: str) -> Verdicts:
    local, _, domain = text.rpartition("@")
    tld = domain.rsplit(".", 1)[-1].lower()
    if ".." in local or local.startswith(".") or len(text) > 254 or tld in _FILE_TLDS:
        return ((EMAIL, NONE),)
    return ((EMAIL, STRONG),)


_FILE_TLDS = _words("png jpg jpeg gif svg webp bmp ico tif tiff css js ts py json csv txt pdf html htm xml yaml "
                    "yml md map woff woff2 ttf")
_SEPARATORS = str.maketrans("", "", " -.")


def _phone(text: str) -> Verdicts:
    return ((PHONE, phone_verdict(text)),)


def _card_verdict(text: str, digits: str) -> int:
    if len(digits) != len(text):
        seps = {c for c in text if not c.isdigit()}
        groups = [len(g) for g in re.split(r"[ \-]", text)]
        shaped = len(seps) == 1 and (
            (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4)
            or groups in ([4, 6, 5], [4, 6, 4], [6, 13], [6, 12]))
        if not shaped:
            return NONE
    return STRONG if card_scheme(digits) is not None and luhn(digits) else NONE


def _card(text: str) -> Verdicts:
    """13-19 digits, bare or grouped: a card (Luhn, scheme prefix, a card's grouping), a phone, or a bare NIR."""
    digits = text.translate(_SEPARATORS)
    out: list[tuple[str, int]] = [(CREDIT_CARD, _card_verdict(text, digits))]
    if len(digits) <= 15:
        out.append((PHONE, WEAK if digits == text else phone_verdict(text)))
    if len(digits) == 15 and digits == text:
        out.append((FR_NIR, STRONG if nir_valid(digits) else NONE))
    return tuple(out)


def _iban(text: str) -> Verdicts:
    tokens = re.split(r"[ \-]", text.upper())
    want = IBAN_LENGTHS.get(tokens[0][:2])
    if want is None:
        return ()
    compact = "".join(tokens)
    while len(compact) > want and len(tokens) > 1:  # a grouped IBAN may have run into a following upper-case word
        tokens.pop()
        compact = "".join(tokens)
    return ((IBAN, STRONG if iban_valid(compact) else NONE),)


def _ssn(text: str) -> Verdicts:
    return ((US_SSN, STRONG if ssn_valid(text[:3] + text[4:6] + text[7:]) else NONE),)


def _nino(text: str) -> Verdicts:
    return ((UK_NINO, STRONG if nino_valid(text.replace(" ", "").upper()) else NONE),)


def _dni(text: str) -> Verdicts:
    return ((ES_DNI, STRONG if dni_valid(text.replace(" ", "").replace("-", "").upper()) else NONE),)


def _nir(text: str) -> Verdicts:
    compact = text.replace(" ", "").upper()
    out: list[tuple[str, int]] = [(FR_NIR, STRONG if nir_valid(compact) else NONE)]
    if compact.isdigit():
        out.append((CREDIT_CARD, _card_verdict(text, compact)))
        out.append((PHONE, phone_verdict(text)))
    return tuple(out)


def _cf(text: str) -> Verdicts:
    return ((IT_FISCAL_CODE, STRONG if codice_fiscale_valid(text.upper()) else NONE),)


def _steuer(text: str) -> Verdicts:
    return ((DE_TAX_ID, STRONG if steuer_id_valid(text.replace(" ", "")) else NONE),)


def _pnr(text: str) -> Verdicts:
    return ((SE_PERSONNUMMER, STRONG if personnummer_valid(text[:-5] + text[-4:]) else NONE),)


def _hetu(text: str) -> Verdicts:
    hetu = (FI_HETU, STRONG if hetu_valid(text.upper()) else NONE)
    if text[6] in "-+" and text[10].isdigit():  # also the shape of a personnummer YYMMDD-NNNC
        return (hetu, (SE_PERSONNUMMER, STRONG if personnummer_valid(text[:6] + text[7:]) else NONE))
    return (hetu,)


def _aadhaar(text: str) -> Verdicts:
    return ((IN_AADHAAR, STRONG if aadhaar_valid(text[:4] + text[5:9] + text[10:]) else NONE),)


def _cpf(text: str) -> Verdicts:
    return ((BR_CPF, STRONG if cpf_valid(text.replace(".", "").replace("-", "")) else NONE),)


def _bsn(text: str) -> Verdicts:
    return ((NL_BSN, STRONG if bsn_valid(text.replace(".", "")) else NONE),)


def _bare(text: str) -> Verdicts:
    """A bare run of 7-12 digits: each national id of that length it passes is a WEAK verdict (an order number
    passes a check digit as often as 1 in 10), and so is a phone; classify.py decides from the header and the
    column."""
    n = len(text)
    if n == 9:
        return ((US_SSN, WEAK if ssn_valid(text) else NONE), (NL_BSN, WEAK if bsn_valid(text) else NONE),
                (PHONE, WEAK))
    if n == 10:
        return ((SE_PERSONNUMMER, WEAK if personnummer_valid(text) else NONE), (PHONE, WEAK))
    if n == 11:
        return ((PL_PESEL, WEAK if pesel_valid(text) else NONE), (DE_TAX_ID, WEAK if steuer_id_valid(text) else NONE),
                (BR_CPF, WEAK if cpf_valid(text) else NONE), (PHONE, WEAK))
    if n == 12:
        return ((IN_AADHAAR, WEAK if aadhaar_valid(text) else NONE),
                (SE_PERSONNUMMER, WEAK if personnummer_valid(text) else NONE), (PHONE, WEAK))
    return ((PHONE, WEAK),)


def _ipv4(text: str) -> Verdicts:
    octets = text.split(".")
    if any(len(o) > 1 and o[0] == "0" for o in octets):
        return ((IP_ADDRESS, NONE),)  # leading zeros: not how addresses are written (ipaddress rejects them too)
    a, b, c, d = map(int, octets)
    if max(a, b, c, d) > 255 or a in (0, 127) or a >= 224:
        return ((IP_ADDRESS, NONE),)  # not an address, or this-network, loopback, multicast, reserved, broadcast
    if a <= 9 and max(b, c, d) <= 30:
        return ((IP_ADDRESS, WEAK),)  # 1.2.3.4, 4.2.0.1: as likely a version number (or a public resolver)
    return ((IP_ADDRESS, STRONG),)


def _ipv6(text: str) -> Verdicts:
    if text.count(":") < 2 or (not any(c.isalpha() for c in text) and "::" not in text):
        return ()  # times (12:30:05) are not even candidates
    return ((IP_ADDRESS, STRONG if _ip_counts(text) else NONE),)


def _ip_counts(text: str) -> bool:
    """Public and private addresses count (an address on a customer's network identifies a device, and GDPR treats
    IPs as personal data); loopback, unspecified, multicast and reserved ones (incl. broadcast) do not."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_reserved)


# ---------------------------------------------------------------------------------------------------- the pattern

_END = r"(?![\w@])(?![ .,/:\-]\d)"  # not glued to a word, nor the first part of a longer number
_EXT = r"(?:[ ]*(?:x|ext\.?|extension|#)[ ]*\d{1,6})?"
_V6_REST = r"(?:[0-9A-Fa-f]{0,4}:){1,6}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w@:]|\.\d)"

EMAIL_PATTERN = re.compile(
    r"(?<![\w.%+'/\-])[\w%+'\-](?:[\w.%+'\-]{0,62}[\w%+'\-])?@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+"
    r"(?:[^\W\d_]{2,24}|xn--[a-z0-9\-]{1,59})(?![\w\-]|\.[^\W\d_]|:[\w/])")
"""Emails: run as their own pass, only over blocks that contain an '@'."""

PATTERN = re.compile(
    # Letter-led shapes, at the start of a word.
    r"[A-Za-z](?<![\w@][A-Za-z])(?:"
    r"(?P<iban>[A-Za-z]\d\d(?:[A-Za-z0-9]{11,30}|(?:[ \-][A-Z0-9]{4}){2,7}(?:[ \-][A-Z0-9]{1,4})?)(?![\w@]))"
    r"|(?P<nino>[A-Za-z] ?\d\d ?\d\d ?\d\d ?[A-Da-d](?![\w@]))"
    r"|(?P<cf>[A-Za-z]{5}[\dLMNP-Vlmnp-v]{2}[A-EHLMPR-Ta-ehlmpr-t][\dLMNP-Vlmnp-v]{2}[A-Za-z]"
    r"[\dLMNP-Vlmnp-v]{3}[A-Za-z](?![\w@]))"
    r"|(?<=[XYZxyz])(?P<nie>[ \-]?\d{7}[ \-]?[A-Za-z](?![\w@]))"
    r"|(?<=[A-Fa-f])(?P<ipv6a>[0-9A-Fa-f]{0,3}:" + _V6_REST + r"))"
    # International and parenthesised phone numbers (tel:+1... included).
    # (Each top-level alternative starts with a character class and checks what precedes it afterwards, so the
    # regex engine skips positions whose first character cannot start it.)
    r"|[+(](?<![\w@+][+(])(?P<phone_intl>(?:(?<=\+) ?(?:\(\d{1,4}\)|\d)|(?<=\()\d{1,5}\))[\d ()./\-]{4,24}\d"
    + _EXT + r"(?!\w)(?![.,/:\-]\d))"
    # IPv6 starting with '::'.
    r"|:(?<![\w@:.]:)(?P<ipv6c>:(?:[0-9A-Fa-f]{1,4}:){0,6}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w@:]|\.\d))"
    # Digit-led shapes, not glued to a word or a '+', nor the continuation of another number. The order matters: a
    # match consumes its text, so specific shapes come before general ones (the judges of the general ones check
    # the specific entities their shape may also be).
    r"|\d(?<![\w@+]\d)(?<!\d[ .,/:\-]\d)(?:"
    r"(?P<hetu>\d{5}[\-+A-FU-Ya-fu-y]\d{3}[0-9A-Ya-y](?![\w@]))"
    r"|(?P<dni>\d{7}[ \-]?[A-Za-z](?![\w@]))"
    r"|(?P<ipv6d>[0-9A-Fa-f]{0,3}:" + _V6_REST + r")"
    r"|(?P<ipv4>\d{0,2}(?:\.\d{1,3}){3}(?![\w@]|\.\d))"
    r"|(?<=[1-478])(?P<nir> ?\d\d ?\d\d ?(?:\d\d|2[ABab]) ?\d{3} ?\d{3} ?\d\d" + _END + r")"
    r"|(?P<ssn>\d\d(?P<ssn_sep>[\- ])\d\d(?P=ssn_sep)\d{4}" + _END + r")"
    r"|(?P<pnr>(?:\d\d)?\d{5}[\-+]\d{4}" + _END + r")"
    r"|(?<=[2-9])(?P<aadhaar>\d{3}(?P<aadhaar_sep>[ \-])\d{4}(?P=aadhaar_sep)\d{4}" + _END + r")"
    r"|(?P<steuer>\d \d{3} \d{3} \d{3}" + _END + r")"
    r"|(?P<cpf>\d\d\.\d{3}\.\d{3}-\d\d" + _END + r")"
    r"|(?P<bsn>\d{3}\.\d\d\.\d{3}" + _END + r")"
    r"|(?P<card>(?:[ \-]?\d){12,18}" + _END + r")"
    r"|(?P<bare>\d{6,11}" + _END + r")"
    r"|(?P<phone>[\d ()./\-]{4,24}\d" + _EXT + r"(?!\w)(?![.,/:\-]\d))"
    r")"
)
"""Every other shape in one alternation, so a block is scanned once: each alternative is a named group whose judge
validates what it matched."""

JUDGES: dict[str, Callable[[str], Verdicts]] = {
    "iban": _iban, "nino": _nino, "cf": _cf, "nie": _dni, "ipv6a": _ipv6, "phone_intl": _phone, "ipv6c": _ipv6,
    "hetu": _hetu, "dni": _dni, "ipv6d": _ipv6, "ipv4": _ipv4, "nir": _nir, "ssn": _ssn, "pnr": _pnr,
    "aadhaar": _aadhaar, "steuer": _steuer, "cpf": _cpf, "bsn": _bsn, "card": _card, "bare": _bare, "phone": _phone,
}
_NO_CONTEXT = frozenset({"iban", "nino", "cf", "nie"})
"""Shapes so specific that a word such as 'order' before them does not make them an order number."""

_NEG_CONTEXT = re.compile(
    r"(?:order|invoice|inv|tracking|track|ref|reference|ticket|case|confirmation|booking|transaction|txn|sku|item|"
    r"part|serial|s/n|version|ver|build|release|firmware|po|bestellung|pedido|commande|auftrag|factura|rechnung|"
    r"facture|ordine|fattura|versi[oó]ne?)\W{0,3}(?:no|nr|num|number|n°|nº|id|code|#)?\.?\W{0,3}$",
    re.IGNORECASE,
)

# ---------------------------------------------------------------------------------------------------- a column block

WHOLE_STRONG = 3
WHOLE_WEAK = 2
EMBEDDED = 1


@dataclass
class BlockHits:
    """What the patterns found in one block of a column's values (one value per row)."""

    rows: int
    strong: dict[str, dict[int, int]] = field(default_factory=dict)
    """entity -> {row: WHOLE_STRONG or EMBEDDED}: validated matches, the whole cell or inside text."""
    weak: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """row -> entities a whole-cell bare value passed only weakly (rows with a strong verdict are left out)."""
    candidates: Counter[str] = field(default_factory=Counter)
    """entity -> rows whose whole cell was a candidate (valid or not): the denominator that exposes a column of
    look-alikes (order numbers of which 1 in 10 pass Luhn)."""
    dropped_by_context: Counter[str] = field(default_factory=Counter)
    """entity -> embedded matches dropped because 'order', 'version'... came right before."""
    card_numbers: list[int] = field(default_factory=list)
    """Whole-cell card numbers that validated (for the sequential-numbering check), at most 4,096."""
    shapes: dict[str, str] = field(default_factory=dict)
    """entity -> masked shape of the first hit (no value: digits become #, letters x)."""


def block_of(values: Sequence[str]) -> str:
    """The values joined by newlines, the unit the patterns run over (values must not contain newlines)."""
    return "\n".join(values)


def scan_block(values: Sequence[str], prefer: frozenset[str] = frozenset()) -> BlockHits:
    """Run the patterns over the block of `values` (stripped, without newlines; empty strings for empty cells) and
    return per-row verdicts. The block is scanned once (twice when it holds an '@'); validators run per match.

    `prefer`: entities the column's header names. A value that fits one of them (even weakly: a bare number under
    `phone`) is not also counted as another digit entity it happens to validate as (a phone that passes Luhn)."""
    hits = BlockHits(rows=len(values))
    # Cells that are nothing but up to 19 ASCII digits (ids, card and phone numbers stored bare: most of a typical
    # table's matches) go straight to the vectorised checks; the pattern then scans the block without them.
    deferred: dict[int, tuple[list[int], list[str]]] = {}
    digit_rows = list(compress(range(len(values)), map(str.isdigit, values)))
    if digit_rows:
        values = list(values)
        for row in digit_rows:
            value = values[row]
            if len(value) <= 19 and value.isascii():
                if len(value) >= 7:
                    group = deferred.get(len(value))
                    if group is None:
                        group = deferred[len(value)] = ([], [])
                    group[0].append(row)
                    group[1].append(value)
                values[row] = ""
    text = block_of(values)
    lengths = list(map(len, values))
    starts = [0, *accumulate(n + 1 for n in lengths)]
    weak: dict[int, set[str]] = {}
    strong_rows: set[int] = set()
    claimed: dict[int, list[tuple[int, int]]] = {}
    strong = hits.strong
    candidates: dict[str, int] = {}
    neg = _NEG_CONTEXT.search
    shapes = hits.shapes
    cards = hits.card_numbers

    def record(kind: str, found: str, begin: int, verdicts: Verdicts, row: int, whole: bool) -> None:
        # A whole cell is one match, so it is counted once per entity as a candidate (valid or not).
        for entity, strength in verdicts:
            if whole:
                candidates[entity] = candidates.get(entity, 0) + 1
                if strength == STRONG:
                    per = strong.get(entity)
                    if per is None:
                        per = strong[entity] = {}
                    per[row] = WHOLE_STRONG
                    strong_rows.add(row)
                    if entity == CREDIT_CARD and len(cards) < 4096:
                        cards.append(int(found.translate(_SEPARATORS)))
                elif strength == WEAK:
                    weak.setdefault(row, set()).add(entity)
                else:
                    continue
            elif strength == STRONG:
                if kind not in _NO_CONTEXT and neg(text, max(starts[row], begin - 40), begin):
                    hits.dropped_by_context[entity] += 1
                    continue
                strong.setdefault(entity, {}).setdefault(row, EMBEDDED)
            else:
                continue
            if entity not in shapes:
                shapes[entity] = mask(found, entity)

    if "@" in text:
        for m in EMAIL_PATTERN.finditer(text):
            begin, end = m.span()
            row = bisect_right(starts, begin) - 1
            found = m.group()
            verdicts = _email(found)
            if verdicts[0][1] == STRONG:
                claimed.setdefault(row, []).append((begin, end))  # digits inside an email are not a phone
            record("email", found, begin, verdicts, row, begin == starts[row] and end == starts[row] + lengths[row])
    judges = JUDGES
    for m in PATTERN.finditer(text):
        found = m.group()
        if not found.isascii():
            continue  # digits of other scripts: no check rule here is defined for them
        begin, end = m.span()
        row = bisect_right(starts, begin) - 1
        if claimed and row in claimed and any(b < end and begin < e for b, e in claimed[row]):
            continue
        kind = m.lastgroup or ""
        whole = begin == starts[row] and end == starts[row] + lengths[row]
        verdicts = judges[kind](found)
        if not verdicts:
            continue
        if prefer and len(verdicts) > 1:
            verdicts = _preferred(verdicts, prefer)
        if whole and len(verdicts) == 1 and verdicts[0][1] == NONE:  # the common look-alike: only a candidate
            entity = verdicts[0][0]
            candidates[entity] = candidates.get(entity, 0) + 1
            continue
        record(kind, found, begin, verdicts, row, whole)
    if deferred:
        _record_bare(deferred, candidates, strong, strong_rows, weak, hits, prefer)
    hits.candidates.update(candidates)
    hits.weak = {row: tuple(sorted(ents)) for row, ents in weak.items() if row not in strong_rows}
    _one_strong_per_cell(hits, strong_rows)
    return hits


_MIN_VECTOR = 64
"""Fewer bare numbers of one length than this are checked one by one (numpy has a fixed cost per call)."""


def _preferred(verdicts: Verdicts, prefer: frozenset[str]) -> Verdicts:
    """Drop a strong verdict for a digit entity the header does not name when the value fits one it names."""
    if not any(e in prefer and s != NONE for e, s in verdicts):
        return verdicts
    return tuple((e, NONE if s == STRONG and e not in prefer and e in DIGIT_ENTITIES else s) for e, s in verdicts)


def _record_bare(deferred: dict[int, tuple[list[int], list[str]]], candidates: dict[str, int],
                 strong: dict[str, dict[int, int]], strong_rows: set[int], weak: dict[int, set[str]],
                 hits: BlockHits, prefer: frozenset[str]) -> None:
    """Verdicts for the whole cells that are bare digits, many at a time (digits.py), recorded as scan_block does."""
    from mlfort.scan.pii import digits

    for n, (rows, found) in deferred.items():
        if len(rows) >= _MIN_VECTOR:
            per_entity = {e: a.tolist() for e, a in digits.verdicts(found, n).items()}
        else:
            per_entity = {}
            for i, value in enumerate(found):
                for entity, strength in (_bare(value) if n <= 12 else _card(value)):
                    per_entity.setdefault(entity, [NONE] * len(found))[i] = strength
        named = [per_entity[e] for e in prefer if e in per_entity]
        if named:
            fits = [any(col[i] for col in named) for i in range(len(found))]
            for entity, strengths in per_entity.items():
                if entity not in prefer:
                    per_entity[entity] = [NONE if s == STRONG and fits[i] else s for i, s in enumerate(strengths)]
        for entity, strengths in per_entity.items():
            candidates[entity] = candidates.get(entity, 0) + len(rows)
            for i, strength in enumerate(strengths):
                if not strength:
                    continue
                row = rows[i]
                if strength == STRONG:
                    strong.setdefault(entity, {})[row] = WHOLE_STRONG
                    strong_rows.add(row)
                    if entity == CREDIT_CARD and len(hits.card_numbers) < 4096:
                        hits.card_numbers.append(int(found[i]))
                else:
                    weak.setdefault(row, set()).add(entity)
                if entity not in hits.shapes:
                    hits.shapes[entity] = mask(found[i], entity)


PREFERENCE: tuple[str, ...] = (EMAIL, IBAN, CREDIT_CARD, FI_HETU, IT_FISCAL_CODE, UK_NINO, ES_DNI, FR_NIR, BR_CPF,
                               NL_BSN, US_SSN, DE_TAX_ID, IN_AADHAAR, PL_PESEL, SE_PERSONNUMMER, IP_ADDRESS, PHONE)
"""When one whole cell validates as two entities (a date-like personnummer that is also a valid HETU), the one
the column holds most of wins, then the one whose check is less likely to pass by chance: a cell is one thing."""


def _one_strong_per_cell(hits: BlockHits, rows: set[int]) -> None:
    if len(hits.strong) < 2:
        return
    for row in rows:
        holders = [e for e, per in hits.strong.items() if per.get(row) == WHOLE_STRONG]
        if len(holders) > 1:
            keep = min(holders, key=lambda e: (-len(hits.strong[e]), PREFERENCE.index(e)))
            for e in holders:
                if e != keep:
                    del hits.strong[e][row]


_SHAPE = str.maketrans("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                       "##########" + "x" * 26 + "X" * 26)


def mask(value: str, entity: str) -> str:
    """A shape that shows the format and never the value: `***@***.com` for an email, `####-####-####-####` for
    a card, `XX## #### ...` for an IBAN. Non-ASCII letters are masked too."""
    if entity == EMAIL:
        return "***@***." + value.rsplit(".", 1)[-1][:24].lower()
    out = value[:40].translate(_SHAPE)
    return "".join("x" if c.isalpha() and c not in "xX" else c for c in out)

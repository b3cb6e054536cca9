"""The PII detectors one by one: each entity's check rule against published valid and invalid numbers, the
formats people write them in, the look-alikes users report as false positives, masks that never show a value, and
hostile input that must never crash."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlfort.scan.pii import detectors as d
from mlfort.scan.pii import synth
from mlfort.scan.pii.classify import detect_cells, header_tokens, hints_for


def labels(values: list[str], header: str = "value") -> list[set[str]]:
    return detect_cells(values, header)


# ---------------------------------------------------------------------------------------------------- check rules


@pytest.mark.parametrize(("check", "valid", "invalid"), [
    (d.luhn, ["4111111111111111", "79927398713", "378282246310005"], ["4111111111111112", "79927398710"]),
    (d.iban_valid, ["GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606",
                    "NL91ABNA0417164300", "CH9300762011623852957"],
     ["GB82WEST12345698765433", "DE8937040044053201300", "XX89370400440532013000", "NL91ABNA041716430O"]),
    (d.ssn_valid, ["536901234", "001011234", "665123456"],
     ["000123456", "666123456", "912345678", "123004567", "123450000", "078051120", "219099999", "123456789",
      "111111111"]),
    (d.nino_valid, ["AB123456C", "JG103759A", "ZY999999D"],
     ["QQ123456C", "DA123456C", "AD123456C", "GB123456A", "NK123456A", "AB123456E", "AB12345C"]),
    (d.dni_valid, ["12345678Z", "00000000T", "X1234567L", "Y0000000Z", "Z7654321H"],
     ["12345678A", "X1234567A", "1234567Z"]),
    (d.bsn_valid, ["111222333", "123456782"], ["123456789", "000000000", "11122233"]),
    (d.nir_valid, ["269054958815780", "1850775123456" + f"{97 - 1850775123456 % 97:02d}"],
     ["269054958815781", "969054958815780", "269134958815780"]),
    (d.codice_fiscale_valid, ["RSSMRA85T10A562S", "MRTMTT91D08F205J"], ["RSSMRA85T10A562T", "RSSMRA85Z10A562S"]),
    (d.steuer_id_valid, ["86095742719", "65929970489", "26954371827"],
     ["86095742711", "06095742719", "11111111111", "12345678901"]),
    (d.pesel_valid, ["44051401359", "02070803628"], ["44051401358", "44151401359", "4405140135"]),
    (d.personnummer_valid, ["8112189876", "198112189876", "8112789873"],  # the last: a coordination number
     ["8112189875", "8113189876", "178112189876"]),
    (d.hetu_valid, ["131052-308T", "010594Y9032", "010594Y9021"],
     ["131052-308U", "131352-308T", "131052-001T", "310252-308T"]),
    (d.aadhaar_valid, ["234123412346"], ["234123412345", "123412341234", "222222222222"]),
    (d.cpf_valid, ["11144477735", "52998224725"], ["11144477736", "11111111111", "1114447773"]),
])
def test_check_rules_accept_valid_and_reject_invalid_numbers(check, valid, invalid):
    assert all(check(v) for v in valid), [v for v in valid if not check(v)]
    assert not any(check(v) for v in invalid), [v for v in invalid if check(v)]


def test_card_schemes_are_the_real_iin_ranges():
    assert d.card_scheme("4111111111111111") == "visa"
    assert d.card_scheme("5500000000000004") == "mastercard"
    assert d.card_scheme("2221000000000009") == "mastercard"
    assert d.card_scheme("378282246310005") == "amex"
    assert d.card_scheme("6011000990139424") == "discover"
    assert d.card_scheme("3530111333300000") == "jcb"
    assert d.card_scheme("30569309025904") == "diners"
    for not_a_card in ("9111111111111111", "1111111111111111", "8111111111111111", "41111111111111",
                       "5500000000000", "340000000000009"[:14]):
        assert d.card_scheme(not_a_card) is None, not_a_card


def test_generated_numbers_pass_their_own_checks():
    rng = random.Random(3)
    for _ in range(200):
        assert d.luhn(synth.card_digits(rng))
        assert d.iban_valid(synth.iban(rng).replace(" ", ""))
        assert d.pesel_valid(synth.pesel(rng)) and d.steuer_id_valid(synth.steuer_id(rng))
        assert d.bsn_valid(synth.bsn(rng)) and d.hetu_valid(synth.hetu(rng))
        assert d.codice_fiscale_valid(synth.codice_fiscale(rng))
        assert d.nir_valid(synth.nir(rng).replace(" ", ""))


# ---------------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("value", [
    "+1 (415) 555-2671", "+44 (0)20 7946 0958", "+49 (0)30 123456", "1-800-555-0199", "+7 495 123-45-67",
    "+81 3-1234-5678", "+86 138 0013 8000", "(02) 9876 5432", "0412 345 678", "07700 900123", "+353 1 234 5678",
    "+1.415.555.2671", "415 555 2671", "(415)555-2671", "+1 415 555 2671 ext. 204", "06 12 34 56 78",
    "06.12.34.56.78", "+33 (0)1 23 45 67 89", "0044 20 7946 0958", "+34 612 345 678", "612 345 678",
])
def test_phone_numbers_in_national_and_international_formats(value):
    assert labels([value]) == [{d.PHONE}]


@pytest.mark.parametrize("value", [
    "2023-10-05", "05/10/2023", "14:22:01", "2023-10-05T14:22:01.123Z", "2023-10-05 14:22:01", "1.2.3",
    "10.0.19045.3570", "3.14159265", "12,345,678", "1 234 567,89", "1234-5678-9012", "978-3-16-148410-0",
    "10:30-11:45", "2019-2023", "v2.0.1", "20231005", "1696515721000", "94107-1234", "-122.4194",
    "37.7749,-122.4194", "SKU-48213-XK", "00:1A:2B:3C:4D:5E", "1234567890",
])
def test_timestamps_versions_and_numbers_are_not_phones_or_anything_else(value):
    assert labels([value]) == [set()]


def test_bare_digit_phones_count_only_under_a_phone_header():
    values = ["4155552671", "07700900123", "4915112345678"]
    assert labels(values, "phone") == [{d.PHONE}] * 3
    assert labels(values, "Teléfono") == [{d.PHONE}] * 3
    assert labels(values, "reference") == [set()] * 3
    assert labels(values, "amount") == [set()] * 3


@pytest.mark.parametrize(("value", "found"), [
    ("first.last@sub.example.co.uk", True), ("user+tag@example.com", True), ("USER@EXAMPLE.COM", True),
    ("o'connor@example.ie", True), ("josé@correo.es", True), ("name@xn--bcher-kva.example", True),
    ("John Doe <john@example.com>", True), ("mailto:john@example.com", True),
    ("test@localhost", False), ("image@2x.png", False), ("git@github.com:org/repo.git", False), ("@username", False),
    ("user@domain", False), ("ssh://git@host.example.com/repo", False), ("a..b@example.com", False),
])
def test_emails_and_email_look_alikes(value, found):
    assert labels([value], "contact") == [{d.EMAIL} if found else set()]


@pytest.mark.parametrize("value", [
    "4111-1111-1111-1111", "5500 0000 0000 0004", "3400 000000 00009", "30569309025904", "6011000990139424",
    "3530111333300000", "4222222222222", "6759649826438453", "4539 5787 6362 1486",
])
def test_card_numbers_bare_and_grouped(value):
    assert labels([value]) == [{d.CREDIT_CARD}]


@pytest.mark.parametrize("value", [
    "4111 1111 1111 1112",  # Luhn fails
    "9111111111111111",  # Luhn passes, no scheme starts with 9 (order numbers)
    "4111 11111 111 1111",  # not a card's grouping
    "41111111111111111111",  # too long
])
def test_card_look_alikes(value):
    assert labels([value]) == [set()]


@pytest.mark.parametrize(("value", "entity"), [
    ("8.8.4.4", None), ("1.2.3.4", None), ("203.0.113.5", d.IP_ADDRESS), ("10.20.30.40", d.IP_ADDRESS),
    ("192.168.1.10", d.IP_ADDRESS), ("127.0.0.1", None), ("0.0.0.0", None), ("255.255.255.255", None),
    ("224.0.0.251", None), ("256.1.1.1", None), ("01.02.03.04", None), ("2001:db8:85a3::8a2e:370:7334", d.IP_ADDRESS),
    ("::ffff:192.0.2.128", d.IP_ADDRESS), ("fe80::1%eth0", d.IP_ADDRESS), ("::1", None), ("12:34:56", None),
])
def test_ip_addresses_count_when_public_or_private_not_loopback_or_version_like(value, entity):
    assert labels([value]) == [{entity} if entity else set()]


def test_four_part_versions_count_as_ips_only_under_an_ip_header():
    versions = ["1.2.3.4", "4.2.0.1", "2.14.0.3"]
    assert labels(versions, "app_version") == [set()] * 3
    assert labels(versions, "value") == [set()] * 3
    assert labels(versions, "client_ip") == [{d.IP_ADDRESS}] * 3


@pytest.mark.parametrize(("value", "entity"), [
    ("123-45-6780", d.US_SSN), ("536 90 1234", d.US_SSN), ("AB 12 34 56 C", d.UK_NINO), ("ab123456c", d.UK_NINO),
    ("12345678Z", d.ES_DNI), ("12345678-Z", d.ES_DNI), ("X1234567L", d.ES_DNI),
    ("2 69 05 49 588 157 80", d.FR_NIR), ("RSSMRA85T10A562S", d.IT_FISCAL_CODE), ("rssmra85t10a562s", d.IT_FISCAL_CODE),
    ("86 095 742 719", d.DE_TAX_ID), ("811218-9876", d.SE_PERSONNUMMER), ("19811218-9876", d.SE_PERSONNUMMER),
    ("131052-308T", d.FI_HETU), ("2341 2341 2346", d.IN_AADHAAR), ("111.444.777-35", d.BR_CPF),
    ("1112.22.333", d.NL_BSN), ("DE89 3704 0044 0532 0130 00", d.IBAN), ("gb82west12345698765432", d.IBAN),
])
def test_formatted_national_ids_and_ibans_need_no_header(value, entity):
    assert labels([value]) == [{entity}]


def test_bare_national_ids_need_their_header_or_a_pure_column():
    pesel = ["44051401359", "02070803628"] + [synth.pesel(random.Random(i)) for i in range(20)]
    assert labels(pesel, "pesel") == [{d.PL_PESEL}] * len(pesel)
    assert labels(pesel, "national_id") == [{d.PL_PESEL}] * len(pesel)
    assert labels(pesel, "value") == [{d.PL_PESEL}] * len(pesel)  # every one validates: a PESEL column
    assert labels(pesel[:2], "value") == [set()] * 2  # two numbers are not enough to say
    assert labels(pesel, "order_id") == [set()] * len(pesel)
    ssns = [synth.ssn(random.Random(i)).replace("-", "") for i in range(20)]
    assert labels(ssns, "ssn") == [{d.US_SSN}] * 20
    assert labels(ssns, "value") == [set()] * 20  # random 9-digit numbers pass the SSN rules too


def test_random_ids_that_sometimes_pass_a_check_are_not_reported():
    rng = random.Random(5)
    for digits, header in ((9, "customer_id"), (11, "account"), (12, "value"), (16, "order_number"), (16, "x")):
        values = [synth._digits(rng, digits, "123456789") for _ in range(500)]
        assert not any(labels(values, header)), header


def test_luhn_valid_order_numbers_are_vetoed_by_header_or_sequence():
    rng = random.Random(2)
    random_cards = [synth.card_digits(rng, "4", 16) for _ in range(200)]
    assert labels(random_cards, "card") == [{d.CREDIT_CARD}] * 200
    assert labels(random_cards, "value") == [{d.CREDIT_CARD}] * 200
    assert labels(random_cards, "order_id") == [set()] * 200
    start = 4_000_123_400_000_000
    sequential = [synth._with_check(str(start // 10 + i * 7), d.luhn) for i in range(200)]
    assert labels(sequential, "member_number") == [set()] * 200


def test_ids_in_free_text_after_order_or_version_words_are_not_pii():
    notes = ["Order #4111111111111111 shipped", "order no. 4539 5787 6362 1486 delayed", "Ticket 536-90-1234 closed",
             "upgraded to version 10.20.30.40", "versión 203.0.113.9 instalada", "Rechnung 4111111111111111"]
    assert labels(notes, "notes") == [set()] * len(notes)
    pii = ["card 4111111111111111 on file", "call +44 20 7946 0958 now", "from 203.0.113.9 at night",
           "SSN 536-90-1234 verified", "write to a.b@example.org.", "IBAN DE89 3704 0044 0532 0130 00 used"]
    assert labels(pii, "notes") == [{d.CREDIT_CARD}, {d.PHONE}, {d.IP_ADDRESS}, {d.US_SSN}, {d.EMAIL}, {d.IBAN}]


def test_digits_inside_an_iban_or_an_email_are_not_other_entities():
    assert labels(["NL38 SNZW 0526 8405 00", "BE28 0867 9557 6315"]) == [{d.IBAN}, {d.IBAN}]
    assert labels(["john.4111111111111111@example.com"]) == [{d.EMAIL}]


# ---------------------------------------------------------------------------------------------------- headers


def test_header_tokens_fold_case_accents_and_camel_case():
    assert header_tokens("customerEmail") == ("customer", "email")
    assert header_tokens("Prénom") == ("prenom",)
    assert header_tokens("Straße") == ("strasse",)
    assert header_tokens("E-Mail Adresse") == ("e", "mail", "adresse")


@pytest.mark.parametrize(("header", "name"), [
    ("first_name", "strong"), ("Nachname", "strong"), ("prénom", "strong"), ("nombre", "strong"),
    ("apellidos", "strong"), ("Vorname", "strong"), ("cognome", "strong"), ("nazwisko", "strong"),
    ("name", "weak"), ("customer", "weak"), ("product_name", None), ("company_name", None), ("username", None),
    ("file_name", None), ("host_name", None), ("customer_email", None),
])
def test_name_headers_in_several_languages(header, name):
    assert hints_for(header).name == name


def test_names_need_a_name_header_and_bare_name_needs_values_that_look_like_names():
    people = ["Ana García", "Jürgen Müller", "Siobhán O'Brien", "Nguyễn Văn An", "María-José López"] * 4
    assert labels(people, "full_name") == [{d.PERSON_NAME}] * 20
    assert labels(people, "name") == [{d.PERSON_NAME}] * 20
    assert labels(people, "comment") == [set()] * 20
    products = ["Wireless Mouse", "Ergo Chair", "Smart Lamp", "Ultra Kettle"] * 5
    assert labels(products, "name") == [set()] * 20
    assert labels(["Ana", "N/A", "", "12345"], "first_name") == [{d.PERSON_NAME}, set(), set(), set()]


def test_dates_of_birth_and_addresses_come_from_their_headers():
    assert labels(["1985-03-12", "12/03/1985", "not a date"], "fecha_de_nacimiento") == [
        {d.DATE_OF_BIRTH}, {d.DATE_OF_BIRTH}, set()]
    assert labels(["1985-03-12"], "created") == [set()]
    assert labels(["Calle Mayor 5, 28013 Madrid", "12 Baker Street"], "dirección") == [{d.POSTAL_ADDRESS}] * 2


# ---------------------------------------------------------------------------------------------------- masks, hostile


def test_masks_show_the_shape_never_the_value():
    assert d.mask("john.doe@example.com", d.EMAIL) == "***@***.com"
    assert d.mask("4111 1111 1111 1111", d.CREDIT_CARD) == "#### #### #### ####"
    assert d.mask("GB82 WEST 1234", d.IBAN) == "XX## XXXX ####"
    shape = d.mask("Jürgen-Ölaf", d.PERSON_NAME)
    assert not any(c.isalpha() and c not in "xX" for c in shape) and not any(c.isdigit() for c in shape)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60), max_size=30),
       st.text(max_size=20))
def test_any_text_in_any_column_never_crashes(values, header):
    out = detect_cells(values, header)
    assert len(out) == len(values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[0-9 .()+\-/:xA-Za-z@#]{0,40}", fullmatch=True), max_size=30))
def test_digit_soup_never_crashes(values):
    assert len(detect_cells(values, "value")) == len(values)


def test_pathological_inputs_finish_quickly():
    import time

    start = time.perf_counter()
    nasty = ["1" * 100_000, "a" * 100_000 + "1", "1 " * 50_000, "@" * 10_000 + "a.com", ("1." * 30_000) + "1",
             "x" * 60 + "@" + "a" * 60 + "." * 5000, ":" * 50_000, "1-" * 50_000]
    detect_cells(nasty, "notes")
    assert time.perf_counter() - start < 5


def test_vectorised_digit_rules_agree_with_the_scalar_ones():
    from mlfort.scan.pii import digits

    rng = random.Random(9)
    prefixes = ["4", "51", "2221", "34", "37", "2200", "3528", "36", "6011", "65", "62", "5018", "56", "60", "1800",
                "2131", "1", "9"]
    makers = {9: synth.bsn, 10: lambda r: synth.personnummer(r).replace("-", "")[-10:], 11: synth.pesel,
              12: lambda r: synth.aadhaar(r).replace(" ", "")}
    for n in range(7, 20):
        values = []
        for _ in range(600):
            if n >= 13 and rng.random() < 0.6:
                values.append(synth.card_digits(rng, rng.choice(prefixes), n))
            elif n in makers and rng.random() < 0.4:
                values.append(makers[n](rng))
            else:
                values.append(synth._digits(rng, n))
        values = [v for v in values if len(v) == n]
        vector = digits.verdicts(values, n)
        for i, value in enumerate(values):
            scalar = dict(d._bare(value) if n <= 12 else d._card(value))
            assert {e: int(a[i]) for e, a in vector.items()} == scalar, value


@pytest.mark.parametrize("value", ["123-456-7890", "001-428-573-4391x7711", "+1-264-773-5410", "(760)555-0102x123",
                                   "760.555.0102", "+44(0)1632 960 123", "(01234) 567890", "01632 960123"])
def test_phone_formats_faker_style_generators_produce(value):
    assert labels([value], "notes") == [{d.PHONE}]

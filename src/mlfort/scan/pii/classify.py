"""Column classification: from the detectors' per-row verdicts and the column header to "this column holds T".

How a column is judged (thresholds are module constants, documented in docs/pii.md):

- A *strong* hit (a formatted card that passes Luhn with a real scheme prefix, a valid IBAN, an email...) counts
  wherever it is, the whole cell or inside free text, unless the column is a column of look-alikes: at least
  `MIN_CANDIDATES` cells have the entity's shape and fewer than `COINCIDENCE_SHARE` of them validate (16-digit order
  numbers, of which 1 in 10 pass Luhn by chance).
- A *weak* hit (a bare 9-12 digit number that passes a national id's check, a bare digit string as a phone) counts
  only when the header names the entity (`ssn`, `pesel`, `phone`...), or names an id generically (`national_id`)
  and most of the column's bare numbers validate as some id, or (except phones and SSNs, whose rules random
  numbers pass) when at least `WEAK_SHARE` of the non-empty values validate and `WEAK_PURITY` of the candidates do.
- A header that says the column is not personal (`order_id`, `version`, `sku`, `created_at`...) vetoes the entities
  an id can look like (cards, national ids, phones, IPs) for whole cells; a column that would otherwise be a card
  column but is numbered sequentially is vetoed too. A vetoed column that still validates almost entirely is
  reported as *ambiguous* (a low finding), never silently dropped.
- Names, dates of birth and postal addresses are found only in columns whose header names them (in several
  languages), and for the bare header `name` only when the values look like people's names.
- A column *is of type T* when at least `COLUMN_SHARE` of its sampled non-empty values hold T; below that, hits are
  reported as T found inside some values (free text).
"""

from __future__ import annotations

import itertools
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlfort.scan.pii import detectors as d

COLUMN_SHARE = 0.3
"""Share of sampled non-empty values holding T from which a column *is* a T column (else: T inside some values)."""
MIN_CANDIDATES = 5
"""Cells with an entity's shape needed before the share that validates is used to call them look-alikes."""
COINCIDENCE_SHARE = 0.5
"""Below this share of validating candidates, the column's valid-looking values are taken as coincidences."""
WEAK_SHARE = 0.5
"""Share of non-empty values a bare-number id must reach to count without a header naming it."""
WEAK_PURITY = 0.9
"""Share of the bare-number candidates that must validate for that (random numbers pass 1 check in 10)."""
TEXT_PROBE = 1_000
NAME_PROBE = 300
"""Values per block used for shares that only shape wording or the `name` header test (free text, names)."""
SEQUENTIAL_GAP = 1_000_000
"""Median gap between sorted card-like numbers below which the column is a numbering scheme, not cards."""

_NEEDS_HEADER = frozenset({d.PHONE, d.US_SSN, d.IP_ADDRESS})

NULLS = frozenset({"null", "none", "nan", "n/a", "na", "-", "--", "?", "unknown", "undefined", "nil", "#n/a"})
"""Cell values that mean "empty" and are not counted as values (in any case: NULL, Null, null)."""
_NULL_SPELLINGS = frozenset(v for n in NULLS for v in (n, n.upper(), n.title(), n.capitalize()))

# ---------------------------------------------------------------------------------------------------- header hints


def header_tokens(header: str) -> tuple[str, ...]:
    """`customerEmail`, `Customer E-Mail`, `prénom` -> ('customer', 'email'), ('customer', 'e', 'mail'),
    ('prenom',): camelCase split, accents and case folded, split on anything not a letter or digit."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", header)
    folded = unicodedata.normalize("NFKD", spaced.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c)).replace("ß", "ss").replace("ł", "l")
    return tuple(t for t in re.split(r"[^0-9a-z]+", plain) if t)


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_POSITIVE: dict[str, frozenset[str]] = {
    d.EMAIL: _set("email emails mail e_mail emailaddress email_address mailaddress correo courriel mailadresse "
                  "emailadresse posta_elettronica sahkoposti epost e_post"),
    d.PHONE: _set("phone phones telephone tel tlf mobile cell cellphone fax msisdn telefono telefon telefone handy "
                  "portable movil celular telefoonnummer mobiel telefonnummer puhelin puhelinnumero phone_number "
                  "contact_number mobile_number phonenumber telefonszam telephone_number numer_telefonu cellulare"),
    d.CREDIT_CARD: _set("card cc ccn pan credit_card creditcard card_number cardnumber kreditkarte tarjeta carte "
                        "carta cartao kartennummer card_no"),
    d.IBAN: _set("iban bank_account account_iban rekeningnummer kontonummer"),
    d.US_SSN: _set("ssn social_security social_security_number socialsecurity ssn_number"),
    d.UK_NINO: _set("nino ni_number national_insurance national_insurance_number nin"),
    d.ES_DNI: _set("dni nie nif documento_identidad"),
    d.NL_BSN: _set("bsn burgerservicenummer sofinummer sofi"),
    d.FR_NIR: _set("nir insee numero_securite_sociale securite_sociale num_secu numero_secu secu"),
    d.IT_FISCAL_CODE: _set("codice_fiscale codicefiscale cf fiscal_code"),
    d.DE_TAX_ID: _set("steuer_id steuerid steuer_identifikationsnummer steueridentifikationsnummer idnr "
                      "identifikationsnummer steuernummer"),
    d.PL_PESEL: _set("pesel"),
    d.SE_PERSONNUMMER: _set("personnummer pnr personal_number"),
    d.FI_HETU: _set("hetu henkilotunnus sotu"),
    d.IN_AADHAAR: _set("aadhaar aadhar uid uidai aadhaar_number"),
    d.BR_CPF: _set("cpf"),
    d.IP_ADDRESS: _set("ip ip_address ipaddress ip_addr ipaddr client_ip remote_addr remote_ip source_ip src_ip "
                       "dst_ip ipv4 ipv6 x_forwarded_for"),
}
_GENERIC_ID = _set("national_id nationalid id_number idnumber personal_id personalid identity_number "
                   "identification tax_id taxid tin tax_number national_number citizen_id document_number "
                   "passport_number id_card idcard ausweisnummer numero_documento personal_code")
_NEGATIVE = _set(
    "order orders invoice tracking sku product item ref reference txn transaction batch lot serial barcode ean upc "
    "isbn hash checksum sha sha1 sha256 md5 uuid guid version ver build release timestamp ts epoch created updated "
    "modified time datetime duration count amount price total qty quantity zip zipcode postal postcode plz lat lng "
    "lon latitude longitude score ratio rate seq sequence row index idx shipment parcel package confirmation "
    "booking ticket session request event commit revision sku_id model part firmware"
)
_NAME_STRONG = _set(
    "first_name firstname fname given_name givenname forename last_name lastname lname surname surnames family_name "
    "familyname full_name fullname middle_name maiden_name customer_name contact_name person_name patient_name "
    "employee_name cardholder cardholder_name card_holder account_holder holder_name nombre nombres apellido "
    "apellidos nombre_completo primer_apellido segundo_apellido vorname vornamen nachname familienname "
    "prenom nom nom_de_famille nom_complet nome cognome nome_completo sobrenome voornaam achternaam imie nazwisko "
    "fornamn efternamn etunimi sukunimi fornavn etternavn efternavn"
)
_NAME_WEAK = _set("name names customer client contact author owner holder recipient sender patient employee member "
                  "person passenger guest beneficiary payee driver display_name displayname")
_NAME_NEGATIVE = _set(
    "product company file filename host hostname server item brand city street country org organization "
    "organisation business project model dataset table column field app application service bucket domain "
    "category team group department store shop venue event job title region state town village place school bank "
    "hotel restaurant tag label feature metric key variable package library module class function method queue "
    "topic username user_name login handle screen_name nickname account machine device node cluster database db "
    "schema index image container pod job_name task workflow pipeline course campaign plan tier"
)
_DOB = _set("dob birth_date birthdate date_of_birth birthday born geburtsdatum fecha_nacimiento "
            "fecha_de_nacimiento date_naissance date_de_naissance data_nascita data_di_nascita geboortedatum "
            "data_urodzenia fodelsedatum syntymaaika data_nascimento data_de_nascimento")
_ADDRESS = _set("address addr street street_address address_line address_line1 address_line2 address1 address2 "
                "home_address mailing_address billing_address shipping_address postal_address residence direccion "
                "domicilio calle adresse strasse anschrift indirizzo adres straat endereco osoite gatuadress adress "
                "ulica via_indirizzo")


@dataclass(frozen=True, slots=True)
class HeaderHints:
    """What a column's header says about it."""

    positive: frozenset[str] = frozenset()
    """Entities the header names (`email`, `ssn`, `pesel`...)."""
    generic_id: bool = False
    """The header names an identity document without saying which (`national_id`, `tax_id`)."""
    negative: bool = False
    """The header names something that is not personal (`order_id`, `version`, `created_at`)."""
    name: str | None = None
    """'strong' for first_name, apellido, Vorname...; 'weak' for `name`, `customer`... (values must look like
    names); None otherwise."""

    @property
    def any(self) -> bool:
        """True when the header says anything at all."""
        return bool(self.positive or self.generic_id or self.negative or self.name)


def hints_for(header: str) -> HeaderHints:
    """Read a header (any case, separators, camelCase, accents) into HeaderHints."""
    tokens = header_tokens(header)
    if not tokens:
        return HeaderHints()
    joined = "_".join(tokens)
    pairs = {f"{a}_{b}" for a, b in itertools.pairwise(tokens)}
    triples = {"_".join(tokens[i:i + 3]) for i in range(len(tokens) - 2)}
    words = {*tokens, joined, "".join(tokens), *pairs, *triples}
    positive = {entity for entity, names in _POSITIVE.items() if words & names}
    if d.DATE_OF_BIRTH not in positive and words & _DOB:
        positive.add(d.DATE_OF_BIRTH)
    if words & _ADDRESS and not words & {"ip", "ip_address", "email", "mail", "mac", "email_address", "ipaddress"}:
        positive.add(d.POSTAL_ADDRESS)
    negative = bool(words & _NEGATIVE) and not positive
    name: str | None = None
    if not words & _NAME_NEGATIVE and not positive - {d.PERSON_NAME}:
        if words & _NAME_STRONG:
            name = "strong"
        elif words & _NAME_WEAK and not negative:
            name = "weak"
    return HeaderHints(frozenset(positive), bool(words & _GENERIC_ID) and not positive, negative, name)


# ---------------------------------------------------------------------------------------------------- header-only

_NAME_CELL = re.compile(
    r"^(?=[^\n]{2,80}$)[^\W\d_]+(?:['’.\-][^\W\d_]+)*\.?(?:,? [^\W\d_]+(?:['’.\-][^\W\d_]+)*\.?){0,5}$", re.MULTILINE)
_DOB_CELL = re.compile(
    r"^(?:(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)\d\d"
    r"|(?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)\d\d"
    r"|(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"|\d{1,2}\.? [^\W\d_]{3,12}\.? (?:19|20)\d\d|[^\W\d_]{3,12}\.? \d{1,2},? (?:19|20)\d\d)"
    r"(?:[ T]00:00(?::00)?(?:\.0+)?Z?)?$", re.MULTILINE)
_ADDRESS_CELL = re.compile(r"^(?=[^\n]{5,200}$)(?=[^\n]*[^\W\d_]{2})(?=[^\n]*(?:\d|\S [^\W\d_]))[^\n]+$",
                           re.MULTILINE)

_GIVEN_NAMES = _set(
    "james john robert michael william david richard joseph thomas charles christopher daniel matthew anthony mark "
    "donald steven paul andrew joshua kenneth kevin brian george timothy ronald jason edward jeffrey ryan jacob gary "
    "nicholas eric jonathan stephen larry justin scott brandon benjamin samuel gregory alexander patrick frank "
    "raymond jack dennis jerry tyler aaron jose adam nathan henry peter zachary douglas harold kyle noah ethan "
    "mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty margaret sandra "
    "ashley kimberly emily donna michelle carol amanda melissa deborah stephanie rebecca sharon laura cynthia "
    "kathleen amy angela shirley anna brenda pamela emma nicole helen samantha katherine christine debra rachel "
    "carolyn janet catherine maria heather diane ruth julie olivia joyce virginia victoria kelly lauren christina "
    "joan evelyn judith megan andrea cheryl hannah jacqueline martha gloria teresa ann sara madison frances kathryn "
    "janice jean abigail alice julia judy sophia grace denise amber doris marilyn danielle beverly isabella theresa "
    "diana natalie brittany charlotte marie kayla alexis lori jose luis carlos juan antonio manuel francisco javier "
    "miguel pedro alejandro fernando jorge sergio pablo diego rafael andres raul ramon enrique alberto ricardo "
    "carmen ana isabel lucia elena pilar dolores rosa teresa cristina marta paula sofia laura andrea beatriz "
    "hans peter klaus jurgen wolfgang michael thomas andreas stefan uwe frank bernd dieter horst helmut lukas "
    "leon felix maximilian jonas paul finn elias ursula monika petra sabine renate ingrid gisela anja katrin "
    "julia lena lea hannah mia emma jean pierre michel philippe alain nicolas christophe francois louis hugo "
    "lucas jules gabriel arthur nathalie isabelle sylvie catherine francoise valerie sandrine camille chloe manon "
    "ines giuseppe giovanni francesco mario luigi marco alessandro andrea luca matteo lorenzo davide simone "
    "giulia chiara francesca sara martina alessia valentina federica elisa jan piotr krzysztof tomasz pawel "
    "anna katarzyna magdalena agnieszka malgorzata erik lars anders johan karl nils per olof sven maja ingrid "
    "astrid ebba elsa matti juha mikko timo jukka antti aino anni mari helmi sanna joao pedro ana beatriz "
    "mohammed mohamed ahmed ali omar hassan fatima aisha yusuf ibrahim mustafa raj rahul amit priya anjali "
    "deepak sanjay sunita pooja vijay arjun wei li ming hui jing yan xin chen wang zhang liu yuki hiroshi takashi "
    "kenji haruto sakura yui min ji seo jun hyun olga ivan sergei dmitri natasha svetlana irina nikolai oleg "
    "kwame kofi ama chinedu ngozi emeka oluwaseun aaliyah nguyen thanh minh linh huong tuan duc siobhan sean "
    "niamh ciaran aoife liam connor declan bjorn sigrid freya oskar hamza zeynep mehmet emre elif ayse zoe lukasz "
    "orjan soren mateo ren kate luc marc rene jose maria lea noe chloe amelie leonie sven kasper mads jens anders "
    "thijs daan sem bram sanne femke lotte fleur ruben bas joost pieter willem hendrik jana petr tomas lucie eva "
    "adela milan ivana marek vladimir andrei mihai ion elena ioana dimitris giorgos eleni maria nikos yusuf emir"
)

# ---------------------------------------------------------------------------------------------------- statistics


@dataclass
class EntityStats:
    """Counts for one entity in one column, summed over every block of the sample."""

    whole_strong: int = 0
    embedded: int = 0
    candidates: int = 0
    dropped_by_context: int = 0
    first_row: int | None = None
    shape: str | None = None


@dataclass
class ColumnStats:
    """Everything the classifier needs about one column, summed over its blocks (bounded whatever the rows)."""

    header: str
    hints: HeaderHints
    non_empty: int = 0
    rows: int = 0
    text_like: int = 0
    """Of the first TEXT_PROBE non-empty values of each block, those with three or more spaces."""
    text_probed: int = 0
    entities: dict[str, EntityStats] = field(default_factory=dict)
    weak: Counter[tuple[str, ...]] = field(default_factory=Counter)
    """How many rows passed weakly for exactly this set of entities (a bare 11-digit number may pass PESEL and
    CPF): resolved once the column's winner is known."""
    weak_first_row: dict[str, int] = field(default_factory=dict)
    card_numbers: list[int] = field(default_factory=list)
    name_shaped: int = 0
    names_probed: int = 0
    """Name-shaped values (the first NAME_PROBE of each block) looked up in the list of given names."""
    multi_token_names: int = 0
    given_name_hits: int = 0

    def entity(self, name: str) -> EntityStats:
        """The stats of one entity, created on first use."""
        return self.entities.setdefault(name, EntityStats())

    def merge(self, other: ColumnStats) -> None:
        """Add the statistics of a later block of the same column (from another process)."""
        for name in ("non_empty", "rows", "text_like", "text_probed", "name_shaped", "names_probed",
                     "multi_token_names", "given_name_hits"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for entity, theirs in other.entities.items():
            mine = self.entity(entity)
            mine.whole_strong += theirs.whole_strong
            mine.embedded += theirs.embedded
            mine.candidates += theirs.candidates
            mine.dropped_by_context += theirs.dropped_by_context
            mine.first_row = _first(mine.first_row, theirs.first_row)
            mine.shape = mine.shape or theirs.shape
        self.weak.update(other.weak)
        for entity, row in other.weak_first_row.items():
            self.weak_first_row[entity] = min(self.weak_first_row.get(entity, row), row)
        self.card_numbers.extend(other.card_numbers[: max(4096 - len(self.card_numbers), 0)])


def analyze_batch(batch: dict[str, Sequence[str]], row_offset: int) -> dict[str, ColumnStats]:
    """Statistics of every column of one block of rows (what a worker process computes in a parallel scan)."""
    import gc

    out: dict[str, ColumnStats] = {}
    enabled = gc.isenabled()
    gc.disable()  # millions of small tuples and no cycles: see scan_file
    try:
        for name, values in batch.items():
            stats = out[name] = ColumnStats(name, hints_for(name))
            analyze(stats, values, row_offset)
    finally:
        if enabled:
            gc.enable()
    return out


def clean(values: Sequence[str]) -> tuple[list[str], int]:
    """Values ready for a block: stripped, newlines turned to spaces, NULL-like markers emptied; and the number
    of non-empty values. (C-level passes only: this runs on every value of every column.)"""
    out = list(map(str.strip, values))
    joined = "\n".join(out)
    if joined.count("\n") != len(out) - 1 or "\r" in joined:
        out = [v.replace("\r\n", " ").replace("\n", " ").replace("\r", " ") for v in out]
    present = _NULL_SPELLINGS.intersection(out)
    if present:
        out = [("" if v in present else v) for v in out]
    return out, len(out) - out.count("")


@dataclass
class Block:
    """One block of a column after detection: the per-row hits (kept only for cell-level answers)."""

    values: list[str]
    hits: d.BlockHits
    header_only: dict[str, set[int]]


def analyze(stats: ColumnStats, values: Sequence[str], row_offset: int = 0) -> Block:
    """Run the detectors on one block of a column and add what they found to `stats`."""
    cells, non_empty = clean(values)
    hits = d.scan_block(cells, stats.hints.positive)
    stats.rows += len(cells)
    stats.non_empty += non_empty
    probe = [v for v in cells[:TEXT_PROBE * 2] if v][:TEXT_PROBE]
    stats.text_probed += len(probe)
    stats.text_like += sum(1 for v in probe if v.count(" ") >= 3)
    for entity, rows in hits.strong.items():
        es = stats.entity(entity)
        whole = sum(1 for c in rows.values() if c == d.WHOLE_STRONG)
        es.whole_strong += whole
        es.embedded += len(rows) - whole
        if rows:
            first = row_offset + min(rows)
            es.first_row = first if es.first_row is None else min(es.first_row, first)
    for entity, n in hits.candidates.items():
        stats.entity(entity).candidates += n
    for entity, n in hits.dropped_by_context.items():
        stats.entity(entity).dropped_by_context += n
    for entity, shape in hits.shapes.items():
        es = stats.entity(entity)
        es.shape = es.shape or shape
    for row, ents in sorted(hits.weak.items()):
        stats.weak[ents] += 1
        for e in ents:
            stats.weak_first_row.setdefault(e, row_offset + row)
    room = 4096 - len(stats.card_numbers)
    if room > 0:
        stats.card_numbers.extend(hits.card_numbers[:room])
    header_only = _header_only(stats, cells, row_offset)
    return Block(cells, hits, header_only)


def _header_only(stats: ColumnStats, cells: list[str], row_offset: int) -> dict[str, set[int]]:
    """Names, dates of birth, addresses: rows whose value has the right shape, in columns whose header names
    them."""
    found: dict[str, set[int]] = {}
    hints = stats.hints
    wanted = [(e, p) for e, p in ((d.DATE_OF_BIRTH, _DOB_CELL), (d.POSTAL_ADDRESS, _ADDRESS_CELL))
              if e in hints.positive]
    if hints.name:
        wanted.append((d.PERSON_NAME, _NAME_CELL))
    if not wanted:
        return found
    for entity, pattern in wanted:
        rows = {i for i, m in enumerate(map(pattern.fullmatch, cells)) if m}
        found[entity] = rows
        es = stats.entity(entity)
        es.whole_strong += len(rows)
        es.candidates += len(rows)
        if rows:
            first = row_offset + min(rows)
            es.first_row = first if es.first_row is None else min(es.first_row, first)
            es.shape = es.shape or d.mask(cells[min(rows)], entity)
        if entity == d.PERSON_NAME:
            stats.name_shaped += len(rows)
            probed = sorted(rows)[:NAME_PROBE]
            stats.names_probed += len(probed)
            for r in probed:
                parts = cells[r].replace(",", " ").replace("-", " ").split()
                stats.multi_token_names += len(parts) > 1
                stats.given_name_hits += any(_fold(p) in _GIVEN_NAMES for p in parts)
    return found


def _fold(word: str) -> str:
    folded = unicodedata.normalize("NFKD", word.casefold().translate(_UNDECOMPOSABLE))
    return "".join(c for c in folded if not unicodedata.combining(c))


_UNDECOMPOSABLE = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "ı": "i"})


# ---------------------------------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class EntityDecision:
    """What the column holds of one entity after weighing header, shares and look-alikes."""

    entity: str
    rows: int
    """Sampled rows that hold the entity (whole cell or inside text)."""
    whole: int
    """Of those, rows where the whole cell is the entity."""
    share: float
    """rows / non-empty sampled values."""
    kind: str
    """'column' (share >= COLUMN_SHARE), 'text' (found inside some values) or 'ambiguous' (validates, but the
    header or a sequential numbering says it is probably not personal data)."""
    first_row: int | None
    shape: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ColumnDecision:
    """Per column: the decisions, and the acceptance flags cell-level labelling needs."""

    header: str
    non_empty: int
    text_like: bool
    entities: tuple[EntityDecision, ...]
    accept_whole: frozenset[str]
    accept_weak_order: tuple[str, ...]
    """Entities whose weak (bare-number) hits count, most likely first: a row that passes several is given to the
    first."""
    accept_header_only: frozenset[str]


def decide(stats: ColumnStats) -> ColumnDecision:
    """Turn a column's summed statistics into decisions (the rules are in the module docstring)."""
    hints = stats.hints
    n = max(stats.non_empty, 1)
    decisions: list[EntityDecision] = []
    accept_whole: set[str] = set()
    header_only: set[str] = set()

    weak_any: Counter[str] = Counter()
    for ents, count in stats.weak.items():
        for e in ents:
            weak_any[e] += count

    def coincidental(entity: str, validated: int) -> bool:
        es = stats.entities.get(entity)
        cands = es.candidates if es else 0
        return entity not in hints.positive and cands >= MIN_CANDIDATES and validated / cands < COINCIDENCE_SHARE

    # Which entities' weak hits count, in the order a shared row is given to them.
    weak_ok: list[str] = []
    if weak_any:
        named = [e for e in weak_any if e in hints.positive]
        if named:
            weak_ok = named
        elif hints.negative:
            weak_ok = []
        elif hints.generic_id:
            id_rows = sum(stats.weak.values()) + sum(
                stats.entities[e].whole_strong for e in d.NATIONAL_IDS if e in stats.entities)
            bare_candidates = max((stats.entities[e].candidates for e in d.NATIONAL_IDS if e in stats.entities),
                                  default=0)
            if bare_candidates and id_rows / max(bare_candidates, 1) >= COINCIDENCE_SHARE:
                weak_ok = [e for e in weak_any if e not in _NEEDS_HEADER]
        else:
            for e, count in weak_any.items():
                if e in _NEEDS_HEADER:
                    continue  # random numbers (and version strings) pass their rules: only a header makes them count
                es = stats.entities.get(e)
                valid = count + (es.whole_strong if es else 0)
                cands = es.candidates if es else 0
                if count >= 3 and valid / n >= WEAK_SHARE and cands and valid / cands >= WEAK_PURITY:
                    weak_ok.append(e)
        weak_ok.sort(key=lambda e: (e not in hints.positive, -weak_any[e], e))

    weak_rows: Counter[str] = Counter()
    for ents, count in stats.weak.items():
        owner = next((e for e in weak_ok if e in ents), None)
        if owner is not None:
            weak_rows[owner] += count

    names = sorted(set(stats.entities) | set(weak_rows))
    # A structured mixed column (national ids of six countries, emails and phones in one `contact` column): most of
    # its values are whole-cell PII of one type or another, so each type in it is a column finding.
    mixed_whole = sum(stats.entities[e].whole_strong for e in stats.entities if e not in d.HEADER_ONLY) + sum(
        weak_rows.values())
    mixed = mixed_whole / n >= COLUMN_SHARE
    for entity in names:
        es = stats.entities.get(entity, EntityStats())
        if entity in d.HEADER_ONLY:
            decision = _header_only_decision(stats, entity, es, n)
            if decision is not None:
                decisions.append(decision)
                if decision.kind != "ambiguous":
                    header_only.add(entity)
            continue
        whole, embedded, weak = es.whole_strong, es.embedded, weak_rows.get(entity, 0)
        reason = ""
        vetoed = entity in d.DIGIT_ENTITIES and hints.negative and entity not in hints.positive
        if vetoed:
            reason = f"header {stats.header!r} names something that is not personal data"
        elif entity == d.CREDIT_CARD and whole >= 20 and _sequential(stats.card_numbers):
            vetoed, reason = True, "the values are numbered sequentially (order or account numbers, not cards)"
        if coincidental(entity, whole + weak_any.get(entity, 0)):
            whole = weak = 0
        first = _first(es.first_row, stats.weak_first_row.get(entity) if weak else None)
        if vetoed:
            valid = whole + weak
            if valid and valid / n >= COLUMN_SHARE:
                decisions.append(EntityDecision(entity, valid, valid, valid / n, "ambiguous", first, es.shape, reason))
            whole = weak = 0
        rows = whole + weak + embedded
        if not rows:
            continue
        if whole + weak:
            accept_whole.add(entity)
        kind = "column" if rows / n >= COLUMN_SHARE or (mixed and (whole + weak) * 2 >= rows) else "text"
        decisions.append(EntityDecision(entity, rows, whole + weak, rows / n, kind, first, es.shape, reason))
    decisions.sort(key=lambda x: (-x.rows, x.entity))
    return ColumnDecision(
        header=stats.header, non_empty=stats.non_empty,
        text_like=stats.text_probed > 0 and stats.text_like * 2 >= stats.text_probed,
        entities=tuple(decisions), accept_whole=frozenset(accept_whole),
        accept_weak_order=tuple(e for e in weak_ok if weak_rows.get(e)), accept_header_only=frozenset(header_only),
    )


def _first(a: int | None, b: int | None) -> int | None:
    return min(x for x in (a, b) if x is not None) if (a is not None or b is not None) else None


def _header_only_decision(stats: ColumnStats, entity: str, es: EntityStats, n: int) -> EntityDecision | None:
    rows = es.whole_strong
    if not rows:
        return None
    share = rows / n
    if entity == d.PERSON_NAME and stats.hints.name == "weak":
        probed = max(stats.names_probed, 1)
        looks_like_names = share >= 0.7 and stats.given_name_hits >= 0.15 * probed
        if not looks_like_names:
            return None
    kind = "column" if share >= COLUMN_SHARE else "text"
    return EntityDecision(entity, rows, rows, share, kind, es.first_row, es.shape,
                          f"header {stats.header!r} names it")


def _sequential(numbers: list[int]) -> bool:
    values = sorted(set(numbers))
    if len(values) < 20:
        return False
    gaps = [b - a for a, b in itertools.pairwise(values)]
    return statistics.median(gaps) < SEQUENTIAL_GAP


def cell_labels(block: Block, decision: ColumnDecision) -> list[set[str]]:
    """The entities each row of `block` holds, given the column's decision (the labels the tests score)."""
    labels: list[set[str]] = [set() for _ in block.values]
    counted = {e.entity for e in decision.entities if e.kind != "ambiguous"}
    for entity, rows in block.hits.strong.items():
        if entity not in counted:
            continue
        for row, category in rows.items():
            if category == d.EMBEDDED or entity in decision.accept_whole:
                labels[row].add(entity)
    for row, ents in block.hits.weak.items():
        owner = next((e for e in decision.accept_weak_order if e in ents), None)
        if owner is not None:
            labels[row].add(owner)
    for entity, rows in block.header_only.items():
        if entity in decision.accept_header_only:
            for row in rows:
                labels[row].add(entity)
    return labels


def detect_cells(values: list[str], header: str) -> list[set[str]]:
    """The entity types each value of one column holds, as `scan pii` would classify them with this whole list as
    its sample: the same detectors and column rules. For scoring precision and recall cell by cell."""
    stats = ColumnStats(header, hints_for(header))
    block = analyze(stats, values)
    return cell_labels(block, decide(stats))

"""The rules `mlfort scan pii` reports (MLF-PII-xxx), registered once for every renderer, and the severity of each
entity type."""

from __future__ import annotations

from mlfort.report import Finding, Rule, Severity, register_rules
from mlfort.scan.pii import detectors as d

_REFS = (
    "GDPR Art. 4(1) personal data, Art. 9 special categories, Art. 30 records of processing",
    "OWASP ML03:2023 Model Inversion Attack (training data exposure)",
    "MITRE ATLAS AML.T0024 Exfiltration via ML Inference API",
    "NIST SP 800-122 Guide to Protecting the Confidentiality of PII",
)

ENTITY_SEVERITY: dict[str, Severity] = {
    d.CREDIT_CARD: Severity.HIGH,
    d.IBAN: Severity.HIGH,
    **{e: Severity.HIGH for e in d.NATIONAL_IDS},
    d.EMAIL: Severity.MEDIUM,
    d.PHONE: Severity.MEDIUM,
    d.PERSON_NAME: Severity.MEDIUM,
    d.DATE_OF_BIRTH: Severity.MEDIUM,
    d.POSTAL_ADDRESS: Severity.MEDIUM,
    d.IP_ADDRESS: Severity.LOW,
}
"""Payment cards, IBANs and national ids: HIGH (fraud and identity theft follow a leak; PCI DSS and national law
apply). Contact and identity data: MEDIUM. IP addresses: LOW (personal data under GDPR, but rarely enough on their
own to identify someone)."""

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("MLF-PII-001", "Column holds payment cards, bank accounts or national ids",
             "Most sampled values of this column are card numbers (Luhn and a real scheme prefix), IBANs (mod-97) "
             "or national identity numbers (with their check digits). Remove or tokenise the column before the data "
             "is used for training, or classify the dataset `pii` and restrict who may read it.",
             Severity.HIGH, _REFS),
        Rule("MLF-PII-002", "Column holds contact or identity data",
             "Most sampled values of this column are email addresses, phone numbers, names, dates of birth or "
             "postal addresses. Drop, pseudonymise or hash the column if the model does not need it; otherwise "
             "classify the dataset `pii`.", Severity.MEDIUM, _REFS),
        Rule("MLF-PII-003", "Column holds IP addresses",
             "Most sampled values of this column are IP addresses, personal data under GDPR. Truncate them (/24, "
             "/48) or drop the column if the model does not need them.", Severity.LOW, _REFS),
        Rule("MLF-PII-004", "Personal data inside some values",
             "Some values of this column (often free text: notes, comments, messages) contain personal data. "
             "Models trained on free text memorise and repeat it. Scrub the text, or classify the dataset `pii`. "
             "The severity is that of the entity type.", Severity.MEDIUM, _REFS),
        Rule("MLF-PII-005", "Dataset holds PII but is not classified pii",
             "The policy classifies this dataset below `pii`, so it may be read, copied and stored where personal "
             "data may not go. Classify it `pii` in the policy (and review who reads it and where it lives), or "
             "remove the personal data from the files.", Severity.HIGH, _REFS),
        Rule("MLF-PII-006", "Dataset file could not be checked",
             "Part or all of the file could not be read (malformed CSV, bad UTF-8, lines that are not JSON objects, "
             "a broken Parquet footer, a line too long): what was not read is not known to be free of personal "
             "data. Fix the file, or export it again, and scan it once more.", Severity.HIGH, _REFS),
        Rule("MLF-PII-007", "File type not supported",
             "The file was named explicitly but `scan pii` reads only CSV/TSV, JSONL/NDJSON and Parquet (and "
             "gzipped CSV/JSONL): it was not checked.", Severity.LOW, _REFS),
        Rule("MLF-PII-008", "Column looks like personal data but probably is not",
             "The values validate as an entity (16-digit numbers that pass Luhn with a card prefix, addresses "
             "that parse as IPs), but the header names something else (order id, version) or the numbers are "
             "sequential. Check the column; if it is what the header says, nothing needs doing.",
             Severity.LOW, _REFS),
        Rule("MLF-PII-009", "PII in a file no policy dataset covers",
             "The file holds personal data but lies under no location of any dataset in the policy, so its "
             "classification cannot be checked. Add the dataset (with classification `pii`) to the policy, or pass "
             "--dataset.", Severity.MEDIUM, _REFS),
    )
}
register_rules(*RULES.values())


def column_rule(entity: str) -> str:
    """The rule of a column that *is* of this entity type."""
    if entity == d.IP_ADDRESS:
        return "MLF-PII-003"
    if ENTITY_SEVERITY[entity] is Severity.HIGH:
        return "MLF-PII-001"
    return "MLF-PII-002"


def finding(rule_id: str, target: str, message: str, *, severity: Severity | None = None,
            **evidence: object) -> Finding:
    """A finding of one of the PII rules, at the rule's severity unless given."""
    return RULES[rule_id].finding(target, message, severity=severity, **evidence)

"""The rules `mlfort ledger verify` reports, registered once for every renderer."""

from __future__ import annotations

from mlfort.report import Finding, Rule, Severity, register_rules

_REFS = (
    "RFC 9162 Certificate Transparency 2.0 (Merkle tree, proofs)",
    "https://github.com/C2SP/C2SP/blob/main/tlog-checkpoint.md",
    "NIST SP 800-53 AU-9 Protection of Audit Information",
    "AWS CloudTrail log file integrity validation",
)

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("MLF-LED-001", "Ledger entry changed, inserted, reordered or removed",
             "An entry no longer matches the hash the log committed to. Treat the machine holding the ledger as "
             "compromised; restore the ledger from the archive and compare with `ledger verify --from-checkpoint`.",
             Severity.CRITICAL, _REFS),
        Rule("MLF-LED-002", "Ledger rewritten under a signed checkpoint",
             "The entries and their hashes were rewritten consistently, but a checkpoint signed earlier no longer "
             "matches them. Restore from the archive; investigate who could write the database.",
             Severity.CRITICAL, _REFS),
        Rule("MLF-LED-003", "Ledger truncated",
             "Entries that a checkpoint or the log's own size covered are gone. Restore them from the archive.",
             Severity.CRITICAL, _REFS),
        Rule("MLF-LED-004", "Checkpoint invalid or replaced",
             "A checkpoint is not signed by a trusted key, or a trusted checkpoint kept outside disagrees with the "
             "log. The log's history was rewritten or its checkpoints forged.", Severity.CRITICAL, _REFS),
        Rule("MLF-LED-005", "Ledger entries not anchored",
             "No signed checkpoint covers the entries, so nothing proves they were not rewritten. Run "
             "`mlfort ledger checkpoint` and keep checkpoints outside the machine.", Severity.HIGH, _REFS),
        Rule("MLF-LED-006", "Newest entries not yet checkpointed",
             "The newest entries verify against their hashes but no signed checkpoint covers them yet.",
             Severity.INFO, _REFS),
    )
}
register_rules(*RULES.values())


def finding(rule_id: str, target: str, message: str, **evidence: object) -> Finding:
    """A finding of one of the ledger rules, at the rule's severity."""
    return RULES[rule_id].finding(target, message, **evidence)

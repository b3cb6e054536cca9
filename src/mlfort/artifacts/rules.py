"""The rules `mlfort artifacts verify` reports, registered once for every renderer."""

from __future__ import annotations

from mlfort.report import Rule, Severity, register_rules

_REFS = (
    "OWASP ML06:2023 AI Supply Chain Attacks",
    "MITRE ATLAS AML.T0010 ML Supply Chain Compromise",
    "https://github.com/ossf/model-signing-spec",
)

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("MLF-ART-001", "File changed since signing",
             "The file's digest differs from the signed one. Do not load it; restore it from a trusted copy or "
             "re-sign after review.", Severity.CRITICAL, _REFS),
        Rule("MLF-ART-002", "File added since signing",
             "A file not covered by the signature is present. Remove it, or re-sign the tree after review "
             "(--allow-unsigned-files only reports it).", Severity.HIGH, _REFS),
        Rule("MLF-ART-003", "File removed since signing",
             "A signed file is missing. Restore it from a trusted copy.", Severity.HIGH, _REFS),
        Rule("MLF-ART-004", "Signature invalid",
             "The signature is malformed, altered, made by another key, or not for this artifact. Obtain the "
             "right public key and signature from the signer.", Severity.CRITICAL, _REFS),
        Rule("MLF-ART-005", "Unsafe path in signature",
             "The signature names a path that leaves the tree or lists a file twice: a crafted signature. "
             "Reject the artifact.", Severity.CRITICAL, _REFS),
        Rule("MLF-ART-006", "Symlink not allowed",
             "The tree holds a symlink that is not allowed or points outside the tree. Replace it with the file "
             "it points to, then re-sign.", Severity.HIGH, _REFS),
        Rule("MLF-ART-007", "Hashing method not accepted",
             "The signature uses a hashing method that is unknown, mixed, or not the one required. Re-sign with "
             "sha256 or blake3.", Severity.HIGH, _REFS),
        Rule("MLF-ART-008", "Signature missing",
             "No signature was found. Sign the artifact (mlfort artifacts sign) or point --signature at it.",
             Severity.HIGH, _REFS),
        Rule("MLF-ART-009", "File cannot be checked",
             "A file is unreadable or is not a regular file (FIFO, socket, device). Remove it or fix its "
             "permissions, then verify again.", Severity.HIGH, _REFS),
        Rule("MLF-ART-010", "File excluded by the signer",
             "The signature's ignore_paths leave this file unchecked. Make sure no loader reads it, or re-sign "
             "without the exclusion.", Severity.INFO, _REFS),
    )
}
register_rules(*RULES.values())

"""The rules `mlfort scan secrets` reports (MLF-SEC-xxx), registered once for every renderer."""

from __future__ import annotations

from mlfort.report import Finding, Rule, Severity, register_rules

_REFS = (
    "CWE-798 Use of Hard-coded Credentials",
    "CWE-312 Cleartext Storage of Sensitive Information",
    "OWASP ML06:2023 AI Supply Chain Attacks",
    "MITRE ATLAS AML.T0055 Unsecured Credentials",
)
_ROTATE = ("Rotate it at its issuer, delete it (also from history, notebook outputs, published models) and load it at "
           "run time. ")
_ALLOW = "Accepted (revoked, a fixture)? Allowlist its fingerprint with a reason."
_SCOPE_REFS: tuple[str, ...] = ()

PRIVATE_KEY = "MLF-SEC-001"
CLOUD_CREDENTIAL = "MLF-SEC-002"
SERVICE_TOKEN = "MLF-SEC-003"  # noqa: S105 - a rule id, not a password
URL_PASSWORD = "MLF-SEC-004"  # noqa: S105 - a rule id, not a password
AUTH_HEADER = "MLF-SEC-005"
ASSIGNED_SECRET = "MLF-SEC-006"  # noqa: S105 - a rule id, not a password
HIGH_ENTROPY = "MLF-SEC-007"
JWT = "MLF-SEC-008"
NOT_FULLY_SCANNED = "MLF-SEC-009"
UNREADABLE = "MLF-SEC-010"
ALLOWLIST_EXPIRED = "MLF-SEC-011"
SKIPPED = "MLF-SEC-012"

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(PRIVATE_KEY, "Private key in a file",
             "A PEM, OpenSSH, PGP, PuTTY, JWK or age private key: whoever reads the file can sign, decrypt or log in "
             "as its owner. " + _ROTATE + _ALLOW,
             Severity.CRITICAL, _REFS),
        Rule(CLOUD_CREDENTIAL, "Cloud credential in a file",
             "An AWS, Google Cloud or Azure credential (access key, session token, service-account key, API key, "
             "client secret, storage key, SAS token): it reaches data, registries and compute. " + _ROTATE + _ALLOW,
             Severity.CRITICAL, _REFS),
        Rule(SERVICE_TOKEN, "API token for a service in a file",
             "A token in a service's own format (GitHub, Slack, OpenAI, Hugging Face, PyPI...). Registry and "
             "model-hub tokens let an attacker publish poisoned packages or models as you. " + _ROTATE + _ALLOW,
             Severity.HIGH, _REFS),
        Rule(URL_PASSWORD, "Password in a URL",
             "A URL carries a literal `user:password@`; URLs end up in logs, tracebacks and notebook outputs. "
             + _ROTATE + _ALLOW,
             Severity.HIGH, _REFS),
        Rule(AUTH_HEADER, "Literal credentials in an Authorization header",
             "An HTTP Basic/Bearer or API-key header value is written out (often a copied curl command). "
             + _ROTATE + _ALLOW,
             Severity.HIGH, _REFS),
        Rule(ASSIGNED_SECRET, "Hard-coded password or secret",
             "A literal value is assigned to a password, secret, token or API-key setting. " + _ROTATE + _ALLOW,
             Severity.MEDIUM, _REFS),
        Rule(HIGH_ENTROPY, "High-entropy string next to a secret keyword",
             "A random-looking string (Shannon entropy) sits on a line naming a key, token, secret or password: "
             "likely a credential in a format mlfort does not know. " + _ALLOW,
             Severity.MEDIUM, _REFS),
        Rule(JWT, "JSON Web Token in a file",
             "A token whose header decodes to a JWT header: until it expires it authenticates whoever presents "
             "it. Revoke it if it may still be valid. " + _ALLOW,
             Severity.MEDIUM, _REFS),
        Rule(NOT_FULLY_SCANNED, "File not fully scanned",
             "Part of the file was not scanned (over the per-file limit, an encrypted zip member) or it is "
             "malformed (a notebook that is not JSON was scanned as plain text): not known to be free of secrets.",
             Severity.LOW, _SCOPE_REFS),
        Rule(UNREADABLE, "File could not be read",
             "The file could not be read (permissions, an I/O error), so it was not scanned: that is not a pass.",
             Severity.MEDIUM, _SCOPE_REFS),
        Rule(ALLOWLIST_EXPIRED, "Allowlist entry expired",
             "An allowlist entry is past its `expires` date and no longer suppresses anything. Renew it with a "
             "reason, or remove the secret.", Severity.LOW, _SCOPE_REFS),
        Rule(SKIPPED, "Path skipped",
             "A symbolic link out of the scanned folder was not followed; scan its target directly if it belongs "
             "to the project.", Severity.INFO, _SCOPE_REFS),
    )
}
register_rules(*RULES.values())


def finding(rule_id: str, target: str, message: str, *, severity: Severity | None = None,
            **evidence: object) -> Finding:
    """A finding of one of the secret scanner's rules, at the rule's severity unless given (no location)."""
    return RULES[rule_id].finding(target, message, severity=severity, **evidence)

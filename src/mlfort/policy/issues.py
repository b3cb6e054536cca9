"""What a policy check reports: one PolicyIssue per problem, the rule ids they carry, and PolicyError."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlfort.errors import InputError
from mlfort.report import Rule, Severity

# Stable rule ids; never reuse one for another meaning (see docs/policy.md for the full table).
YAML_UNREADABLE = "MLF-POL-001"
YAML_HOSTILE = "MLF-POL-002"
YAML_DUPLICATE_KEY = "MLF-POL-003"
YAML_UNSUPPORTED = "MLF-POL-004"
SCHEMA_UNKNOWN_KEY = "MLF-POL-005"
SCHEMA_MISSING_KEY = "MLF-POL-006"
SCHEMA_BAD_VALUE = "MLF-POL-007"
UNDEFINED_REFERENCE = "MLF-POL-008"
RESIDENCY_VIOLATION = "MLF-POL-009"
WILDCARD_PERMISSION = "MLF-POL-010"
OUTSIDE_STORAGE = "MLF-POL-011"
SIGNER_KEY_MISSING = "MLF-POL-012"
SIGNER_KEY_INVALID = "MLF-POL-013"
KEY_SERVICE_MISFIT = "MLF-POL-014"

RULES: tuple[Rule, ...] = (
    Rule(
        YAML_UNREADABLE,
        "Policy file is not a readable YAML mapping",
        "The file is not UTF-8 text, has a YAML syntax error, holds several documents, is empty, or its root "
        "is not a mapping. Fix the file at the reported line and column.",
    ),
    Rule(
        YAML_HOSTILE,
        "Policy file refused as hostile",
        "The document expands past the alias budget or nests deeper than the depth limit (a 'billion laughs' "
        "style document). A real policy never needs this; write the values out.",
        Severity.HIGH,
        ("https://en.wikipedia.org/wiki/Billion_laughs_attack",),
    ),
    Rule(
        YAML_DUPLICATE_KEY,
        "Duplicate key in a policy mapping",
        "YAML parsers silently keep the last of two equal keys, so the policy would not say what it seems to "
        "say. Remove or merge one of them.",
    ),
    Rule(
        YAML_UNSUPPORTED,
        "Unsupported YAML construct in a policy",
        "Only plain strings, numbers, booleans, null, mappings with string keys and lists are allowed. Tags "
        "such as !!python/object, merge keys (<<) and non-string keys are refused.",
    ),
    Rule(
        SCHEMA_UNKNOWN_KEY,
        "Unknown key in a policy",
        "The key is not part of the policy schema; fix the typo or remove it (docs/policy.md lists every field).",
    ),
    Rule(SCHEMA_MISSING_KEY, "Required policy key is missing", "Add the key named in the message."),
    Rule(
        SCHEMA_BAD_VALUE,
        "Policy value has the wrong type or form",
        "Change the value to what the message says is expected (docs/policy.md lists every field).",
    ),
    Rule(
        UNDEFINED_REFERENCE,
        "Policy refers to something it does not define",
        "A role, dataset, model, environment, keyring or identity provider is named but not defined. Define it "
        "or fix the name; an undefined name would grant nothing, which is rarely what was meant.",
    ),
    Rule(
        RESIDENCY_VIOLATION,
        "Data declared to live outside its residency",
        "A dataset or model has a location in an environment whose jurisdiction is not in its residency list. "
        "Remove the location or (if the law allows) widen the residency.",
        Severity.HIGH,
        ("GDPR Art. 44-49 (transfers of personal data)",),
    ),
    Rule(
        WILDCARD_PERMISSION,
        "Wildcard permission in a role",
        "`kind:*` grants every verb on every resource of a kind, including verbs added later. Prefer listing "
        "the verbs the role needs.",
        Severity.MEDIUM,
    ),
    Rule(
        OUTSIDE_STORAGE,
        "Location outside its environment's storage roots",
        "A dataset or model is declared to live in an environment at a path or bucket that is not under any of "
        "the environment's `storage` roots. Fix the location, or add the root to the environment.",
    ),
    Rule(
        SIGNER_KEY_MISSING,
        "Signer key file not found",
        "A `signers` entry names a public key file that does not exist (relative paths are read from the "
        "policy file's folder). Verification against this policy fails until it exists: create or copy the "
        "key there (mlfort keys create-signing --out keys --name NAME).",
        Severity.MEDIUM,
    ),
    Rule(
        SIGNER_KEY_INVALID,
        "Signer key is not a usable public key",
        "A `signers` entry is not an elliptic-curve public key (P-256, P-384 or P-521) in PEM form, or is a "
        "private key. Replace it with the signer's public key.",
    ),
    Rule(
        KEY_SERVICE_MISFIT,
        "Environment's key service may not protect data that lives there",
        "A dataset or model lives in an environment whose key_service keyring is held outside the data's "
        "residency (pii and confidential data), or whose `classifications` leave out the data's classification: "
        "`mlfort encrypt` would refuse it there (MLF-ENC-002/003). Give the environment a fitting keyring, or "
        "move the data.",
        Severity.HIGH,
        ("GDPR Art. 44-49 (transfers of personal data)",),
    ),
)


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem found in a policy file, with where it is and what was expected."""

    rule_id: str
    """One of the MLF-POL-* ids above."""
    message: str
    """What is wrong and what is expected, e.g. "expected one of public, ...; got 'secret'"."""
    file: str
    """The policy file as the user named it."""
    key: str = ""
    """Dotted path of the offending key, e.g. `datasets.churn.classification` (empty for whole-file issues)."""
    line: int | None = None
    """1-based line."""
    column: int | None = None
    """1-based column."""
    severity: Severity = Severity.HIGH
    """HIGH for errors (the policy is refused); lower for warnings (the policy still loads)."""

    @property
    def is_error(self) -> bool:
        """True when this issue makes the policy invalid (warnings do not)."""
        return self.severity.at_least(Severity.HIGH)

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message} [{self.rule_id}]"


class PolicyError(InputError):
    """The policy file was read but is not a valid policy. Carries every issue found, not just the first."""

    def __init__(self, file: str, issues: Iterable[PolicyIssue]) -> None:
        self.file = file
        self.issues: tuple[PolicyIssue, ...] = tuple(issues)
        count = len(self.issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"invalid policy {file} ({count} error{'s' if count != 1 else ''}):\n{lines}")

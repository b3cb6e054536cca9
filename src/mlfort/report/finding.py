"""The Finding: what every check, scan and verification in mlfort returns."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


class Severity(enum.StrEnum):
    """How bad a finding is. Ordered: INFO < LOW < MEDIUM < HIGH < CRITICAL."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for INFO up to 4 for CRITICAL, for comparisons and `--fail-on`."""
        return _RANK[self]

    def at_least(self, other: Severity) -> bool:
        """True when this severity is `other` or worse."""
        return self.rank >= other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a severity name, case-insensitively; raise ValueError naming the choices."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of: {choices}") from None


_RANK = {s: i for i, s in enumerate(Severity)}


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a text file a finding points (1-based line and column), for SARIF regions and editors."""

    path: str
    """The file, as given by the user (relative paths stay relative)."""
    line: int | None = None
    """1-based line, when known."""
    column: int | None = None
    """1-based column, when known."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A kind of finding: its stable id and the text that explains it once, for every finding of that kind."""

    id: str
    """Stable id such as `MLF-ART-002`; never reused for another meaning."""
    title: str
    """One line: what is wrong."""
    help: str = ""
    """What it means and how to fix it, in a few sentences."""
    default_severity: Severity = Severity.HIGH
    """The severity findings of this rule usually carry."""
    references: tuple[str, ...] = ()
    """Standards and docs: OWASP ML Top 10, MITRE ATLAS, CIS, AWS Security Hub control ids, URLs."""

    def finding(self, target: str, message: str, *, severity: Severity | None = None,
                **evidence: object) -> Finding:
        """A finding of this rule: its severity unless given, its help as the remediation, its references; evidence
        that is None is left out."""
        return Finding(rule_id=self.id, severity=severity or self.default_severity, target=target, message=message,
                       evidence={k: v for k, v in evidence.items() if v is not None}, remediation=self.help,
                       references=self.references)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or one fact worth reporting) about one target."""

    rule_id: str
    """The id of the Rule this finding is an instance of."""
    severity: Severity
    """How bad it is; `--fail-on` compares against this."""
    target: str
    """What it is about: a path, an ARN, a URL, a policy key."""
    message: str
    """One or two sentences a person can act on, naming the target."""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """Facts behind the finding (expected and actual digests, the offending value, ...). JSON-serialisable,
    and never a secret: redact before putting anything here."""
    remediation: str = ""
    """What to do about it."""
    references: tuple[str, ...] = ()
    """Standards and docs that back the finding, beyond those of its rule."""
    location: Location | None = None
    """Line and column in a text file, when the finding points into one."""

    def __post_init__(self) -> None:
        # Frozen all the way down: a finding handed to a renderer cannot be changed under it.
        object.__setattr__(self, "evidence", MappingProxyType(dict(self.evidence)))
        object.__setattr__(self, "references", tuple(self.references))
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity.parse(str(self.severity)))

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict with a stable key order."""
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "target": self.target,
            "message": self.message,
            "evidence": dict(self.evidence),
            "remediation": self.remediation,
            "references": list(self.references),
        }
        if self.location is not None:
            out["location"] = {
                "path": self.location.path,
                "line": self.location.line,
                "column": self.location.column,
            }
        return out


_RULES: dict[str, Rule] = {}


def register_rules(*rules: Rule) -> None:
    """Make rules known to the renderers (SARIF lists them in `tool.driver.rules`). Ids must be unique."""
    for rule in rules:
        known = _RULES.get(rule.id)
        if known is not None and known != rule:
            raise ValueError(f"rule id {rule.id} registered twice with different meanings")
        _RULES[rule.id] = rule


def rule(rule_id: str) -> Rule | None:
    """The registered Rule with this id, or None."""
    return _RULES.get(rule_id)


def worst(findings: list[Finding] | tuple[Finding, ...]) -> Severity | None:
    """The highest severity among findings, or None when there are none."""
    if not findings:
        return None
    return max((f.severity for f in findings), key=lambda s: s.rank)


def exceeds(findings: list[Finding] | tuple[Finding, ...], threshold: Severity) -> bool:
    """True when any finding is at or above `threshold` (the `--fail-on` test)."""
    return any(f.severity.at_least(threshold) for f in findings)

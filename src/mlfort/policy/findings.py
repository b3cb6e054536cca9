"""Policy issues as Findings, so `mlfort policy validate` renders through the shared report renderers."""

from __future__ import annotations

from collections.abc import Iterable

from mlfort.policy.issues import RULES, PolicyIssue
from mlfort.report import Finding, Location, register_rules, rule

register_rules(*RULES)


def issue_to_finding(issue: PolicyIssue) -> Finding:
    """One Finding for one issue: target is `file` or `file#dotted.key`, location is file:line:column."""
    known = rule(issue.rule_id)
    return Finding(
        rule_id=issue.rule_id,
        severity=issue.severity,
        target=f"{issue.file}#{issue.key}" if issue.key else issue.file,
        message=issue.message,
        remediation=known.help if known is not None else "",
        location=Location(issue.file, issue.line, issue.column),
    )


def issues_to_findings(issues: Iterable[PolicyIssue]) -> list[Finding]:
    """Findings for issues, in file order (issues without a line last)."""
    ordered = sorted(issues, key=lambda i: (i.line is None, i.line or 0, i.column or 0))
    return [issue_to_finding(issue) for issue in ordered]

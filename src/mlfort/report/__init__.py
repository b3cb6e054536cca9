"""Findings and the renderers that turn them into a terminal table, JSON and SARIF 2.1.0."""

from mlfort.report.finding import (
    Finding,
    Location,
    Rule,
    Severity,
    exceeds,
    register_rules,
    rule,
    worst,
)

__all__ = ["Finding", "Location", "Rule", "Severity", "exceeds", "register_rules", "rule", "worst"]

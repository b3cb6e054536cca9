"""What the dependency, secret and PII scanners return: findings plus one line saying what was looked at."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlfort.report import Finding


@dataclass(frozen=True)
class ScanResult:
    """Findings of one scanner run and a one-line summary ("checked 42 packages in 3 files against ...")."""

    findings: tuple[Finding, ...]
    summary_text: str
    counts: dict[str, int] = field(default_factory=dict)
    """What was looked at, by kind (files, packages, columns, rows...), for JSON output and tests."""

    def summary(self) -> str:
        """The one-line summary (the same call as the model scanner's report)."""
        return self.summary_text

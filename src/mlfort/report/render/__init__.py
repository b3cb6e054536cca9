"""Turn Findings into text: one `Renderer` interface, one file per format (table, json, sarif), `render()`.

Every renderer sees the findings in the same deterministic order (worst first, then target), so two runs over
the same inputs give byte-identical reports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from mlfort.errors import InputError
from mlfort.report.finding import Finding, Severity

FORMATS: tuple[str, ...] = ("table", "json", "sarif")
"""The format names `render()` accepts, as the CLI's `--format` spells them."""


class Renderer(ABC):
    """Turns a list of findings into one complete document (a table, a JSON object, a SARIF log)."""

    @abstractmethod
    def render(self, findings: Sequence[Finding], *, title: str = "", summary: str = "") -> str:
        """The whole document as text, ending with a newline.

        `title` names what was checked ("artifact verification"); `summary` is one line a command adds
        ("3 files checked against manifest.json").
        """


def render(
    findings: Sequence[Finding],
    fmt: str,
    *,
    title: str = "",
    summary: str = "",
    color: bool = False,
) -> str:
    """Render `findings` as `fmt` (one of FORMATS). `color` only affects the table.

    Raises InputError (exit 2) for an unknown format.
    """
    return renderer_for(fmt, color=color).render(findings, title=title, summary=summary)


def renderer_for(fmt: str, *, color: bool = False) -> Renderer:
    """The Renderer for a format name; raises InputError naming the choices when there is none."""
    # Imported here, not at the top: each implementation imports this module for Renderer.
    from mlfort.report.render.json import JsonRenderer
    from mlfort.report.render.sarif import SarifRenderer
    from mlfort.report.render.table import TableRenderer

    name = str(fmt).strip().lower()
    if name == "table":
        return TableRenderer(color=color)
    if name == "json":
        return JsonRenderer()
    if name == "sarif":
        return SarifRenderer()
    raise InputError(f"unknown output format {fmt!r}; expected one of: {', '.join(FORMATS)}")


def worst_first(findings: Sequence[Finding]) -> list[Finding]:
    """Findings sorted worst severity first, then by target, rule id, location and message (deterministic)."""

    def key(f: Finding) -> tuple[Any, ...]:
        loc = f.location
        where = (loc.path, loc.line or 0, loc.column or 0) if loc is not None else ("", 0, 0)
        return (-f.severity.rank, f.target, f.rule_id, where, f.message)

    return sorted(findings, key=key)


def severity_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """How many findings of each severity, worst first, every severity present (zeros too), then "total"."""
    counts = {s.value: 0 for s in sorted(Severity, key=lambda s: -s.rank)}
    for f in findings:
        counts[f.severity.value] += 1
    counts["total"] = len(findings)
    return counts


__all__ = ["FORMATS", "Renderer", "render", "renderer_for", "severity_counts", "worst_first"]

"""The terminal table: findings worst first, severity coloured, long evidence cut short (JSON has it all)."""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections.abc import Mapping, Sequence
from io import StringIO
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlfort.report.finding import Finding, Severity
from mlfort.report.render import Renderer, severity_counts, worst_first

PLAIN_WIDTH = 120
"""Width of the table without colour (files, pipes, tests), so the output does not depend on a terminal."""

EVIDENCE_VALUE_CHARS = 48
"""Longest evidence value shown in the table before it is cut with an ellipsis."""

EVIDENCE_ITEMS = 6
"""Most evidence entries shown per finding; the rest are counted, not shown."""

SEVERITY_STYLE: Mapping[Severity, str] = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with control, format and surrogate characters shown as `\\x..`/`\\u....` escapes.

    Findings carry attacker-chosen text (file names, model metadata). Written raw, an ESC could drive the
    terminal, a right-to-left override could make the text read differently from what it is.
    """
    out = []
    for ch in text:
        if keep_newlines and ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") and ch != "\t":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif ch == "\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def shorten(text: str, limit: int = EVIDENCE_VALUE_CHARS) -> str:
    """`text` cut to at most `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evidence_lines(evidence: Mapping[str, Any]) -> str:
    """Evidence as `key: value` lines, each value shortened, at most EVIDENCE_ITEMS of them."""
    lines = []
    for key, value in list(evidence.items())[:EVIDENCE_ITEMS]:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        lines.append(f"{printable(shorten(str(key), 24))}: {printable(shorten(shown))}")
    if len(evidence) > EVIDENCE_ITEMS:
        lines.append(f"(+{len(evidence) - EVIDENCE_ITEMS} more; see --format json)")
    return "\n".join(lines)


def where(finding: Finding) -> str:
    """The target, followed by `path:line:column` when the finding has a location in another file."""
    target = printable(finding.target)
    loc = finding.location
    if loc is None:
        return target
    spot = printable(loc.path)
    if loc.line is not None:
        spot += f":{loc.line}"
        if loc.column is not None:
            spot += f":{loc.column}"
    if loc.path == finding.target:
        return spot
    return f"{target}\n{spot}" if target else spot


def counts_line(findings: Sequence[Finding]) -> str:
    """`2 high, 1 low (3 findings)`, or `no findings`."""
    counts = severity_counts(findings)
    total = counts.pop("total")
    if not total:
        return "no findings"
    parts = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    return f"{parts} ({total} finding{'s' if total != 1 else ''})"


class TableRenderer(Renderer):
    """A rich table for people. With `color=False` the text is plain (no ANSI escapes), PLAIN_WIDTH wide."""

    def __init__(self, *, color: bool = False, width: int | None = None) -> None:
        self.color = color
        if width is None:
            width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns if color else PLAIN_WIDTH
        self.width = max(width, 40)

    def render(self, findings: Sequence[Finding], *, title: str = "", summary: str = "") -> str:
        """The title, the table (or a "no findings" line), the summary line and the counts."""
        buffer = StringIO()
        console = Console(
            file=buffer,
            width=self.width,
            force_terminal=self.color,
            no_color=not self.color,
            color_system="auto" if self.color else None,
            highlight=False,
            emoji=False,
            markup=False,
            legacy_windows=False,
        )
        heading = printable(title) if title else "mlfort findings"
        if not findings:
            console.print(Text(heading, style="bold"))
            console.print(Text("No findings.", style="green"))
        else:
            console.print(self._table(findings, heading))
        if summary:
            console.print(Text(printable(summary)))
        if findings:
            console.print(Text(counts_line(findings), style="bold"))
        text = buffer.getvalue()
        if not self.color:
            # rich pads lines to the console width; plain text for files should not carry that padding.
            text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
        return text

    def _table(self, findings: Sequence[Finding], heading: str) -> Table:
        table = Table(
            title=Text(heading, style="bold"),
            title_justify="left",
            box=box.ROUNDED if self.color else box.ASCII,
            show_lines=True,
            expand=False,
        )
        table.add_column("Severity", no_wrap=True)
        table.add_column("Rule", no_wrap=True)
        table.add_column("Target", overflow="fold", max_width=max(self.width // 4, 20))
        table.add_column("Finding", overflow="fold", ratio=3)
        table.add_column("Evidence", overflow="fold", ratio=2)
        for f in worst_first(findings):
            # Text objects, never markup strings: a "[bold]" in a file name is text, not styling.
            message = Text(printable(f.message, keep_newlines=True))
            if f.remediation:
                message.append("\nFix: ", style="bold")
                message.append(printable(f.remediation, keep_newlines=True))
            table.add_row(
                Text(f.severity.value.upper(), style=SEVERITY_STYLE[f.severity]),
                Text(printable(f.rule_id)),
                Text(where(f)),
                message,
                Text(evidence_lines(f.evidence), style="dim"),
            )
        return table

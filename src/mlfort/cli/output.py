"""The options every findings-producing command shares, and the one place findings leave the program."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlfort.report import Finding, Severity, exceeds

if TYPE_CHECKING:
    from mlfort.policy import Policy


class OutputFormat(StrEnum):
    """How findings are written."""

    table = "table"
    json = "json"
    sarif = "sarif"


FORMAT_OPTION = typer.Option(
    OutputFormat.table, "--format", "-f", help="table for people, json for scripts, sarif for CI code scanning."
)
OUTPUT_OPTION = typer.Option(
    None, "--output", "-o", help="Write the report to this file instead of standard output.", dir_okay=False
)
FAIL_ON_OPTION = typer.Option(
    "low",
    "--fail-on",
    help="Exit 1 when any finding is at or above this severity: info, low, medium, high, critical.",
)


def parse_fail_on(text: str) -> Severity:
    """Parse `--fail-on`, turning a bad value into a usage error (exit 2)."""
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fail-on") from None


def emit(
    findings: list[Finding],
    *,
    fmt: OutputFormat,
    output: Path | None,
    fail_on: str,
    title: str,
    summary: str = "",
) -> int:
    """Render findings in `fmt` to `output` (or stdout) and return the exit code: 1 if any reaches `fail_on`."""
    from mlfort.report.render import render

    threshold = parse_fail_on(fail_on)
    text = render(findings, fmt.value, title=title, summary=summary, color=output is None and sys.stdout.isatty())
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        if not text.endswith("\n"):
            sys.stdout.write("\n")
    return 1 if exceeds(findings, threshold) else 0


def load_policy_option(path: Path | None) -> tuple[Policy | None, Path]:
    """The policy from --policy, else the deployed one (MLFORT_POLICY), with the folder its relative paths start
    from; (None, cwd) when there is none."""
    from mlfort import settings

    chosen = path or settings.deployed_policy()
    if chosen is None:
        return None, Path.cwd()
    from mlfort.policy import load_policy

    return load_policy(chosen), chosen.resolve().parent

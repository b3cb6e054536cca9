"""`mlfort policy ...` and `mlfort init`: check a policy file, or write the example one."""

from __future__ import annotations

from pathlib import Path

import typer

from mlfort.cli.output import FAIL_ON_OPTION, FORMAT_OPTION, OUTPUT_OPTION, OutputFormat, emit

app = typer.Typer(
    help=(
        "Work with the policy file (mlfort.yaml).\n\n"
        "Example:\n\n"
        "  mlfort policy validate mlfort.yaml --format sarif -o policy.sarif"
    ),
    no_args_is_help=True,
)


@app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="The policy file to check, e.g. mlfort.yaml.", dir_okay=True),
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path | None = OUTPUT_OPTION,
    fail_on: str = FAIL_ON_OPTION,
) -> None:
    """Check a policy file: safe YAML, the schema, and every cross-reference (roles, datasets, models,
    environments, keyrings, residency). Each problem is reported with file:line:column and the key.

    Exit codes: 0 valid; 1 problems at or above --fail-on (errors are high, wildcard permissions medium);
    2 the file cannot be read (missing, not a file, over 5 MiB).

    Example: mlfort policy validate mlfort.yaml --format json
    """
    # Imported here so `mlfort --help` does not pay for pydantic.
    from mlfort.policy import check_policy_file
    from mlfort.policy.findings import issues_to_findings

    report = check_policy_file(file)
    findings = issues_to_findings(report.issues)
    if report.policy is not None:
        summary = report.policy.summary()
        warnings = len(report.issues)
        if warnings:
            summary += f" ({warnings} warning{'s' if warnings != 1 else ''})"
    else:
        errors = len(report.errors)
        warnings = len(report.issues) - errors
        summary = f"invalid: {errors} error{'s' if errors != 1 else ''}"
        if warnings:
            summary += f", {warnings} warning{'s' if warnings != 1 else ''}"
    code = emit(findings, fmt=fmt, output=output, fail_on=fail_on, title=f"policy {file}", summary=summary)
    raise typer.Exit(code)


def init(
    out: Path = typer.Option(
        Path("mlfort.yaml"), "--out", "-o", help="Where to write the example policy.", dir_okay=False
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite the file if it exists."),
) -> None:
    """Write a commented example policy (an on-prem EU cluster plus AWS eu-central-1) to start from.

    An existing file is never overwritten without --force (exit 2).

    Example: mlfort init --out mlfort.yaml && mlfort policy validate mlfort.yaml
    """
    from mlfort.policy import write_example_policy

    written = write_example_policy(out, force=force)
    typer.echo(
        f"wrote {written}; edit it, then check it with: mlfort policy validate {written}\n"
        "It names two signer keys (keys/release.pub, keys/data-steward.pub beside it); make them with:\n"
        f"  mlfort keys create-signing --out {written.parent / 'keys'} --name release"
    )

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
    record: bool = typer.Option(
        None, "--record/--no-record", help="Record the validation in the ledger. Default: only when FILE is the "
        "deployed policy (MLFORT_POLICY), so checking drafts in CI leaves no trace."
    ),
    ledger: str = typer.Option(None, "--ledger", help="Ledger URL when recording (default: MLFORT_LEDGER_URL, "
                               "the policy's own ledger.url, then $MLFORT_HOME/ledger.db)."),
) -> None:
    """Check a policy file: safe YAML, the schema, and every cross-reference (roles, datasets, models,
    environments, keyrings, residency). Each problem is reported with file:line:column and the key.

    Validating the deployed policy (MLFORT_POLICY, or --record) appends a `policy.validate` event with the file's
    SHA-256 to the ledger; if that cannot be recorded the command fails (exit 2).

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
    if record is None:
        record = _is_deployed(file)
    if record:
        _record_validation(file, valid=report.policy is not None, errors=len(report.errors),
                           warnings=len(report.issues) - len(report.errors), ledger=ledger)
    raise typer.Exit(code)


def _is_deployed(file: Path) -> bool:
    from mlfort import settings

    deployed = settings.deployed_policy()
    try:
        return deployed is not None and deployed.exists() and file.exists() and deployed.samefile(file)
    except OSError:
        return False


def _record_validation(file: Path, *, valid: bool, errors: int, warnings: int, ledger: str | None) -> None:
    """Append `policy.validate` with the file's digest; the ledger is the policy's own when it is valid."""
    import hashlib

    from mlfort.cli import audit
    from mlfort.ledger import ArtifactRef

    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    ref = ArtifactRef(digest=f"sha256:{digest}", name=file.name, kind="policy", uri=str(file.resolve()))
    audit.record(audit.event(
        "policy.validate", f"policy:{file.resolve()}", outcome="success" if valid else "failure",
        reason=None if valid else f"{errors} error(s)", reads=(ref,),
        details={"errors": errors, "warnings": warnings},
    ), ledger=ledger, policy=file if valid else None)


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

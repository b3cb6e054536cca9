"""The `mlfort` command line: one typer app, one module per command group. Parses, calls one function, renders.

Heavy imports (pydantic, cryptography, scikit-learn) happen inside the commands, so `mlfort --help` and the
hashing hot path start fast.
"""

from __future__ import annotations

import sys

import typer

from mlfort import __version__
from mlfort.cli import artifacts, demo, keys, ledger, lineage, policy, scan
from mlfort.errors import MlfortError

app = typer.Typer(
    name="mlfort",
    help=(
        "Zero-trust ML pipelines from one policy file (mlfort.yaml).\n\n"
        "Examples:\n\n"
        "  mlfort demo                                   # the whole story in a temp dir\n\n"
        "  mlfort init                                   # write an example mlfort.yaml\n\n"
        "  mlfort policy validate mlfort.yaml\n\n"
        "  mlfort keys create-signing --out keys/\n\n"
        "  mlfort artifacts sign models/churn --key keys/signing.key\n\n"
        "  mlfort artifacts verify models/churn --key keys/signing.pub\n\n"
        "Exit codes: 0 ok; 1 findings at or above --fail-on, or a verification failed; 2 usage or input error."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlfort {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Zero-trust ML pipelines from one policy file."""


app.add_typer(policy.app, name="policy")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(keys.app, name="keys")
app.add_typer(ledger.app, name="ledger")
app.add_typer(lineage.app, name="lineage")
app.add_typer(scan.app, name="scan")
app.command("init")(policy.init)
app.command("demo")(demo.demo)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `mlfort` console script.

    click (standalone mode) turns usage errors into exit 2 and typer.Exit into its code; mlfort's own errors
    become one `error:` line on stderr and their exit code (2 for bad input, 1 for a failed verification).
    """
    try:
        app(args=argv)
    except MlfortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)

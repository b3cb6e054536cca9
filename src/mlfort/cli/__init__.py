"""The `mlfort` command line: one typer app, one module per command group. Parses, calls one function, renders.

Heavy imports (pydantic, cryptography, scikit-learn) happen inside the commands, and `main` loads only the command
group that is asked for (`mlfort scan ...` never imports the ledger's or the artifacts' modules), so the hot paths
start fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from mlfort import __version__
from mlfort.errors import MlfortError

GROUPS = ("policy", "artifacts", "keys", "ledger", "lineage", "scan")
"""Command groups, each the `app` of the module of the same name under mlfort.cli."""

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
        "  mlfort encrypt data/customers.csv data/customers.csv.mlfe --dataset customers\n\n"
        "  mlfort decrypt data/customers.csv.mlfe /scratch/customers.csv --environment onprem\n\n"
        "  mlfort scan all . --policy mlfort.yaml --format sarif -o mlfort.sarif\n\n"
        "  mlfort sbom .venv -o sbom.cdx.json\n\n"
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


_registered: set[str] = set()


def register(only: str | None = None) -> typer.Typer:
    """Add the command groups (or just `only`) and the top-level commands to `app`; return it."""
    for name in GROUPS if only is None else (only,):
        if name not in _registered:
            app.add_typer(importlib.import_module(f"mlfort.cli.{name}").app, name=name)
            _registered.add(name)
    if only is None and "init" not in _registered:
        from mlfort.cli import crypto, demo, policy, sbom

        app.command("init")(policy.init)
        app.command("demo")(demo.demo)
        app.command("encrypt")(crypto.encrypt)
        app.command("decrypt")(crypto.decrypt)
        app.command("rewrap")(crypto.rewrap)
        app.command("sbom")(sbom.sbom)
        _registered.add("init")
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `mlfort` console script.

    click (standalone mode) turns usage errors into exit 2 and typer.Exit into its code; mlfort's own errors
    become one `error:` line on stderr and their exit code (2 for bad input, 1 for a failed verification).
    """
    args = sys.argv[1:] if argv is None else argv
    first = next((a for a in args if not a.startswith("-")), None)
    try:
        register(first if first in GROUPS else None)(args=args)
    except MlfortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)

"""`mlfort lineage ...`: which data trained which model, and where it runs (read from the ledger)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help=(
        "Lineage from the ledger: dataset digests -> run -> model digest -> deployment.\n\n"
        "Example:\n\n"
        "  mlfort lineage show churn-model --format mermaid"
    ),
    no_args_is_help=True,
)

"""`mlfort ledger ...`: the tamper-evident audit log."""

from __future__ import annotations

import typer

app = typer.Typer(
    help=(
        "The tamper-evident audit log (RFC 6962 Merkle tree, signed checkpoints).\n\n"
        "Example:\n\n"
        "  mlfort ledger verify"
    ),
    no_args_is_help=True,
)

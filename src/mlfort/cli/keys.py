"""`mlfort keys ...`: signing keys now; keyrings for envelope encryption come later."""

from __future__ import annotations

import os
from pathlib import Path

import typer

app = typer.Typer(
    help="Create and manage keys.\n\nExample:\n\n  mlfort keys create-signing --out keys/",
    no_args_is_help=True,
)


@app.command("create-signing")
def create_signing(
    out: Path = typer.Option(..., "--out", "-o", help="Directory for NAME.key (0600) and NAME.pub."),
    name: str = typer.Option("signing", "--name", help="Base name of the two files."),
    password_env: str = typer.Option(
        None, "--password-env", help="Encrypt the private key with the passphrase in this environment variable."
    ),
) -> None:
    """Make an EC P-256 key pair for signing models and datasets. The private key file is created 0600.

    Keys made by openssl work too: openssl ecparam -name prime256v1 -genkey -noout -out signing.key

    Example: mlfort keys create-signing --out keys/
    """
    from mlfort.crypto.signing_keys import create_signing_keypair

    password = None
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise typer.BadParameter(
                f"environment variable {password_env} is empty or unset", param_hint="--password-env"
            )
        password = value.encode()
    paths = create_signing_keypair(out, name=name, password=password)
    typer.echo(f"private key: {paths.private_key} (0600; keep it secret)\npublic key:  {paths.public_key}")

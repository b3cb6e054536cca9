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
    try:
        _record_key(paths.public_key)
    except Exception:
        # An unrecorded key must not be left to sign with: remove both halves, then report the ledger's error.
        for p in (paths.private_key, paths.public_key):
            p.unlink(missing_ok=True)
        raise
    typer.echo(f"private key: {paths.private_key} (0600; keep it secret)\npublic key:  {paths.public_key}")


def _record_key(public: Path) -> None:
    """Record `keys.create-signing` with the public key's hint (never the private key)."""
    from mlfort.cli import audit
    from mlfort.crypto.signing_keys import load_public_key, public_key_hint

    hint = public_key_hint(load_public_key(public))
    audit.record(audit.event("keys.create-signing", f"key:{hint}",
                             details={"public_key": str(public.resolve()), "algorithm": "ecdsa-p256"}))

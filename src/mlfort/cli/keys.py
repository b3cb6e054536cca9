"""`mlfort keys ...`: signing key pairs, and the keyrings of envelope encryption (create, rotate, list)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

app = typer.Typer(
    help="Create and manage keys: signing key pairs and the keyrings that wrap data keys.\n\nExamples:\n\n"
    "  mlfort keys create-signing --out keys/\n\n  mlfort keys create local --policy mlfort.yaml\n\n"
    "  mlfort keys rotate hsm --policy mlfort.yaml\n\n  mlfort keys list --policy mlfort.yaml",
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


KEYRING_POLICY_OPTION = typer.Option(
    None, "--policy", "-p", help="mlfort.yaml (default: MLFORT_POLICY). Without one, NAME is a local key file "
    "$MLFORT_HOME/keyrings/NAME.json.", dir_okay=False
)


def _keyring_spec(name: str, policy: Path | None) -> tuple[dict, Path, Path | None]:
    from mlfort.cli.crypto import _spec
    from mlfort.cli.output import load_policy_option

    loaded, base = load_policy_option(policy)
    return _spec(loaded, name), base, policy


@app.command("create")
def create_keyring(
    name: str = typer.Argument(..., help="The keyring's name under `keys:` in the policy."),
    policy: Path = KEYRING_POLICY_OPTION,
) -> None:
    """Make the key behind a keyring: a local key file (0600), an AES key inside the HSM token (non-extractable),
    or a KMS key (and its alias). Refuses to replace a key that exists. Recorded in the ledger (never the key).

    Example: mlfort keys create local --policy mlfort.yaml
    """
    from mlfort.cli import audit
    from mlfort.crypto.keyrings import create_keyring as create

    spec, base, policy_path = _keyring_spec(name, policy)
    keyring = create(name, spec, base)
    try:
        key_id = _current_key_id(keyring)
        audit.record(audit.event("keys.create", f"keyring:{name}",
                                 details={"kind": keyring.kind, "key_id": key_id}), policy=policy_path)
    finally:
        _close(keyring)
    typer.echo(f"keyring {name} ({keyring.kind}) created: {key_id}")


@app.command("rotate")
def rotate_keyring(
    name: str = typer.Argument(..., help="The keyring's name under `keys:` in the policy."),
    policy: Path = KEYRING_POLICY_OPTION,
) -> None:
    """Make a new key version current: new encryptions use it, files encrypted before still decrypt with the old
    versions, which stay. (`mlfort rewrap` does not need this; re-encrypt to move old files to the new version.)

    Example: mlfort keys rotate hsm --policy mlfort.yaml
    """
    from mlfort.cli import audit
    from mlfort.crypto.keyrings import open_keyring

    spec, base, policy_path = _keyring_spec(name, policy)
    keyring = open_keyring(name, spec, base)
    try:
        key_id = keyring.rotate()
        audit.record(audit.event("keys.rotate", f"keyring:{name}",
                                 details={"kind": keyring.kind, "key_id": key_id}), policy=policy_path)
    finally:
        _close(keyring)
    typer.echo(f"keyring {name} ({keyring.kind}) rotated: new encryptions use {key_id}")


@app.command("list")
def list_keyrings(
    policy: Path = typer.Option(None, "--policy", "-p", help="mlfort.yaml (default: MLFORT_POLICY).",
                                dir_okay=False),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """The policy's keyrings: type, where their keys are held, what they may protect, which environments use them.

    Example: mlfort keys list --policy mlfort.yaml
    """
    import json

    from mlfort.cli.output import load_policy_option
    from mlfort.crypto.rules import keyring_jurisdictions

    loaded, _ = load_policy_option(policy)
    if loaded is None:
        raise typer.BadParameter("give --policy (or set MLFORT_POLICY)", param_hint="--policy")
    rows = []
    for name, spec in sorted(loaded.keys.items()):
        rows.append({
            "name": name, "type": spec.type, "jurisdiction": list(keyring_jurisdictions(loaded, name)),
            "classifications": [c.value for c in spec.classifications] if spec.classifications else ["*"],
            "environments": sorted(e for e, env in loaded.environments.items() if env.key_service == name),
        })
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['name']:<16} {r['type']:<7} held in {','.join(r['jurisdiction']) or '?':<6} "
                   f"protects {','.join(r['classifications']):<32} used by {','.join(r['environments']) or '-'}")


def _current_key_id(keyring: object) -> str:
    current = getattr(keyring, "current_key_id", None)
    if callable(current):
        return str(current())
    version = getattr(keyring, "current_version", None)
    key_id_for = getattr(keyring, "key_id_for", None)
    if version is not None and callable(key_id_for):
        return str(key_id_for(version))
    return str(getattr(keyring, "key_id", "") or "")


def _close(keyring: object) -> None:
    close = getattr(keyring, "close", None)
    if callable(close):
        close()

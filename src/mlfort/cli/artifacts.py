"""`mlfort artifacts sign|verify`: signed manifests of models and datasets (OpenSSF model signing format)."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path

import typer

from mlfort.cli.output import FAIL_ON_OPTION, FORMAT_OPTION, OUTPUT_OPTION, OutputFormat, emit

app = typer.Typer(
    help=(
        "Sign and verify models and datasets: every file's digest in a signed manifest, interoperable with "
        "OpenSSF model signing (`model_signing sign key` / `verify key`).\n\n"
        "Example:\n\n"
        "  mlfort artifacts sign models/churn --key keys/signing.key\n\n"
        "  mlfort artifacts verify models/churn --key keys/signing.pub"
    ),
    no_args_is_help=True,
)


class HashChoice(StrEnum):
    sha256 = "sha256"
    blake3 = "blake3"
    blake2 = "blake2"


class ArtifactKind(StrEnum):
    model = "model"
    dataset = "dataset"
    other = "other"


class SignFormat(StrEnum):
    table = "table"
    json = "json"


def _password(password_file: Path | None) -> bytes | None:
    if password_file is not None:
        try:
            return password_file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {password_file}: {exc.strerror}") from None
    env = os.environ.get("MLFORT_KEY_PASSWORD")
    return env.encode() if env else None


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@app.command("sign")
def sign(
    path: Path = typer.Argument(..., help="The model or dataset: a file or a directory tree."),
    key: Path = typer.Option(..., "--key", "-k", help="EC private key, PEM (mlfort keys create-signing, or openssl)."),
    signature: Path = typer.Option(
        None, "--signature", "-s", help="Where to write the signature. Default: PATH/model.sig for a directory, "
        "PATH.sig for a file."
    ),
    hash_name: HashChoice = typer.Option(
        HashChoice.sha256, "--hash", help="Digest per file. sha256 (default) verifies with `model_signing verify key`; "
        "blake3 is parallel inside a file and 2x faster (model_signing verifies it through its Python API)."
    ),
    shard_size: int = typer.Option(
        None, "--shard-size", help="Hash files in shards of this many bytes (model-signing's `shards` method): "
        "uses every core even on one huge file.", min=1
    ),
    ignore_paths: list[str] = typer.Option(
        [], "--ignore-paths", help="Relative path to leave out (repeatable). Recorded in the signature."
    ),
    ignore_git_paths: bool = typer.Option(
        True, "--ignore-git-paths/--no-ignore-git-paths", help="Leave out .git, .github, .gitattributes, "
        ".gitignore (model_signing's default)."
    ),
    allow_symlinks: bool = typer.Option(
        False, "--allow-symlinks", help="Follow symlinks that stay inside the tree (never ones that leave it)."
    ),
    workers: int = typer.Option(None, "--workers", "-j", help="Hashing threads (default: one per core).", min=1),
    password_file: Path = typer.Option(
        None, "--password-file", help="File holding the key's passphrase (or set MLFORT_KEY_PASSWORD)."
    ),
    fmt: SignFormat = typer.Option(SignFormat.table, "--format", "-f", help="table or json."),
    name: str = typer.Option(None, "--name", help="The dataset or model name in the policy, for the ledger and "
                             "lineage (default: the folder or file name)."),
    kind: ArtifactKind = typer.Option(ArtifactKind.other, "--kind", help="model or dataset, for the ledger."),
    ledger: str = typer.Option(None, "--ledger", help="Ledger URL (default: MLFORT_LEDGER_URL, the deployed "
                               "policy's ledger.url, then $MLFORT_HOME/ledger.db)."),
) -> None:
    """Sign a model or dataset: hash every file in parallel and write a signed manifest. The signing is recorded
    in the ledger first; if it cannot be recorded, no signature is written (exit 2).

    Example: mlfort artifacts sign models/churn --key keys/signing.key --name churn-model --kind model
    """
    from mlfort.artifacts import canonical_hash, sign_artifact
    from mlfort.cli import audit
    from mlfort.cli.progress import byte_progress
    from mlfort.crypto.signing_keys import load_private_key, public_key_hint

    private = load_private_key(key, _password(password_file))
    label = name or path.resolve().name

    def record(manifest, sig_path: Path) -> None:
        ref = audit.artifact_ref(manifest.root_digest(), path, name=label, kind=kind.value)
        audit.record(audit.event(
            "artifacts.sign", f"{kind.value}:{label}", writes=(ref,),
            details={"signature": str(sig_path.resolve()), "hash": manifest.serialization.hash_type,
                     "method": manifest.serialization.method, "resources": len(manifest.resources),
                     "signer_key": public_key_hint(private.public_key())},
        ), ledger=ledger)

    with byte_progress(f"signing {path.name}") as (on_plan, advance):
        result = sign_artifact(
            path, private, signature=signature, hash_type=canonical_hash(hash_name.value), shard_size=shard_size,
            ignore_paths=tuple(ignore_paths), ignore_git_paths=ignore_git_paths, allow_symlinks=allow_symlinks,
            workers=workers, progress=advance, on_plan=on_plan, before_write=record,
        )
    ser = result.manifest.serialization
    if fmt is SignFormat.json:
        out = {
            "signature": str(result.signature),
            "model_name": result.manifest.model_name,
            "root_digest": {"sha256": result.manifest.root_digest()},
            "serialization": ser.to_dict(),
            "files": result.files,
            "bytes": result.bytes,
            "seconds": round(result.seconds, 3),
        }
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    rate = result.bytes / result.seconds / 1e6 if result.seconds > 0 else 0.0
    typer.echo(
        f"signed {result.files} file(s), {_human(result.bytes)}, {ser.hash_type} "
        f"({ser.method}) in {result.seconds:.2f} s ({rate:.0f} MB/s)\n"
        f"signature: {result.signature}\nroot digest: sha256:{result.manifest.root_digest()}"
    )


def _trusted_keys(keys: list[Path], policy: Path | None, name: str | None) -> list:
    """The public keys a signature may come from: --key files, plus the signers the policy lists for NAME."""
    from mlfort.crypto.signing_keys import load_public_key

    if (policy is None) != (name is None):
        raise typer.BadParameter("--policy and --artifact go together", param_hint="--policy/--artifact")
    trusted = [load_public_key(k) for k in keys]
    if policy is not None and name is not None:
        from mlfort.policy import load_policy
        from mlfort.policy.signers import trusted_signer_keys

        trusted += trusted_signer_keys(load_policy(policy), name, policy.parent)
    if not trusted:
        raise typer.BadParameter("give --key PUBLIC.pem, or --policy FILE --artifact NAME", param_hint="--key")
    return trusted


@app.command("verify")
def verify(
    path: Path = typer.Argument(..., help="The model or dataset to check: a file or a directory tree."),
    key: list[Path] = typer.Option(
        [], "--key", "-k", help="A trusted signer's EC public key, PEM (repeatable: any one of them may have signed)."
    ),
    policy: Path = typer.Option(
        None, "--policy", help="Trust the signers that this policy lists for --artifact (instead of, or beside, --key)."
    ),
    artifact: str = typer.Option(None, "--artifact", help="The dataset or model name in --policy."),
    signature: Path = typer.Option(
        None, "--signature", "-s", help="The signature. Default: PATH/model.sig for a directory, PATH.sig for a file."
    ),
    allow_unsigned_files: bool = typer.Option(
        False, "--allow-unsigned-files", help="Report files the signature does not cover as info instead of failing."
    ),
    require_hash: HashChoice = typer.Option(
        None, "--require-hash", help="Fail unless the signature uses this digest (downgrade protection)."
    ),
    workers: int = typer.Option(None, "--workers", "-j", help="Hashing threads (default: one per core).", min=1),
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = FAIL_ON_OPTION,
    name: str = typer.Option(None, "--name", help="The dataset or model name, for the ledger (default: --artifact, "
                             "else the folder or file name)."),
    kind: ArtifactKind = typer.Option(None, "--kind", help="model or dataset, for the ledger (default: from "
                                      "--policy, else other)."),
    ledger: str = typer.Option(None, "--ledger", help="Ledger URL (default: MLFORT_LEDGER_URL, the policy's "
                               "ledger.url, then $MLFORT_HOME/ledger.db)."),
) -> None:
    """Verify a model or dataset against its signature. Exit 0 only if every file matches; otherwise 1, with one
    finding per changed, added or removed file. The check and its outcome are recorded in the ledger; if that
    fails, the command fails (exit 2), whatever the verification found.

    Example: mlfort artifacts verify models/churn --key keys/signing.pub --format sarif -o verify.sarif

    Example: mlfort artifacts verify models/churn --policy mlfort.yaml --artifact churn-model
    """
    from mlfort.artifacts import canonical_hash, verify_artifact
    from mlfort.cli.progress import byte_progress

    public = _trusted_keys(key, policy, artifact)
    with byte_progress(f"verifying {path.name}") as (on_plan, advance):
        result = verify_artifact(
            path, public, signature=signature, allow_unsigned_files=allow_unsigned_files,
            require_hash=canonical_hash(require_hash.value) if require_hash else None, workers=workers,
            progress=advance, on_plan=on_plan,
        )
    if result.ok:
        assert result.manifest is not None
        summary = (
            f"verified: {result.files_checked} file(s), {_human(result.bytes_checked)} match {result.signature} "
            f"({result.manifest.serialization.hash_type}), signed by key {result.signer_hint[:16]}…, "
            f"in {result.seconds:.2f} s"
        )
    else:
        summary = f"FAILED: {path} does not match {result.signature}"
    # Recorded before anything is printed: a check that cannot be recorded must not look like a pass.
    _record_verify(result, path, name=name or artifact, kind=kind, policy=policy, ledger=ledger)
    code = emit(list(result.findings), fmt=fmt, output=output, fail_on=fail_on,
                title=f"mlfort artifacts verify {path}", summary=summary)
    if not result.ok:
        code = 1  # a failed verification is never a pass, whatever --fail-on says
    raise typer.Exit(code)


def _record_verify(result, path: Path, *, name: str | None, kind: ArtifactKind | None,
                   policy: Path | None, ledger: str | None) -> None:
    """Record a verification (passed or failed) in the ledger; raise LedgerError (exit 2) when it cannot be."""
    from mlfort.cli import audit

    label = name or path.resolve().name
    kind_name = kind.value if kind is not None else "other"
    if kind is None and policy is not None and name is not None:
        from mlfort.policy import load_policy

        loaded = load_policy(policy)
        kind_name = "dataset" if name in loaded.datasets else "model" if name in loaded.models else "other"
    reads = ()
    if result.manifest is not None:
        reads = (audit.artifact_ref(result.manifest.root_digest(), path, name=label, kind=kind_name),)
    failed = [f.rule_id for f in result.findings if f.severity.rank > 0]
    audit.record(audit.event(
        "artifacts.verify", f"{kind_name}:{label}", outcome="success" if result.ok else "failure",
        reason=None if result.ok else f"{len(failed)} problem(s): {', '.join(sorted(set(failed)))}",
        reads=reads, details={"signature": str(Path(result.signature).resolve()),
                              "signer_key": result.signer_hint or None, "files_checked": result.files_checked},
    ), ledger=ledger, policy=policy)

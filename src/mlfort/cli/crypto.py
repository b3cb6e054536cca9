"""`mlfort encrypt`, `mlfort decrypt`, `mlfort rewrap`: envelope encryption of datasets and models under the policy.

Each command checks the policy first (which keyrings may protect the data, where it may be opened), records what it
did in the ledger before the result appears at its final path, and never prints or records key material.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mlfort.cli.output import OutputFormat, emit, load_policy_option
from mlfort.errors import InputError, MlfortError

if TYPE_CHECKING:
    from mlfort.crypto.envelope import Header
    from mlfort.crypto.keyrings import Keyring
    from mlfort.crypto.rules import Asset
    from mlfort.policy import Policy
    from mlfort.report import Finding

POLICY_OPTION = typer.Option(
    None, "--policy", "-p", help="mlfort.yaml (default: MLFORT_POLICY). Without a policy, keyring NAME is the local "
    "key file $MLFORT_HOME/keyrings/NAME.json and no placement rules apply.", dir_okay=False
)
LEDGER_OPTION = typer.Option(None, "--ledger", help="Ledger URL (default: MLFORT_LEDGER_URL, the policy's ledger.url, "
                             "then $MLFORT_HOME/ledger.db).")
CONTEXT_OPTION = typer.Option(
    [], "--context", "-c", help="KEY=VALUE pair of the encryption context (repeatable). Bound to the file: "
    "decrypting must name the same pairs. Keys starting with mlfort: are set from --dataset/--model."
)
FORMAT = typer.Option(OutputFormat.table, "--format", "-f", help="table, json, or sarif (for policy refusals).")
FORCE_OPTION = typer.Option(False, "--force", help="Replace OUT if it exists.")


def _pairs(items: Sequence[str]) -> dict[str, str]:
    from mlfort.crypto.rules import check_user_context

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--context")
        if key in out:
            raise typer.BadParameter(f"context key {key!r} given twice", param_hint="--context")
        out[key] = value
    check_user_context(out)
    return out


def _spec(policy: Policy | None, name: str) -> dict[str, Any]:
    if policy is None:
        return {"type": "local"}
    found = policy.keys.get(name)
    if found is None:
        known = ", ".join(sorted(policy.keys)) or "none"
        raise InputError(f"keyring {name!r} is not in the policy (its keyrings: {known})")
    return found.settings()


@contextlib.contextmanager
def open_keyrings(names: Sequence[str], policy: Policy | None, base: Path, *,
                  tolerant: bool = False) -> Iterator[list[Keyring]]:
    """Open keyrings by name (from the policy, or local key files without one) and close them afterwards.

    `tolerant`: skip a keyring that cannot be opened here (no PIN set, no key file) as long as one other opens;
    used when any of a file's keyrings will do.
    """
    from mlfort.crypto.keyrings import open_keyring

    with contextlib.ExitStack() as stack:
        opened, problems = [], []
        for name in names:
            try:
                keyring = open_keyring(name, _spec(policy, name), base)
            except MlfortError as exc:
                if not tolerant:
                    raise
                problems.append(f"{name}: {exc}")
                continue
            close = getattr(keyring, "close", None)
            if callable(close):
                stack.callback(close)
            opened.append(keyring)
        if not opened and problems:
            raise InputError("no keyring of this file can be opened here: " + "; ".join(problems))
        yield opened


def _refuse(action: str, resource: str, findings: list[Finding], *, fmt: OutputFormat, ledger: str | None,
            policy_path: Path | None, environment: str | None = None, details: dict[str, Any] | None = None) -> None:
    """Record the denial, print the findings, exit 1."""
    from mlfort.cli import audit

    reason = "; ".join(f"{f.rule_id}: {f.message}" for f in findings)[:1000]
    audit.record(audit.event(action, resource, outcome="failure", decision="deny", reason=reason,
                             environment=environment, details=details or {}), ledger=ledger, policy=policy_path)
    code = emit(findings, fmt=fmt, output=None, fail_on="low", title=f"mlfort {action.split('.')[-1]}: refused")
    raise typer.Exit(code or 1)


def _failed(action: str, resource: str, exc: Exception, *, ledger: str | None, policy_path: Path | None,
            environment: str | None = None, details: dict[str, Any] | None = None) -> None:
    """Best-effort record of a failed encrypt/decrypt (the error itself is what the caller sees)."""
    from mlfort.cli import audit

    with contextlib.suppress(Exception):
        audit.record(audit.event(action, resource, outcome="failure", reason=str(exc)[:1000],
                                 environment=environment, details=details or {}), ledger=ledger, policy=policy_path)


def _resource(target: Asset | None, path: Path) -> str:
    return target.ref if target is not None else f"file:{path.resolve()}"


def _report(fmt: OutputFormat, verb: str, header: Header, extra: dict[str, Any]) -> None:
    info = {**header.describe(), **extra}
    if fmt is OutputFormat.table:
        rings = ", ".join(f"{k['name']} ({k['kind']})" for k in info["keyrings"])  # type: ignore[index]
        lines = [f"{verb} {extra.get('input')} -> {extra.get('output')}" if extra.get("output") else
                 f"{verb} {extra.get('input')}"]
        if "bytes" in extra:
            secs = extra.get("seconds") or 0
            rate = f" ({extra['bytes'] / secs / 1e6:.0f} MB/s)" if secs else ""
            lines.append(f"  {extra['bytes']:,} bytes in {secs:.2f} s{rate}")
        lines.append(f"  opens with: {rings}")
        if header.context:
            lines.append("  context: " + ", ".join(f"{k}={v}" for k, v in sorted(header.context.items())))
        lines.append(f"  message id: {header.message_id.hex()}")
        typer.echo("\n".join(lines))
    else:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")


def _frame_size(text: str) -> int:
    units = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20}
    raw = text.strip().lower()
    num = raw.rstrip("kmib")
    try:
        return int(num) * units[raw[len(num):]]
    except (ValueError, KeyError):
        raise typer.BadParameter(f"{text!r}: give bytes, or KiB/MiB such as 64KiB, 1MiB",
                                 param_hint="--frame-size") from None


def encrypt(
    src: Path = typer.Argument(..., help="The file to encrypt (a dataset file, a model file; tar a folder first).",
                               dir_okay=False),
    dst: Path = typer.Argument(..., help="Where to write the encrypted file (conventionally SRC.mlfe).",
                               dir_okay=False),
    keyring: list[str] = typer.Option(
        [], "--keyring", "-k", help="Keyring that may open the file (repeatable; any one of them opens it). Default "
        "with --dataset/--model: the key_service of every environment the data lives in."),
    dataset: str = typer.Option(None, "--dataset", help="The policy's dataset this file belongs to: its "
                                "classification and residency decide which keyrings may protect it."),
    model: str = typer.Option(None, "--model", help="The policy's model this file belongs to."),
    context: list[str] = CONTEXT_OPTION,
    frame_size: str = typer.Option("1MiB", "--frame-size", help="Plaintext bytes per authenticated frame."),
    policy: Path = POLICY_OPTION,
    ledger: str = LEDGER_OPTION,
    force: bool = FORCE_OPTION,
    fmt: OutputFormat = FORMAT,
) -> None:
    """Encrypt a file for one or more keyrings (AES-256-GCM frames; one data key wrapped once per keyring).

    The policy decides: pii and confidential data are refused (exit 1, rule named) with a keyring held outside
    their residency or not allowed for their classification. The encryption is recorded in the ledger before
    the file appears at DST.

    Example: mlfort encrypt data/customers.csv data/customers.csv.mlfe --dataset customers --policy mlfort.yaml
    """
    from mlfort.cli import audit
    from mlfort.cli.progress import byte_progress
    from mlfort.crypto.envelope import encrypt_file
    from mlfort.crypto.rules import asset, check_encrypt, default_keyrings

    size = _frame_size(frame_size)
    user_context = _pairs(context)
    loaded, base = load_policy_option(policy)
    target = asset(loaded, dataset=dataset, model=model) if loaded is not None else None
    if loaded is None and (dataset or model):
        raise InputError("--dataset/--model need the policy (--policy or MLFORT_POLICY)")
    names = list(dict.fromkeys(keyring)) or (default_keyrings(loaded, target) if loaded and target else [])
    if not names:
        raise InputError("name at least one --keyring (or a --dataset/--model whose environments have a key_service)")
    resource = _resource(target, src)
    if loaded is not None:
        findings = check_encrypt(loaded, names, target)
        if findings:
            _refuse("crypto.encrypt", resource, findings, fmt=fmt, ledger=ledger, policy_path=policy,
                    details={"keyrings": names, "input": str(src)})
    full_context = {**(target.context() if target else {}), **user_context}

    def record(header: Header) -> None:
        audit.record(audit.event("crypto.encrypt", resource, details={
            "input": str(src.resolve()), "output": str(dst.resolve()), "bytes": src.stat().st_size,
            **header.describe()}), ledger=ledger, policy=policy)

    started = time.perf_counter()
    with open_keyrings(names, loaded, base) as rings, byte_progress(f"encrypting {src.name}") as (plan, advance):
        with contextlib.suppress(OSError):
            plan(src.stat().st_size)
        try:
            header = encrypt_file(src, dst, rings, context=full_context, frame_size=size, overwrite=force,
                                  progress=advance, before_commit=record)
        except Exception as exc:
            if not isinstance(exc, InputError):
                _failed("crypto.encrypt", resource, exc, ledger=ledger, policy_path=policy)
            raise
    _report(fmt, "encrypted", header, {"input": str(src), "output": str(dst), "bytes": src.stat().st_size,
                                        "seconds": round(time.perf_counter() - started, 3)})


def decrypt(
    src: Path = typer.Argument(..., help="The encrypted file.", dir_okay=False),
    dst: Path = typer.Argument(None, help="Where to write the plaintext (0600). Not needed with --info.",
                               dir_okay=False),
    keyring: list[str] = typer.Option(
        [], "--keyring", "-k", help="Keyring to open the file with (repeatable). Default: the key_service of "
        "--environment, else every keyring the file names that the policy defines."),
    environment: str = typer.Option(None, "--environment", "-e", help="The policy environment this runs in: only "
                                    "its key_service may open the file, and pii/confidential data opens only "
                                    "inside its residency."),
    dataset: str = typer.Option(None, "--dataset", help="Require the file to be this dataset's (checked against "
                                "its encryption context)."),
    model: str = typer.Option(None, "--model", help="Require the file to be this model's."),
    context: list[str] = CONTEXT_OPTION,
    info: bool = typer.Option(False, "--info", help="Show who can open the file and its context; decrypt nothing "
                              "(the header is not authenticated without a key)."),
    policy: Path = POLICY_OPTION,
    ledger: str = LEDGER_OPTION,
    force: bool = FORCE_OPTION,
    fmt: OutputFormat = FORMAT,
) -> None:
    """Decrypt a file. Every frame is authenticated; the plaintext appears at DST only after the whole file
    verified, and nothing is left behind on failure (exit 1 with the reason: altered, truncated, wrong keyring,
    wrong context).

    Example: mlfort decrypt data/customers.csv.mlfe /scratch/customers.csv --environment onprem --policy mlfort.yaml
    """
    from mlfort.cli import audit
    from mlfort.cli.progress import byte_progress
    from mlfort.crypto.envelope import decrypt_file, inspect_file
    from mlfort.crypto.rules import asset, asset_from_context, check_decrypt, environment_keyring

    header = inspect_file(src)
    if info:
        _report(fmt, "encrypted file", header, {"input": str(src), "authenticated": False})
        return
    if dst is None:
        raise typer.BadParameter("give DST (where the plaintext goes), or --info", param_hint="DST")
    expected = _pairs(context)
    loaded, base = load_policy_option(policy)
    if loaded is None and (dataset or model or environment):
        raise InputError("--dataset/--model/--environment need the policy (--policy or MLFORT_POLICY)")
    target = None
    if loaded is not None:
        target = asset(loaded, dataset=dataset, model=model) or asset_from_context(loaded, header.context)
    if target is not None:
        expected = {**target.context(), **expected}
    resource = _resource(target, src)
    names = list(dict.fromkeys(keyring))
    if loaded is not None:
        findings = check_decrypt(loaded, environment, target)
        if findings:
            _refuse("crypto.decrypt", resource, findings, fmt=fmt, ledger=ledger, policy_path=policy,
                    environment=environment, details={"input": str(src)})
        if environment is not None:
            allowed = environment_keyring(loaded, environment)
            if names and names != [allowed]:
                raise InputError(f"in environment {environment!r} only its key_service {allowed!r} may open files; "
                                 f"drop --keyring {' '.join(n for n in names if n != allowed)}")
            names = [allowed] if allowed else []
        elif not names:
            names = [k.name for k in header.keys if k.name in loaded.keys]
    elif not names:
        names = [k.name for k in header.keys if k.kind == "local"]
    if not names:
        raise InputError("no keyring to open this file with: name one with --keyring (the file opens with "
                         + ", ".join(header.keyring_names) + ")")

    def record(opened: Header) -> None:
        audit.record(audit.event("crypto.decrypt", resource, environment=environment, details={
            "input": str(src.resolve()), "output": str(dst.resolve()), **opened.describe()}),
            ledger=ledger, policy=policy)

    started = time.perf_counter()
    any_of = not keyring and environment is None
    with open_keyrings(names, loaded, base, tolerant=any_of) as rings, \
            byte_progress(f"decrypting {src.name}") as (plan, advance):
        with contextlib.suppress(OSError):
            plan(src.stat().st_size)
        try:
            opened = decrypt_file(src, dst, rings, expected_context=expected, overwrite=force, progress=advance,
                                  before_commit=record)
        except Exception as exc:
            if not isinstance(exc, InputError):
                _failed("crypto.decrypt", resource, exc, ledger=ledger, policy_path=policy, environment=environment,
                        details={"input": str(src.resolve()), "keyrings": names})
            raise
    _report(fmt, "decrypted", opened, {"input": str(src), "output": str(dst), "bytes": dst.stat().st_size,
                                        "seconds": round(time.perf_counter() - started, 3)})


def rewrap(
    path: Path = typer.Argument(..., help="The encrypted file; its header is rewritten in place (atomically).",
                                dir_okay=False),
    add: list[str] = typer.Option([], "--add", help="Keyring that may open the file from now on (repeatable)."),
    remove: list[str] = typer.Option([], "--remove", help="Keyring that may no longer open it (repeatable)."),
    keyring: list[str] = typer.Option(
        [], "--keyring", "-k", help="Keyring to unwrap the data key with (default: any the file names that the "
        "policy defines)."),
    policy: Path = POLICY_OPTION,
    ledger: str = LEDGER_OPTION,
    fmt: OutputFormat = FORMAT,
) -> None:
    """Change which keyrings open a file without re-encrypting it: only the header changes.

    Added keyrings pass the same policy checks as `mlfort encrypt`. A removed keyring stops opening this file, but
    whoever held the data key before still can: to revoke past access, decrypt and encrypt again.

    Example: mlfort rewrap data/customers.csv.mlfe --add aws-kms --remove old-hsm --policy mlfort.yaml
    """
    from mlfort.cli import audit
    from mlfort.crypto.envelope import inspect_file
    from mlfort.crypto.envelope import rewrap as do_rewrap
    from mlfort.crypto.rules import asset_from_context, check_encrypt

    if not add and not remove:
        raise typer.BadParameter("nothing to do: give --add and/or --remove", param_hint="--add/--remove")
    header = inspect_file(path)
    loaded, base = load_policy_option(policy)
    target = asset_from_context(loaded, header.context) if loaded is not None else None
    resource = _resource(target, path)
    if loaded is not None and add:
        findings = check_encrypt(loaded, list(dict.fromkeys(add)), target)
        if findings:
            _refuse("crypto.rewrap", resource, findings, fmt=fmt, ledger=ledger, policy_path=policy,
                    details={"input": str(path), "add": add, "remove": remove})
    openers = list(dict.fromkeys(keyring)) or [
        k.name for k in header.keys if (k.name in loaded.keys if loaded is not None else k.kind == "local")]
    if not openers:
        raise InputError("no keyring to open this file with: name one with --keyring")

    def record(new: Header) -> None:
        audit.record(audit.event("crypto.rewrap", resource, details={
            "file": str(path.resolve()), "added": list(add), "removed": list(remove), **new.describe()}),
            ledger=ledger, policy=policy)

    adding_names = list(dict.fromkeys(add))
    with open_keyrings(openers, loaded, base, tolerant=not keyring) as opening, \
            open_keyrings(adding_names, loaded, base) as adding:
        new = do_rewrap(path, unwrap_with=opening, add=adding, remove=list(dict.fromkeys(remove)),
                        before_commit=record)
    _report(fmt, "rewrapped", new, {"input": str(path), "added": list(add), "removed": list(remove)})

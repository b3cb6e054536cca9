"""`mlfort ledger ...`: verify, checkpoint, prove, query and export the tamper-evident audit log."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlfort.cli.output import FAIL_ON_OPTION, FORMAT_OPTION, OUTPUT_OPTION, OutputFormat, emit

if TYPE_CHECKING:
    from mlfort.ledger import Event, Ledger

app = typer.Typer(
    help=(
        "The tamper-evident audit log: every action mlfort takes is an entry in an RFC 6962 Merkle tree whose "
        "roots are signed (C2SP checkpoints, Ed25519). Where it lives: --ledger URL, else MLFORT_LEDGER_URL, else "
        "the policy's ledger.url, else $MLFORT_HOME/ledger.db (SQLite).\n\n"
        "Examples:\n\n"
        "  mlfort ledger verify\n\n"
        "  mlfort ledger checkpoint -o /mnt/worm/checkpoint-$(date +%F)\n\n"
        "  mlfort ledger verify --from-checkpoint /mnt/worm/checkpoint-2026-11-01\n\n"
        "  mlfort ledger query --actor 'workload:*' --since -24h\n\n"
        "  mlfort ledger prove 42 --format json"
    ),
    no_args_is_help=True,
)

LEDGER_OPTION = typer.Option(
    None, "--ledger", help="sqlite:///path.db or postgresql://user@host/db (default: MLFORT_LEDGER_URL, the "
    "policy's ledger.url, then $MLFORT_HOME/ledger.db).", envvar=None
)
POLICY_OPTION = typer.Option(None, "--policy", help="Take the ledger URL from this policy's `ledger.url`.")


class ProofFormat(StrEnum):
    table = "table"
    json = "json"


class ExportFormat(StrEnum):
    ocsf = "ocsf"
    jsonl = "jsonl"
    cef = "cef"


def _open(url: str | None, policy: Path | None, *, sign: bool = False, trusted: list[Path] | None = None,
          need_trust: bool = False) -> Ledger:
    """Open the ledger. Signatures are checked with the --trusted-key files if given, else the local checkpoint key.
    Only commands that sign (`checkpoint`, `key`, `archive`) create that key; `verify` insists on having one."""
    from mlfort import settings
    from mlfort.errors import InputError
    from mlfort.ledger import open_ledger
    from mlfort.ledger.note import read_verifier

    verifiers = [read_verifier(p) for p in trusted or []]
    have_key = settings.ledger_key_path().exists()
    if need_trust and not verifiers and not have_key:
        raise InputError(f"no checkpoint key at {settings.ledger_key_path()} to check signatures with: pass "
                         "--trusted-key FILE (from `mlfort ledger key`), or set MLFORT_HOME / MLFORT_LEDGER_KEY")
    return open_ledger(url, policy=policy, sign=sign or (have_key and not verifiers), trusted=verifiers)


def _kept_checkpoints(paths: list[Path]) -> list[str]:
    """The signed checkpoints given with --from-checkpoint, read as text."""
    notes = []
    for path in paths:
        try:
            notes.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--from-checkpoint") from None
    return notes


@app.command("verify")
def verify(
    from_checkpoint: list[Path] = typer.Option(
        [], "--from-checkpoint", help="A signed checkpoint kept outside this machine (repeatable): the log must "
        "still extend it. Catches a rewrite or truncation by someone who also holds the checkpoint key."
    ),
    trusted_key: list[Path] = typer.Option(
        [], "--trusted-key", help="Verifier key file(s) (`mlfort ledger key` output) to trust instead of the local "
        "checkpoint key. An auditor pins the key this way."
    ),
    ledger: str = LEDGER_OPTION,
    policy: Path = POLICY_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = FAIL_ON_OPTION,
) -> None:
    """Recompute the whole Merkle tree from the entries and check it against every signed checkpoint.

    Exit 0 when intact; 1 naming the first bad entry on any edit, deletion, insertion, reordering or truncation, or
    a replaced checkpoint; 2 if the ledger cannot be opened.

    Example: mlfort ledger verify --from-checkpoint /mnt/worm/checkpoint --format sarif -o ledger.sarif
    """
    from mlfort.cli.progress import count_progress
    from mlfort.ledger import verify_ledger

    notes = _kept_checkpoints(from_checkpoint)
    with _open(ledger, policy, trusted=trusted_key, need_trust=True) as led:
        total = led.store.size()
        with count_progress("verifying ledger", total) as advance:
            report = verify_ledger(led.store, led.verifiers, trusted=notes, progress=advance)
    if report.ok:
        summary = (f"verified: {report.size} entries, {report.checkpoints} signed checkpoint(s), "
                   f"root {report.root.hex()[:16]}…, in {report.seconds:.2f} s")
    else:
        summary = f"FAILED: the ledger was tampered with; first bad entry: {report.first_bad}"
    code = emit(report.findings, fmt=fmt, output=output, fail_on=fail_on, title=f"mlfort ledger verify {report.origin}",
                summary=summary)
    raise typer.Exit(1 if not report.ok else code)


@app.command("checkpoint")
def checkpoint(
    out: Path = typer.Option(None, "--out", "-o", help="Also write the signed checkpoint to this file (keep "
                             "copies off the machine: WORM storage, a ticket, an auditor's mailbox)."),
    ledger: str = LEDGER_OPTION,
    policy: Path = POLICY_OPTION,
) -> None:
    """Sign a checkpoint of the log as it is now and print it (C2SP signed note: origin, size, root hash).

    Example: mlfort ledger checkpoint -o checkpoint.txt
    """
    with _open(ledger, policy, sign=True) as led:
        signed = led.checkpoint()
    if out is not None:
        out.write_text(signed.note, encoding="utf-8")
    sys.stdout.write(signed.note)


@app.command("key")
def key(ledger: str = LEDGER_OPTION, policy: Path = POLICY_OPTION) -> None:
    """Print the verifier key of this ledger's checkpoints (C2SP vkey), for auditors to pin with --trusted-key.

    Example: mlfort ledger key > ledger.vkey
    """
    with _open(ledger, policy, sign=True) as led:
        assert led.signer is not None
        typer.echo(led.signer.verifier.vkey())


@app.command("prove")
def prove(
    index: int = typer.Argument(..., help="The entry's index (0-based).", min=0),
    size: int = typer.Option(None, "--size", help="Prove against this tree size (default: the latest checkpoint).",
                             min=1),
    fmt: ProofFormat = typer.Option(ProofFormat.table, "--format", "-f", help="table or json."),
    ledger: str = LEDGER_OPTION,
    policy: Path = POLICY_OPTION,
) -> None:
    """Inclusion proof of one entry: leaf hash, tree size, root and the RFC 6962 audit path. Any RFC 6962
    implementation can check it against the signed checkpoint included in the JSON.

    Example: mlfort ledger prove 42 --format json > proof.json
    """
    with _open(ledger, policy) as led:
        proof = led.prove(index, size)
    if fmt is ProofFormat.json:
        sys.stdout.write(json.dumps(proof.to_dict(), indent=2) + "\n")
        return
    typer.echo(f"entry {proof.index} is in the tree of {proof.size} entries (verified)")
    typer.echo(f"leaf hash  {proof.leaf_hash.hex()}")
    typer.echo(f"root hash  {proof.root.hex()}{'' if proof.checkpoint else '  (no signed checkpoint at this size)'}")
    for i, h in enumerate(proof.path):
        typer.echo(f"path[{i:2d}]   {h.hex()}")


@app.command("consistency")
def consistency(
    old_size: int = typer.Argument(..., help="The older tree size (e.g. from a checkpoint you kept).", min=0),
    new_size: int = typer.Argument(None, help="The newer tree size (default: now)."),
    fmt: ProofFormat = typer.Option(ProofFormat.table, "--format", "-f", help="table or json."),
    ledger: str = LEDGER_OPTION,
    policy: Path = POLICY_OPTION,
) -> None:
    """Consistency proof: the log of OLD_SIZE entries is a prefix of the log of NEW_SIZE entries (RFC 6962).

    Example: mlfort ledger consistency 1000 --format json
    """
    with _open(ledger, policy) as led:
        proof = led.consistency(old_size, new_size)
    if fmt is ProofFormat.json:
        sys.stdout.write(json.dumps(proof.to_dict(), indent=2) + "\n")
        return
    typer.echo(f"the tree of {proof.old} entries is a prefix of the tree of {proof.new} entries (verified)")
    typer.echo(f"old root  {proof.old_root.hex()}")
    typer.echo(f"new root  {proof.new_root.hex()}")
    for i, h in enumerate(proof.path):
        typer.echo(f"path[{i:2d}]  {h.hex()}")


def _print_events(rows: list[tuple[int, Event]], fmt: ProofFormat, title: str) -> None:
    if fmt is ProofFormat.json:
        sys.stdout.write(json.dumps([{"index": i, **e.to_dict()} for i, e in rows], indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for col in ("#", "time (UTC)", "actor", "action", "resource", "outcome", "detail"):
        table.add_column(col, overflow="fold")
    for i, e in rows:
        detail = e.reason or ""
        if e.decision:
            detail = f"{e.decision}: {detail}".rstrip(": ")
        if e.run_id:
            detail = f"run {e.run_id} {detail}".strip()
        outcome = e.outcome if e.outcome == "success" else f"[red]{e.outcome}[/red]"
        table.add_row(str(i), e.time[:23].replace("T", " "), e.actor, e.action, e.resource, outcome, detail)
    Console(soft_wrap=False, width=max(120, Console().width)).print(table)


@app.command("tail")
def tail(
    n: int = typer.Option(20, "-n", "--lines", help="How many of the newest entries.", min=1),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep printing new entries as they are appended."),
    fmt: ProofFormat = typer.Option(ProofFormat.table, "--format", "-f", help="table or json."),
    ledger: str = LEDGER_OPTION,
    policy: Path = POLICY_OPTION,
) -> None:
    """Show the newest entries.

    Example: mlfort ledger tail -n 50
    """
    from mlfort.ledger import Event

    with _open(ledger, policy) as led:
        rows = led.tail(n)
        _print_events(rows, fmt, f"ledger {led.origin}: {led.size()} entries")
        if not follow:
            return
        seen = led.size()
        try:
            while True:
                time.sleep(1.0)
                size = led.size()
                if size > seen:
                    new = [(i, Event.decode(body)) for i, _, body in led.store.entries(seen, size)]
                    _print_events(new, fmt, "")
                    seen = size
        except KeyboardInterrupt:
            return


@app.command("query")
def query(
    actor: str = typer.Option(None, "--actor", help="Exact actor, or a prefix ending in * (workload:*)."),
    action: str = typer.Option(None, "--action", help="Exact action, or a prefix ending in * (artifacts.*)."),
    resource: str = typer.Option(None, "--resource", help="Exact resource, or a prefix ending in *."),
    run_id: str = typer.Option(None, "--run-id", help="Events of one pipeline run."),
    since: str = typer.Option(None, "--since", help="From this time: RFC 3339, a date, or relative (-2h, -7d)."),
    until: str = typer.Option(None, "--until", help="Before this time (same forms)."),
    limit: int = typer.Option(100, "--limit", help="At most this many entries.", min=1),
    fmt: ProofFormat = typer.Option(ProofFormat.table, "--format", "-f", help="table or json."),
    ledger: str = LEDGER_OPTION,
    policy: Path = POLICY_OPTION,
) -> None:
    """Find entries by actor, action, resource, run and time (filters combine with AND).

    Example: mlfort ledger query --action 'artifacts.*' --since -7d --format json
    """
    from mlfort.ledger.event import parse_time
    from mlfort.ledger.store import Query

    q = Query(actor=actor, action=action, resource=resource, run_id=run_id,
              since=parse_time(since) if since else None, until=parse_time(until) if until else None, limit=limit)
    with _open(ledger, policy) as led:
        rows = led.query(q)
    _print_events(rows, fmt, f"{len(rows)} matching entr{'y' if len(rows) == 1 else 'ies'}")


@app.command("export")
def export(
    fmt: ExportFormat = typer.Option(ExportFormat.ocsf, "--format", "-f", help="ocsf (OCSF API Activity 6003, "
                                     "JSON lines), jsonl (the stored events), or cef (ArcSight CEF lines)."),
    since: str = typer.Option(None, "--since", help="From this time: RFC 3339, a date, or relative (-2h, -7d)."),
    until: str = typer.Option(None, "--until", help="Before this time (same forms)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write here instead of standard output."),
    ledger: str = LEDGER_OPTION,
    policy: Path = POLICY_OPTION,
) -> None:
    """Export entries for a SIEM (Security Lake, Splunk, Sentinel, ArcSight), one event per line.

    Example: mlfort ledger export --format ocsf --since -1d -o mlfort-ocsf.jsonl
    """
    from mlfort.ledger.event import parse_time
    from mlfort.ledger.export import export as run_export

    since_t = parse_time(since) if since else None
    until_t = parse_time(until) if until else None
    with _open(ledger, policy) as led:
        if output is None:
            count = run_export(led, fmt.value, sys.stdout, since=since_t, until=until_t)
        else:
            # Written beside the target and renamed at the end: an export stopped by a tampered entry (it fails
            # closed there) leaves no partial file that a SIEM could pick up as complete.
            tmp = output.with_name(f".{output.name}.partial")
            try:
                with tmp.open("w", encoding="utf-8") as fh:
                    count = run_export(led, fmt.value, fh, since=since_t, until=until_t)
                tmp.replace(output)
            finally:
                tmp.unlink(missing_ok=True)
    if output is not None:
        typer.echo(f"exported {count} event(s) to {output} ({fmt.value})", err=True)


@app.command("archive")
def archive(
    dest: str = typer.Argument(..., help="A directory, or s3://bucket/prefix (the bucket must have Object Lock)."),
    retain_days: int = typer.Option(2555, "--retain-days", help="Retention (S3 Object Lock, compliance mode). "
                                    "2555 days is 7 years.", min=1),
    ledger: str = LEDGER_OPTION,
    policy: Path = POLICY_OPTION,
) -> None:
    """Copy new entries and their signed checkpoints to write-once storage, for long-term retention.

    Incremental: each run adds what was appended since the last one.

    Example: mlfort ledger archive s3://acme-audit/mlfort --retain-days 3650
    """
    from mlfort.ledger.archive import archive as run_archive

    with _open(ledger, policy, sign=True) as led:
        led.checkpoint()  # the archive ends on a signed checkpoint
        result = run_archive(led, dest, retain_days=retain_days)
    typer.echo(str(result))


@app.command("verify-archive")
def verify_archive(
    dest: str = typer.Argument(..., help="The archive: a directory or s3://bucket/prefix."),
    trusted_key: list[Path] = typer.Option(
        [], "--trusted-key", help="Verifier key file(s) (`mlfort ledger key` output). Default: the local key."
    ),
    from_checkpoint: list[Path] = typer.Option(
        [], "--from-checkpoint", help="A signed checkpoint kept elsewhere: the archive must reach and match it "
        "(catches a deleted tail)."
    ),
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = FAIL_ON_OPTION,
) -> None:
    """Check an archive on its own, without the live ledger: every segment's hash, the Merkle root of the
    archived entries against the archived signed checkpoints, and the chain from one segment to the next.

    Example: mlfort ledger verify-archive s3://acme-audit/mlfort --trusted-key ledger.vkey
    """
    from mlfort import settings
    from mlfort.errors import InputError
    from mlfort.ledger.archive import archive_origin
    from mlfort.ledger.archive import verify_archive as run_verify
    from mlfort.ledger.note import load_or_create_signer, read_verifier

    verifiers = [read_verifier(p) for p in trusted_key]
    if not verifiers:
        key_path = settings.ledger_key_path()
        if not key_path.exists():
            raise InputError(f"no checkpoint key at {key_path}: pass --trusted-key FILE (from `mlfort ledger key`)")
        # The local key, under the name the archive's log signs with (a key id binds name and key).
        verifiers = [load_or_create_signer(key_path, archive_origin(dest)).verifier]
    notes = _kept_checkpoints(from_checkpoint)
    report = run_verify(dest, verifiers, trusted=notes)
    if report.ok:
        summary = f"verified: {report.size} archived entries, {report.checkpoints} signed checkpoint(s)"
    else:
        summary = f"FAILED: the archive does not verify; first bad entry: {report.first_bad}"
    code = emit(report.findings, fmt=fmt, output=output, fail_on=fail_on, title=f"mlfort ledger verify-archive {dest}",
                summary=summary)
    raise typer.Exit(1 if not report.ok else code)

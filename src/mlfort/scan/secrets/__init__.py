"""`mlfort scan secrets`: find credentials in code, configs, notebooks and model files, and report each one only
by a redacted form and a fingerprint.

    result = scan_secrets([Path(".")])                       # .mlfort-secrets-allow.yaml found automatically
    result = scan_secrets([Path("repo")], allowlist=Path("accepted.yaml"))

The pieces: `sources` turns files into chunks of text, `patterns` finds secrets in a chunk, `allowlist` decides
what was accepted, `rules` names the findings. This module walks the paths and ties them together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlfort.errors import InputError
from mlfort.report import Finding, Location, Severity
from mlfort.scan.result import ScanResult
from mlfort.scan.secrets import allowlist as allow
from mlfort.scan.secrets import rules
from mlfort.scan.secrets.patterns import Hit, find_secrets, line_starts
from mlfort.scan.secrets.sources import MAX_SCAN_BYTES, Chunk, FileText, read_file

__all__ = ["SKIP_DIRS", "fingerprint", "redact", "scan_secrets"]

SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox",
    ".nox", ".mlfort", "site-packages", "dist-packages",
})
"""Folders never entered during a walk (pass one directly to scan it). Folders holding `pyvenv.cfg` (a virtual
environment) or `conda-meta` (a conda environment) are skipped too: installed packages are noise here."""
MAX_FINDINGS_PER_FILE = 1000
"""Secrets listed per file; past this a file is summarised by one extra finding."""
SHOWN_PREFIX = 6
"""At most this many characters of a service's public prefix are shown (`github…`, `sk-ant…`, `AKIA`)."""
PROCESS_MIN_FILES = 64
PROCESS_MIN_BYTES = 8 * 1024 * 1024
"""Scans at least this large use one process per core (scanning is CPU-bound regex work)."""


def fingerprint(secret: str) -> str:
    """`sha256:` and the hex SHA-256 of the secret's UTF-8 bytes: what the allowlist matches. Compute it yourself
    with `printf %s "$SECRET" | sha256sum`."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", errors="surrogatepass")).hexdigest()


def redact(hit: Hit) -> str:
    """A form of the secret safe to print: the service's public prefix (at most SHOWN_PREFIX characters) or the
    key type, never any of its random part, and the length: `ghp_…(40 chars)`, `RSA PRIVATE KEY block`."""
    if hit.shown and hit.secret.startswith(hit.shown):
        return f"{hit.shown[:SHOWN_PREFIX]}…({len(hit.secret)} chars)"
    if hit.rule_id == rules.PRIVATE_KEY or hit.kind == "gcp-service-account-key":
        return f"{hit.shown or 'private key'} block ({len(hit.secret)} base64 chars)"
    return f"…({len(hit.secret)} chars)"


@dataclass
class _Tally:
    files: int = 0
    bytes: int = 0
    secrets: int = 0
    by_pragma: int = 0
    by_file: int = 0
    skipped: int = 0
    unreadable: int = 0
    findings: list[Finding] = field(default_factory=list)

    def add(self, other: _Tally) -> None:
        for name in ("files", "bytes", "secrets", "by_pragma", "by_file", "skipped", "unreadable"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.findings += other.findings


def scan_secrets(paths: Sequence[Path], *, allowlist: Path | None = None,
                 progress: Callable[[int], None] | None = None) -> ScanResult:
    """Scan files and folders (recursively) for secrets.

    `allowlist`: an allowlist file; when None, `.mlfort-secrets-allow.yaml` in the root of each scanned folder is
    used if present. A malformed allowlist, or a path that does not exist, raises InputError (exit 2).
    `progress(n)` is called with the number of files done.

    Files that cannot be read, are larger than the scan limit or are malformed are findings, never silent passes.
    """
    for p in paths:
        if not p.exists() and not p.is_symlink():
            raise InputError(f"{p}: no such file or folder")
    accepted = allow.load(allowlist) if allowlist is not None else allow.discover(p for p in paths if p.is_dir())
    own_files = {_resolved(s) for s in accepted.sources}
    today = dt.date.today()
    now = time.time()
    tally = _Tally()
    for entry in accepted.expired(today):
        source = _source_of(entry, accepted)
        finding = rules.finding(
            rules.ALLOWLIST_EXPIRED, source,
            f"Allowlist entry{f' at line {entry.line}' if entry.line else ''} of {source} expired on "
            f"{entry.expires}: it no longer suppresses anything ({entry.reason[:120]}).",
            expires=str(entry.expires), entry_fingerprint=entry.fingerprint, entry_path=entry.path)
        tally.findings.append(replace(finding, location=Location(source, entry.line, 1)) if entry.line else finding)
    files = [f for f in _walk(paths, tally) if _resolved(f) not in own_files]
    for file_tally in _scan_files(files, accepted, today, now):
        tally.add(file_tally)
        if progress is not None:
            progress(tally.files)
    allowed = tally.by_pragma + tally.by_file
    summary = (f"{tally.files:,} file{'s' if tally.files != 1 else ''} ({_size(tally.bytes)}) scanned: "
               f"{tally.secrets} secret{'s' if tally.secrets != 1 else ''} found")
    if allowed:
        parts = [f"{n} by {how}" for n, how in ((tally.by_file, "the allowlist file"), (tally.by_pragma, "pragma"))
                 if n]
        summary += f", {allowed} allowlisted ({', '.join(parts)})"
    if tally.unreadable:
        summary += f", {tally.unreadable} unreadable"
    if tally.skipped:
        summary += f", {tally.skipped} path{'s' if tally.skipped != 1 else ''} skipped (links out of the tree)"
    counts = {"files": tally.files, "bytes": tally.bytes, "secrets": tally.secrets, "allowlisted": allowed,
              "allowlisted_by_file": tally.by_file, "allowlisted_by_pragma": tally.by_pragma,
              "unreadable": tally.unreadable, "skipped": tally.skipped}
    return ScanResult(tuple(tally.findings), summary, counts)


# ---------------------------------------------------------------------------------------------------- walking


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _walk(paths: Sequence[Path], tally: _Tally) -> Iterator[Path]:
    """Every file to scan, in a stable order. Paths given directly are always scanned (a symlink given is
    followed); inside folders, skipped folders are not entered and links are not followed: a link that stays
    inside the tree is scanned through its target, one that leaves it is reported (INFO)."""
    seen: set[Path] = set()
    for path in paths:
        if not path.is_dir():
            key = _resolved(path)
            if key not in seen:
                seen.add(key)
                yield path
            continue
        root = _resolved(path)
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            here = Path(dirpath)
            keep = []
            for d in sorted(dirnames):
                full = here / d
                if full.is_symlink():
                    _link(full, root, tally)
                elif d in SKIP_DIRS or (full / "pyvenv.cfg").is_file() or (full / "conda-meta").is_dir():
                    continue
                else:
                    keep.append(d)
            dirnames[:] = keep
            for name in sorted(filenames):
                full = here / name
                if full.is_symlink():
                    _link(full, root, tally)
                    continue
                try:
                    mode = full.lstat().st_mode
                except OSError:
                    yield full  # vanished or unreadable: reading it reports why
                    continue
                if not stat.S_ISREG(mode):
                    continue  # fifos, sockets, devices: opening one could block or never end
                key = _resolved(full)
                if key not in seen:
                    seen.add(key)
                    yield full


def _link(link: Path, root: Path, tally: _Tally) -> None:
    target = _resolved(link)
    if target == root or root in target.parents:
        return  # the target is inside the tree and scanned on its own
    tally.skipped += 1
    tally.findings.append(rules.finding(
        rules.SKIPPED, str(link),
        f"{link} is a symbolic link out of the scanned folder; it was not followed. Scan its target directly if it "
        "belongs to the project.", reason="symlink out of the tree"))


# ---------------------------------------------------------------------------------------------------- scanning

_JOB: tuple[allow.Allowlist, dt.date, float] | None = None
"""What forked workers scan against (inherited, not pickled per file)."""


def _scan_files(files: list[Path], accepted: allow.Allowlist, today: dt.date, now: float) -> Iterator[_Tally]:
    """One tally per file, in the files' order: in this process for small scans, else in one process per core
    (fork only; findings travel as plain tuples, since a Finding's read-only evidence does not pickle)."""
    import multiprocessing

    workers = min(os.cpu_count() or 1, 16)
    big = len(files) >= PROCESS_MIN_FILES and _total_size(files) >= PROCESS_MIN_BYTES
    if workers < 2 or not big or "fork" not in multiprocessing.get_all_start_methods():
        for file in files:
            yield _scan_one(file, accepted, today, now)
        return
    from concurrent.futures import ProcessPoolExecutor

    global _JOB
    _JOB = (accepted, today, now)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for flat, counts in pool.map(_scan_in_worker, files, chunksize=8):
                one = _Tally(**counts)
                one.findings = [_unflatten(f) for f in flat]
                yield one
    finally:
        _JOB = None


def _scan_in_worker(file: Path) -> tuple[list[_Flat], dict[str, int]]:
    assert _JOB is not None
    one = _scan_one(file, *_JOB)
    counts = {name: getattr(one, name) for name in ("files", "bytes", "secrets", "by_pragma", "by_file",
                                                     "skipped", "unreadable")}
    return [_flatten(f) for f in one.findings], counts


def _scan_one(file: Path, accepted: allow.Allowlist, today: dt.date, now: float) -> _Tally:
    one = _Tally(files=1)
    _scan_file(file, accepted, today, now, one)
    return one


_Flat = tuple[str, str, str, str, dict[str, object], tuple[str, int | None, int | None] | None]


def _flatten(f: Finding) -> _Flat:
    loc = (f.location.path, f.location.line, f.location.column) if f.location is not None else None
    return (f.rule_id, f.severity.value, f.target, f.message, dict(f.evidence), loc)


def _unflatten(flat: _Flat) -> Finding:
    rule_id, severity, target, message, evidence, loc = flat
    finding = rules.finding(rule_id, target, message, severity=Severity(severity), **evidence)
    return replace(finding, location=Location(*loc)) if loc else finding


def _total_size(files: list[Path]) -> int:
    total = 0
    for f in files:
        with contextlib.suppress(OSError):
            total += f.stat().st_size
    return total


# ---------------------------------------------------------------------------------------------------- one file


def _scan_file(file: Path, accepted: allow.Allowlist, today: dt.date, now: float, tally: _Tally) -> None:
    target = str(file)
    try:
        text = read_file(file, limit=MAX_SCAN_BYTES)
    except (OSError, ValueError) as exc:
        tally.unreadable += 1
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        tally.findings.append(rules.finding(
            rules.UNREADABLE, target, f"{target} could not be read ({reason}), so it was not scanned for secrets.",
            error=str(reason)))
        return
    tally.bytes += text.scanned
    for message, evidence in text.notes:
        tally.findings.append(rules.finding(rules.NOT_FULLY_SCANNED, target, f"{target}: {message}.", **evidence))
    listed = 0
    extra = 0
    for chunk in text.chunks:
        for finding in _chunk_findings(file, target, chunk, text, accepted, today, now, tally):
            if listed < MAX_FINDINGS_PER_FILE:
                tally.findings.append(finding)
                listed += 1
            else:
                extra += 1
    if extra:
        tally.findings.append(rules.finding(
            rules.NOT_FULLY_SCANNED, target,
            f"{target}: {extra} more secrets were found but not listed (at most {MAX_FINDINGS_PER_FILE} per file).",
            severity=rules.RULES[rules.HIGH_ENTROPY].default_severity, unlisted=extra))


def _chunk_findings(file: Path, target: str, chunk: Chunk, text: FileText, accepted: allow.Allowlist,
                    today: dt.date, now: float, tally: _Tally) -> Iterator[Finding]:
    notes: list[str] = []
    hits = find_secrets(chunk.text, chunk.style, now=now, notes=notes)
    for note in notes:
        tally.findings.append(rules.finding(rules.NOT_FULLY_SCANNED, target, f"{target}: {note}.",
                                            **dict(chunk.where)))
    if not hits:
        return
    starts = line_starts(chunk.text)
    for hit in hits:
        line_no, col = _line_col(starts, hit.start)
        line_text = _line(chunk.text, starts, line_no)
        previous = _line(chunk.text, starts, line_no - 1) if line_no > 1 else ""
        if allow.has_pragma(line_text, previous):
            tally.by_pragma += 1
            continue
        fp = fingerprint(hit.secret)
        if allow.find(accepted, today, target=target, fingerprint=fp, rule_id=hit.rule_id, kind=hit.kind):
            tally.by_file += 1
            continue
        tally.secrets += 1
        yield _finding(target, chunk, hit, fp, line_no, col, text)


def _finding(target: str, chunk: Chunk, hit: Hit, fp: str, line_no: int, col: int, text: FileText) -> Finding:
    where = dict(chunk.where)
    redacted = redact(hit)
    evidence: dict[str, object] = {"kind": hit.kind, "redacted": redacted, "fingerprint": fp,
                                   "length": len(hit.secret), **dict(hit.detail), **where}
    location: Location | None
    if chunk.byte_map:
        offset = chunk.byte_offset(hit.start)
        evidence["offset"] = offset
        place = f"at byte offset {offset:,}"
        if "member" in where:
            place += f" of member {where['member']}"
        location = Location(target)
    elif chunk.has_lines:
        location = Location(target, line_no, col)
        if "cell" in where:
            place = f"cell {where['cell']} ({where.get('part', 'source')}) line {line_no}"
            file_line = _notebook_line(text.raw_text, chunk.text, hit)
            if file_line is not None:
                # SARIF and editors open the .ipynb file itself: point at its line, keep the cell's in evidence
                evidence["file_line"] = file_line
                evidence["cell_line"] = line_no
                location = Location(target, file_line, None)
        elif where:
            place = f"{where.get('part', 'metadata')} line {line_no}"
        else:
            place = f"line {line_no}"
    else:
        location = Location(target)
        if "member" in where:
            evidence["member_line"] = line_no
            place = f"member {where['member']} line {line_no}"
        elif "metadata_key" in where:
            place = f"metadata key {where['metadata_key']!r}"
        else:
            place = "the file"
    message = f"{hit.label} ({redacted}) in {target} {place}."
    finding = rules.finding(hit.rule_id, target, message, severity=hit.severity, **evidence)
    return replace(finding, location=location)


def _notebook_line(raw: str | None, chunk_text: str, hit: Hit) -> int | None:
    """The line of the notebook file (its JSON) holding the start of the secret, when it can be found."""
    if raw is None:
        return None
    import json

    snippet = chunk_text[hit.start:min(hit.end, hit.start + 24)].split("\n", 1)[0]
    if len(snippet) < 4:
        return None
    at = raw.find(json.dumps(snippet, ensure_ascii=False)[1:-1])
    return raw.count("\n", 0, at) + 1 if at >= 0 else None


def _line_col(starts: list[int], offset: int) -> tuple[int, int]:
    import bisect

    index = bisect.bisect_right(starts, offset) - 1
    return index + 1, offset - starts[index] + 1


def _line(text: str, starts: list[int], line_no: int) -> str:
    if line_no < 1 or line_no > len(starts):
        return ""
    start = starts[line_no - 1]
    end = starts[line_no] - 1 if line_no < len(starts) else len(text)
    return text[start:end]


def _source_of(entry: allow.Entry, accepted: allow.Allowlist) -> str:
    for source in accepted.sources:
        if entry.base is not None and _resolved(source).parent == entry.base:
            return str(source)
    return str(accepted.sources[0]) if accepted.sources else allow.DEFAULT_NAME


def _size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"

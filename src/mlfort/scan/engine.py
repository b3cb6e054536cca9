"""Scan files and folders of model files: walk, fan out over processes, gather findings and a summary.

Each top-level file gets its own ScanContext (limits apply per file). Scanning is CPU-bound Python, so more than a
handful of files are spread over worker processes (fork), in chunks to keep the hand-off cheap; findings travel
back as plain dicts.
"""

from __future__ import annotations

import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfort.errors import InputError
from mlfort.report import Finding, Location
from mlfort.scan.base import Limits, Member, ScanContext
from mlfort.scan.rules import finding

PROCESS_MIN_FILES = 2
PROCESS_MIN_BYTES = 64 << 20
"""Below this much data the files are scanned in this process: a pool's start-up costs more than it saves."""
CHUNK = 32


@dataclass(frozen=True)
class ScanReport:
    """What `scan_paths` found."""

    findings: tuple[Finding, ...]
    files: int
    """Top-level files scanned."""
    members: int
    """Everything scanned, containers' members included."""
    bytes: int
    """Bytes of the top-level files."""
    formats: Counter[str] = field(default_factory=Counter)
    """Members scanned per format."""
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: files, formats, findings."""
        kinds = ", ".join(f"{n} {fmt}" for fmt, n in sorted(self.formats.items(), key=lambda kv: (-kv[1], kv[0])))
        return (f"scanned {self.files} file(s), {_human(self.bytes)}, {self.members} member(s) ({kinds or 'none'}) "
                f"in {self.seconds:.2f} s")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _files(paths: Sequence[Path], extra: list[Finding]) -> Iterator[tuple[Path, Path, int]]:
    """(file, root, size) of every regular file under the paths; symlinks are followed only within their root."""
    for given in paths:
        try:
            st = given.lstat()
        except OSError as exc:
            raise InputError(f"{given}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            root = given.resolve()
            for dirpath, dirnames, filenames in os.walk(given, followlinks=False):
                dirnames.sort()
                for name in sorted(filenames):
                    yield from _one(Path(dirpath) / name, root, extra)
        else:
            yield from _one(given, given.resolve().parent, extra)


def _one(path: Path, root: Path, extra: list[Finding]) -> Iterator[tuple[Path, Path, int]]:
    try:
        st = path.lstat()
    except OSError as exc:
        extra.append(finding("MLF-MOD-003", str(path), f"cannot be read: {exc.strerror or exc}"))
        return
    if stat.S_ISLNK(st.st_mode):
        target = path.resolve()
        if not target.is_relative_to(root):
            extra.append(finding("MLF-MOD-012", str(path), f"symlink points outside the scanned folder ({target}); "
                                 "a loader following it reads a file nobody scanned", points_to=str(target)))
            return
        try:
            st = target.stat()
        except OSError:
            extra.append(finding("MLF-MOD-003", str(path), "dangling symlink"))
            return
    if not stat.S_ISREG(st.st_mode):
        extra.append(finding("MLF-MOD-003", str(path), "not a regular file (FIFO, socket or device); not scanned"))
        return
    yield path, root, st.st_size


def scan_file(path: Path, root: Path, limits: Limits | None = None) -> ScanContext:
    """Scan one file (and everything inside it); the context holds its findings and format counts."""
    ctx = ScanContext(root=root, limits=limits or Limits())
    ctx.scan(Member(path=str(path), open=lambda: open(path, "rb"), size=None, depth=0, disk_path=path))  # noqa: SIM115
    return ctx


def _to_plain(f: Finding) -> dict[str, Any]:
    d = f.to_dict()
    if f.location is not None:
        d["location"] = (f.location.path, f.location.line, f.location.column)
    return d


def _from_plain(d: dict[str, Any]) -> Finding:
    loc = d.pop("location", None)
    return Finding(rule_id=d["rule_id"], severity=d["severity"], target=d["target"], message=d["message"],
                   evidence=d["evidence"], remediation=d["remediation"], references=tuple(d["references"]),
                   location=Location(*loc) if loc else None)


def _scan_chunk(items: list[tuple[str, str]], limits: Limits) -> list[tuple[list[dict[str, Any]], dict[str, int], int]]:
    out = []
    for path, root in items:
        ctx = scan_file(Path(path), Path(root), limits)
        out.append(([_to_plain(f) for f in ctx.findings], dict(ctx.formats), ctx.members))
    return out


def scan_paths(paths: Sequence[Path], *, workers: int | None = None, limits: Limits | None = None,
               progress: Callable[[int], None] | None = None) -> ScanReport:
    """Scan files and folders; `progress(n)` is called with the number of files done."""
    started = time.perf_counter()
    limits = limits or Limits()
    extra: list[Finding] = []
    files = list(_files(paths, extra))
    findings: list[Finding] = list(extra)
    formats: Counter[str] = Counter()
    members = 0
    workers = workers or os.cpu_count() or 1
    total = sum(size for _, _, size in files)
    if workers > 1 and len(files) >= PROCESS_MIN_FILES and total >= PROCESS_MIN_BYTES:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        items = [(str(p), str(r)) for p, r, _ in files]
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        done = 0
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for result in pool.map(_scan_chunk, chunks, [limits] * len(chunks)):
                for plain, fmts, n in result:
                    findings.extend(_from_plain(d) for d in plain)
                    formats.update(fmts)
                    members += n
                done += len(result)
                if progress is not None:
                    progress(done)
    else:
        for i, (path, root, _) in enumerate(files, 1):
            ctx = scan_file(path, root, limits)
            findings.extend(ctx.findings)
            formats.update(ctx.formats)
            members += ctx.members
            if progress is not None:
                progress(i)
    return ScanReport(findings=tuple(findings), files=len(files), members=members,
                      bytes=total, formats=formats,
                      seconds=time.perf_counter() - started)

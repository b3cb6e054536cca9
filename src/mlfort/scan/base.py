"""The model-file scanner's one small interface: members to scan, a context that dispatches them, handlers per format.

A *member* is anything with bytes: a file on disk, or something inside a container (a zip entry, a tar member, a
decompressed stream, a pickle inside a PyTorch archive). The context identifies each member's format by its content
(never its name), calls the handler for that format, and handlers hand nested members back to the context, so
recursion, limits and counting live in one place. Nothing scanned is ever loaded or executed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from mlfort.report import Finding, Severity


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep a hostile file from exhausting the scanner (each breach is a finding, never a silent skip)."""

    max_depth: int = 8
    """Containers inside containers (zip in zip in tar...)."""
    max_members: int = 100_000
    """Members scanned in one top-level file."""
    max_expanded_bytes: int = 64 << 30
    """Bytes decompressed from one top-level file (zip bombs)."""
    max_pickle_opcodes: int = 50_000_000
    """Opcodes read from one pickle stream."""
    max_memory_arg: int = 1 << 20
    """Byte and string arguments larger than this are skipped in the stream, not read into memory."""


@dataclass(frozen=True, slots=True)
class Member:
    """Something to scan."""

    path: str
    """Display path: `model.pt`, or `model.pt!archive/data.pkl` inside a container (`!` separates levels)."""
    open: Callable[[], BinaryIO]
    """Returns a fresh binary stream positioned at the member's first byte (the caller closes it)."""
    size: int | None = None
    """Bytes, when known without reading."""
    depth: int = 0
    """0 for a file given by the user; +1 per container level."""
    disk_path: Path | None = None
    """The file on disk for depth 0 (format handlers that need the folder, e.g. ONNX external data, use it)."""
    hint: str | None = None
    """A format the container vouches for (e.g. `pickle` for `data.pkl` in a PyTorch zip) when content detection
    alone would be ambiguous; content detection still runs first."""


class Handler(Protocol):
    """Scans one member of one format: adds findings and hands nested members to `ctx.scan`."""

    def __call__(self, member: Member, stream: BinaryIO, ctx: ScanContext) -> None: ...


@dataclass
class ScanContext:
    """Shared by every handler while one top-level file is scanned (not thread-safe across files: one per file)."""

    root: Path
    """The directory the user asked to scan (or the file's folder): paths that escape it are findings."""
    limits: Limits = field(default_factory=Limits)
    findings: list[Finding] = field(default_factory=list)
    formats: Counter[str] = field(default_factory=Counter)
    """How many members of each format were scanned (the summary line)."""
    members: int = 0
    expanded_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, finding: Finding) -> None:
        """Record a finding."""
        with self._lock:
            self.findings.append(finding)

    def scan(self, member: Member) -> None:
        """Identify `member` by content and run its handler (nested members come back here)."""
        from mlfort.scan.dispatch import scan_member

        scan_member(member, self)

    def note_expanded(self, n: int, member: Member) -> bool:
        """Count decompressed bytes; False (and a finding, once) when the limit is passed: stop expanding."""
        self.expanded_bytes += n
        if self.expanded_bytes > self.limits.max_expanded_bytes:
            if not any(f.rule_id == "MLF-MOD-004" and f.evidence.get("limit") == "expanded" for f in self.findings):
                from mlfort.scan.rules import finding

                self.add(finding("MLF-MOD-004", member.path,
                                 f"more than {self.limits.max_expanded_bytes} bytes decompressed: a decompression "
                                 "bomb, or a model too large to scan with these limits; the rest was not scanned",
                                 limit="expanded"))
            return False
        return True


def worst(findings: list[Finding]) -> Severity | None:
    """The highest severity among findings."""
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)

"""ONNX models, read with a small protobuf wire-format reader (no onnx dependency, nothing loaded).

The walk follows every place a tensor or a node can hide: ModelProto.graph (7), training_info graphs (20) and
functions (25); GraphProto nodes (1), initializers (5) and sparse initializers (15); node attributes holding
tensors and subgraphs (If/Loop/Scan bodies, nested to any depth). Tensors' raw data is skipped by seeking, never
read. Two things are reported:

* MLF-MOD-008: a tensor whose external data `location` is absolute, a URL, or climbs out of the model's folder
  (resolved with symlinks, on disk): loading the model reads that file (CVE-2024-27318/27319 were this path
  traversal in onnx itself).
* MLF-MOD-002 (HIGH): nodes in an operator domain outside the standard ones (`ai.onnx`, `ai.onnx.ml`,
  `com.microsoft`...) that no function in the model defines: running the model needs a custom operator library,
  native code loaded into the process.

Wire-format damage (bad tags, lengths past the end, groups) is MLF-MOD-003; a member that is not ONNX at all and was
only guessed to be (a leading 0x08 byte, no `.onnx` name) is MLF-MOD-005 instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mlfort.report import Severity
from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.rules import finding

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "ai.onnx.training",
                              "ai.onnx.preview", "com.microsoft", "com.ms.internal.nhwc"})
"""Operator domains onnxruntime implements itself (plus `com.microsoft.*`)."""
MAX_DEPTH = 64
"""Nested graphs (If inside Loop inside...) followed."""
MAX_STRING = 1 << 16
"""Names, domains and external-data values longer than this are skipped."""
MAX_FIELDS = 20_000_000
MAX_REPORTED = 20


class _Malformed(Exception):
    """The bytes are not a valid protobuf message here."""


class _TooMuch(Exception):
    """A scan limit was reached."""


class _Reader:
    """Buffered reads at absolute positions over a seekable stream; skips are seeks."""

    def __init__(self, stream: BinaryIO, total: int) -> None:
        self.stream, self.total = stream, total
        self.pos = 0
        self._buf = b""
        self._at = 0
        self.fields = 0

    def _fill(self, n: int) -> None:
        if self.pos < self._at or self.pos + n > self._at + len(self._buf):
            self.stream.seek(self.pos)
            self._buf = self.stream.read(max(n, 1 << 16))
            self._at = self.pos

    def byte(self, end: int) -> int:
        if self.pos >= end:
            raise _Malformed(f"varint runs past the end of its message at byte {self.pos}")
        self._fill(1)
        i = self.pos - self._at
        if i >= len(self._buf):
            raise _Malformed(f"file ends at byte {self.pos}")
        self.pos += 1
        return self._buf[i]

    def varint(self, end: int) -> int:
        shift = value = 0
        for _ in range(10):
            b = self.byte(end)
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise _Malformed(f"varint longer than 10 bytes at byte {self.pos}")

    def bytes(self, n: int) -> bytes:
        self._fill(n)
        i = self.pos - self._at
        out = self._buf[i:i + n]
        if len(out) < n:
            raise _Malformed(f"file ends at byte {self.pos + len(out)}")
        self.pos += n
        return out

    def fields_of(self, end: int) -> Iterator[tuple[int, int, int, int]]:
        """Each field up to `end`: (number, wire type, value start, value end); for varints, the value itself."""
        while self.pos < end:
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise _TooMuch
            key = self.varint(end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _Malformed(f"field number 0 at byte {self.pos}")
            if wire == 0:
                value = self.varint(end)
                yield number, wire, value, self.pos
            elif wire == 1 or wire == 5:
                n = 8 if wire == 1 else 4
                if self.pos + n > end:
                    raise _Malformed(f"fixed-width field runs past its message at byte {self.pos}")
                self.pos += n
                yield number, wire, self.pos - n, self.pos
            elif wire == 2:
                n = self.varint(end)
                start = self.pos
                if start + n > end:
                    raise _Malformed(f"field {number} claims {n} bytes at byte {start}; its message has "
                                     f"{end - start} left")
                yield number, wire, start, start + n
                self.pos = start + n  # whatever the caller read of it, continue after it
            else:
                raise _Malformed(f"wire type {wire} (groups or invalid) at byte {self.pos}")

    def string(self, start: int, end: int) -> str | None:
        if end - start > MAX_STRING:
            return None
        self.pos = start
        return self.bytes(end - start).decode("utf-8", "replace")


@dataclass
class _Model:
    external: list[tuple[str, str]] = field(default_factory=list)
    """(tensor name, location) of every external tensor."""
    ops: dict[str, set[str]] = field(default_factory=dict)
    """domain -> op types used by nodes."""
    functions: set[tuple[str, str]] = field(default_factory=set)
    """(domain, name) of functions the model defines."""
    graphs: int = 0


class _Walker:
    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.m = _Model()

    def model(self, end: int) -> None:
        for number, wire, start, stop in self.r.fields_of(end):
            if wire != 2:
                continue
            if number == 7:
                self.graph(start, stop, 0)
            elif number == 20:  # TrainingInfoProto: initialization (1) and algorithm (2) graphs
                self._children(start, stop, {1: self.graph, 2: self.graph}, 0)
            elif number == 25:
                self.function(start, stop, 0)

    def _children(self, start: int, end: int, handlers: dict[int, Callable[[int, int, int], None]], depth: int) -> None:
        self.r.pos = start
        for number, wire, s, e in self.r.fields_of(end):
            if wire == 2 and number in handlers:
                handlers[number](s, e, depth)

    def graph(self, start: int, end: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _TooMuch
        self.m.graphs += 1
        self._children(start, end, {1: self.node, 5: self.tensor, 15: self.sparse}, depth)

    def sparse(self, start: int, end: int, depth: int) -> None:
        self._children(start, end, {1: self.tensor, 2: self.tensor}, depth)

    def node(self, start: int, end: int, depth: int) -> None:
        self.r.pos = start
        op, domain = "", ""
        attributes: list[tuple[int, int]] = []
        for number, wire, s, e in self.r.fields_of(end):
            if wire != 2:
                continue
            if number == 4:
                op = self.r.string(s, e) or "<oversized>"
            elif number == 7:
                domain = self.r.string(s, e) or "<oversized>"
            elif number == 5:
                attributes.append((s, e))
        self.m.ops.setdefault(domain, set()).add(op)
        for s, e in attributes:
            # tensors (5, 10), graphs (6, 11: If/Loop/Scan bodies), sparse tensors (22, 23)
            self._children(s, e, {5: self.tensor, 10: self.tensor, 6: self._sub, 11: self._sub, 22: self.sparse,
                                  23: self.sparse}, depth)

    def _sub(self, start: int, end: int, depth: int) -> None:
        self.graph(start, end, depth + 1)

    def function(self, start: int, end: int, depth: int) -> None:
        self.r.pos = start
        name, domain = "", ""
        nodes: list[tuple[int, int]] = []
        for number, wire, s, e in self.r.fields_of(end):
            if wire != 2:
                continue
            if number == 1:
                name = self.r.string(s, e) or ""
            elif number == 8:
                domain = self.r.string(s, e) or ""
            elif number == 5:
                nodes.append((s, e))
        self.m.functions.add((domain, name))
        for s, e in nodes:
            self.node(s, e, depth + 1)

    def tensor(self, start: int, end: int, depth: int) -> None:
        self.r.pos = start
        name, location, external = "", None, False
        entries: list[tuple[int, int]] = []
        for number, wire, s, e in self.r.fields_of(end):
            if number == 8 and wire == 2:
                name = self.r.string(s, e) or "<oversized>"
            elif number == 13 and wire == 2:
                entries.append((s, e))
            elif number == 14 and wire == 0:
                external = s == 1  # data_location EXTERNAL
        for s, e in entries:
            key = value = None
            self.r.pos = s
            for number, wire, fs, fe in self.r.fields_of(e):
                if wire == 2 and number == 1:
                    key = self.r.string(fs, fe)
                elif wire == 2 and number == 2:
                    value = self.r.string(fs, fe)
                    if value is None:
                        value = "<oversized location>"
            if key == "location" and value is not None:
                location = value
        if location is not None or external:
            self.m.external.append((name, location if location is not None else ""))


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?://|[^\\/])")


def _escape(location: str, model_dir: Path | None, root: Path) -> tuple[Severity, str] | None:
    """Why loading `location` (relative to the model's folder) would read outside it; None when it stays inside."""
    if not location:
        return Severity.HIGH, "the tensor is marked external but names no location"
    if location.startswith("<oversized"):
        return Severity.HIGH, "the location is longer than any real file name"
    if "\x00" in location:
        return Severity.CRITICAL, "the location holds a NUL byte (truncated differently by different readers)"
    if _URL.match(location) and not re.match(r"^[A-Za-z]:[\\/]", location):
        return Severity.CRITICAL, "the location is a URL"
    normal = location.replace("\\", "/")  # Windows loaders split on both
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal):
        return Severity.CRITICAL, "the location is an absolute path"
    parts = PurePosixPath(normal).parts
    depth = 0
    for part in parts:
        depth = depth - 1 if part == ".." else depth + (part not in (".", ""))
        if depth < 0:
            return Severity.CRITICAL, "the location climbs out of the model's folder with '..'"
    if model_dir is not None:
        folder = model_dir.resolve()
        target = Path(os.path.realpath(folder / normal))
        if not target.is_relative_to(folder):
            inside_root = target.is_relative_to(root.resolve())
            return (Severity.HIGH if inside_root else Severity.CRITICAL,
                    f"the location resolves (through a symlink) to {target}, outside the model's folder")
    return None


@handles("onnx")
def scan_onnx(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """Walk the ModelProto; report external data that escapes the model's folder and custom operator domains."""
    total = stream.seek(0, 2)
    reader = _Reader(stream, total)
    walker = _Walker(reader)
    named = member.hint == "onnx" or member.path.lower().endswith(".onnx")
    try:
        walker.model(total)
    except _Malformed as exc:
        if named or walker.m.graphs:
            ctx.add(finding("MLF-MOD-003", member.path, f"ONNX protobuf is malformed: {exc}", format="onnx"))
        else:
            ctx.add(finding("MLF-MOD-005", member.path, "starts like a protobuf but is not an ONNX model; not "
                            "scanned", format="unknown"))
        return
    except _TooMuch:
        ctx.add(finding("MLF-MOD-004", member.path, f"ONNX model nests graphs more than {MAX_DEPTH} deep or holds "
                        f"more than {MAX_FIELDS} fields; the rest was not checked", limit="onnx"))
    model = walker.m
    if not model.graphs and not model.functions and not named:
        ctx.add(finding("MLF-MOD-005", member.path, "a protobuf with no ONNX graph; not scanned", format="unknown"))
        return
    model_dir = member.disk_path.parent if member.disk_path is not None and member.depth == 0 else None
    reported = 0
    for name, location in model.external:
        escape = _escape(location, model_dir, ctx.root)
        if escape is None:
            continue
        reported += 1
        if reported <= MAX_REPORTED:
            severity, why = escape
            ctx.add(finding("MLF-MOD-008", member.path, f"ONNX tensor {name!r} loads external data from "
                            f"{location[:200]!r}: {why}", severity=severity, format="onnx", tensor=name,
                            location=location[:1000]))
    if reported > MAX_REPORTED:
        ctx.add(finding("MLF-MOD-008", member.path, f"{reported - MAX_REPORTED} more tensors load external data "
                        "from outside the model's folder", format="onnx"))
    for domain, ops in sorted(model.ops.items()):
        if domain in STANDARD_DOMAINS or domain.startswith("com.microsoft."):
            continue
        custom = sorted(op for op in ops if (domain, op) not in model.functions)
        if custom:
            ctx.add(finding("MLF-MOD-002", member.path, f"ONNX nodes use operator domain {domain!r} "
                            f"({', '.join(custom[:10])}): a custom operator library (native code) must be loaded "
                            "to run the model", severity=Severity.HIGH, format="onnx", domain=domain,
                            ops=custom[:50]))

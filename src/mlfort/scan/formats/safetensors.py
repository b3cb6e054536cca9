"""safetensors files: the header is checked as strictly as the reference (Rust) loader checks it, without reading a
single tensor.

The format is an 8-byte little-endian header length, a JSON object naming each tensor's dtype, shape and
`[begin, end)` offsets into the data section that follows, and an optional `__metadata__` object of strings. The
format cannot run code; what a crafted header can do is make a lenient loader read out of bounds, alias two tensors
onto the same bytes, or hide bytes no tensor covers. Anything the Rust loader would refuse, and anything two JSON
parsers would read differently (duplicate keys, NaN), is MLF-MOD-009; a header that is not JSON at all is
MLF-MOD-003.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, BinaryIO

from mlfort.report import Severity
from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.rules import finding

MAX_HEADER = 100_000_000
"""The reference loader's own cap on the header length (bytes); larger headers are refused before reading."""

DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F6_E2M3": 6, "F6_E3M2": 6, "F4": 4,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
    "C64": 64,
}
"""Bits per element of every dtype the format defines (sub-byte types pack; their byte count must be whole)."""

MAX_REPORTED = 20
"""Per-tensor problems reported one by one; beyond this they are counted in one finding."""


class _Duplicate(ValueError):
    """A JSON object names the same key twice."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python's json keeps the last duplicate, serde the first or an error: a parser differential, so refuse it
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bad(ctx: ScanContext, member: Member, why: str, severity: Severity | None = None, **evidence: object) -> None:
    ctx.add(finding("MLF-MOD-009", member.path, f"safetensors header: {why}", severity=severity,
                    format="safetensors", **evidence))


def _unparseable(ctx: ScanContext, member: Member, why: str) -> None:
    ctx.add(finding("MLF-MOD-003", member.path, f"safetensors file is malformed: {why}", format="safetensors"))


def _tensor_problem(name: str, info: Any) -> tuple[str | None, tuple[int, int] | None]:
    """(what is wrong with one tensor entry or None, its (begin, end) when they are usable)."""
    if not isinstance(info, dict):
        return f"tensor {name!r} is described by a {type(info).__name__}, not an object", None
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    extra = sorted(set(info) - {"dtype", "shape", "data_offsets"})
    if extra:
        return f"tensor {name!r} has unexpected fields {extra}", None
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(
            type(o) is int for o in offsets):
        return f"tensor {name!r} data_offsets {offsets!r} is not a pair of integers", None
    begin, end = offsets
    if begin < 0 or end < 0:
        return f"tensor {name!r} has negative data_offsets {offsets}", None
    if end < begin:
        return f"tensor {name!r} ends before it begins ({offsets})", None
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        return f"tensor {name!r} has unknown dtype {dtype!r}", (begin, end)
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return f"tensor {name!r} shape {shape!r} is not a list of non-negative integers", (begin, end)
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8:
        return f"tensor {name!r} ({dtype} {shape}) does not fill a whole number of bytes", (begin, end)
    if end - begin != bits // 8:
        return (f"tensor {name!r} is {dtype} {shape} ({bits // 8} bytes) but its data_offsets span {end - begin} "
                "bytes"), (begin, end)
    return None, (begin, end)


@handles("safetensors")
def scan_safetensors(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """Check the header length, the JSON, every tensor entry and how the tensors tile the data section."""
    head = stream.read(8)
    if len(head) < 8:
        _unparseable(ctx, member, "shorter than the 8-byte header length")
        return
    (length,) = struct.unpack("<Q", head)
    total = stream.seek(0, 2)
    if length > MAX_HEADER:
        _bad(ctx, member, f"claims a {length}-byte header (loaders refuse more than {MAX_HEADER})", length=length)
        return
    if 8 + length > total:
        _bad(ctx, member, f"claims a {length}-byte header but the file has {total - 8} bytes after the length",
             length=length)
        return
    stream.seek(8)
    raw = stream.read(length)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_no_constant)
    except _Duplicate as exc:
        _bad(ctx, member, f"the key {exc.args[0]!r} appears twice (parsers disagree on which one counts)")
        return
    except UnicodeDecodeError:
        _unparseable(ctx, member, "the header is not UTF-8")
        return
    except (ValueError, RecursionError) as exc:
        _unparseable(ctx, member, f"the header is not JSON ({type(exc).__name__}: {str(exc)[:120]})")
        return
    if not isinstance(header, dict):
        _unparseable(ctx, member, f"the header is a JSON {type(header).__name__}, not an object")
        return
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(v, str) for v in metadata.values())):
        _bad(ctx, member, "__metadata__ must map strings to strings (the reference loader refuses anything else)")
    data_size = total - 8 - length
    problems: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        why, span = _tensor_problem(name, info)
        if why:
            problems.append(why)
        if span is not None:
            begin, end = span
            if end > data_size:
                problems.append(f"tensor {name!r} ends at byte {end} of a {data_size}-byte data section")
            spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    gaps: list[str] = []
    for begin, end, name in spans:
        if begin < cursor:
            problems.append(f"tensor {name!r} [{begin}, {end}) overlaps the tensor before it (which ends at {cursor})")
        elif begin > cursor:
            gaps.append(f"{begin - cursor} bytes before tensor {name!r}")
        cursor = max(cursor, end)
    if cursor < data_size:
        gaps.append(f"{data_size - cursor} bytes after the last tensor")
    for why in problems[:MAX_REPORTED]:
        _bad(ctx, member, why)
    if len(problems) > MAX_REPORTED:
        _bad(ctx, member, f"{len(problems) - MAX_REPORTED} more tensor entries are invalid")
    if gaps:
        # the reference loader refuses these; the bytes could carry anything past a lenient one
        _bad(ctx, member, "bytes no tensor covers: " + "; ".join(gaps[:MAX_REPORTED]), severity=Severity.MEDIUM,
             gaps=len(gaps))

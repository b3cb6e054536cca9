"""NumPy `.npy` files (and so the members of `.npz` archives, which the zip handler sends here by content).

The header is a Python dict literal; it is parsed with `ast.literal_eval` behind a size limit, never evaluated. An
array whose dtype holds objects (`|O`, or a structured dtype with an object field) is stored as a pickle that
`np.load(..., allow_pickle=True)` unpickles: that is MLF-MOD-006, and the pickle, which starts right after the
header, is handed to the context to be scanned like any other. Bytes behind a plain array's data are reported and
scanned too; NumPy ignores them, other readers may not.
"""

from __future__ import annotations

import ast
import math
import struct
from typing import Any, BinaryIO

from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.formats.compressed import window_member
from mlfort.scan.rules import finding

MAX_HEADER = 1 << 20
"""NumPy itself refuses headers over 10 000 bytes unless allow_pickle is set; a larger one is still parsed to here."""
_MAGIC = b"\x93NUMPY"
_KEYS = {"descr", "fortran_order", "shape"}


def _has_object(descr: Any) -> bool:
    """Whether a dtype description (a type string, or a list of fields, nested) holds Python objects."""
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O") or descr.strip().lower() == "object"
    if isinstance(descr, (list, tuple)):
        return any(_has_object(part) for part in descr)
    return False


def _dtype(descr: Any) -> tuple[int, bool] | None:
    """(bytes per element, holds objects) as NumPy reads the description, or None when NumPy would reject it."""
    try:
        from numpy.lib.format import descr_to_dtype

        dtype = descr_to_dtype(descr)
        return int(dtype.itemsize), bool(dtype.hasobject)
    except (TypeError, ValueError, KeyError, IndexError, RecursionError, MemoryError, ImportError, AttributeError):
        return None


def _problem(ctx: ScanContext, member: Member, why: str) -> None:
    ctx.add(finding("MLF-MOD-003", member.path, f"NumPy file header is malformed: {why}", format="numpy"))


@handles("numpy")
def scan_npy(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """Parse the header; scan the pickle of an object array; report what a plain array's size leaves over."""
    head = stream.read(10)
    if len(head) < 10 or not head.startswith(_MAGIC):
        _problem(ctx, member, "truncated before the header length")
        return
    major = head[6]
    if major == 1:
        (length,) = struct.unpack_from("<H", head, 8)
        start = 10
    elif major in (2, 3):
        more = stream.read(2)
        if len(more) < 2:
            _problem(ctx, member, "truncated before the header length")
            return
        (length,) = struct.unpack("<I", head[8:] + more)
        start = 12
    else:
        _problem(ctx, member, f"unknown format version {major}.{head[7]}")
        return
    if length > MAX_HEADER:
        _problem(ctx, member, f"a {length}-byte header (the scanner reads up to {MAX_HEADER})")
        return
    raw = stream.read(length)
    if len(raw) < length:
        _problem(ctx, member, "truncated inside the header")
        return
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin-1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        _problem(ctx, member, f"the header is not a Python literal ({type(exc).__name__})")
        return
    if not isinstance(header, dict) or set(header) != _KEYS:
        _problem(ctx, member, "the header is not a dict of descr, fortran_order and shape")
        return
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        _problem(ctx, member, f"shape {shape!r} is not a tuple of sizes")
        return
    data_at = start + length
    descr = header["descr"]
    dtype = _dtype(descr)
    # our own reading and NumPy's: either one seeing objects means a pickle follows
    if _has_object(descr) or (dtype is not None and dtype[1]):
        ctx.add(finding("MLF-MOD-006", member.path, f"NumPy object array (dtype {descr!r}): np.load with "
                        "allow_pickle=True unpickles it; the pickle was scanned", dtype=str(descr)))
        child, _ = window_member(member, stream, f"{member.path}!pickle", data_at, None, hint="pickle")
        ctx.scan(child)
        return
    if dtype is None:
        _problem(ctx, member, f"dtype {descr!r} is not one NumPy reads")
        return
    expected = math.prod(shape) * dtype[0]
    total = stream.seek(0, 2)
    have = total - data_at
    if have < expected:
        ctx.add(finding("MLF-MOD-003", member.path, f"NumPy array data is truncated ({have} of {expected} bytes)",
                        format="numpy"))
    elif have > expected:
        ctx.add(finding("MLF-MOD-011", member.path, f"{have - expected} bytes follow the NumPy array's data "
                        "(np.load ignores them; they were scanned)", format="numpy"))
        child, _ = window_member(member, stream, f"{member.path}!<trailing>", data_at + expected, None)
        ctx.scan(child)

"""Identify a member's format by its first bytes and run the handler registered for it.

Handlers register with `@handles("zip")`; `detect` names formats from content only (a `hint` from a container is
used when content is ambiguous, e.g. protocol-0 pickles and ONNX protobufs have no magic number).
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable
from typing import BinaryIO

from mlfort.scan.base import Handler, Member, ScanContext
from mlfort.scan.rules import finding

HEAD_BYTES = 1024
"""How much of a member `detect` looks at (HDF5 may put its signature at 512)."""

HANDLERS: dict[str, Handler] = {}

TEXT_FORMATS = ("json", "text")
"""Formats that are counted but hold nothing executable for a model loader."""


def handles(*formats: str) -> Callable[[Handler], Handler]:
    """Register a handler for formats (one module per format family, imported by `load_handlers`)."""

    def register(fn: Handler) -> Handler:
        for f in formats:
            HANDLERS[f] = fn
        return fn

    return register


_PICKLE_START_OPCODES = frozenset(b"(]})cNIJKLMFGSTUVX\x88\x89\x8a\x8bq\x94\x95")


def detect(head: bytes, hint: str | None = None) -> str:
    """The format of a member from its first bytes: zip, tar, gzip, bz2, xz, lzma, zlib, pickle, numpy,
    safetensors, gguf, hdf5, onnx, torch-legacy is a pickle (its handler sees several), json, text, or unknown."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(b"\x89HDF\r\n\x1a\n") or head[512:520] == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if len(head) >= 2 and head[0] == 0x80 and 0 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 10:
        (n,) = struct.unpack_from("<Q", head)
        if 2 <= n <= 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if len(head) >= 2 and head[0] in (0x78,) and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib"
    if _looks_like_lzma_alone(head):
        return "lzma"
    if head.startswith(b"ZF0x"):
        return "joblib-zfile"  # joblib < 0.10 compressed pickles, which joblib.load still reads
    for magic, fmt in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            return fmt
    if hint in ("pickle", "onnx"):
        return hint
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"[") and _is_text(head):
        return "json"
    if head[:1] and head[0] in _PICKLE_START_OPCODES and not _is_text(head):
        return "pickle"
    if _is_text(head):
        # Protocol 0/1 pickles are printable too: `cos\nsystem\n(S'id'\ntR.` is text. Text that parses as the
        # start of a pickle goes to the pickle scanner (which decides); plain text is counted as text.
        return "pickle" if _looks_like_text_pickle(head) else "text"
    if hint:
        return hint
    if head[:1] == b"\x08":  # ONNX ModelProto starts with field 1 (ir_version), varint
        return "onnx"
    return "unknown"


_UNSUPPORTED_MAGIC = ((b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "rar"), (b"\x04\x22\x4d\x18", "lz4"),
                      (b"\x28\xb5\x2f\xfd", "zstd"))
"""Containers the scanner cannot open: named, so the report says what was not scanned."""


def _looks_like_lzma_alone(head: bytes) -> bool:
    """The 13-byte `.lzma` header: properties 0x5D (lc=3, lp=0, pb=2: every encoder's default), a dictionary
    size of 2^n or 2^n + 2^(n-1) (what encoders write: joblib's presets use 64 KiB to 64 MiB), then the size or -1."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    (dict_size,) = struct.unpack_from("<I", head, 1)
    (size,) = struct.unpack_from("<Q", head, 5)
    bits = bin(dict_size).count("1")
    if dict_size < 4096 or not (bits == 1 or (bits == 2 and dict_size & (dict_size >> 1))):
        return False
    return size == (1 << 64) - 1 or size < 1 << 48


def _is_text(head: bytes) -> bool:
    if not head:
        return True
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the head is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(c.isprintable() or c in "\r\n\t\f" for c in text)


def _looks_like_text_pickle(head: bytes) -> bool:
    """Protocol 0 pickles: a GLOBAL/INST opcode line (`cmodule\\nname\\n`, `imodule\\nname\\n`) or a MARK/STRING
    start followed by pickle structure, ending in `.`."""
    if head[:1] in (b"c", b"i"):
        parts = head[1:].split(b"\n", 2)
        return len(parts) >= 2 and all(p and b" " not in p for p in parts[:2]) and parts[0].replace(b".", b"_").replace(
            b"_", b"a").isalnum()
    return head[:1] in (b"(", b"]", b"}") and (b"\n" in head[:64] or head.rstrip().endswith(b"."))


def _name_hint(path: str) -> str | None:
    """A format hint from the name, for formats with no magic number: `.onnx` (a protobuf may start with any field,
    so a crafted model need not begin with 0x08). Only a hint: magic numbers still win, and the ONNX handler checks
    the structure."""
    return "onnx" if path.lower().endswith(".onnx") else None


_KERAS_CONFIG_NAMES = ("config.json", "metadata.json")
"""Members of a `.keras` zip routed to the Keras config check (in addition to their format's handler)."""


def _is_keras_config_name(path: str) -> bool:
    return path.rsplit("!", 1)[-1].rsplit("/", 1)[-1] in _KERAS_CONFIG_NAMES


MODULE_OF: dict[str, str] = {
    "pickle": "pickles", "zip": "archives", "zip-appended": "archives", "tar": "archives",
    "gzip": "compressed", "bz2": "compressed", "xz": "compressed", "lzma": "compressed", "zlib": "compressed",
    "joblib-zfile": "compressed", "7z": "compressed", "rar": "compressed", "lz4": "compressed", "zstd": "compressed",
    "numpy": "numpy_files", "hdf5": "hdf5", "keras-config": "keras", "onnx": "onnx", "safetensors": "safetensors",
    "gguf": "gguf",
}
"""Which module under mlfort.scan.formats handles each format: imported on first need, so a folder of pickles
never pays for the Keras, ONNX or GGUF code."""


def handler_for(fmt: str) -> Handler | None:
    """The handler of a format, importing its module the first time."""
    handler = HANDLERS.get(fmt)
    if handler is None and fmt in MODULE_OF:
        importlib.import_module(f"mlfort.scan.formats.{MODULE_OF[fmt]}")
        handler = HANDLERS.get(fmt)
    return handler


def load_handlers() -> None:
    """Import every handler module (each registers itself)."""
    for module in sorted(set(MODULE_OF.values())):
        importlib.import_module(f"mlfort.scan.formats.{module}")


def scan_member(member: Member, ctx: ScanContext) -> None:
    """Detect and dispatch one member, enforcing depth and member-count limits."""
    ctx.members += 1
    if member.depth > ctx.limits.max_depth:
        ctx.add(finding("MLF-MOD-004", member.path, f"nested more than {ctx.limits.max_depth} containers deep; "
                        "not scanned", limit="depth"))
        return
    if ctx.members > ctx.limits.max_members:
        if ctx.members == ctx.limits.max_members + 1:
            ctx.add(finding("MLF-MOD-004", member.path, f"more than {ctx.limits.max_members} members; the rest "
                            "were not scanned", limit="members"))
        return
    try:
        stream = member.open()
    except OSError as exc:
        ctx.add(finding("MLF-MOD-003", member.path, f"cannot be read: {exc.strerror or exc}"))
        return
    with stream:
        try:
            head = stream.read(HEAD_BYTES)
            stream.seek(0)
        except OSError as exc:
            ctx.add(finding("MLF-MOD-003", member.path, f"cannot be read: {exc.strerror or exc}"))
            return
        fmt = detect(head, member.hint or _name_hint(member.path))
        ctx.formats[fmt] += 1
        try:
            _dispatch(member, stream, ctx, fmt, head)
        except RecursionError:
            ctx.add(finding("MLF-MOD-004", member.path, "structure nests too deep to analyse", limit="recursion"))
        except MemoryError:
            ctx.add(finding("MLF-MOD-004", member.path, "needs more memory than the scanner allows", limit="memory"))
        except Exception as exc:  # noqa: BLE001 - fail closed: a file the scanner chokes on is a finding, not a crash
            ctx.add(finding("MLF-MOD-003", member.path, f"the {fmt} scanner could not analyse it "
                            f"({type(exc).__name__}: {str(exc)[:200]}); treat it as unsafe", format=fmt))


def _tail_has_zip_end(member: Member, stream: BinaryIO) -> bool:
    """Whether the last 64 KiB could hold a zip end record (the cheap test before the zip code is even imported).
    Decompressed streams of unknown size are left out, as the zip-appended handler leaves them out."""
    if member.depth > 0 and member.size is None:
        return False
    size = stream.seek(0, 2)
    stream.seek(max(0, size - (22 + 0xFFFF)))
    found = b"PK\x05\x06" in stream.read()
    stream.seek(0)
    return found


def _dispatch(member: Member, stream: BinaryIO, ctx: ScanContext, fmt: str, head: bytes) -> None:
    """Run the hooks and the format's handler on an open member."""
    appended = handler_for("zip-appended") if fmt != "zip" and _tail_has_zip_end(member, stream) else None
    if appended is not None:
        # zipfile (and so Keras, NumPy's zipfile users...) opens a zip appended to any file: check the tail
        appended(member, stream, ctx)
        stream.seek(0)
    keras_config = handler_for("keras-config") if member.depth > 0 and _is_keras_config_name(member.path) else None
    if keras_config is not None:
        # a `.keras` zip's config.json is the model definition Keras deserializes, whatever its bytes look like
        # (json.loads also reads UTF-16): judge it as Keras reads it, then as the format it looks like
        keras_config(member, stream, ctx)
        stream.seek(0)
    if fmt in TEXT_FORMATS:
        return
    handler = handler_for(fmt)
    if handler is None:
        if fmt == "unknown" and not head:
            return  # an empty file holds nothing
        ctx.add(finding("MLF-MOD-005", member.path, f"format not recognised ({head[:8].hex()}…); not scanned",
                        format=fmt))
        return
    handler(member, stream, ctx)

"""GGUF files (llama.cpp): the header is walked as a stream and every count, length, type and offset is checked
against what the file can actually hold, before anything is read.

Layout (v2/v3; v1 used 32-bit counts and lengths): `GGUF`, a uint32 version, uint64 tensor and key/value counts,
the typed key/values (strings are a uint64 length and bytes; arrays a uint32 element type, a uint64 count and the
elements, arrays of arrays allowed), the tensor infos (name, uint32 n_dims, uint64 dims, uint32 ggml type, uint64
offset into the data section), padding to `general.alignment`, then the tensor data. Version 3 files may be
big-endian, which shows as a byte-swapped version.

llama.cpp and its bindings have had memory-safety bugs on headers that claim more than the file holds, so nothing
claimed is trusted: a 2^60-byte string is compared with the bytes left, never read; arrays of numbers are skipped by
seeking. Impossible values are MLF-MOD-010; a file that ends mid-header is MLF-MOD-003.

Chat templates are Jinja2 that llama-cpp-python (CVE-2024-34359) and others rendered without a sandbox: a template
reaching `__globals__`/`__subclasses__`/`os.popen` runs code when the model is used for chat (MLF-MOD-001).
"""

from __future__ import annotations

import math
import re
import struct
from typing import BinaryIO

from mlfort.report import Severity
from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.rules import finding

# value types: name, fixed size (None: variable)
_TYPES: dict[int, tuple[str, int | None]] = {
    0: ("uint8", 1), 1: ("int8", 1), 2: ("uint16", 2), 3: ("int16", 2), 4: ("uint32", 4), 5: ("int32", 4),
    6: ("float32", 4), 7: ("bool", 1), 8: ("string", None), 9: ("array", None), 10: ("uint64", 8),
    11: ("int64", 8), 12: ("float64", 8),
}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_INT_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 10: "Q", 11: "q"}

GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 31: ("Q4_0_4_4", 32, 18), 32: ("Q4_0_4_8", 32, 18),
    33: ("Q4_0_8_8", 32, 18), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 36: ("IQ4_NL_4_4", 32, 18),
    37: ("IQ4_NL_4_8", 32, 18), 38: ("IQ4_NL_8_8", 32, 18), 39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18), 42: ("Q2_0", 64, 18),
}
"""ggml tensor types: name, elements per block, bytes per block (31-33 and 36-38 are retired but still in old files)."""

MAX_DIMS = 4
"""GGML_MAX_DIMS: llama.cpp refuses tensors with more dimensions."""
DEFAULT_ALIGNMENT = 32
MAX_STRING_READ = 1 << 20
"""Strings longer than this are skipped, not read (chat templates longer than this are read up to 16 MiB)."""
MAX_TEMPLATE = 16 << 20
MAX_ARRAY_DEPTH = 8
MAX_ITEMS = 50_000_000
"""Values (array elements included) walked in one file before the scan stops with a limit finding."""
MAX_REPORTED = 20

_GADGETS = re.compile(
    r"__(?:class|subclasses|globals|builtins|mro|base|bases|init|import|getattribute|dict|code|func|self|reduce"
    r"|loader|spec)__|_TemplateReference__context|\bos\.(?:popen|system|exec\w*|spawn\w*)|\bpopen\b|\bsubprocess\b"
    r"|\beval\s*\(|\bexec\s*\(|\bimport\s+\w|\bimportlib\b|\bsys\.modules\b")
"""Jinja2 sandbox-escape gadgets: dunder walks to a module's globals, and what they are used to call."""
_OBFUSCATION = re.compile(r"\|\s*attr\s*\(|\\x5f|\\u005f|\\137|'_'\s*\*\s*2|\"_\"\s*\*\s*2|\blipsum\b|\bcycler\b"
                          r"|\bjoiner\b\s*\.|\brequest\.application\b|\bconfig\.items\b")
"""How payloads hide the dunders from string matching: the `attr` filter, escaped underscores, Jinja's globals."""


class _Bad(Exception):
    """The header claims something impossible (MLF-MOD-010)."""


class _Truncated(Exception):
    """The file ends inside the header (MLF-MOD-003)."""


class _TooMuch(Exception):
    """The scan limit on values walked was reached (MLF-MOD-004)."""


class _Reader:
    """Buffered, bounds-checked reads over the stream: every length is compared with the bytes left first."""

    def __init__(self, stream: BinaryIO, total: int, order: str) -> None:
        self.stream, self.total, self.order = stream, total, order
        self.pos = 0
        self._buf = b""
        self._buf_at = 0
        self.items = 0

    def left(self) -> int:
        return self.total - self.pos

    def read(self, n: int) -> bytes:
        if n > self.left():
            raise _Truncated(f"needs {n} bytes at offset {self.pos}, {self.left()} left")
        start = self.pos - self._buf_at
        if start < 0 or start + n > len(self._buf):
            self.stream.seek(self.pos)
            self._buf = self.stream.read(max(n, 1 << 16))
            self._buf_at = self.pos
            start = 0
            if len(self._buf) < n:
                raise _Truncated(f"the stream ended at offset {self.pos + len(self._buf)}")
        self.pos += n
        return self._buf[start:start + n]

    def skip(self, n: int) -> None:
        if n > self.left():
            raise _Bad(f"claims {n} bytes at offset {self.pos} but only {self.left()} remain")
        self.pos += n

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        value: int = struct.unpack(self.order + fmt, self.read(size))[0]
        return value

    def count(self) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise _TooMuch


class _Gguf:
    def __init__(self, reader: _Reader, version: int) -> None:
        self.r = reader
        self.version = version
        self.len_fmt = "I" if version == 1 else "Q"  # v1: 32-bit lengths and counts
        self.templates: list[tuple[str, str]] = []
        self.alignment = DEFAULT_ALIGNMENT
        self.problems: list[str] = []

    def string(self, what: str, keep: int = MAX_STRING_READ) -> str | None:
        """A length-prefixed string: returned when at most `keep` bytes, else skipped (None)."""
        n = self.r.unpack(self.len_fmt)
        if n > self.r.left():
            raise _Bad(f"{what} claims a {n}-byte string at offset {self.r.pos} but only {self.r.left()} bytes remain")
        if n > keep:
            self.r.skip(n)
            return None
        return self.r.read(n).decode("utf-8", "replace")

    def value(self, vtype: int, key: str, depth: int = 0) -> object:
        self.r.count()
        if vtype not in _TYPES:
            raise _Bad(f"key {key!r} has unknown value type {vtype}")
        if vtype == _STRING:
            template = key.startswith("tokenizer.chat_template")
            return self.string(f"key {key!r}", MAX_TEMPLATE if template else MAX_STRING_READ)
        if vtype == _ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise _Bad(f"key {key!r} nests arrays more than {MAX_ARRAY_DEPTH} deep")
            etype = self.r.unpack("I")
            n = self.r.unpack(self.len_fmt)
            if etype not in _TYPES:
                raise _Bad(f"key {key!r} is an array of unknown type {etype}")
            size = _TYPES[etype][1]
            if size is not None:
                if n * size > self.r.left():
                    raise _Bad(f"key {key!r} claims {n} {_TYPES[etype][0]} values ({n * size} bytes) but only "
                               f"{self.r.left()} bytes remain")
                self.r.skip(n * size)  # numbers: seek past, never read
                return None
            minimum = 8 if self.version > 1 else 4
            if n * minimum > self.r.left():
                raise _Bad(f"key {key!r} claims {n} array elements; the {self.r.left()} bytes left cannot hold them")
            strings = []
            for _ in range(n):
                item = self.value(etype, key, depth + 1)
                if key.startswith("tokenizer.chat_template") and isinstance(item, str):
                    strings.append(item)
            if strings:
                self.templates.extend((key, s) for s in strings)
            return None
        fmt = _INT_FORMATS.get(vtype)
        if fmt is None:
            self.r.skip(_TYPES[vtype][1] or 0)  # floats and bools: nothing to check
            return None
        return self.r.unpack(fmt)

    def header(self, n_tensors: int, n_kv: int) -> list[tuple[str, list[int], int, int]]:
        seen: set[str] = set()
        for _ in range(n_kv):
            key = self.string("a key name")
            vtype = self.r.unpack("I")
            label = key if key is not None else "<oversized key>"
            if key is not None:
                if key in seen:
                    self.problems.append(f"key {key!r} appears twice (llama.cpp refuses the file)")
                seen.add(key)
            value = self.value(vtype, label)
            if key is not None and key.startswith("tokenizer.chat_template") and isinstance(value, str):
                self.templates.append((key, value))
            if key == "general.alignment":
                if vtype != _UINT32 or not isinstance(value, int) or value <= 0 or value & (value - 1):
                    raise _Bad(f"general.alignment must be a uint32 power of two, got type {vtype} value {value!r}")
                self.alignment = value
        tensors = []
        minimum = 24 if self.version > 1 else 16
        if n_tensors * minimum > self.r.left():
            raise _Bad(f"claims {n_tensors} tensors; the {self.r.left()} bytes left cannot describe them")
        for _ in range(n_tensors):
            self.r.count()
            name = self.string("a tensor name") or "<oversized name>"
            n_dims = self.r.unpack("I")
            if n_dims > MAX_DIMS:
                raise _Bad(f"tensor {name!r} has {n_dims} dimensions (llama.cpp allows at most {MAX_DIMS})")
            dims = [self.r.unpack(self.len_fmt) for _ in range(n_dims)]
            ggml_type = self.r.unpack("I")
            offset = self.r.unpack("Q")
            tensors.append((name, dims, ggml_type, offset))
        return tensors

    def check_tensors(self, tensors: list[tuple[str, list[int], int, int]], data_size: int) -> int:
        """Report impossible tensor infos; return the end of the last tensor's data."""
        names: set[str] = set()
        expected = 0
        end_max = 0
        for name, dims, ggml_type, offset in tensors:
            if name in names:
                self.problems.append(f"tensor name {name!r} appears twice")
            names.add(name)
            if offset % self.alignment:
                self.problems.append(f"tensor {name!r} offset {offset} is not a multiple of the alignment "
                                     f"{self.alignment}")
            n = math.prod(dims)
            if any(d >= 1 << 63 for d in dims) or n >= 1 << 63:
                self.problems.append(f"tensor {name!r} dimensions {dims} overflow a signed 64-bit element count")
                continue
            if ggml_type not in GGML_TYPES:
                self.problems.append(f"tensor {name!r} has unknown ggml type {ggml_type}")
                continue
            tname, block, block_bytes = GGML_TYPES[ggml_type]
            if dims and dims[0] % block:
                self.problems.append(f"tensor {name!r} row of {dims[0]} elements is not a whole number of {tname} "
                                     f"blocks of {block}")
                continue
            size = n // block * block_bytes
            if offset + size > data_size:
                self.problems.append(f"tensor {name!r} data [{offset}, {offset + size}) runs past the end of the "
                                     f"{data_size}-byte data section")
            elif offset != expected:
                how = ("overlaps the tensor before it" if offset < expected
                       else "leaves a gap after the tensor before it")
                self.problems.append(f"tensor {name!r} at offset {offset} {how} (llama.cpp expects {expected})")
            end_max = max(end_max, offset + size)
            expected = max(expected, offset + size + (-(offset + size) % self.alignment))
        return end_max


_JINJA_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
"""Expressions and statements: only there can a template run anything (the text around them is printed as is)."""


def _check_template(ctx: ScanContext, member: Member, key: str, template: str) -> None:
    # a system prompt may well say "import numpy"; only Jinja code is judged
    code = "\n".join(_JINJA_CODE.findall(template))
    gadgets = sorted({m.group(0) for m in _GADGETS.finditer(code)})
    hidden = sorted({m.group(0) for m in _OBFUSCATION.finditer(code)})
    if gadgets:
        ctx.add(finding("MLF-MOD-001", member.path, f"GGUF chat template {key!r} holds Jinja code-execution gadgets "
                        f"({', '.join(gadgets[:8])}): rendering it runs code (chat template injection, "
                        "CVE-2024-34359)", format="gguf", key=key, gadgets=gadgets[:20]))
    elif hidden:
        ctx.add(finding("MLF-MOD-001", member.path, f"GGUF chat template {key!r} uses constructs chat templates do "
                        f"not need ({', '.join(hidden[:8])}), the way sandbox-escape payloads hide their "
                        "dunder names", severity=Severity.HIGH, format="gguf", key=key, constructs=hidden[:20]))


@handles("gguf")
def scan_gguf(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """Walk the header; check counts, lengths, types, tensor infos and offsets; inspect chat templates."""
    total = stream.seek(0, 2)
    stream.seek(0)
    head = stream.read(8)
    if len(head) < 8:
        ctx.add(finding("MLF-MOD-003", member.path, "GGUF file ends inside its 8-byte preamble", format="gguf"))
        return
    (version,) = struct.unpack_from("<I", head, 4)
    order = "<"
    if version > 0xFFFF and struct.unpack_from(">I", head, 4)[0] in (1, 2, 3):
        order, version = ">", struct.unpack_from(">I", head, 4)[0]  # a big-endian file
    if version not in (1, 2, 3):
        ctx.add(finding("MLF-MOD-010", member.path, f"GGUF version {version} is not one the scanner (or llama.cpp) "
                        "knows", format="gguf", version=version))
        return
    reader = _Reader(stream, total, order)
    reader.pos = 8
    gguf = _Gguf(reader, version)
    try:
        count_fmt = "I" if version == 1 else "Q"
        n_tensors = reader.unpack(count_fmt)
        n_kv = reader.unpack(count_fmt)
        if n_kv * (13 if version > 1 else 9) > reader.left():  # the smallest: key length, type, one byte
            raise _Bad(f"claims {n_kv} key/values; the {reader.left()} bytes left cannot hold them")
        tensors = gguf.header(n_tensors, n_kv)
    except _Bad as exc:
        ctx.add(finding("MLF-MOD-010", member.path, f"GGUF header: {exc}", format="gguf"))
        _templates(ctx, member, gguf)
        return
    except _Truncated as exc:
        ctx.add(finding("MLF-MOD-003", member.path, f"GGUF file ends inside its header: {exc}", format="gguf"))
        _templates(ctx, member, gguf)
        return
    except _TooMuch:
        ctx.add(finding("MLF-MOD-004", member.path, f"GGUF header holds more than {MAX_ITEMS} values; the rest was "
                        "not checked", format="gguf", limit="values"))
        _templates(ctx, member, gguf)
        return
    _templates(ctx, member, gguf)
    data_start = reader.pos + (-reader.pos % gguf.alignment)
    data_size = max(0, total - data_start)
    end = gguf.check_tensors(tensors, data_size)
    for why in gguf.problems[:MAX_REPORTED]:
        ctx.add(finding("MLF-MOD-010", member.path, f"GGUF header: {why}", format="gguf"))
    if len(gguf.problems) > MAX_REPORTED:
        ctx.add(finding("MLF-MOD-010", member.path, f"GGUF header: {len(gguf.problems) - MAX_REPORTED} more "
                        "problems", format="gguf"))
    if tensors and data_size - end > gguf.alignment:
        # the last tensor may or may not be padded; more than that is data no loader reads, and so no one checks
        ctx.add(finding("MLF-MOD-010", member.path, f"GGUF file: {data_size - end} bytes follow the last tensor's "
                        "data (loaders ignore them)", severity=Severity.MEDIUM, format="gguf"))


def _templates(ctx: ScanContext, member: Member, gguf: _Gguf) -> None:
    for key, template in gguf.templates:
        _check_template(ctx, member, key, template)

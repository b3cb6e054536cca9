"""A streaming pickle analyzer: reads opcodes (protocols 0-5) and models the stack and memo, never unpickles.

Written from the opcode list in CPython's Lib/pickletools.py, but reading incrementally: arguments larger than
`Limits.max_memory_arg` are skipped by seeking (or reading in chunks), so a 1 GiB BINBYTES8 scans in constant memory.
The model resolves what every GLOBAL, STACK_GLOBAL (strings from the stack or the memo), INST, OBJ, NEWOBJ(_EX),
REDUCE, BUILD and EXT opcode imports and calls; unknown content becomes a placeholder, never a crash. Every pickle
in a stream is scanned (data after STOP is reported and, if it is a pickle, scanned too); after a parse error the
globals already seen are still reported, because loaders run them before they fail.

Two real layouts put raw bytes inside a pickle stream, and both are recognised so they are skipped, not misread:
joblib's NumpyArrayWrapper (array bytes follow the wrapper's BUILD) and PyTorch's legacy format (five pickles, the
first being a magic number, then raw storage bytes).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from mlfort.scan.base import ScanContext
from mlfort.scan.pickle_policy import NAME_RESOLVERS, NESTED_LOADERS, Verdict, judge
from mlfort.scan.rules import finding

CHUNK = 1 << 16
"""Bytes read from the stream at a time."""
KEEP = 256
"""Items kept per modelled list, tuple or dict: enough to see arguments and state, bounded for huge containers."""
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_ELEMENT_SIZES = {"Double": 8, "Float": 4, "Half": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1, "Byte": 1,
                        "Bool": 1, "BFloat16": 2, "ComplexDouble": 16, "ComplexFloat": 8, "QUInt8": 1, "QInt8": 1,
                        "QInt32": 4, "QUInt4x2": 1, "QUInt2x4": 1, "Untyped": 1}
_NUMPY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


@dataclass(frozen=True, slots=True)
class PickleResult:
    """What one stream held."""

    globals: tuple[tuple[str, str, str], ...]
    """Every global imported, in order, as (module, name, how): how is the opcode or the gadget that resolved it."""
    calls: tuple[tuple[str, str], ...]
    """Every call the loader would make, as (callee, opcode)."""
    n_pickles: int
    opcodes: int
    bytes_read: int
    ended_cleanly: bool
    """True when every pickle ended with STOP and nothing unexplained followed."""


class PickleError(Exception):
    """The stream is not a valid pickle at this point (a loader would raise here too)."""


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()
"""Placeholder for values the model does not keep (huge strings, skipped data, results of unknown opcodes)."""


class _Mark:
    __slots__ = ()


@dataclass(eq=False, slots=True)
class Global:
    """An imported name on the stack."""

    module: str
    name: str
    verdict: Verdict

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False, slots=True)
class Obj:
    """The result of a call (or of persistent_load, or an opaque constructor) in the model."""

    callee: Any
    args: Any
    how: str
    state: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Dict(dict):  # type: ignore[type-arg]
    """A modelled dict that remembers dunder keys even past KEEP items (BUILD state overriding special methods)."""

    __slots__ = ("dunders",)

    def __init__(self) -> None:
        super().__init__()
        self.dunders: list[str] = []

    def put(self, key: Any, value: Any) -> None:
        if isinstance(key, str) and key.startswith("__") and key.endswith("__"):
            self.dunders.append(key)
        if len(self) < KEEP:
            # an unhashable modelled key (a list) fails the loader too; the model just moves on
            with contextlib.suppress(TypeError):
                self[key] = value


class _Reader:
    """Buffered, position-tracking reads over a stream that may or may not seek."""

    def __init__(self, stream: BinaryIO, start: int) -> None:
        self.stream = stream
        self.buf = b""
        self.i = 0
        self.base = start  # absolute offset of buf[0]
        try:
            self.seekable = stream.seekable()
        except (AttributeError, OSError, ValueError):
            self.seekable = False
        # The end is known cheaply only for real files: seeking to the end of a decompressing stream would inflate
        # all of it once just to learn its size (and again while scanning).
        self.end: int | None = None
        if self.seekable:
            try:
                self.end = os.fstat(stream.fileno()).st_size
            except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
                self.end = None

    @property
    def pos(self) -> int:
        return self.base + self.i

    def _fill(self, n: int) -> bool:
        """Make at least n bytes available from i (False at end of stream)."""
        if len(self.buf) - self.i >= n:
            return True
        parts = [self.buf[self.i:]]
        have = len(parts[0])
        self.base += self.i
        self.i = 0
        while have < n:
            chunk = self.stream.read(max(CHUNK, n - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self.buf = b"".join(parts)
        return have >= n

    def at_eof(self) -> bool:
        return not self._fill(1)

    def peek(self) -> int | None:
        if self.i < len(self.buf):  # the common case, without a call
            return self.buf[self.i]
        return self.buf[self.i] if self._fill(1) else None

    def take(self, n: int) -> bytes:
        i = self.i
        j = i + n
        if j <= len(self.buf):  # the common case, without a call
            self.i = j
            return self.buf[i:j]
        if not self._fill(n):
            raise PickleError(f"truncated: {n} bytes needed at offset {self.pos}")
        out = self.buf[self.i:self.i + n]
        self.i += n
        return out

    def skip(self, n: int) -> None:
        """Move past n bytes without holding them (seek when possible, else read and drop in chunks)."""
        avail = len(self.buf) - self.i
        if n <= avail:
            self.i += n
            return
        target = self.pos + n
        if self.seekable:
            if self.end is not None and target > self.end:
                raise PickleError(f"truncated: {n} bytes declared at offset {self.pos}, the stream ends first")
            # Seek to just before the target and read its last byte: streams of unknown length (BytesIO,
            # decompressors) happily seek past their end, so the byte proves the argument is really there.
            try:
                self.stream.seek(target - 1)
                last = self.stream.read(1)
            except (OSError, ValueError) as exc:
                raise PickleError(f"cannot skip {n} bytes at offset {self.pos}: {exc}") from None
            if len(last) != 1:
                raise PickleError(f"truncated: {n} bytes declared at offset {self.pos}, the stream ends first")
            self.buf, self.i, self.base = b"", 0, target
            return
        n -= avail
        self.base += len(self.buf)
        self.buf, self.i = b"", 0
        while n > 0:
            chunk = self.stream.read(min(n, 1 << 20))
            if not chunk:
                raise PickleError(f"truncated: the stream ends {n} bytes before a declared argument does")
            n -= len(chunk)
            self.base += len(chunk)

    def line(self, limit: int) -> bytes | None:
        """Bytes up to a newline (consumed, not returned); None if longer than limit (then skipped)."""
        start = self.i
        while True:
            nl = self.buf.find(b"\n", start)
            if nl >= 0:
                out = self.buf[self.i:nl]
                self.i = nl + 1
                return out
            if len(self.buf) - self.i > limit:
                break
            start = len(self.buf)
            got = len(self.buf) - self.i
            if not self._fill(got + CHUNK) and len(self.buf) - self.i == got:
                raise PickleError(f"truncated: no end of line after offset {self.pos}")
            start = self.i + got
        # too long: drop it chunk by chunk until the newline
        while True:
            nl = self.buf.find(b"\n", self.i)
            if nl >= 0:
                self.i = nl + 1
                return None
            self.base += len(self.buf)
            self.buf, self.i = b"", 0
            if not self._fill(1):
                raise PickleError("truncated: no end of line")


class _Scan:
    """State shared by every pickle of one `analyze_pickle` call: reported globals, calls, counts."""

    def __init__(self, target: str, ctx: ScanContext, reader: _Reader) -> None:
        self.target = target
        self.ctx = ctx
        self.reader = reader
        self.globals: list[tuple[str, str, str]] = []
        self.calls: list[tuple[str, str]] = []
        self.reported: set[tuple[str, str, str]] = set()
        self.opcodes = 0
        self.n_pickles = 0
        self.persids: list[Any] = []

    def report(self, rule: str, key: str, message: str, **evidence: Any) -> None:
        if (rule, key, message) in self.reported:
            return
        self.reported.add((rule, key, message))
        self.ctx.add(finding(rule, self.target, message, **evidence))

    def resolve(self, module: str, name: str, how: str, offset: int) -> Global:
        j = judge(module, name)
        self.globals.append((module, name, how))
        if j.verdict is Verdict.DANGEROUS:
            self.report("MLF-MOD-001", f"{module}.{name}", f"imports {module}.{name} ({how} at byte {offset}): "
                        f"{j.reason}", module=module, name=name, opcode=how, offset=offset)
        elif j.verdict is Verdict.UNKNOWN:
            self.report("MLF-MOD-002", f"{module}.{name}", f"imports {module}.{name} ({how} at byte {offset}): "
                        f"{j.reason}", module=module, name=name, opcode=how, offset=offset)
        return Global(module, name, j.verdict)


def _describe(v: Any) -> str:
    if isinstance(v, Global):
        return v.qualified
    if isinstance(v, Obj):
        return f"result of {_describe(v.callee)}" if v.how != "PERSID" else "persistent_load result"
    return type(v).__name__ if v is not UNKNOWN else "<unknown>"


class _Machine:
    """One pickle: stack, marks and memo, run until STOP."""

    def __init__(self, scan: _Scan) -> None:
        self.s = scan
        self.r = scan.reader
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.limit = scan.ctx.limits.max_memory_arg
        self.op_offset = 0

    # -- helpers ------------------------------------------------------------------------------------------------
    def push(self, v: Any) -> None:
        self.stack.append(v)

    def pop(self) -> Any:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) <= floor:
            raise PickleError(f"stack underflow at byte {self.op_offset}")
        return self.stack.pop()

    def top(self) -> Any:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) <= floor:
            raise PickleError(f"stack underflow at byte {self.op_offset}")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise PickleError(f"no MARK on the stack at byte {self.op_offset}")
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        return items

    def u(self, fmt: str, n: int) -> int:
        return struct.unpack(fmt, self.r.take(n))[0]

    def data(self, n: int) -> bytes | _Unknown:
        if n < 0:
            raise PickleError(f"negative length at byte {self.op_offset}")
        if n > self.limit:
            self.r.skip(n)
            return UNKNOWN
        return self.r.take(n)

    def text_line(self) -> bytes | None:
        return self.r.line(self.limit)

    def run(self) -> Any:
        """Run to STOP; return the value STOP pops."""
        limits = self.s.ctx.limits
        r = self.r
        dispatch = _OPCODE_TABLE
        scan = self.s
        max_ops = limits.max_pickle_opcodes
        while True:
            i = r.i
            self.op_offset = r.base + i
            buf = r.buf
            op = buf[i] if i < len(buf) else r.peek()
            if op is None:
                raise PickleError(f"truncated: the stream ends at byte {self.op_offset} without STOP")
            r.i += 1
            scan.opcodes += 1
            if scan.opcodes > max_ops:
                raise _LimitError
            fn = dispatch.get(op)
            if fn is None:
                raise PickleError(f"unknown opcode 0x{op:02x} at byte {self.op_offset}")
            if fn(self):
                return self.stack.pop() if self.stack else UNKNOWN

    # -- calls --------------------------------------------------------------------------------------------------
    def call(self, callee: Any, args: Any, how: str) -> Any:
        s = self.s
        s.calls.append((_describe(callee), how))
        if isinstance(callee, Global):
            q = callee.qualified
            if q in NAME_RESOLVERS and isinstance(args, tuple) and len(args) == 2:
                mod, nm = args
                if isinstance(mod, str) and isinstance(nm, str):
                    return s.resolve(mod, nm, f"{how} via {q}", self.op_offset)
                s.report("MLF-MOD-002", q, f"{q} resolves a name the scanner cannot read (byte {self.op_offset}); "
                         "it can return any global", offset=self.op_offset)
                return UNKNOWN
            if q == "builtins.getattr" and isinstance(args, tuple) and len(args) >= 2:
                target, attr = args[0], args[1]
                if isinstance(target, Global) and isinstance(attr, str):
                    return s.resolve(target.module, f"{target.name}.{attr}", f"{how} via getattr", self.op_offset)
            if q in NESTED_LOADERS and isinstance(args, tuple) and args and isinstance(args[0], bytes | bytearray):
                _nested(s, bytes(args[0]), f"{how} argument of {q} at byte {self.op_offset}")
            if q in ("numpy.dtype",) and isinstance(args, tuple) and args and isinstance(args[0], str):
                return Obj(callee, args, how, extra={"dtype": args[0]})
            return Obj(callee, args, how)
        if isinstance(callee, Obj):
            s.report("MLF-MOD-002", f"indirect:{self.op_offset}", f"{how} at byte {self.op_offset} calls the "
                     f"{_describe(callee)}, not an imported global: indirection that hides what is really called",
                     opcode=how, offset=self.op_offset)
        elif callee is UNKNOWN:
            s.report("MLF-MOD-002", f"unknown-call:{self.op_offset}", f"{how} at byte {self.op_offset} calls a value "
                     "the scanner could not model", opcode=how, offset=self.op_offset)
        return Obj(callee, args, how)

    def method_call(self, target: Any, method: str, how: str) -> None:
        """APPEND, SETITEM and ADDITEMS call a method on anything that is not a list, dict or set."""
        if isinstance(target, Global):
            self.s.report("MLF-MOD-002", f"{how}:{self.op_offset}", f"{how} at byte {self.op_offset} calls "
                          f"{target.qualified}.{method} on an imported object, not on a container",
                          opcode=how, offset=self.op_offset)
        if isinstance(target, Global | Obj):
            self.s.calls.append((f"{_describe(target)}.{method}", how))

    # -- opcodes ------------------------------------------------------------------------------------------------
    def op_mark(self) -> None:
        self.marks.append(len(self.stack))

    def op_stop(self) -> bool:
        return True

    def op_pop(self) -> None:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) > floor:
            self.stack.pop()
        else:
            self.pop_mark()

    def op_pop_mark(self) -> None:
        self.pop_mark()

    def op_dup(self) -> None:
        self.push(self.top())

    def op_float(self) -> None:
        line = self.text_line()
        try:
            self.push(float(line) if line is not None else UNKNOWN)
        except ValueError as exc:
            raise PickleError(f"bad FLOAT at byte {self.op_offset}") from exc

    def _int_text(self, line: bytes | None) -> Any:
        if line is None:
            return UNKNOWN
        if line == b"00":
            return False
        if line == b"01":
            return True
        try:
            return int(line.rstrip(b"L"))
        except ValueError as exc:
            if len(line) > 4000:  # past int_max_str_digits: a loader fails the same way, so report it
                raise PickleError(f"integer too long at byte {self.op_offset}") from exc
            raise PickleError(f"bad INT at byte {self.op_offset}") from exc

    def op_int(self) -> None:
        self.push(self._int_text(self.text_line()))

    def op_long(self) -> None:
        self.push(self._int_text(self.text_line()))

    def op_binint(self) -> None:
        self.push(self.u("<i", 4))

    def op_binint1(self) -> None:
        self.push(self.r.take(1)[0])

    def op_binint2(self) -> None:
        self.push(self.u("<H", 2))

    def _long(self, n: int) -> None:
        raw = self.data(n)
        self.push(int.from_bytes(raw, "little", signed=True) if isinstance(raw, bytes) and n <= 4096 else UNKNOWN)

    def op_long1(self) -> None:
        self._long(self.r.take(1)[0])

    def op_long4(self) -> None:
        self._long(self.u("<i", 4))

    def op_none(self) -> None:
        self.push(None)

    def op_newtrue(self) -> None:
        self.push(True)

    def op_newfalse(self) -> None:
        self.push(False)

    def op_binfloat(self) -> None:
        self.push(struct.unpack(">d", self.r.take(8))[0])

    def _string(self, raw: bytes | _Unknown) -> Any:
        if not isinstance(raw, bytes):
            return UNKNOWN
        # Python 3 decodes protocol 0-2 strings as ASCII by default; latin-1 keeps any byte for matching
        return raw.decode("latin-1")

    def op_string(self) -> None:
        line = self.text_line()
        if line is None:
            self.push(UNKNOWN)
            return
        line = line.rstrip()
        if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b"'", b'"'):
            raise PickleError(f"the STRING opcode argument must be quoted (byte {self.op_offset})")
        try:
            self.push(self._string(codecs.escape_decode(line[1:-1])[0]))
        except ValueError as exc:
            raise PickleError(f"bad STRING escape at byte {self.op_offset}") from exc

    def op_binstring(self) -> None:
        self.push(self._string(self.data(self.u("<i", 4))))

    def op_short_binstring(self) -> None:
        self.push(self._string(self.data(self.r.take(1)[0])))

    def _unicode(self, raw: bytes | _Unknown) -> Any:
        if not isinstance(raw, bytes):
            return UNKNOWN
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise PickleError(f"invalid UTF-8 in a string at byte {self.op_offset}") from exc

    def op_unicode(self) -> None:
        line = self.text_line()
        try:
            self.push(line.decode("raw-unicode-escape") if line is not None else UNKNOWN)
        except UnicodeDecodeError as exc:
            raise PickleError(f"bad UNICODE escape at byte {self.op_offset}") from exc

    def op_binunicode(self) -> None:
        self.push(self._unicode(self.data(self.u("<I", 4))))

    def op_short_binunicode(self) -> None:
        self.push(self._unicode(self.data(self.r.take(1)[0])))

    def op_binunicode8(self) -> None:
        self.push(self._unicode(self.data(self.u("<Q", 8))))

    def op_binbytes(self) -> None:
        self.push(self.data(self.u("<I", 4)))

    def op_short_binbytes(self) -> None:
        self.push(self.data(self.r.take(1)[0]))

    def op_binbytes8(self) -> None:
        self.push(self.data(self.u("<Q", 8)))

    def op_bytearray8(self) -> None:
        self.push(self.data(self.u("<Q", 8)))

    def op_next_buffer(self) -> None:
        self.push(UNKNOWN)  # out-of-band buffer: supplied by the caller of pickle.loads, not in the stream

    def op_readonly_buffer(self) -> None:
        self.top()

    def op_persid(self) -> None:
        line = self.text_line()
        pid = line.decode("ascii", "replace") if line is not None else UNKNOWN
        self.s.persids.append(pid)
        self.push(Obj(None, pid, "PERSID"))

    def op_binpersid(self) -> None:
        pid = self.pop()
        self.s.persids.append(pid)
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module" and isinstance(pid[1], Global):
            # legacy torch.save persists nn.Module classes as ('module', cls, file, source): its persistent_load
            # returns cls, so that is what a following NEWOBJ calls (cls was judged when it was imported)
            self.push(pid[1])
            return
        self.push(Obj(None, pid, "PERSID"))

    def op_reduce(self) -> None:
        args = self.pop()
        callee = self.pop()
        self.push(self.call(callee, args, "REDUCE"))

    def op_build(self) -> None:
        state = self.pop()
        inst = self.top()
        s = self.s
        if isinstance(inst, Global):
            s.report("MLF-MOD-002", f"build-global:{self.op_offset}", f"BUILD at byte {self.op_offset} sets "
                     f"attributes on {inst.qualified} itself (an imported class or function): overwriting a global "
                     "changes code that runs later", offset=self.op_offset)
        dunders = state.dunders if isinstance(state, _Dict) else []
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], _Dict):
            dunders = dunders + state[1].dunders
        if dunders:
            s.report("MLF-MOD-002", f"build-dunder:{self.op_offset}", f"BUILD at byte {self.op_offset} sets special "
                     f"attributes {sorted(set(dunders))}: a later BUILD or call would run what they name",
                     offset=self.op_offset, attributes=sorted(set(dunders)))
        if isinstance(inst, Obj):
            s.calls.append((f"{_describe(inst.callee)}.__setstate__", "BUILD"))
            inst.state = state
            if isinstance(inst.callee, Global) and inst.callee.qualified == _NUMPY_WRAPPER:
                self.stack[-1] = _joblib_array(self, state)

    def op_global(self) -> None:
        mod, name = self.text_line(), self.text_line()
        if mod is None or name is None:
            raise PickleError(f"GLOBAL name too long at byte {self.op_offset}")
        self.push(self.s.resolve(mod.decode("utf-8", "replace"), name.decode("utf-8", "replace"), "GLOBAL",
                                 self.op_offset))

    def op_stack_global(self) -> None:
        name = self.pop()
        mod = self.pop()
        if isinstance(mod, str) and isinstance(name, str):
            self.push(self.s.resolve(mod, name, "STACK_GLOBAL", self.op_offset))
            return
        if mod is UNKNOWN or name is UNKNOWN or isinstance(mod, Obj) or isinstance(name, Obj):
            self.s.report("MLF-MOD-002", f"stack-global:{self.op_offset}", f"STACK_GLOBAL at byte {self.op_offset} "
                          "imports a name the scanner could not read", offset=self.op_offset)
            self.push(UNKNOWN)
            return
        raise PickleError(f"STACK_GLOBAL needs two strings (byte {self.op_offset})")

    def op_inst(self) -> None:
        mod, name = self.text_line(), self.text_line()
        if mod is None or name is None:
            raise PickleError(f"INST name too long at byte {self.op_offset}")
        cls = self.s.resolve(mod.decode("utf-8", "replace"), name.decode("utf-8", "replace"), "INST", self.op_offset)
        args = tuple(self.pop_mark()[:KEEP])
        self.push(self.call(cls, args, "INST"))

    def op_obj(self) -> None:
        items = self.pop_mark()
        if not items:
            raise PickleError(f"OBJ without a class at byte {self.op_offset}")
        self.push(self.call(items[0], tuple(items[1:KEEP]), "OBJ"))

    def op_newobj(self) -> None:
        args = self.pop()
        cls = self.pop()
        self.push(self.call(cls, args, "NEWOBJ"))

    def op_newobj_ex(self) -> None:
        self.pop()  # kwargs
        args = self.pop()
        cls = self.pop()
        self.push(self.call(cls, args, "NEWOBJ_EX"))

    def _ext(self, code: int) -> None:
        self.push(self.s.resolve("<extension registry>", str(code), "EXT", self.op_offset))

    def op_ext1(self) -> None:
        self._ext(self.r.take(1)[0])

    def op_ext2(self) -> None:
        self._ext(self.u("<H", 2))

    def op_ext4(self) -> None:
        self._ext(self.u("<i", 4))

    def op_dict(self) -> None:
        items = self.pop_mark()
        d = _Dict()
        for i in range(0, len(items) - 1, 2):
            d.put(items[i], items[i + 1])
        self.push(d)

    def op_empty_dict(self) -> None:
        self.push(_Dict())

    def op_setitem(self) -> None:
        v = self.pop()
        k = self.pop()
        target = self.top()
        if isinstance(target, _Dict):
            target.put(k, v)
        else:
            self.method_call(target, "__setitem__", "SETITEM")

    def op_setitems(self) -> None:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, _Dict):
            for i in range(0, len(items) - 1, 2):
                target.put(items[i], items[i + 1])
        else:
            self.method_call(target, "__setitem__", "SETITEMS")

    def op_list(self) -> None:
        self.push(self.pop_mark()[:KEEP])

    def op_empty_list(self) -> None:
        self.push([])

    def op_append(self) -> None:
        v = self.pop()
        target = self.top()
        if isinstance(target, list):
            if len(target) < KEEP:
                target.append(v)
        else:
            self.method_call(target, "append", "APPEND")

    def op_appends(self) -> None:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, list):
            target.extend(items[: max(0, KEEP - len(target))])
        else:
            self.method_call(target, "extend", "APPENDS")

    def op_tuple(self) -> None:
        self.push(tuple(self.pop_mark()[:KEEP]))

    def op_empty_tuple(self) -> None:
        self.push(())

    def op_tuple1(self) -> None:
        self.push((self.pop(),))

    def op_tuple2(self) -> None:
        b = self.pop()
        self.push((self.pop(), b))

    def op_tuple3(self) -> None:
        c = self.pop()
        b = self.pop()
        self.push((self.pop(), b, c))

    def op_empty_set(self) -> None:
        self.push(Obj(None, None, "SET"))

    def op_additems(self) -> None:
        self.pop_mark()
        target = self.top()
        if not (isinstance(target, Obj) and target.how == "SET"):
            self.method_call(target, "add", "ADDITEMS")

    def op_frozenset(self) -> None:
        self.pop_mark()
        self.push(Obj(None, None, "FROZENSET"))

    def _get(self, key: int | None) -> None:
        if key is None or key not in self.memo:
            raise PickleError(f"memo key {key} not found at byte {self.op_offset}")
        self.push(self.memo[key])

    def op_get(self) -> None:
        line = self.text_line()
        try:
            self._get(int(line) if line is not None else None)
        except ValueError as exc:
            raise PickleError(f"bad GET at byte {self.op_offset}") from exc

    def op_binget(self) -> None:
        self._get(self.r.take(1)[0])

    def op_long_binget(self) -> None:
        self._get(self.u("<I", 4))

    def _put(self, key: int) -> None:
        if key < 0:
            raise PickleError(f"negative memo key at byte {self.op_offset}")
        self.memo[key] = self.top()

    def op_put(self) -> None:
        line = self.text_line()
        try:
            self._put(int(line) if line is not None else -1)
        except ValueError as exc:
            raise PickleError(f"bad PUT at byte {self.op_offset}") from exc

    def op_binput(self) -> None:
        self._put(self.r.take(1)[0])

    def op_long_binput(self) -> None:
        self._put(self.u("<I", 4))

    def op_memoize(self) -> None:
        self._put(len(self.memo))

    def op_proto(self) -> None:
        proto = self.r.take(1)[0]
        if proto > 5:
            raise PickleError(f"unsupported pickle protocol {proto} at byte {self.op_offset}")
        self.proto = proto

    def op_frame(self) -> None:
        self.r.take(8)  # frames only batch reads; opcodes are read linearly either way


_OPS: dict[str, str] = {
    "(": "mark", ".": "stop", "0": "pop", "1": "pop_mark", "2": "dup", "F": "float", "I": "int", "J": "binint",
    "K": "binint1", "L": "long", "M": "binint2", "N": "none", "P": "persid", "Q": "binpersid", "R": "reduce",
    "S": "string", "T": "binstring", "U": "short_binstring", "V": "unicode", "X": "binunicode", "a": "append",
    "b": "build", "c": "global", "d": "dict", "}": "empty_dict", "e": "appends", "g": "get", "h": "binget",
    "i": "inst", "j": "long_binget", "l": "list", "]": "empty_list", "o": "obj", "p": "put", "q": "binput",
    "r": "long_binput", "s": "setitem", "t": "tuple", ")": "empty_tuple", "u": "setitems", "G": "binfloat",
    "\x80": "proto", "\x81": "newobj", "\x82": "ext1", "\x83": "ext2", "\x84": "ext4", "\x85": "tuple1",
    "\x86": "tuple2", "\x87": "tuple3", "\x88": "newtrue", "\x89": "newfalse", "\x8a": "long1", "\x8b": "long4",
    "B": "binbytes", "C": "short_binbytes", "\x8c": "short_binunicode", "\x8d": "binunicode8", "\x8e": "binbytes8",
    "\x8f": "empty_set", "\x90": "additems", "\x91": "frozenset", "\x92": "newobj_ex", "\x93": "stack_global",
    "\x94": "memoize", "\x95": "frame", "\x96": "bytearray8", "\x97": "next_buffer", "\x98": "readonly_buffer",
}
OPCODE_BYTES = frozenset(ord(k) for k in _OPS)
"""Every valid opcode byte (used to tell a second pickle from trailing data)."""




# Opcode byte -> unbound handler, built once (not per pickle: a folder of small files pays it thousands of times).
_OPCODE_TABLE: dict[int, Callable[[_Machine], bool | None]] = {
    ord(k): getattr(_Machine, f"op_{v}") for k, v in _OPS.items()
}

class _LimitError(Exception):
    pass


def _dtype_info(dtype: Any) -> tuple[int, bool] | None:
    """(itemsize, has objects) of a modelled `numpy.dtype(...)` call with its BUILD state; None if unknown."""
    if not isinstance(dtype, Obj) or "dtype" not in dtype.extra:
        return None
    spec = dtype.extra["dtype"]
    state = dtype.state
    flags = state[7] if isinstance(state, tuple) and len(state) >= 8 and isinstance(state[7], int) else None
    size = state[5] if isinstance(state, tuple) and len(state) >= 6 and isinstance(state[5], int) else -1
    if size <= 0:
        import numpy as np  # a project dependency; parsing a short dtype string runs no pickled code

        if len(spec) > 32:
            return None
        try:
            size = np.dtype(spec).itemsize
        except (TypeError, ValueError):
            return None
    has_objects = bool(flags & 1) if flags is not None else spec.startswith("O")
    return size, has_objects


def _joblib_array(m: _Machine, state: Any) -> Any:
    """joblib writes an array's bytes right after its wrapper's BUILD: skip them (or scan them, for object arrays)."""
    s = m.s
    info = _dtype_info(state.get("dtype")) if isinstance(state, dict) else None
    shape = state.get("shape") if isinstance(state, dict) else None
    if info is None or not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        s.report("MLF-MOD-003", f"joblib:{m.op_offset}", f"joblib array at byte {m.op_offset} has a shape or dtype "
                 "the scanner cannot read, so its data cannot be delimited; the rest of the stream is not trusted",
                 offset=m.op_offset)
        raise PickleError("unreadable joblib array wrapper")
    itemsize, has_objects = info
    if has_objects:
        # object arrays are a nested pickle in the same stream (joblib reads them with a fresh Unpickler)
        s.n_pickles += 1
        _Machine(s).run()
        return Obj(None, None, "joblib-array")
    if state.get("numpy_array_alignment_bytes") is not None:
        pad = m.r.take(1)[0]
        m.r.skip(pad)
    count = 1
    for d in shape:
        count *= d
    m.r.skip(count * itemsize)
    return Obj(None, None, "joblib-array")


def _nested(s: _Scan, data: bytes, where: str) -> None:
    sub = analyze_pickle(io.BytesIO(data), target=f"{s.target} ({where})", ctx=s.ctx)
    s.globals.extend(sub.globals)


def _torch_storages(s: _Scan, keys: Any) -> bool:
    """Skip the raw storages after a legacy torch.save's pickles; False if their sizes cannot be known."""
    sizes: dict[str, int] = {}
    for pid in s.persids:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[2], str):
            typ = pid[1]
            name = typ.name if isinstance(typ, Global) and typ.module == "torch" else ""
            el = _TORCH_ELEMENT_SIZES.get(name.removesuffix("Storage"))
            if el is None:
                return False
            sizes[pid[2]] = el
    if not isinstance(keys, list) or len(keys) >= KEEP:
        return False
    for key in keys:
        if key not in sizes:
            return False
        (numel,) = struct.unpack("<q", s.reader.take(8))
        if numel < 0:
            raise PickleError("negative storage size in a legacy PyTorch file")
        s.reader.skip(numel * sizes[key])
    return True


def analyze_pickle(stream: BinaryIO, *, target: str, ctx: ScanContext, start_offset: int = 0) -> PickleResult:
    """Analyse every pickle in `stream` (which starts at `start_offset`, or is positioned there); add findings."""
    try:
        if stream.seekable() and stream.tell() != start_offset:
            stream.seek(start_offset)
    except (AttributeError, OSError, ValueError):
        pass
    reader = _Reader(stream, start_offset)
    s = _Scan(target, ctx, reader)
    clean = True
    torch_legacy = 0  # pickles still expected in a legacy torch file
    torch_values: list[Any] = []
    try:
        while True:
            s.n_pickles += 1
            value = _Machine(s).run()
            if s.n_pickles == 1 and value == TORCH_LEGACY_MAGIC and type(value) is int:
                torch_legacy = 4
            elif torch_legacy:
                torch_values.append(value)
                torch_legacy -= 1
                if torch_legacy == 0 and not _torch_storages(s, value):
                    s.report("MLF-MOD-011", "torch-storage", "legacy PyTorch file whose storage sizes cannot be "
                             "read from its pickles: the data after them was not scanned", offset=reader.pos)
                    clean = False
                    break
            if torch_legacy:
                continue
            nxt = reader.peek()
            if nxt is None:
                break
            where = reader.pos
            if nxt not in OPCODE_BYTES:
                s.report("MLF-MOD-011", "trailing", f"{_tail(reader)} bytes of data follow the pickle's STOP at byte "
                         f"{where}; a loader that reads on may interpret them", offset=where)
                clean = False
                break
            s.report("MLF-MOD-011", f"extra:{where}", f"another pickle starts at byte {where}, after the STOP of the "
                     "first: loaders that read on run it; it is scanned too", offset=where)
            clean = False
    except (PickleError, ValueError, OverflowError, struct.error) as exc:
        # ValueError and friends would be a modelling gap, not a reason to stop reporting: same finding
        clean = False
        ctx.add(finding("MLF-MOD-003", target, f"not a valid pickle: {exc}; globals seen before this point are "
                        "reported, since loaders import and call them before failing", offset=reader.pos))
    except _LimitError:
        clean = False
        ctx.add(finding("MLF-MOD-004", target, f"more than {ctx.limits.max_pickle_opcodes} opcodes; the rest was "
                        "not scanned", limit="opcodes"))
    except RecursionError:
        clean = False
        ctx.add(finding("MLF-MOD-004", target, "nested pickles too deep to analyse", limit="recursion"))
    return PickleResult(globals=tuple(s.globals), calls=tuple(s.calls), n_pickles=s.n_pickles, opcodes=s.opcodes,
                        bytes_read=reader.pos - start_offset, ended_cleanly=clean)


def _tail(reader: _Reader) -> int | str:
    if reader.end is not None:
        return reader.end - reader.pos
    return "some"



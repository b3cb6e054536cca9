"""Compressed streams: gzip, bz2, xz, raw `.lzma` (LZMA alone), zlib, and joblib's old `ZF` files.

Each is decompressed as a stream (constant memory, never a whole member in memory) and handed back to the context as
one nested member, so a gzip'd pickle, a joblib file written with any of its compressors and a `.tar.gz` all reach
the handler for what is inside. Every decompressed byte is counted with `ctx.note_expanded` (decompression bombs).
A truncated or corrupt stream is a finding, and what decompressed before the damage is still scanned: loaders such
as joblib happily unpickle the first part of a damaged file.

The stream classes here (`Window`, `Decoded`, `Opener`) are shared with the archive and NumPy handlers.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from typing import BinaryIO

from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.rules import finding

INPUT_CHUNK = 256 << 10
"""Compressed bytes read per step."""
OUTPUT_CHUNK = 1 << 20
"""Most decompressed bytes produced per step (bounds memory whatever the compression ratio)."""
BUFFER = 256 << 10
"""Read buffer in front of each nested stream (handlers read in small pieces)."""
DRAIN_LIMIT = 1 << 30
"""When a nested handler stops reading early, up to this many more bytes are still decompressed on close, so a
truncated stream, a bad CRC or trailing data behind the part a handler looked at is still found."""

_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"

_DECODE_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)
"""What decompressors raise on damaged input (bz2 raises OSError)."""


class Window(io.RawIOBase):
    """Bytes `[offset, offset + length)` of `source` (length None: to its end), as a stream of their own.

    `source` is shared with the handler that made the window (and with sibling windows): every read seeks it first,
    and closing the window leaves it open. Nested members therefore read through their container's stream, in
    order, instead of re-opening and re-decompressing it. A source shorter than promised sets `problem`; a running
    CRC-32 covers the bytes read in order from the start.
    """

    def __init__(self, source: BinaryIO, offset: int, length: int | None, drain_limit: int = 0) -> None:
        super().__init__()
        self._source = source
        self._offset = offset
        self._length = length
        self._drain_limit = drain_limit
        self._pos = 0
        self.crc = 0
        self.crc_upto = 0
        """CRC-32 of bytes [0, crc_upto)."""
        self.at_end = False
        self.problem: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        want = len(b)
        if self._length is not None:
            want = min(want, self._length - self._pos)
        if want <= 0:
            self.at_end = True
            return 0
        self._source.seek(self._offset + self._pos)
        view = memoryview(b)[:want]
        n = self._source.readinto(view) or 0  # type: ignore[attr-defined]
        if n == 0:
            self.at_end = True
            if self._length is not None and self._pos < self._length:
                self.problem = f"ends after {self._pos} of {self._length} bytes"
        if self._pos == self.crc_upto and n:
            self.crc = zlib.crc32(view[:n], self.crc)
            self.crc_upto += n
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif self._length is not None:
            pos = self._length + offset
        else:
            pos = max(0, self._source.seek(0, io.SEEK_END) - self._offset) + offset
        if pos < 0:
            raise OSError("negative seek position")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self.closed:
            return
        try:
            _drain(self, self._drain_limit)
        finally:
            super().close()


class Decoded(io.RawIOBase):
    """The decompressed bytes of a compressed stream that `opener` opens afresh; read-only, seekable.

    `kind` is one of `deflate` (raw, as in zip), `zlib`, `gzip`, `bz2`, `xz`, `lzma-alone`, `zip-lzma` (zip method
    14). The last `HISTORY` bytes produced are kept, so the short seeks back that format detection and most parsers
    make cost nothing; a seek further back restarts decompression, a seek forward decompresses and discards. Only
    bytes past the furthest point ever reached are passed to `account` (which returns False to stop: a bomb).
    Concatenated gzip, bz2 and xz streams are read as one, like the standard library does. `problem` names the
    first thing wrong.
    """

    HISTORY = 1 << 20

    def __init__(self, opener: Callable[[], BinaryIO], kind: str, account: Callable[[int], bool] | None = None,
                 drain_limit: int = DRAIN_LIMIT) -> None:
        super().__init__()
        self._opener = opener
        self.kind = kind
        self._account = account
        self._drain_limit = drain_limit
        self._src: BinaryIO | None = None
        self._dec: object | None = None
        self._pending = b""
        self._done = False
        self._pos = 0
        """Where the reader is."""
        self._gen = 0
        """How far the decompressor has got (>= _pos except after a restart)."""
        self._hist: bytes | bytearray = b""
        self._hist_start = 0
        self._high = 0
        self.crc = 0
        self.crc_upto = 0
        self.at_end = False
        """The decompressor reached the end of its input (cleanly or not)."""
        self.stopped = False
        """The accounting callback said stop (a bomb): what follows was not decompressed."""
        self.problem: str | None = None

    # -- decompressors -------------------------------------------------------------------------------------------

    def _new_decoder(self) -> object:
        k = self.kind
        if k == "deflate":
            return zlib.decompressobj(-15)
        if k == "zlib":
            return zlib.decompressobj(15)
        if k == "gzip":
            return zlib.decompressobj(31)
        if k == "bz2":
            return bz2.BZ2Decompressor()
        if k == "xz":
            return lzma.LZMADecompressor(lzma.FORMAT_XZ)
        if k == "lzma-alone":
            return lzma.LZMADecompressor(lzma.FORMAT_ALONE)
        if k == "zip-lzma":
            assert self._src is not None
            return _zip_lzma_decoder(self._src.read)
        raise ValueError(f"unknown compression {k}")

    def _start(self) -> None:
        if self._src is not None:
            self._src.close()
        self._src = self._opener()
        self._pending = b""
        self._done = False
        self._gen = 0
        self._hist = b""
        self._hist_start = 0
        self.crc = 0
        self.crc_upto = 0
        self.at_end = False
        try:
            self._dec = self._new_decoder()
        except _DECODE_ERRORS as exc:
            self._fail(f"corrupt compressed data ({exc})")

    def _fail(self, why: str) -> None:
        if self.problem is None:
            self.problem = why
        self._done = True
        self.at_end = True

    def _next_member(self, rest: bytes) -> None:
        """The stream ended: carry on with a concatenated stream, or note trailing bytes."""
        assert self._src is not None
        magic = {"gzip": _GZIP_MAGIC, "bz2": _BZ2_MAGIC, "xz": _XZ_MAGIC}.get(self.kind)
        if magic is not None:
            while len(rest) < len(magic) + 8:
                more = self._src.read(INPUT_CHUNK)
                if not more:
                    break
                rest += more
            if self.kind == "xz":
                rest = rest.lstrip(b"\x00")  # xz stream padding
            if rest.startswith(magic):
                self._dec = self._new_decoder()
                self._pending = rest
                return
        if not rest:
            rest = self._src.read(INPUT_CHUNK)
        if self.kind == "gzip":
            # gzip (the tool and the module) skips zero padding after the last member
            while rest and not rest.strip(b"\x00"):
                rest = self._src.read(INPUT_CHUNK)
        if rest and self.problem is None:
            self.problem = "bytes that are not compressed data follow the end of the stream"
        self._done = True
        self.at_end = True

    def _step(self, max_out: int) -> bytes:
        """Decompress up to `max_out` bytes (may return b"" while making progress); sets `_done` at the end."""
        assert self._src is not None and self._dec is not None
        dec = self._dec
        try:
            if isinstance(dec, _ZlibLike):
                data = self._pending or dec.unconsumed_tail or self._src.read(INPUT_CHUNK)
                self._pending = b""
                out = dec.decompress(data, max_out)
                if not data and not out and not dec.eof:
                    self._fail("truncated: the compressed stream ends early")
                    return b""
            else:
                if self._pending or dec.needs_input:  # type: ignore[attr-defined]
                    data = self._pending or self._src.read(INPUT_CHUNK)
                    self._pending = b""
                    if not data:
                        self._fail("truncated: the compressed stream ends early")
                        return b""
                else:
                    data = b""
                out = dec.decompress(data, max_out)  # type: ignore[attr-defined]
        except _DECODE_ERRORS as exc:
            self._fail(f"corrupt compressed data ({exc})")
            return b""
        if dec.eof:  # type: ignore[attr-defined]
            self._next_member(dec.unused_data)  # type: ignore[attr-defined]
        return out

    def _produce(self, max_out: int) -> bool:
        """Decompress the next piece into the history; False at the end."""
        out = b""
        while not out:
            if self._done:
                return False
            out = self._step(max_out)
        n = len(out)
        end = self._gen + n
        if end > self._high:
            fresh = end - max(self._gen, self._high)
            self._high = end
            if self._account is not None and not self._account(fresh):
                # over the limit: nothing more is decompressed (the context has reported the bomb)
                self.stopped = True
                self._done = True
        self.crc = zlib.crc32(out, self.crc)
        self.crc_upto = end
        self._gen = end
        if n >= self.HISTORY:
            self._hist = out  # the usual case: one whole piece is the history, kept without a copy
        else:
            if not isinstance(self._hist, bytearray):
                self._hist = bytearray(self._hist)
            self._hist += out
            extra = len(self._hist) - self.HISTORY
            if extra > 0:
                del self._hist[:extra]
        self._hist_start = end - len(self._hist)
        return True

    # -- RawIOBase -----------------------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        want = len(b)
        if want == 0:
            return 0
        if self._src is None or self._pos < self._hist_start:
            self._start()
        if self._pos >= self._gen and not self._produce(min(want, OUTPUT_CHUNK)):
            return 0
        while self._pos > self._gen:  # a seek forward: decompress and discard up to it
            if not self._produce(OUTPUT_CHUNK):
                return 0
        i = self._pos - self._hist_start
        n = min(want, len(self._hist) - i)
        with memoryview(self._hist) as view:
            b[:n] = view[i : i + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        else:
            if self._src is None:
                self._start()
            while self._produce(OUTPUT_CHUNK):
                pass
            target = self._gen + offset
        if target < 0:
            raise OSError("negative seek position")
        self._pos = target
        return target

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._src is not None and self._drain_limit > 0:
                # run on to the end so truncation, trailing bytes and the CRC are checked past what was read
                limit = self._gen + self._drain_limit
                while self._gen < limit and self._produce(OUTPUT_CHUNK):
                    pass
        except (*_DECODE_ERRORS, AssertionError):
            pass
        finally:
            if self._src is not None:
                self._src.close()
                self._src = None
            self._dec = None
            self._hist = b""
            super().close()


_ZlibLike = type(zlib.decompressobj())
"""zlib decompressors keep unconsumed input in `unconsumed_tail` (bz2 and lzma ones buffer it and say `needs_input`)."""


def _zip_lzma_decoder(read: Callable[[int], bytes]) -> object:
    """Zip method 14: a 4-byte header (version, properties size), LZMA1 properties, then raw LZMA data."""
    head = read(4)
    if len(head) < 4:
        raise lzma.LZMAError("zip LZMA header truncated")
    props = read(int.from_bytes(head[2:4], "little"))
    filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])


def _drain(raw: io.RawIOBase, limit: int) -> None:
    """Read on (discarding) up to `limit` bytes so end-of-stream checks run; never raises (called from close)."""
    if limit <= 0:
        return
    buf = bytearray(OUTPUT_CHUNK)
    done = 0
    try:
        while done < limit:
            n = raw.readinto(buf)
            if not n:
                return
            done += n
    except (*_DECODE_ERRORS, AssertionError):
        return


class Opener:
    """A member's `open`: builds a fresh raw stream per call, remembers them, and wraps each in a read buffer.

    After `ctx.scan(member)` the handler asks `problems()` and `complete()` what the nested handler's reads found.
    """

    def __init__(self, make: Callable[[], Window | Decoded]) -> None:
        self._make = make
        self.raws: list[Window | Decoded] = []

    def __call__(self) -> BinaryIO:
        raw = self._make()
        self.raws.append(raw)
        return io.BufferedReader(raw, BUFFER)  # type: ignore[arg-type]

    def close_all(self) -> None:
        """Close (and so drain) streams a handler left open."""
        for raw in self.raws:
            raw.close()

    def problems(self) -> list[str]:
        """Distinct problems seen by any stream opened."""
        self.close_all()
        seen: list[str] = []
        for raw in self.raws:
            if raw.problem and raw.problem not in seen:
                seen.append(raw.problem)
        return seen

    def stopped(self) -> bool:
        """A decompression limit stopped a stream."""
        return any(isinstance(r, Decoded) and r.stopped for r in self.raws)

    def complete(self) -> tuple[int, int] | None:
        """(CRC-32, size) of the whole member when some stream read all of it in order; else None."""
        self.close_all()
        for raw in self.raws:
            if raw.at_end and raw.problem is None and not (isinstance(raw, Decoded) and raw.stopped):
                return raw.crc, raw.crc_upto
        return None


def decoded_member(parent: Member, source: BinaryIO, ctx: ScanContext, kind: str, path: str, *, offset: int = 0,
                   length: int | None = None, hint: str | None = None) -> tuple[Member, Opener]:
    """A member nested in `parent` holding the decompressed bytes of `source`[offset : offset+length]."""
    box: list[Member] = []

    def account(n: int) -> bool:
        return ctx.note_expanded(n, box[0])

    opener = Opener(lambda: Decoded(lambda: Window(source, offset, length), kind, account))  # type: ignore[arg-type]
    child = Member(path=path, open=opener, size=None, depth=parent.depth + 1, hint=hint)
    box.append(child)
    return child, opener


def window_member(parent: Member, source: BinaryIO, path: str, offset: int, length: int | None, *,
                  hint: str | None = None, drain: bool = False) -> tuple[Member, Opener]:
    """A member nested in `parent` holding `source`[offset : offset+length] as they are (no decompression);
    `drain` reads it to the end on close (for the CRC check)."""
    opener = Opener(lambda: Window(source, offset, length, DRAIN_LIMIT if drain else 0))
    return Member(path=path, open=opener, size=length, depth=parent.depth + 1, hint=hint), opener


# -- handlers --------------------------------------------------------------------------------------------------------

_KINDS = {"gzip": "gzip", "bz2": "bz2", "xz": "xz", "lzma": "lzma-alone", "zlib": "zlib"}


def _scan_stream(member: Member, stream: BinaryIO, ctx: ScanContext, fmt: str, kind: str, offset: int = 0) -> None:
    child, opener = decoded_member(member, stream, ctx, kind, f"{member.path}!{fmt}", offset=offset,
                                   hint=member.hint)
    ctx.scan(child)
    problems = opener.problems()
    if opener.stopped():
        return  # the bomb is reported by the context; a cut-off stream is not also "corrupt"
    for why in problems:
        rule = "MLF-MOD-011" if why.startswith("bytes that are not") else "MLF-MOD-003"
        ctx.add(finding(rule, member.path, f"{fmt} stream: {why}; what decompressed before it was scanned",
                        format=fmt))


def _make_handler(fmt: str) -> Callable[[Member, BinaryIO, ScanContext], None]:
    kind = _KINDS[fmt]

    def handler(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
        _scan_stream(member, stream, ctx, fmt, kind)

    handler.__name__ = f"scan_{fmt}"
    handler.__doc__ = f"Decompress a {fmt} stream and scan what is inside."
    return handler


for _fmt in _KINDS:
    handles(_fmt)(_make_handler(_fmt))


_ZFILE_HEADER = 2 + len(hex(2**64))
"""joblib < 0.10 `ZF` files: `ZF`, the length in hex padded to 19 characters (sometimes one space more), zlib."""


@handles("joblib-zfile")
def scan_joblib_zfile(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """joblib's old compressed pickles (`ZF` + hex length + zlib data): joblib still loads them."""
    head = stream.read(_ZFILE_HEADER + 1)
    offset = _ZFILE_HEADER + (1 if head[_ZFILE_HEADER:] == b" " else 0)
    _scan_stream(member, stream, ctx, "joblib-zfile", "zlib", offset)


@handles("7z", "rar", "lz4", "zstd")
def scan_unsupported(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """Containers the standard library cannot open: what is inside was not scanned, and the report says so."""
    head = stream.read(8)
    kind = {b"7z": "7z", b"Ra": "rar", b"\x04\x22": "lz4", b"\x28\xb5": "zstd"}.get(head[:2], "compressed")
    ctx.add(finding("MLF-MOD-004", member.path, f"{kind} container: its contents cannot be scanned here; "
                    "extract it and scan what is inside before loading anything from it", format=kind,
                    limit="format"))

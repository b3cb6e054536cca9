"""The mlfort envelope format: a streaming, key-committing AES-256-GCM message with one wrapped data key per keyring.

One fresh 256-bit data key encrypts a message. Each keyring (key file, HSM, KMS) wraps that data key, bound to
the encryption context, and every wrapped copy goes in the header, so any one keyring opens the message
(like the AWS Encryption SDK's message format and SOPS). From the data key and the random 32-byte message id,
HKDF-SHA512 derives two independent values: the payload key and a key commitment stored in the header.
A reader checks the commitment before it decrypts anything, so one ciphertext cannot open under two keys to two
plaintexts. The body is AES-256-GCM frames. A frame's nonce is its sequence number. Its AAD holds the message id,
the sequence number and a final-frame flag. Truncation, reordering, frame swapping between messages, and data
appended after the end are all detected. The byte-level layout is in docs/encryption.md; `FORMAT` below is the
same table.

Decrypting to a stream releases a frame only after that frame's tag has verified. A failure later in the message
therefore leaves the earlier, authentic frames in the consumer's hands, and the consumer must discard them on
error. That is the same contract as Tink and the Encryption SDK. The file functions (`decrypt_file`) never show a
consumer anything unauthenticated: they write to a 0600 temp file beside the destination and rename it into
place only after the final frame verified. On any error they delete it.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import os
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mlfort.crypto.keyrings.base import (
    DATA_KEY_BYTES,
    MAX_CONTEXT_BYTES,
    MAX_CONTEXT_KEY_BYTES,
    MAX_CONTEXT_PAIRS,
    MAX_CONTEXT_VALUE_BYTES,
    MAX_KEY_ID_BYTES,
    MAX_KIND_BYTES,
    MAX_NAME_BYTES,
    MAX_WRAPPED_BYTES,
    EnvelopeError,
    Keyring,
    KeyringError,
    WrappedKey,
    check_context,
    encode_pairs,
)
from mlfort.errors import InputError

MAGIC = b"MLFE"
VERSION = 1
SUITE_AES256GCM_HKDF_SHA512_COMMIT = 0x0001
"""The only suite so far: AES-256-GCM frames, HKDF-SHA512 key derivation, a 256-bit key commitment."""
SUITES = {SUITE_AES256GCM_HKDF_SHA512_COMMIT: "AES-256-GCM, HKDF-SHA512, committing"}

DEFAULT_FRAME_SIZE = 1 << 20
MIN_FRAME_SIZE = 16
MAX_FRAME_SIZE = 64 << 20
"""A hostile header can make a reader hold at most two frames of 64 MiB."""
MAX_KEYS = 64
"""Wrapped data keys per message (one per keyring)."""
MAX_FRAMES = 1 << 32
"""Frames per message: 4 PiB at 1 MiB frames; sequence numbers never wrap."""

MESSAGE_ID_BYTES = 32
COMMITMENT_BYTES = 32
TAG_BYTES = 16
_FIXED = struct.Struct(">4sBH32sI")  # magic, version, suite, message id, frame size
_HEADER_NONCE = b"\xff" * 12
"""The header tag's nonce; frame nonces are 0..2^32-1 in the low bytes, so it is never a frame's."""
_INFO_KEY = b"mlfort envelope v1 payload key"
_INFO_COMMIT = b"mlfort envelope v1 key commitment"

FORMAT = """\
header:
  magic "MLFE" (4) | version 0x01 (1) | suite 0x0001 (2, big-endian) | message id (32, random)
  | frame size (4, big-endian, 16 B..64 MiB)
  | encryption context: count (2), then per pair sorted by key: key length (2), key, value length (2), value
  | wrapped keys: count (2, 1..64), then per key: kind length (1), kind, name length (2), name,
    key id length (2), key id, blob length (2), blob
  | key commitment (32) | header tag (16): AES-256-GCM with the payload key, nonce ff*12, AAD = all header bytes
    before the tag, empty plaintext
body: frames, each ciphertext || tag (16). Frame i (from 0) has nonce 00000000 || i (8, big-endian) and
  AAD = message id || i (8) || final flag (1). Every frame but the last holds exactly `frame size` plaintext
  bytes; the last (final flag 1) holds 0 .. frame size - 1, so a message whose length is a multiple of the frame
  size ends with an empty final frame.
keys: payload key = HKDF-SHA512(data key, salt = message id, info = "mlfort envelope v1 payload key" || suite)
  commitment  = HKDF-SHA512(data key, salt = message id, info = "mlfort envelope v1 key commitment" || suite)
"""


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed message header. Nothing in it is secret; `keys` hold wrapped (encrypted) data keys."""

    message_id: bytes
    frame_size: int
    context: dict[str, str]
    keys: tuple[WrappedKey, ...]
    commitment: bytes = field(repr=False)
    tag: bytes = field(repr=False)
    raw: bytes = field(repr=False)
    """The header's exact bytes, tag included: the body starts right after them."""
    version: int = VERSION
    suite: int = SUITE_AES256GCM_HKDF_SHA512_COMMIT

    @property
    def size(self) -> int:
        """Length of the header in bytes."""
        return len(self.raw)

    @property
    def keyring_names(self) -> list[str]:
        """Names of the keyrings that can open this message, in header order."""
        return [k.name for k in self.keys]

    def describe(self) -> dict[str, object]:
        """A JSON-able summary for `mlfort decrypt --info`, reports and ledger events (no key material)."""
        return {
            "format": f"mlfort envelope v{self.version}",
            "suite": SUITES.get(self.suite, hex(self.suite)),
            "message_id": self.message_id.hex(),
            "frame_size": self.frame_size,
            "context": dict(self.context),
            "keyrings": [{"name": k.name, "kind": k.kind, "key_id": k.key_id} for k in self.keys],
        }


# -- keys ----------------------------------------------------------------------------------------------------------


def _derive(data_key: bytes, message_id: bytes, suite: int) -> tuple[bytes, bytes]:
    suite_bytes = struct.pack(">H", suite)
    key = HKDF(hashes.SHA512(), 32, message_id, _INFO_KEY + suite_bytes).derive(data_key)
    commit = HKDF(hashes.SHA512(), COMMITMENT_BYTES, message_id, _INFO_COMMIT + suite_bytes).derive(data_key)
    return key, commit


def _frame_aad(message_id: bytes, seq: int, final: bool) -> bytes:
    return message_id + seq.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def _nonce(seq: int) -> bytes:
    return b"\x00\x00\x00\x00" + seq.to_bytes(8, "big")


# -- header --------------------------------------------------------------------------------------------------------


def _encode_keys(keys: Sequence[WrappedKey]) -> bytes:
    out = [struct.pack(">H", len(keys))]
    for k in keys:
        kind, name, kid = k.kind.encode(), k.name.encode(), k.key_id.encode()
        out += [struct.pack(">B", len(kind)), kind, struct.pack(">H", len(name)), name,
                struct.pack(">H", len(kid)), kid, struct.pack(">H", len(k.blob)), k.blob]
    return b"".join(out)


def _build_header(message_id: bytes, frame_size: int, context: Mapping[str, str], keys: Sequence[WrappedKey],
                  commitment: bytes, payload_key: bytes, suite: int = SUITE_AES256GCM_HKDF_SHA512_COMMIT) -> Header:
    if not keys:
        raise InputError("a message needs at least one keyring")
    if len(keys) > MAX_KEYS:
        raise InputError(f"at most {MAX_KEYS} keyrings can protect one message")
    names = [k.name for k in keys]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"keyring named twice: {', '.join(dupes)}")
    pairs = check_context(context)
    body = b"".join([
        _FIXED.pack(MAGIC, VERSION, suite, message_id, frame_size),
        encode_pairs(pairs),
        _encode_keys(keys),
        commitment,
    ])
    tag = AESGCM(payload_key).encrypt(_HEADER_NONCE, b"", body)
    ctx = {k.decode(): v.decode() for k, v in pairs}
    return Header(message_id, frame_size, ctx, tuple(keys), commitment, tag, body + tag, VERSION, suite)


class _Reader:
    """Exact, bounded reads from a stream, keeping the bytes read (the header's raw form)."""

    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.buf = bytearray()

    def take(self, n: int, what: str) -> bytes:
        data = _read_exact(self.src, n)
        if len(data) != n:
            raise EnvelopeError(f"not an mlfort encrypted file, or truncated inside its header ({what})")
        self.buf += data
        return data

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def text(self, n: int, what: str, limit: int, *, empty_ok: bool = False) -> str:
        if n > limit or (n == 0 and not empty_ok):
            raise EnvelopeError(f"malformed header: {what} length {n} is outside 1..{limit}")
        raw = self.take(n, what)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError(f"malformed header: {what} is not UTF-8") from None
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise EnvelopeError(f"malformed header: {what} contains control characters")
        return value


def read_header(src: BinaryIO) -> Header:
    """Parse and bound-check a header from `src`, leaving `src` at the first frame. No keys needed, nothing
    verified yet: the tag and commitment are checked by `open_header` once a keyring has unwrapped the data key.

    Every length is checked against its cap before anything is allocated; unknown versions or suites, duplicate
    context keys, unsorted context, zero or too many keys, all raise EnvelopeError (exit 1).
    """
    r = _Reader(src)
    magic = r.take(4, "magic")
    if magic != MAGIC:
        raise EnvelopeError("not an mlfort encrypted file (no MLFE magic)")
    fixed = magic + r.take(_FIXED.size - 4, "fixed fields")
    _, version, suite, message_id, frame_size = _FIXED.unpack(fixed)
    if version != VERSION:
        raise EnvelopeError(f"unsupported format version {version} (this mlfort reads version {VERSION})")
    if suite not in SUITES:
        raise EnvelopeError(f"unsupported algorithm suite 0x{suite:04x}")
    if not MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE:
        raise EnvelopeError(f"malformed header: frame size {frame_size} is outside {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE}")
    count = r.u16("context count")
    if count > MAX_CONTEXT_PAIRS:
        raise EnvelopeError(f"malformed header: {count} context pairs (at most {MAX_CONTEXT_PAIRS})")
    context: dict[str, str] = {}
    start = len(r.buf)
    last: bytes | None = None
    for _ in range(count):
        key = r.text(r.u16("context key length"), "context key", MAX_CONTEXT_KEY_BYTES)
        value = r.text(r.u16("context value length"), "context value", MAX_CONTEXT_VALUE_BYTES, empty_ok=True)
        kb = key.encode()
        if last is not None and kb <= last:
            raise EnvelopeError("malformed header: context keys are repeated or not in canonical order")
        last = kb
        context[key] = value
        if len(r.buf) - start > MAX_CONTEXT_BYTES:
            raise EnvelopeError(f"malformed header: encryption context larger than {MAX_CONTEXT_BYTES} bytes")
    nkeys = r.u16("key count")
    if not 1 <= nkeys <= MAX_KEYS:
        raise EnvelopeError(f"malformed header: {nkeys} wrapped keys (1..{MAX_KEYS})")
    keys: list[WrappedKey] = []
    for _ in range(nkeys):
        kind = r.text(r.u8("keyring kind length"), "keyring kind", MAX_KIND_BYTES)
        name = r.text(r.u16("keyring name length"), "keyring name", MAX_NAME_BYTES)
        key_id = r.text(r.u16("key id length"), "key id", MAX_KEY_ID_BYTES)
        n = r.u16("wrapped key length")
        if not 0 < n <= MAX_WRAPPED_BYTES:
            raise EnvelopeError(f"malformed header: wrapped key length {n} (1..{MAX_WRAPPED_BYTES})")
        blob = r.take(n, "wrapped key")
        try:
            keys.append(WrappedKey(kind, name, key_id, blob))
        except InputError as exc:
            raise EnvelopeError(f"malformed header: {exc}") from None
    if len({k.name for k in keys}) != len(keys):
        raise EnvelopeError("malformed header: a keyring name appears twice")
    commitment = r.take(COMMITMENT_BYTES, "key commitment")
    tag = r.take(TAG_BYTES, "header tag")
    return Header(message_id, frame_size, context, tuple(keys), commitment, tag, bytes(r.buf), version, suite)


def open_header(header: Header, keyrings: Sequence[Keyring],
                expected_context: Mapping[str, str] | None = None) -> tuple[bytes, bytes]:
    """Unwrap the data key with the first keyring that can, check the key commitment and the header tag, and check
    `expected_context` (every pair must be in the header's context with the same value). Returns (data key,
    payload key). Raises EnvelopeError naming what failed; never shows key bytes.
    """
    if expected_context:
        for key, want in sorted(expected_context.items()):
            got = header.context.get(key)
            if got != want:
                shown = "missing" if got is None else f"{got!r}"
                raise EnvelopeError(
                    f"encryption context mismatch: {key!r} is {shown}, expected {want!r}; this file was not "
                    "encrypted for this use"
                )
    if not keyrings:
        raise EnvelopeError(f"no keyring given; this file opens with: {_who(header.keys)}")
    tried: list[str] = []
    for keyring in keyrings:
        for wrapped in header.keys:
            if not keyring.can_unwrap(wrapped):
                continue
            try:
                data_key = keyring.unwrap(wrapped, header.context)
            except KeyringError as exc:
                tried.append(f"{keyring.name}: {exc}")
                continue
            if len(data_key) != DATA_KEY_BYTES:
                tried.append(f"{keyring.name}: returned a key of the wrong length")
                continue
            payload_key, commitment = _derive(data_key, header.message_id, header.suite)
            if not hmac.compare_digest(commitment, header.commitment):
                raise EnvelopeError(
                    f"key commitment mismatch: the data key from keyring {keyring.name!r} does not match this "
                    "message (the header was altered or built to open differently under different keys)"
                )
            try:
                AESGCM(payload_key).decrypt(_HEADER_NONCE, header.tag, header.raw[:-TAG_BYTES])
            except InvalidTag:
                raise EnvelopeError("header authentication failed: the header was altered") from None
            return data_key, payload_key
    if tried:
        raise EnvelopeError("no keyring could open this file: " + "; ".join(tried))
    given = ", ".join(repr(k.name) for k in keyrings)
    raise EnvelopeError(f"none of the keyrings given ({given}) holds a key of this file; it opens with: "
                        f"{_who(header.keys)}")


def _who(keys: Iterable[WrappedKey]) -> str:
    return ", ".join(f"{k.name} ({k.kind} {k.key_id})" for k in keys)


def _new_message(keyrings: Sequence[Keyring], context: Mapping[str, str], frame_size: int) -> tuple[Header, bytes]:
    if not MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE:
        raise InputError(f"frame size must be {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE} bytes, not {frame_size}")
    if not keyrings:
        raise InputError("encrypting needs at least one keyring")
    check_context(context)
    message_id = secrets.token_bytes(MESSAGE_ID_BYTES)
    data_key, first = keyrings[0].generate(context)
    if len(data_key) != DATA_KEY_BYTES:
        raise KeyringError(f"keyring {keyrings[0].name!r} generated a data key of the wrong length")
    keys = [first] + [k.wrap(data_key, context) for k in keyrings[1:]]
    payload_key, commitment = _derive(data_key, message_id, SUITE_AES256GCM_HKDF_SHA512_COMMIT)
    return _build_header(message_id, frame_size, context, keys, commitment, payload_key), payload_key


# -- memory to memory ----------------------------------------------------------------------------------------------


def _body_size(length: int, frame_size: int) -> int:
    full, _ = divmod(length, frame_size)
    return full * (frame_size + TAG_BYTES) + (length - full * frame_size) + TAG_BYTES


def encrypt_bytes(data: bytes | bytearray | memoryview, keyrings: Sequence[Keyring], *, context: Mapping[str, str],
                  frame_size: int = DEFAULT_FRAME_SIZE, out: bytearray | memoryview | None = None) -> memoryview:
    """Encrypt `data` into one message (header + frames), written straight into one buffer.

    The buffer is `out` when given (reuse one to encrypt many messages without paying for fresh memory; it must
    hold at least `len(data) + len(data) // frame_size * 16 + 16 + 4096 * keyrings` bytes, or the needed size is
    in the error), else a new bytearray. Returns a view of exactly the message's bytes.
    """
    header, payload_key = _new_message(keyrings, context, frame_size)
    src = memoryview(data).cast("B")
    full = len(src) // frame_size
    if full + 1 > MAX_FRAMES:
        raise InputError("message too large for one envelope")
    size = header.size + _body_size(len(src), frame_size)
    view = _output(out, size, "ciphertext")
    view[: header.size] = header.raw
    aead, mid, step = AESGCM(payload_key), header.message_id, frame_size + TAG_BYTES
    pos = header.size
    for seq in range(full):
        aead.encrypt_into(_nonce(seq), src[seq * frame_size: (seq + 1) * frame_size], _frame_aad(mid, seq, False),
                          view[pos: pos + step])
        pos += step
    aead.encrypt_into(_nonce(full), src[full * frame_size:], _frame_aad(mid, full, True), view[pos:size])
    return view[:size]


def _output(out: bytearray | memoryview | None, size: int, what: str) -> memoryview:
    if out is None:
        return memoryview(bytearray(size))
    view = memoryview(out).cast("B")
    if view.readonly:
        raise InputError(f"the {what} buffer is read-only")
    if len(view) < size:
        raise InputError(f"the {what} buffer holds {len(view)} bytes; this message needs {size}")
    return view


class _ViewStream(io.RawIOBase):
    """A read-only stream over a memoryview that never copies more than it is asked for (BytesIO copies all)."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.pos = view, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        end = len(self.view) if n is None or n < 0 else min(len(self.view), self.pos + n)
        chunk = bytes(self.view[self.pos: end])
        self.pos = end
        return chunk


def decrypt_bytes(blob: bytes | bytearray | memoryview, keyrings: Sequence[Keyring], *,
                  expected_context: Mapping[str, str] | None = None,
                  out: bytearray | memoryview | None = None) -> memoryview:
    """Decrypt a whole message held in memory into `out` (or a new buffer); returns a view of the plaintext.

    Raises EnvelopeError on any failure. On failure part of `out` may hold authentic frames of a message that,
    as a whole, is not: treat the buffer as garbage.
    """
    view = memoryview(blob).cast("B")
    stream = _ViewStream(view)
    header = read_header(stream)  # type: ignore[arg-type]
    _, payload_key = open_header(header, keyrings, expected_context)
    body = view[header.size:]
    fs, step = header.frame_size, header.frame_size + TAG_BYTES
    if len(body) < TAG_BYTES:
        raise EnvelopeError("truncated: the message ends before its final frame")
    full, last = divmod(len(body) - TAG_BYTES, step)
    if last >= fs:
        raise EnvelopeError("truncated or extended: the body is not a whole number of frames")
    if full + 1 > MAX_FRAMES:
        raise EnvelopeError("malformed: too many frames")
    size = full * fs + last
    oview = _output(out, size, "plaintext")
    aead, mid = AESGCM(payload_key), header.message_id
    seq = 0
    try:
        for seq in range(full):
            aead.decrypt_into(_nonce(seq), body[seq * step: (seq + 1) * step], _frame_aad(mid, seq, False),
                              oview[seq * fs: (seq + 1) * fs])
        seq = full
        aead.decrypt_into(_nonce(full), body[full * step:], _frame_aad(mid, full, True), oview[full * fs: size])
    except InvalidTag:
        raise EnvelopeError(_frame_failure(seq, full)) from None
    return oview[:size]


def _frame_failure(seq: int, last: int) -> str:
    return (f"frame {seq} failed authentication: the file was altered, truncated, reordered or mixed with another "
            "message" + (" (at its final frame)" if seq == last else ""))


# -- streams -------------------------------------------------------------------------------------------------------


def _read_exact(src: BinaryIO, n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = src.read(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _readinto_full(src: BinaryIO, buf: memoryview) -> int:
    got = 0
    while got < len(buf):
        n = src.readinto(buf[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


Progress = Callable[[int], None]


def encrypt_stream(src: BinaryIO, dst: BinaryIO, keyrings: Sequence[Keyring], *, context: Mapping[str, str],
                   frame_size: int = DEFAULT_FRAME_SIZE, progress: Progress | None = None) -> Header:
    """Encrypt everything `src` yields into `dst`, one frame at a time (memory: two frames). Returns the header.

    `progress`, if given, is called with the number of plaintext bytes of each frame as it is done.
    """
    header, payload_key = _new_message(keyrings, context, frame_size)
    dst.write(header.raw)
    aead, mid = AESGCM(payload_key), header.message_id
    inbuf = bytearray(frame_size)
    outbuf = bytearray(frame_size + TAG_BYTES)
    iv, ov = memoryview(inbuf), memoryview(outbuf)
    # Read one frame ahead: a frame is final only when the stream ends inside it (or right at its start).
    got = _readinto_full(src, iv)
    seq = 0
    while True:
        if got < frame_size:
            aead.encrypt_into(_nonce(seq), iv[:got], _frame_aad(mid, seq, True), ov[: got + TAG_BYTES])
            dst.write(ov[: got + TAG_BYTES])
            if progress:
                progress(got)
            return header
        if seq + 1 >= MAX_FRAMES:
            raise InputError("input too large for one envelope")
        aead.encrypt_into(_nonce(seq), iv, _frame_aad(mid, seq, False), ov)
        dst.write(ov)
        if progress:
            progress(frame_size)
        seq += 1
        got = _readinto_full(src, iv)


def decrypt_stream(src: BinaryIO, dst: BinaryIO, keyrings: Sequence[Keyring], *,
                   expected_context: Mapping[str, str] | None = None, progress: Progress | None = None) -> Header:
    """Decrypt a message from `src` into `dst`, writing each frame only after its tag verified.

    On EnvelopeError, frames already written were authentic but the message as a whole is not: discard them
    (`decrypt_file` does). Memory: two frames.
    """
    header = read_header(src)
    _, payload_key = open_header(header, keyrings, expected_context)
    aead, mid, fs = AESGCM(payload_key), header.message_id, header.frame_size
    step = fs + TAG_BYTES
    inbuf, outbuf = bytearray(step), bytearray(fs)
    iv, ov = memoryview(inbuf), memoryview(outbuf)
    seq = 0
    while True:
        got = _readinto_full(src, iv)
        final = got < step
        if final and got < TAG_BYTES:
            raise EnvelopeError(f"truncated: the message ends at frame {seq} without its final frame")
        try:
            aead.decrypt_into(_nonce(seq), iv[:got], _frame_aad(mid, seq, final), ov[: got - TAG_BYTES])
        except InvalidTag:
            raise EnvelopeError(_frame_failure(seq, seq if final else -1)) from None
        dst.write(ov[: got - TAG_BYTES])
        if progress:
            progress(got - TAG_BYTES)
        if final:
            if src.read(1):
                raise EnvelopeError("extended: data follows the final frame")
            return header
        seq += 1
        if seq >= MAX_FRAMES:
            raise EnvelopeError("malformed: too many frames")


# -- files ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_output(dst: Path, *, mode: int, overwrite: bool):  # type: ignore[no-untyped-def]
    """Yield a binary file in dst's folder; on success fsync and rename it to `dst`, on any error delete it."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise InputError(f"{dst} exists; pass --force to replace it")
    if dst.is_dir():
        raise InputError(f"{dst} is a folder")
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    tmp = folder / f".{dst.name}.{secrets.token_hex(6)}.mlfort-tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as exc:
        raise InputError(f"cannot write in {folder}: {exc.strerror}") from None
    try:
        with open(fd, "wb", buffering=0) as out:
            yield out
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _open_input(src: Path) -> BinaryIO:
    try:
        return open(src, "rb", buffering=0)
    except FileNotFoundError:
        raise InputError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{src} is a folder; encrypt files (tar a folder first)") from None
    except OSError as exc:
        raise InputError(f"{src}: cannot read ({exc.strerror})") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


BeforeCommit = Callable[[Header], None]


def encrypt_file(src: Path, dst: Path, keyrings: Sequence[Keyring], *, context: Mapping[str, str],
                 frame_size: int = DEFAULT_FRAME_SIZE, overwrite: bool = False,
                 progress: Progress | None = None, before_commit: BeforeCommit | None = None) -> Header:
    """Encrypt file `src` to `dst` atomically (temp file + rename; nothing at `dst` on failure).

    `before_commit(header)` runs once the whole message is written, before it is renamed into place (the CLI
    records the ledger event there); if it raises, nothing appears at `dst`.
    """
    if _same_file(src, dst):
        raise InputError("input and output are the same file")
    with _open_input(Path(src)) as fin, _atomic_output(Path(dst), mode=0o644, overwrite=overwrite) as fout:
        header = encrypt_stream(fin, fout, keyrings, context=context, frame_size=frame_size, progress=progress)
        if before_commit:
            before_commit(header)
        return header


def decrypt_file(src: Path, dst: Path, keyrings: Sequence[Keyring], *,
                 expected_context: Mapping[str, str] | None = None, overwrite: bool = False,
                 progress: Progress | None = None, before_commit: BeforeCommit | None = None) -> Header:
    """Decrypt `src` to `dst` (mode 0600). The plaintext appears at `dst` only after the final frame verified; on
    any failure the temp file is deleted and `dst` is untouched. `before_commit` as in `encrypt_file`."""
    if _same_file(src, dst):
        raise InputError("input and output are the same file")
    with _open_input(Path(src)) as fin, _atomic_output(Path(dst), mode=0o600, overwrite=overwrite) as fout:
        header = decrypt_stream(fin, fout, keyrings, expected_context=expected_context, progress=progress)
        if before_commit:
            before_commit(header)
        return header


def inspect_file(path: Path) -> Header:
    """The header of an encrypted file, unverified (no keys needed): who can open it, its context."""
    with _open_input(Path(path)) as fin:
        return read_header(fin)


def rewrap(path: Path, *, unwrap_with: Sequence[Keyring], add: Sequence[Keyring] = (),
           remove: Sequence[str] = (), dst: Path | None = None, before_commit: BeforeCommit | None = None) -> Header:
    """Change who can open `path`: wrap its data key for `add`, drop the entries of keyrings named in `remove`.

    Only the header changes (new wrapped keys, new header tag); the frames are copied byte for byte, not
    re-encrypted. `unwrap_with` must open the file first. The result replaces `path` atomically (or goes to
    `dst`). Removing a keyring stops it opening this file from now on; anyone who kept the data key or an older
    copy of the file still can, so re-encrypt to revoke past access.
    """
    path = Path(path)
    with _open_input(path) as fin:
        header = read_header(fin)
        data_key, payload_key = open_header(header, unwrap_with)
        present = set(header.keyring_names)
        unknown = sorted(set(remove) - present)
        if unknown:
            raise InputError(f"not on this file: {', '.join(unknown)} (it opens with {', '.join(sorted(present))})")
        keys = [k for k in header.keys if k.name not in set(remove)]
        for keyring in add:
            if keyring.name in {k.name for k in keys}:
                raise InputError(f"keyring {keyring.name!r} already opens this file")
            keys.append(keyring.wrap(data_key, header.context))
        if not keys:
            raise InputError("removing every keyring would leave a file nobody can open")
        new = _build_header(header.message_id, header.frame_size, header.context, keys, header.commitment,
                            payload_key, header.suite)
        target = Path(dst) if dst is not None else path
        with _atomic_output(target, mode=_mode_of(path), overwrite=True) as fout:
            fout.write(new.raw)
            _copy_rest(fin, fout)
            if before_commit:
                before_commit(new)
    return new


def _mode_of(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o644


def _copy_rest(fin: BinaryIO, fout: BinaryIO) -> None:
    """Copy from fin's position to its end (copy_file_range: in-kernel, a reflink where the filesystem can)."""
    offset = fin.tell()
    try:
        in_fd, out_fd = fin.fileno(), fout.fileno()
        size = os.fstat(in_fd).st_size
        while offset < size:
            n = os.copy_file_range(in_fd, out_fd, min(size - offset, 1 << 30), offset)
            if n == 0:
                break
            offset += n
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass  # no copy_file_range here (another OS, another filesystem): plain reads from where it stopped
    fin.seek(offset)
    while chunk := fin.read(1 << 20):
        fout.write(chunk)

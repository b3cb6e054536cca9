"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with Ed25519.

A checkpoint commits to the whole log at one size:

    <origin>\\n<tree size>\\n<base64 root hash>\\n

followed by a blank line and signature lines `— <key name> base64(key id || signature)`. The key id is the first
four bytes of SHA-256(name || 0x0A || 0x01 || public key). These are the formats of Go's sumdb, Sigstore Rekor v2 and
the transparency-dev witnesses, so a checkpoint can be checked (and cosigned) by tools that are not mlfort.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlfort.errors import InputError, VerificationError

ALG_ED25519 = 0x01
DASH = "\u2014 "
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 100
_NAME = re.compile(r"[^\s+]+")


class NoteError(VerificationError):
    """A signed note or checkpoint is malformed, or no trusted key signed it (exit 1)."""


def key_id(name: str, public: bytes) -> bytes:
    """The 4-byte C2SP key id of an Ed25519 key under a name."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A trusted checkpoint key: its name, id and Ed25519 public key (text form: a C2SP vkey)."""

    name: str
    id: bytes
    public: Ed25519PublicKey

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse `<name>+<hex key id>+<base64(0x01 || public key)>`; the id must match the key."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not _NAME.fullmatch(parts[0]):
            raise InputError("a verifier key looks like <name>+<8 hex digits>+<base64 key>")
        name, hex_id, b64 = parts
        try:
            kid = bytes.fromhex(hex_id)
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise InputError("verifier key: bad hex id or base64 key") from None
        if len(kid) != 4 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise InputError("verifier key: not an Ed25519 key (type 0x01, 32 bytes) with a 4-byte id")
        if key_id(name, raw[1:]) != kid:
            raise InputError("verifier key: the key id does not match the name and key")
        return cls(name, kid, Ed25519PublicKey.from_public_bytes(raw[1:]))

    def vkey(self) -> str:
        """The C2SP verifier key text."""
        raw = bytes([ALG_ED25519]) + _raw_public(self.public)
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(raw).decode()}"


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """The private half: signs notes as `name`."""

    name: str
    private: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise InputError(f"note key name {self.name!r} must be non-empty, without spaces or '+'")

    @property
    def verifier(self) -> NoteVerifier:
        """The matching public verifier."""
        public = self.private.public_key()
        return NoteVerifier(self.name, key_id(self.name, _raw_public(public)), public)

    def sign(self, text: str) -> str:
        """A signed note of `text` (which must end in a newline and hold no blank line)."""
        _check_text(text)
        sig = self.private.sign(text.encode())
        line = f"{DASH}{self.name} {base64.b64encode(self.verifier.id + sig).decode()}\n"
        return f"{text}\n{line}"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or not text.strip():
        raise NoteError("note text must be non-empty, end in a newline and hold no blank line")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text holds a control character")


def open_note(note: str | bytes, verifiers: list[NoteVerifier]) -> str:
    """Return the text of a signed note if one of `verifiers` signed it; raise NoteError otherwise.

    As in Go's note.Open: a signature line from a known key that fails rejects the note outright (a replaced
    signature is an attack, not noise); lines from unknown keys are ignored; no known signature is an error.
    """
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise NoteError(f"note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not UTF-8") from None
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no signature block (text, blank line, signature lines)")
    text, sigs = note[: split + 1], note[split + 2 :]
    _check_text(text)
    if not sigs.endswith("\n"):
        raise NoteError("note signature block does not end in a newline")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    by_id = {(v.name, v.id): v for v in verifiers}
    good = False
    for line in lines:
        if not line.startswith(DASH):
            raise NoteError(f"malformed signature line {line[:60]!r}")
        name, _, b64 = line[len(DASH) :].partition(" ")
        if not _NAME.fullmatch(name) or not b64 or " " in b64:
            raise NoteError(f"malformed signature line {line[:60]!r}")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError("signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("signature is too short")
        verifier = by_id.get((name, raw[:4]))
        if verifier is None:
            continue
        try:
            verifier.public.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise NoteError(f"the signature by {name} (key {raw[:4].hex()}) does not match the note") from None
        good = True
    if not good:
        names = ", ".join(sorted({f"{v.name}+{v.id.hex()}" for v in verifiers})) or "none"
        raise NoteError(f"no trusted key signed this note (trusted: {names})")
    return text


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state of a log at one size: origin, size, root hash (C2SP tlog-checkpoint)."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The checkpoint body (what is signed)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly (extension lines are allowed and ignored)."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint must have origin, size and root hash lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or not re.fullmatch(r"0|[1-9][0-9]{0,18}", size):
            raise NoteError("checkpoint origin is empty or its size is not a decimal number")
        try:
            raw = base64.b64decode(root, validate=True)
        except binascii.Error:
            raise NoteError("checkpoint root hash is not base64") from None
        if len(raw) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size), raw)


def open_checkpoint(note: str | bytes, verifiers: list[NoteVerifier], origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint and return it; with `origin`, it must be for that log."""
    cp = Checkpoint.parse(open_note(note, verifiers))
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint is for log {cp.origin!r}, not {origin!r}")
    return cp


def load_or_create_signer(path: Path, name: str) -> NoteSigner:
    """The ledger's checkpoint key at `path` (PKCS#8 PEM, created 0600 on first use), signing as `name`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_or_create_signer(path, name)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        return NoteSigner(name, key)
    except OSError as exc:
        raise InputError(f"cannot read the ledger key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InputError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path} is not an Ed25519 key (checkpoints are signed with Ed25519)")
    return NoteSigner(name, key)


def read_verifier(path: Path) -> NoteVerifier:
    """A trusted verifier from a file holding a C2SP vkey line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read verifier key {path}: {exc}") from None
    return NoteVerifier.from_vkey(text)


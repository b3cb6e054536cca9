"""The keyring interface: what envelope encryption asks of anything that guards a data key.

A keyring turns a fresh 32-byte data key into a `WrappedKey` that only it can open again, bound to the message's
encryption context. The envelope format (`mlfort.crypto.envelope`) stores one wrapped key per keyring in the header,
so any one of them can decrypt. Each implementation is one file beside this one: `local.py` (a key file), and later
a PKCS#11 HSM (the KEK never leaves the token: C_WrapKey with CKM_AES_KEY_WRAP_KWP, or AES-GCM inside the token) and
AWS KMS (GenerateDataKey / Decrypt with the context as KMS encryption context).

Errors raised here never carry key material: not in the message, not in `args`, not chained (`from None`).
"""

from __future__ import annotations

import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from mlfort.errors import InputError, VerificationError

DATA_KEY_BYTES = 32
"""Every suite so far uses a 256-bit data key."""

MAX_KIND_BYTES = 32
MAX_NAME_BYTES = 255
MAX_KEY_ID_BYTES = 1024
"""A KMS key ARN with an alias is under 300 bytes; a PKCS#11 label plus version well under that."""
MAX_WRAPPED_BYTES = 4096
"""KMS ciphertext blobs for a 32-byte key are ~180 bytes, RSA-4096 wraps 512; 4 KiB leaves room, bounds hostility."""

MAX_CONTEXT_PAIRS = 256
MAX_CONTEXT_KEY_BYTES = 256
MAX_CONTEXT_VALUE_BYTES = 4096
MAX_CONTEXT_BYTES = 64 * 1024
"""Bounds on the encryption context, checked on write and on read, so a header cannot ask for a huge allocation."""


class KeyringError(VerificationError):
    """A keyring could not wrap or unwrap: wrong key, wrong context, wrong passphrase, a damaged key file (exit 1).

    The message says which keyring and why, never any key bytes.
    """


class EnvelopeError(VerificationError):
    """An encrypted message failed a check: malformed or tampered header, failed frame, truncation, wrong context,
    no keyring able to open it (exit 1). No unauthenticated plaintext has been written to a final path."""


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """One data key as one keyring wrapped it: an entry of the message header."""

    kind: str
    """The keyring type: "local", "pkcs11", "awskms" (ASCII, at most 32 bytes)."""
    name: str
    """The keyring's name (a person's label, e.g. "eu-hsm"); `rewrap --remove NAME` matches on it."""
    key_id: str
    """Which key, including its version, in the keyring's own terms: for a local key file "<file id>:v3", for KMS a
    key ARN, for PKCS#11 a token label, key label and version. Public; never secret."""
    blob: bytes
    """The wrapped data key (opaque to the envelope; at most 4 KiB)."""

    def __post_init__(self) -> None:
        _check_text("keyring kind", self.kind, MAX_KIND_BYTES, ascii_only=True)
        _check_text("keyring name", self.name, MAX_NAME_BYTES)
        _check_text("key id", self.key_id, MAX_KEY_ID_BYTES)
        if not isinstance(self.blob, bytes) or not 0 < len(self.blob) <= MAX_WRAPPED_BYTES:
            raise InputError(f"wrapped key from keyring {self.name!r} must be 1..{MAX_WRAPPED_BYTES} bytes")

    def __repr__(self) -> str:
        # The blob is ciphertext, but there is no reason to print it either.
        return (f"WrappedKey(kind={self.kind!r}, name={self.name!r}, key_id={self.key_id!r}, "
                f"blob=<{len(self.blob)} bytes>)")


class Keyring(ABC):
    """Guards data keys. Subclasses set `kind` and implement `wrap`, `unwrap` and `can_unwrap`.

    Contract:
    - `wrap` binds the wrapped key to `context` (as AES-GCM AAD, as KMS encryption context, ...): `unwrap` with any
      other context must fail.
    - `unwrap` raises `KeyringError` on any failure and returns exactly `DATA_KEY_BYTES` bytes on success.
    - `can_unwrap` is cheap and local (no network, no HSM login): "is this entry mine?" The envelope only calls
      `unwrap` for entries a keyring claims.
    - Nothing raised contains key bytes.
    """

    kind: ClassVar[str]
    """"local" | "pkcs11" | "awskms"."""

    def __init__(self, name: str) -> None:
        _check_text("keyring name", name, MAX_NAME_BYTES)
        self.name = name
        """The keyring's name, written into every WrappedKey it makes."""

    @abstractmethod
    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> WrappedKey:
        """Wrap `data_key` (32 bytes) under this keyring's current key, bound to `context`."""

    @abstractmethod
    def unwrap(self, wrapped: WrappedKey, context: Mapping[str, str]) -> bytes:
        """The data key inside `wrapped`, if this keyring holds its key and `context` is the one it was bound to."""

    @abstractmethod
    def can_unwrap(self, wrapped: WrappedKey) -> bool:
        """Whether `wrapped` names a key of this keyring (no crypto, no I/O beyond what is already loaded)."""

    def generate(self, context: Mapping[str, str]) -> tuple[bytes, WrappedKey]:
        """A fresh data key and its wrapping. The first keyring of an encryption is asked for this.

        The default draws 32 bytes from the OS CSPRNG and wraps them; a KMS keyring overrides it with one
        GenerateDataKey call (the key is generated inside KMS).
        """
        data_key = os.urandom(DATA_KEY_BYTES)
        return data_key, self.wrap(data_key, context)

    def rotate(self) -> str:
        """Make a new key version current (new wraps use it; old versions still unwrap). Returns the new key id.

        Keyrings whose keys rotate elsewhere (KMS automatic rotation) keep this default, which refuses.
        """
        raise InputError(f"keyring {self.name!r} ({self.kind}) does not rotate from mlfort; rotate it at its source")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _check_text(what: str, value: object, max_bytes: int, *, ascii_only: bool = False) -> None:
    if not isinstance(value, str) or not value:
        raise InputError(f"{what} must be a non-empty string")
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise InputError(f"{what} is {len(raw)} bytes; at most {max_bytes} are allowed")
    if ascii_only and not value.isascii():
        raise InputError(f"{what} must be ASCII")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InputError(f"{what} must not contain control characters or lone surrogates")


def check_context(context: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Validate an encryption context and return its pairs as UTF-8, sorted by key bytes (the canonical order).

    Keys are non-empty; values may be empty; both are text without control characters. Bounds: at most
    `MAX_CONTEXT_PAIRS` pairs, keys of at most 256 bytes, values of at most 4096, 64 KiB encoded in all.
    Raises InputError: a context is the caller's input.
    """
    if not isinstance(context, Mapping):
        raise InputError("the encryption context must be a mapping of strings to strings")
    if len(context) > MAX_CONTEXT_PAIRS:
        raise InputError(f"the encryption context has {len(context)} pairs; at most {MAX_CONTEXT_PAIRS} are allowed")
    pairs: list[tuple[bytes, bytes]] = []
    for key, value in context.items():
        _check_text("encryption context key", key, MAX_CONTEXT_KEY_BYTES)
        if not isinstance(value, str):
            raise InputError(f"encryption context value for {key!r} must be a string")
        if value:
            _check_text(f"encryption context value for {key!r}", value, MAX_CONTEXT_VALUE_BYTES)
        pairs.append((key.encode(), value.encode()))
    pairs.sort()
    if len(encode_pairs(pairs)) > MAX_CONTEXT_BYTES:
        raise InputError(f"the encryption context is larger than {MAX_CONTEXT_BYTES} bytes encoded")
    return pairs


def encode_pairs(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """uint16 count, then per pair uint16 key length, key, uint16 value length, value (all big-endian)."""
    out = [struct.pack(">H", len(pairs))]
    for k, v in pairs:
        out += [struct.pack(">H", len(k)), k, struct.pack(">H", len(v)), v]
    return b"".join(out)


def encode_context(context: Mapping[str, str]) -> bytes:
    """The canonical bytes of an encryption context, as the header stores it and keyrings bind it as AAD.

    Two mappings with the same pairs encode identically whatever their insertion order.
    """
    return encode_pairs(check_context(context))

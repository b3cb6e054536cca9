"""Keyrings: what guards the data keys of envelope encryption. One file per kind behind `base.Keyring`.

- `local`: AES-256 key-encryption keys in a 0600 key file, optionally sealed by a passphrase (scrypt).
- `pkcs11`: a non-extractable AES key inside an HSM (SoftHSM2 in tests); wrapping happens inside the token.
- `awskms`: a KMS key; data keys come from GenerateDataKey and open with Decrypt, bound to the encryption context.

`open_keyring(name, spec, base_dir)` builds one from its entry under `keys:` in mlfort.yaml; `create_keyring` makes
its key (a key file, a key object in the token, ...) for `mlfort keys create`. Each kind's module is imported only
when a keyring of that kind is used, so boto3 and python-pkcs11 stay optional.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlfort.crypto.keyrings.base import (
    DATA_KEY_BYTES,
    EnvelopeError,
    Keyring,
    KeyringError,
    WrappedKey,
    encode_context,
)
from mlfort.errors import InputError

__all__ = [
    "DATA_KEY_BYTES",
    "KINDS",
    "EnvelopeError",
    "Keyring",
    "KeyringError",
    "WrappedKey",
    "create_keyring",
    "encode_context",
    "open_keyring",
]

KINDS = {"local": "local", "pkcs11": "pkcs11", "awskms": "awskms"}
"""Keyring type (as in mlfort.yaml) -> module under mlfort.crypto.keyrings. Each module defines
`from_spec(name, spec, base_dir) -> Keyring` and `create(name, spec, base_dir) -> Keyring`."""

COMMON_KEYS = frozenset({"type", "jurisdiction", "classifications", "description"})
"""Keys of a keyring entry that belong to the policy, not to the keyring's own settings."""


def _module(kind: str) -> Any:
    try:
        module_name = KINDS[kind]
    except KeyError:
        raise InputError(f"unknown keyring type {kind!r}; expected one of {', '.join(sorted(KINDS))}") from None
    return importlib.import_module(f"mlfort.crypto.keyrings.{module_name}")


def _settings(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in COMMON_KEYS}


def open_keyring(name: str, spec: Mapping[str, Any], base_dir: Path) -> Keyring:
    """The keyring `name` as its policy entry `spec` (a mapping with at least `type`) describes it.

    Relative paths in `spec` are taken from `base_dir` (the policy file's folder). Secrets (passphrases, PINs) are
    never in `spec`: it names the environment variable that holds them.
    """
    kind = str(spec.get("type", ""))
    return _module(kind).from_spec(name, _settings(spec), base_dir)  # type: ignore[no-any-return]


def create_keyring(name: str, spec: Mapping[str, Any], base_dir: Path) -> Keyring:
    """Make the key behind keyring `name` (refusing to overwrite one that exists) and return the keyring."""
    kind = str(spec.get("type", ""))
    return _module(kind).create(name, _settings(spec), base_dir)  # type: ignore[no-any-return]

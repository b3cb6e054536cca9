"""The local keyring: AES-256 key-encryption keys kept in one file on this machine (mode 0600), with versions.

Good for development, CI and single-host deployments; an HSM or KMS keyring keeps the KEK out of the host's memory,
this one cannot. The file is JSON:

    {"format": "mlfort-local-keyring/1", "name": "dev", "id": "<32 hex>", "protection": "none",
     "keys": [{"version": 1, "created": "2025-01-01T00:00:00Z", "key": "<base64 of 32 bytes>"}, ...]}

or, with a passphrase, the "keys" list is sealed with AES-256-GCM under a key derived by scrypt:

    {"format": ..., "name": ..., "id": ..., "protection": "scrypt-aes256gcm",
     "kdf": {"n": 32768, "r": 8, "p": 1, "salt": "<base64 16>"}, "nonce": "<base64 12>", "sealed": "<base64>"}

(AAD of the seal: format, name, id and the kdf parameters, so none of them can be swapped.) The highest version is
current: `rotate()` appends one, later wraps use it, and every older version still unwraps.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mlfort.crypto.keyrings.base import DATA_KEY_BYTES, Keyring, KeyringError, WrappedKey, encode_context
from mlfort.errors import InputError
from mlfort.settings import home as settings_home

FORMAT = "mlfort-local-keyring/1"
MAX_KEY_FILE_BYTES = 4 * 1024 * 1024
"""A key file with 10,000 versions is about 1 MiB; anything larger is not ours and is refused unread."""
MAX_VERSIONS = 10_000
SCRYPT_N = 2**15
"""scrypt cost for new files: 32 MiB and ~0.1 s here, OWASP's floor for scrypt (n=2^15? r=8, p=1 is their minimum
recommended setting for interactive use)."""
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAX_N = 2**20
_SCRYPT_MAX_MEMORY = 1 << 30
"""Bounds applied to a file's kdf parameters before running scrypt, so a hostile key file cannot ask for 1 TiB."""

_WRAP_FORMAT = 1
_WRAP_AAD_LABEL = b"mlfort local keyring wrap v1\x00"
_SEAL_AAD_LABEL = b"mlfort local keyring seal v1\x00"
_KEY_ID = re.compile(r"([0-9a-f]{32}):v([1-9][0-9]{0,8})")


class LocalKeyring(Keyring):
    """A versioned set of 256-bit KEKs loaded from (and saved to) a local key file.

    Create one with `LocalKeyring.create(path, name)`, load it with `LocalKeyring.open(path)`. Wrapping is
    AES-256-GCM under the current version's key with a random 96-bit nonce and AAD = label, key id (keyring id +
    version) and the canonical encryption context; the wrapped blob is `01 || nonce(12) || ciphertext(32) || tag(16)`.
    """

    kind = "local"

    def __init__(self, name: str, keyring_id: str, versions: Mapping[int, bytes], *, path: Path | None = None,
                 created: Mapping[int, str] | None = None, _kek: bytes | None = None,
                 _kdf: Mapping[str, Any] | None = None) -> None:
        """An in-memory keyring (no file) from `versions` {version: 32-byte key}; `create`/`open` for files."""
        super().__init__(name)
        if not re.fullmatch(r"[0-9a-f]{32}", keyring_id):
            raise InputError("a local keyring id is 32 lowercase hex digits")
        if not versions:
            raise InputError(f"local keyring {name!r} has no keys")
        for v, key in versions.items():
            if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 10**9 or len(key) != DATA_KEY_BYTES:
                raise InputError(f"local keyring {name!r}: versions are positive integers with 32-byte keys")
        self.keyring_id = keyring_id
        """Random, public, fixed at creation: tells this keyring's wrapped keys from another one of the same name."""
        self.path = path
        self._keys = {v: bytes(k) for v, k in versions.items()}
        self._created = dict(created or {})
        self._kek = _kek
        self._kdf = dict(_kdf) if _kdf else None

    # -- creating and loading -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, name: str, *, passphrase: str | bytes | None = None) -> LocalKeyring:
        """Write a new key file at `path` (mode 0600, refused if it exists) holding version 1 of a fresh key."""
        keyring = cls(name, secrets.token_hex(16), {1: os.urandom(DATA_KEY_BYTES)}, path=Path(path),
                      created={1: _now()})
        if passphrase is not None:
            salt = os.urandom(16)
            keyring._kdf = {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)}
            keyring._kek = _scrypt(_passphrase_bytes(passphrase), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        data = keyring._serialize()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            raise InputError(f"key file {path} already exists; not overwriting it") from None
        except OSError as exc:
            raise InputError(f"cannot create key file {path}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            Path(path).unlink(missing_ok=True)
            raise
        os.close(fd)
        _fsync_dir(Path(path).parent)
        return keyring

    @classmethod
    def open(cls, path: Path, *, passphrase: str | bytes | None = None) -> LocalKeyring:
        """Load a key file. Refuses one that others can read or write (like ssh), one that is not a regular file,
        a damaged one, and a wrong or missing passphrase, each with its own message."""
        path = Path(path)
        doc = _load_json(path)
        where = f"key file {path}"
        if doc.get("format") != FORMAT:
            raise KeyringError(f"{where} is not an mlfort local keyring (format {str(doc.get('format'))[:40]!r})")
        name, keyring_id = doc.get("name"), doc.get("id")
        if not isinstance(name, str) or not isinstance(keyring_id, str) or not re.fullmatch(r"[0-9a-f]{32}",
                                                                                              keyring_id):
            raise KeyringError(f"{where} is damaged: bad name or id")
        protection = doc.get("protection")
        kek = kdf = None
        if protection == "none":
            if passphrase is not None:
                raise InputError(f"{where} is not passphrase-protected, but a passphrase was given")
            entries = doc.get("keys")
        elif protection == "scrypt-aes256gcm":
            if passphrase is None:
                raise KeyringError(f"{where} is passphrase-protected; give its passphrase")
            kdf, salt = _check_kdf(doc.get("kdf"), where)
            nonce, sealed = _unb64(doc.get("nonce"), where, "nonce"), _unb64(doc.get("sealed"), where, "sealed")
            if len(nonce) != 12:
                raise KeyringError(f"{where} is damaged: bad nonce")
            kek = _scrypt(_passphrase_bytes(passphrase), salt, kdf["n"], kdf["r"], kdf["p"])
            try:
                inner = AESGCM(kek).decrypt(nonce, sealed, _seal_aad(name, keyring_id, kdf))
            except InvalidTag:
                raise KeyringError(f"{where}: wrong passphrase, or the file was altered") from None
            try:
                entries = json.loads(inner).get("keys")
            except (ValueError, AttributeError):
                raise KeyringError(f"{where} is damaged: sealed content is not JSON") from None
        else:
            raise KeyringError(f"{where}: unknown protection {str(protection)[:40]!r}")
        versions, created = _parse_entries(entries, where)
        try:
            return cls(name, keyring_id, versions, path=path, created=created, _kek=kek, _kdf=kdf)
        except InputError as exc:
            raise KeyringError(f"{where} is damaged: {exc}") from None

    # -- the Keyring interface ------------------------------------------------------------------------------------

    @property
    def current_version(self) -> int:
        """The version new wraps use: the highest."""
        return max(self._keys)

    @property
    def versions(self) -> list[int]:
        """Every version this keyring can unwrap, ascending."""
        return sorted(self._keys)

    def key_id_for(self, version: int) -> str:
        """The public id of one version, as wrapped keys carry it: "<keyring id>:v<version>"."""
        return f"{self.keyring_id}:v{version}"

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> WrappedKey:
        """AES-256-GCM of `data_key` under the current version, bound to name, key id and `context`."""
        if len(data_key) != DATA_KEY_BYTES:
            raise InputError(f"a data key is {DATA_KEY_BYTES} bytes")
        key_id = self.key_id_for(self.current_version)
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self.current_version]).encrypt(nonce, bytes(data_key),
                                                                 self._wrap_aad(key_id, context))
        return WrappedKey(self.kind, self.name, key_id, bytes([_WRAP_FORMAT]) + nonce + sealed)

    def can_unwrap(self, wrapped: WrappedKey) -> bool:
        """True for an entry of kind "local" whose key id names this keyring's id and a version it holds."""
        if wrapped.kind != self.kind:
            return False
        m = _KEY_ID.fullmatch(wrapped.key_id)
        return bool(m) and m.group(1) == self.keyring_id and int(m.group(2)) in self._keys

    def unwrap(self, wrapped: WrappedKey, context: Mapping[str, str]) -> bytes:
        """The data key, or KeyringError if the entry is not this keyring's, is malformed, or fails its tag."""
        if not self.can_unwrap(wrapped):
            raise KeyringError(f"local keyring {self.name!r} does not hold key {wrapped.key_id!r}")
        version = int(wrapped.key_id.rsplit(":v", 1)[1])
        blob = wrapped.blob
        if len(blob) != 1 + 12 + DATA_KEY_BYTES + 16 or blob[0] != _WRAP_FORMAT:
            raise KeyringError(f"local keyring {self.name!r}: wrapped key {wrapped.key_id!r} is malformed")
        try:
            return AESGCM(self._keys[version]).decrypt(blob[1:13], blob[13:], self._wrap_aad(wrapped.key_id, context))
        except InvalidTag:
            raise KeyringError(
                f"local keyring {self.name!r} could not unwrap with key v{version}: the wrapped key or the "
                "encryption context was altered, or this is another keyring under the same id"
            ) from None

    def rotate(self) -> str:
        """Add a fresh key as version current+1, save the file atomically (still 0600), and return its key id."""
        if len(self._keys) >= MAX_VERSIONS:
            raise InputError(f"local keyring {self.name!r} already has {MAX_VERSIONS} versions")
        version = self.current_version + 1
        self._keys[version] = os.urandom(DATA_KEY_BYTES)
        self._created[version] = _now()
        if self.path is not None:
            try:
                self._save()
            except BaseException:
                del self._keys[version]
                raise
        return self.key_id_for(version)

    def __repr__(self) -> str:
        return (f"LocalKeyring(name={self.name!r}, id={self.keyring_id!r}, versions={self.versions}, "
                f"path={str(self.path) if self.path else None!r})")

    # -- internals ------------------------------------------------------------------------------------------------

    def _wrap_aad(self, key_id: str, context: Mapping[str, str]) -> bytes:
        # The key id (keyring id + version) binds the wrap to this key; the name is left out on purpose, so
        # renaming a keyring in mlfort.yaml does not lock anyone out of files encrypted before.
        kid = key_id.encode()
        return b"".join([_WRAP_AAD_LABEL, struct.pack(">H", len(kid)), kid, encode_context(context)])

    def _entries(self) -> list[dict[str, Any]]:
        return [{"version": v, "created": self._created.get(v, ""), "key": _b64(self._keys[v])} for v in self.versions]

    def _serialize(self) -> bytes:
        doc: dict[str, Any] = {"format": FORMAT, "name": self.name, "id": self.keyring_id}
        if self._kek is None:
            doc |= {"protection": "none", "keys": self._entries()}
        else:
            assert self._kdf is not None
            nonce = os.urandom(12)
            inner = json.dumps({"keys": self._entries()}).encode()
            sealed = AESGCM(self._kek).encrypt(nonce, inner, _seal_aad(self.name, self.keyring_id, self._kdf))
            doc |= {"protection": "scrypt-aes256gcm", "kdf": self._kdf, "nonce": _b64(nonce), "sealed": _b64(sealed)}
        return (json.dumps(doc, indent=1) + "\n").encode()

    def _save(self) -> None:
        """Replace the key file atomically: a 0600 temp file beside it, fsync, rename, fsync the folder."""
        assert self.path is not None
        data = self._serialize()
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise InputError(f"key file {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"key file {path}: cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyringError(f"key file {path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                               f"run: chmod 600 {path}")
        raw = f.read(MAX_KEY_FILE_BYTES + 1)
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise KeyringError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes; not a local keyring")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise KeyringError(f"key file {path} is damaged: not JSON") from None
    if not isinstance(doc, dict):
        raise KeyringError(f"key file {path} is damaged: not a JSON object")
    return doc


def _parse_entries(entries: object, where: str) -> tuple[dict[int, bytes], dict[int, str]]:
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_VERSIONS:
        raise KeyringError(f"{where} is damaged: no key list")
    versions: dict[int, bytes] = {}
    created: dict[int, str] = {}
    for e in entries:
        v = e.get("version") if isinstance(e, dict) else None
        if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 10**9 or v in versions:
            raise KeyringError(f"{where} is damaged: bad or repeated key version")
        key = _unb64(e.get("key"), where, f"key v{v}")
        if len(key) != DATA_KEY_BYTES:
            raise KeyringError(f"{where} is damaged: key v{v} is not {DATA_KEY_BYTES} bytes")
        versions[v] = key
        created[v] = str(e.get("created", ""))[:64]
    return versions, created


def _check_kdf(kdf: object, where: str) -> tuple[dict[str, Any], bytes]:
    if not isinstance(kdf, dict):
        raise KeyringError(f"{where} is damaged: no kdf parameters")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (n, r, p)):
        raise KeyringError(f"{where} is damaged: bad scrypt parameters")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if not (2**14 <= n <= _SCRYPT_MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16
            and 128 * n * r * p <= _SCRYPT_MAX_MEMORY):
        raise KeyringError(f"{where}: scrypt parameters n={n}, r={r}, p={p} are outside the accepted range")
    salt = _unb64(kdf.get("salt"), where, "salt")
    if not 16 <= len(salt) <= 64:
        raise KeyringError(f"{where} is damaged: bad salt")
    return {"n": n, "r": r, "p": p, "salt": _b64(salt)}, salt


def _seal_aad(name: str, keyring_id: str, kdf: Mapping[str, Any]) -> bytes:
    params = json.dumps({"format": FORMAT, "name": name, "id": keyring_id, "kdf": dict(kdf)}, sort_keys=True)
    return _SEAL_AAD_LABEL + params.encode()


def _scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not passphrase:
        raise InputError("an empty passphrase protects nothing; give a real one or none")
    # OpenSSL refuses scrypt above its default 32 MiB maxmem; cryptography sizes maxmem from n and r itself.
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    return passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, where: str, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * MAX_KEY_FILE_BYTES:
        raise KeyringError(f"{where} is damaged: {what} missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where} is damaged: {what} is not base64") from None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- from mlfort.yaml ---------------------------------------------------------------------------------------------

_SETTINGS = frozenset({"path", "passphrase_env"})


def _spec_path_and_passphrase(name: str, settings: Mapping[str, Any], base_dir: Path) -> tuple[Path, str | None]:
    unknown = sorted(set(settings) - _SETTINGS)
    if unknown:
        raise InputError(f"keyring {name!r} (local): unknown setting(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(_SETTINGS))}")
    raw = settings.get("path")
    if raw is None:
        path = settings_home() / "keyrings" / f"{name}.json"
    elif isinstance(raw, str) and raw.strip():
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path(base_dir) / path
    else:
        raise InputError(f"keyring {name!r} (local): path must be a file path")
    env = settings.get("passphrase_env")
    if env is None:
        return path, None
    if not isinstance(env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", env):
        raise InputError(f"keyring {name!r} (local): passphrase_env must name an environment variable")
    value = os.environ.get(env)
    if not value:
        raise InputError(f"keyring {name!r} is passphrase-protected: set the environment variable {env}")
    return path, value


def from_spec(name: str, settings: Mapping[str, Any], base_dir: Path) -> LocalKeyring:
    """The local keyring `name` of mlfort.yaml: settings `path` (default `$MLFORT_HOME/keyrings/<name>.json`,
    relative to the policy's folder) and `passphrase_env` (the variable holding its passphrase, if it has one)."""
    path, passphrase = _spec_path_and_passphrase(name, settings, base_dir)
    if not path.exists():
        raise InputError(f"keyring {name!r}: no key file at {path}; create it with: mlfort keys create {name}")
    keyring = LocalKeyring.open(path, passphrase=passphrase)
    if keyring.name != name:
        # The policy's name is what messages record; the file's id (not its name) is what unwraps.
        keyring.name = name
    return keyring


def create(name: str, settings: Mapping[str, Any], base_dir: Path) -> LocalKeyring:
    """Create the key file of local keyring `name` (its folder 0700, the file 0600; refused if it exists)."""
    path, passphrase = _spec_path_and_passphrase(name, settings, base_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return LocalKeyring.create(path, name, passphrase=passphrase)

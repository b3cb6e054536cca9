"""EC signing keys for manifests: create a P-256 pair, load PEM keys (ours or openssl's), name a public key.

The supported curves are the ones the OpenSSF model-signing format and Sigstore's key specs allow (P-256,
P-384, P-521), each with the hash Sigstore pairs with it, so signatures verify in either tool.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlfort.errors import InputError

MAX_KEY_FILE_BYTES = 64 * 1024
"""A PEM key is a few hundred bytes; anything far larger is not a key and is refused before parsing."""

_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class KeyPairPaths:
    """Where `create_signing_keypair` wrote the two halves."""

    private_key: Path
    """PKCS#8 PEM, mode 0600."""
    public_key: Path
    """SubjectPublicKeyInfo PEM, mode 0644."""


def ecdsa_for(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> ec.ECDSA:
    """The ECDSA signature algorithm (with its curve's hash) used for this key."""
    curve = key.curve.name
    try:
        return ec.ECDSA(_CURVE_HASH[curve]())
    except KeyError:
        raise InputError(
            f"unsupported elliptic curve {curve!r}; use P-256 (recommended), P-384 or P-521"
        ) from None


def public_key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 (hex) of the key's SubjectPublicKeyInfo PEM: the key hint Sigstore bundles carry."""
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror})") from None
    if not path.is_file():
        raise InputError(f"{what} {path}: not a regular file")
    if size > MAX_KEY_FILE_BYTES:
        raise InputError(f"{what} {path}: {size} bytes is too large to be a PEM key")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror})") from None


def _kind(key: object) -> str:
    """'an RSA', 'an Ed25519', ... for messages."""
    name = type(key).__name__.lstrip("_").removesuffix("PrivateKey").removesuffix("PublicKey") or "unknown"
    return ("an " if name[0] in "AEIOUFHLMNRSX" else "a ") + name  # an RSA, an Ed25519, a DSA


def load_private_key(path: Path, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Load an EC private key from PEM (PKCS#8 or SEC1 'EC PRIVATE KEY', as `openssl ecparam -genkey` writes)."""
    data = _read_key_file(path, "private key")
    if b"PRIVATE KEY" not in data:
        if b"PUBLIC KEY" in data:
            raise InputError(f"private key {path}: this is a public key; signing needs the private half")
        raise InputError(f"private key {path}: not a PEM private key")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password is None:
            raise InputError(
                f"private key {path}: the key is encrypted; give its passphrase with --password-file "
                "or the MLFORT_KEY_PASSWORD environment variable"
            ) from None
        raise InputError(f"private key {path}: a passphrase was given but the key is not encrypted") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        reason = "wrong passphrase or corrupt key" if password is not None else "corrupt or unsupported key"
        raise InputError(f"private key {path}: {reason} ({exc.__class__.__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError(
            f"private key {path}: {_kind(key)} key; mlfort signs with elliptic-curve "
            "keys (P-256 recommended), as the OpenSSF model-signing format does"
        )
    ecdsa_for(key)  # refuse unsupported curves up front
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """Load an EC public key from PEM (SubjectPublicKeyInfo), or take the public half of an X.509 certificate."""
    return parse_public_key(_read_key_file(path, "public key"), str(path))


def parse_public_key(data: bytes, path: str = "<inline PEM>") -> ec.EllipticCurvePublicKey:
    """Parse a PEM public key (or certificate) held in memory, such as one written inline in the policy."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise InputError(f"public key {path}: too large to be a PEM key")
    if b"PRIVATE KEY" in data:
        raise InputError(
            f"public key {path}: this file holds a private key; verify with the public key "
            "(mlfort keys create-signing writes it as signing.pub)"
        )
    try:
        if b"BEGIN CERTIFICATE" in data:
            from cryptography import x509

            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"public key {path}: not a PEM public key ({exc.__class__.__name__})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError(f"public key {path}: not an elliptic-curve key (P-256, P-384 or P-521)")
    ecdsa_for(key)
    return key


def write_private_file(path: Path, data: bytes) -> None:
    """Create a new file readable by its owner only (0600 from the first byte: no chmod race)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def create_signing_keypair(out_dir: Path, *, name: str = "signing", password: bytes | None = None) -> KeyPairPaths:
    """Make a new EC P-256 key pair in `out_dir` as NAME.key (0600) and NAME.pub. Never overwrites."""
    out_dir.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for p in (priv_path, pub_path):
        if p.exists() or p.is_symlink():
            raise InputError(f"{p} already exists; refusing to overwrite a key (remove it or choose --out)")
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    priv_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_private_file(priv_path, priv_pem)
    pub_path.write_bytes(pub_pem)
    return KeyPairPaths(private_key=priv_path, public_key=pub_path)

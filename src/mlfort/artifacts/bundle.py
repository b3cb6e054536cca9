"""The signature file: a Sigstore bundle (v0.3) wrapping a DSSE envelope wrapping the in-toto Statement.

This is the layout OpenSSF model-signing writes for key-based signatures, so either tool verifies the other's.
The reader is strict: duplicate JSON keys, non-canonical base64, unknown payload types and oversized files are
refused before any signature check, so no two readers can see different content in one file.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from mlfort.artifacts.manifest import Manifest, ManifestError, parse_statement
from mlfort.crypto.signing_keys import ecdsa_for, public_key_hint

BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
)
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_SIGNATURE_BYTES = 512 * 1024 * 1024
"""A manifest of two million files is ~300 MB of JSON; anything larger is refused unread."""
MAX_SIGNATURES = 16


MAX_BUNDLE_CONTAINERS = 256
BUNDLE_KEYS = frozenset({"mediaType", "verificationMaterial", "dsseEnvelope"})
MATERIAL_KEYS = frozenset(
    {"publicKey", "tlogEntries", "timestampVerificationData", "certificate", "x509CertificateChain"}
)
ENVELOPE_KEYS = frozenset({"payload", "payloadType", "signatures"})
SIGNATURE_KEYS = frozenset({"sig", "keyid"})


class SignatureError(ManifestError):
    """The signature file is malformed, or does not verify with the given key."""


class MissingSignatureError(SignatureError):
    """There is no signature file where one was expected."""

    rule_id = "MLF-ART-008"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SignatureError(f"malformed signature: duplicate JSON key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise SignatureError(f"malformed signature: JSON constant {name} is not allowed")


def strict_json(data: bytes, what: str) -> Any:
    """Decode JSON refusing duplicate keys, NaN/Infinity and invalid UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError(f"malformed signature: {what} is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except RecursionError:
        raise SignatureError(f"malformed signature: {what} nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise SignatureError(f"malformed signature: {what} is not JSON ({exc.msg} at line {exc.lineno})") from None


def _only_keys(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """Unknown keys are refused: a signature file that is also something else (a polyglot) is not a signature."""
    extra = sorted(set(obj) - allowed)
    if extra:
        raise SignatureError(f"malformed signature: unexpected key {extra[0]!r} in {where}")


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise SignatureError(f"malformed signature: {what} must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"malformed signature: {what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise SignatureError(f"malformed signature: {what} is not canonical base64")
    return raw


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """A manifest whose DSSE signature verified with the expected key."""

    manifest: Manifest
    key_hint: str
    """The hint (SHA-256 of the PEM) of the trusted key that verified it."""


def encode_bundle(manifest: Manifest, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Sign the manifest and return the bundle's JSON bytes."""
    payload = manifest.statement_json()
    sig = key.sign(pae(PAYLOAD_TYPE, payload), ecdsa_for(key))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPES[0],
        "verificationMaterial": {"publicKey": {"hint": public_key_hint(key.public_key())}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(sig).decode("ascii"), "keyid": ""}],
        },
    }
    return (json.dumps(bundle, indent=2) + "\n").encode("utf-8")


def read_signature_file(path: Path) -> bytes:
    """Read a signature file: never through a symlink (a symlinked model.sig could make verify skip the file it
    points to), never blocking on a FIFO, bounded in size, sized on the open file (no check-then-open race)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise MissingSignatureError(f"no signature at {path} (sign first, or point --signature at it)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SignatureError(f"signature {path} is a symlink; point --signature at the real file") from None
        raise SignatureError(f"cannot read signature {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise SignatureError(f"signature {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > MAX_SIGNATURE_BYTES:
            raise SignatureError(f"signature {path} is {st.st_size} bytes, over the {MAX_SIGNATURE_BYTES} byte limit")
        data = f.read(MAX_SIGNATURE_BYTES + 1)
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"signature {path} grew past the {MAX_SIGNATURE_BYTES} byte limit while being read")
    return data


def _bundle_object(data: bytes) -> dict[str, Any]:
    """The bundle's top level, its shape and media type checked."""
    # A real bundle has a handful of objects around one base64 string (whose alphabet has no brackets). Counting
    # brackets first keeps a hostile file of millions of tiny objects from costing gigabytes to parse before
    # any signature is checked; the signed statement inside is parsed only after the signature verifies.
    if data.count(b"{") + data.count(b"[") > MAX_BUNDLE_CONTAINERS:
        raise SignatureError("malformed signature: far more JSON objects than a Sigstore bundle holds")
    bundle = strict_json(data, "the signature file")
    if not isinstance(bundle, dict):
        raise SignatureError("malformed signature: not a Sigstore bundle (top level is not an object)")
    _only_keys(bundle, BUNDLE_KEYS, "the bundle")
    media_type = bundle.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise SignatureError(f"malformed signature: unsupported bundle mediaType {media_type!r}")
    return bundle


def _envelope(bundle: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The DSSE envelope, its shape and payload type checked, and its decoded payload."""
    env = bundle.get("dsseEnvelope")
    if not isinstance(env, dict):
        raise SignatureError("malformed signature: the bundle has no dsseEnvelope")
    _only_keys(env, ENVELOPE_KEYS, "dsseEnvelope")
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise SignatureError(f"malformed signature: payloadType {env.get('payloadType')!r}, expected {PAYLOAD_TYPE!r}")
    return env, _b64(env.get("payload"), "dsseEnvelope.payload")


def read_unverified_manifest(data: bytes) -> Manifest:
    """The manifest inside a bundle, checked as strictly as `decode_bundle` checks it, minus the signature: for
    naming an artifact by digest, never for trusting it."""
    _, payload = _envelope(_bundle_object(data))
    return parse_statement(strict_json(payload, "the signed statement"))


def decode_bundle(
    data: bytes, key: ec.EllipticCurvePublicKey | Sequence[ec.EllipticCurvePublicKey]
) -> SignedManifest:
    """Check the bundle's shape and its signature with `key` (or any one of several trusted keys), then parse the
    manifest it signs."""
    keys = [key] if isinstance(key, ec.EllipticCurvePublicKey) else list(key)
    if not keys:
        raise SignatureError("no trusted public key to verify with (deny by default: name at least one signer)")
    bundle = _bundle_object(data)
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        raise SignatureError("malformed signature: verificationMaterial is missing")
    _only_keys(material, MATERIAL_KEYS, "verificationMaterial")
    if not isinstance(material.get("tlogEntries", []), list):
        raise SignatureError("malformed signature: verificationMaterial.tlogEntries must be a list")
    hint = None
    pk = material.get("publicKey")
    if pk is not None:
        if not isinstance(pk, dict) or not isinstance(pk.get("hint", ""), str):
            raise SignatureError("malformed signature: verificationMaterial.publicKey.hint must be a string")
        hint = pk.get("hint") or None
    elif "certificate" in material or "x509CertificateChain" in material:
        raise SignatureError(
            "this signature was made with a certificate (Sigstore keyless or PKI); "
            "`mlfort artifacts verify --key` checks key-based signatures only"
        )
    env, payload = _envelope(bundle)
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise SignatureError("malformed signature: the envelope holds no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise SignatureError(f"malformed signature: more than {MAX_SIGNATURES} signatures in one envelope")
    raw_sigs = []
    for i, s in enumerate(sigs):
        if not isinstance(s, dict):
            raise SignatureError(f"malformed signature: signatures[{i}] is not an object")
        _only_keys(s, SIGNATURE_KEYS, f"signatures[{i}]")
        raw_sigs.append(_b64(s.get("sig"), f"signatures[{i}].sig"))

    message = pae(PAYLOAD_TYPE, payload)
    signer = next((k for k in keys for raw in raw_sigs if _verifies(k, raw, message)), None)
    if signer is None:
        hints = [public_key_hint(k) for k in keys]
        if hint is not None and hint not in hints:
            given = ", ".join(h[:16] + "…" for h in hints)
            raise SignatureError(
                f"wrong key: the signature was made by the key with hint {hint[:16]}…, "
                f"but the trusted public key{'s' if len(hints) > 1 else ''} {'are' if len(hints) > 1 else 'is'} {given}"
            )
        raise SignatureError("the signature does not verify with the given public key (wrong key or altered file)")
    statement = strict_json(payload, "the signed statement")
    return SignedManifest(parse_statement(statement), public_key_hint(signer))


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message, ecdsa_for(key))
    except InvalidSignature:
        return False
    return True


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a crash never leaves half a signature."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Signed manifests of models and datasets, interoperable with OpenSSF model signing v1.0."""

from mlfort.artifacts.manifest import Manifest, Resource, Serialization, canonical_hash
from mlfort.artifacts.signing import (
    SignResult,
    VerifyResult,
    default_signature_path,
    sign_artifact,
    verify_artifact,
)

__all__ = [
    "Manifest",
    "Resource",
    "Serialization",
    "SignResult",
    "VerifyResult",
    "canonical_hash",
    "default_signature_path",
    "sign_artifact",
    "verify_artifact",
]

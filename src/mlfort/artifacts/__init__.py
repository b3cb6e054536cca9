"""Signed manifests of models and datasets, interoperable with OpenSSF model signing v1.0."""

from mlfort.artifacts.digest import ArtifactDigest, artifact_digest
from mlfort.artifacts.manifest import Manifest, Resource, Serialization, canonical_hash
from mlfort.artifacts.signing import (
    SignResult,
    VerifyResult,
    default_signature_path,
    sign_artifact,
    verify_artifact,
)

__all__ = [
    "ArtifactDigest",
    "Manifest",
    "Resource",
    "Serialization",
    "SignResult",
    "VerifyResult",
    "artifact_digest",
    "canonical_hash",
    "default_signature_path",
    "sign_artifact",
    "verify_artifact",
]

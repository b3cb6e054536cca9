"""The identity of a model or dataset for lineage: one `sha256:<hex>` digest, the root digest of its manifest.

A signed artifact is named by the root digest its signature carries (what `artifacts sign` printed and what the
ledger recorded); an unsigned one by the root digest of a manifest computed the way `artifacts sign` would with its
defaults (SHA-256 per file, git paths left out), so signing it later with the defaults gives the same digest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlfort.artifacts.bundle import (
    MissingSignatureError,
    read_signature_file,
    read_unverified_manifest,
)
from mlfort.artifacts.hashing import Progress, hash_tasks, plan
from mlfort.artifacts.manifest import (
    DEFAULT_IGNORE_PATHS,
    Manifest,
    ManifestError,
    Resource,
    Serialization,
)
from mlfort.artifacts.signing import _model_name, default_signature_path
from mlfort.artifacts.tree import walk
from mlfort.errors import InputError


@dataclass(frozen=True, slots=True)
class ArtifactDigest:
    """What `artifact_digest` found: the digest lineage names the artifact by, and where it came from."""

    digest: str
    """`sha256:<hex>`: the root digest of the manifest (SHA-256 over the per-file digests in manifest order)."""
    signed: bool
    """True when the digest was read from a signature beside the artifact (not verified), False when computed."""
    method: str
    """How the manifest hashed the files: `files` or `shards` (model-signing's serialization methods)."""
    files: int
    """Files the manifest covers."""
    hash_type: str = "sha256"
    """The per-file (or per-shard) hash of the manifest: sha256, blake2b or blake3."""
    signature: Path | None = None
    """The signature file the digest was read from, when signed."""


def _computed_manifest(path: Path, workers: int | None, progress: Progress | None,
                       on_plan: Callable[[int], None] | None) -> Manifest:
    # The defaults of `artifacts sign` (sha256, whole files, git paths ignored, no symlinks), so that the digest
    # recorded now is the one a later default signature will carry.
    ignore = tuple(sorted(DEFAULT_IGNORE_PATHS))
    entries = walk(path, allow_symlinks=False, ignore=ignore)
    if not entries:
        raise InputError(f"{path}: no files, so there is nothing to name by digest")
    if on_plan is not None:
        on_plan(sum(e.size for e in entries))
    digests = hash_tasks(plan(entries, "files", None), "sha256", workers=workers, progress=progress)
    serialization = Serialization("files", "sha256", False, ignore)
    return Manifest.build(_model_name(path), serialization, (Resource(n, d) for n, d in digests.items()))


def artifact_digest(path: Path, *, signature: Path | None = None, workers: int | None = None,
                    progress: Progress | None = None, on_plan: Callable[[int], None] | None = None) -> ArtifactDigest:
    """The lineage digest of a model or dataset (a file or a directory tree).

    If a signature lies beside it (`PATH/model.sig` for a directory, `PATH.sig` for a file, or `signature`), the
    digest is the root digest of the manifest that signature carries. The bundle is parsed strictly but the
    signature is NOT verified, and the files are not compared with the manifest: the digest is what the signature
    claims. Run `mlfort artifacts verify` first where that claim must be trusted.

    Without a signature, every file is hashed (SHA-256, in parallel) into a manifest as `artifacts sign` would with
    its defaults, and that manifest's root digest is returned. Nothing is signed or written. `on_plan` is called
    with the bytes to hash before hashing starts, `progress` with each count of bytes hashed (as in sign_artifact).

    Raises InputError when PATH does not exist, holds no files, or the signature beside it is malformed (a signature
    that cannot be read is not silently replaced by a computed digest: the two would name different things).
    """
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path}: no such file or directory")
    sig_path = signature or default_signature_path(path)
    try:
        manifest = read_unverified_manifest(read_signature_file(sig_path))
    except MissingSignatureError:
        if signature is not None:
            raise InputError(f"no signature at {signature}") from None
        manifest = _computed_manifest(path, workers, progress, on_plan)
        ser = manifest.serialization
        return ArtifactDigest(f"sha256:{manifest.root_digest()}", False, ser.method, len(manifest.file_names()),
                              ser.hash_type)
    except ManifestError as exc:
        raise InputError(f"{path}: cannot read the digest from its signature {sig_path}: {exc}") from None
    ser = manifest.serialization
    return ArtifactDigest(f"sha256:{manifest.root_digest()}", True, ser.method, len(manifest.file_names()),
                          ser.hash_type, sig_path)

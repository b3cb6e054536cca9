"""Sign a model or dataset (file or tree) and verify it against its signature, file by file."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from mlfort.artifacts import rules
from mlfort.artifacts.bundle import (
    SignatureError,
    decode_bundle,
    encode_bundle,
    read_signature_file,
    write_atomic,
)
from mlfort.artifacts.hashing import Progress, hash_tasks, plan
from mlfort.artifacts.manifest import (
    DEFAULT_IGNORE_PATHS,
    Manifest,
    ManifestError,
    Resource,
    Serialization,
    check_relative_path,
    split_shard_name,
)
from mlfort.artifacts.tree import FileEntry, TreeError, walk
from mlfort.errors import InputError
from mlfort.report import Finding, Severity


def default_signature_path(path: Path) -> Path:
    """`PATH/model.sig` for a directory, `PATH.sig` for a file."""
    return path / "model.sig" if path.is_dir() else path.with_name(path.name + ".sig")


def _model_name(path: Path) -> str:
    return path.name or os.path.basename(os.path.realpath(path))


def _ignored(root: Path, signature: Path, extra: tuple[str, ...], git: bool) -> tuple[str, ...]:
    """Relative ignore paths: the user's, git's (as model-signing does), and the signature if it is inside."""
    out = set(DEFAULT_IGNORE_PATHS) if git else set()
    for p in extra:
        rel = Path(p)
        if rel.is_absolute():
            try:
                rel = rel.resolve().relative_to(root.resolve())
            except ValueError:
                continue  # outside the tree: nothing to ignore
        posix = rel.as_posix()
        check_relative_path(posix, "--ignore-paths")
        out.add(posix)
    if root.is_dir():
        with contextlib.suppress(ValueError):  # a signature outside the tree needs no ignoring
            out.add(signature.resolve().relative_to(root.resolve()).as_posix())
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class SignResult:
    """What `sign_artifact` did."""

    signature: Path
    manifest: Manifest
    files: int
    bytes: int
    seconds: float


def sign_artifact(
    path: Path,
    key: ec.EllipticCurvePrivateKey,
    *,
    signature: Path | None = None,
    hash_type: str = "sha256",
    shard_size: int | None = None,
    ignore_paths: tuple[str, ...] = (),
    ignore_git_paths: bool = True,
    allow_symlinks: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> SignResult:
    """Hash every file under `path`, sign the manifest with `key`, write the signature; return what was done."""
    t0 = time.perf_counter()
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path}: no such file or directory")
    sig_path = signature or default_signature_path(path)
    ignore = _ignored(path, sig_path, ignore_paths, ignore_git_paths)
    entries = walk(path, allow_symlinks=allow_symlinks, ignore=ignore)
    method = "shards" if shard_size else "files"
    if shard_size is not None and shard_size <= 0:
        raise InputError("--shard-size must be a positive number of bytes")
    total = sum(e.size for e in entries)
    if on_plan is not None:
        on_plan(total)
    digests = hash_tasks(plan(entries, method, shard_size), hash_type, workers=workers, progress=progress)
    serialization = Serialization(method, hash_type, allow_symlinks, ignore, shard_size)
    manifest = Manifest.build(_model_name(path), serialization, (Resource(n, d) for n, d in digests.items()))
    write_atomic(sig_path, encode_bundle(manifest, key))
    return SignResult(sig_path, manifest, len(entries), total, time.perf_counter() - t0)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of `verify_artifact`: ok only if every check passed."""

    path: Path
    signature: Path
    findings: tuple[Finding, ...]
    files_checked: int = 0
    bytes_checked: int = 0
    manifest: Manifest | None = None
    signer_hint: str | None = None
    """Which trusted key verified the signature (SHA-256 of its PEM)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(f.severity.at_least(Severity.LOW) for f in self.findings)


def _finding(rule_id: str, target: str, message: str, **evidence: object) -> Finding:
    r = rules.RULES[rule_id]
    return Finding(
        rule_id=rule_id,
        severity=r.default_severity,
        target=target,
        message=message,
        evidence=evidence,
        remediation=r.help,
    )


def verify_artifact(
    path: Path,
    key: ec.EllipticCurvePublicKey | Sequence[ec.EllipticCurvePublicKey],
    *,
    signature: Path | None = None,
    allow_unsigned_files: bool = False,
    require_hash: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Check the signature with `key` (or any one of several trusted keys), then every file against it.

    Never raises for what it finds wrong: each problem is a Finding (fail closed). Raises InputError only for
    unusable input (no such PATH)."""
    t0 = time.perf_counter()
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path}: no such file or directory")
    sig_path = signature or default_signature_path(path)
    target = str(path)

    def failed(rule_id: str, message: str, **evidence: object) -> VerifyResult:
        return VerifyResult(path, sig_path, (_finding(rule_id, target, message, **evidence),),
                            seconds=time.perf_counter() - t0)

    try:
        signed = decode_bundle(read_signature_file(sig_path), key)
    except SignatureError as exc:
        rule_id = "MLF-ART-008" if "no signature at" in str(exc) else "MLF-ART-004"
        return failed(rule_id, str(exc), signature=str(sig_path))
    except ManifestError as exc:
        text = str(exc)
        rule_id = (
            "MLF-ART-005" if "unsafe path" in text or "duplicate entry" in text
            else "MLF-ART-007" if "hashing method" in text
            else "MLF-ART-004"
        )
        return failed(rule_id, text, signature=str(sig_path))
    expected = signed.manifest
    ser = expected.serialization
    if require_hash is not None and ser.hash_type != require_hash:
        return failed(
            "MLF-ART-007",
            f"signature uses hashing method {ser.hash_type!r} but {require_hash!r} is required",
            signature=str(sig_path),
        )
    single = path.is_file() or (path.is_symlink() and not path.is_dir())
    if (expected.file_names() == {"."}) != single and expected.resources:
        kind = "a single file" if single else "a directory"
        return failed("MLF-ART-004", f"signature is for a different kind of artifact: {path} is {kind}")

    ignore = set(ser.ignore_paths)
    if path.is_dir():
        with contextlib.suppress(ValueError):
            ignore.add(sig_path.resolve().relative_to(path.resolve()).as_posix())
    try:
        entries = walk(path, allow_symlinks=ser.allow_symlinks, ignore=tuple(sorted(ignore)))
    except TreeError as exc:
        rule_id = "MLF-ART-006" if exc.kind in ("symlink", "escape") else "MLF-ART-009"
        return failed(rule_id, str(exc), file=exc.rel)

    def where(rel: str) -> str:
        """A file's target as the user would open it: PATH/rel (PATH itself for a single-file artifact)."""
        return target if rel == "." else str(path / rel)

    signed_files = expected.file_names()
    present = {e.rel: e for e in entries}
    findings: list[Finding] = []
    for rel in sorted(set(present) - signed_files):
        if ser.method == "shards" and present[rel].size == 0:
            findings.append(Finding("MLF-ART-002", Severity.INFO, where(rel), f"{rel}: empty file, which the shards "
                                    "method cannot record (its presence is not verified)", evidence={"file": rel}))
        elif allow_unsigned_files:
            findings.append(Finding("MLF-ART-002", Severity.INFO, where(rel), f"{rel}: not covered by the signature "
                                    "(allowed by --allow-unsigned-files)", evidence={"file": rel}))
        else:
            findings.append(
                _finding("MLF-ART-002", where(rel), f"{rel}: file added since signing (not in the signature)", file=rel)
            )
    for rel in sorted(signed_files - set(present)):
        findings.append(_finding("MLF-ART-003", where(rel), f"{rel}: file removed since signing", file=rel))

    to_hash: list[FileEntry] = [present[r] for r in sorted(signed_files & set(present))]
    total = sum(e.size for e in to_hash)
    if on_plan is not None:
        on_plan(total)
    try:
        actual = hash_tasks(plan(to_hash, ser.method, ser.shard_size), ser.hash_type, workers=workers,
                            progress=progress)
    except InputError as exc:
        return failed("MLF-ART-009", str(exc))
    want = expected.digests()
    by_file: dict[str, list[str]] = {}
    for name in sorted(set(want) | set(actual)):
        rel = split_shard_name(name)[0] if ser.method == "shards" else name
        if rel not in present:
            continue
        if want.get(name) != actual.get(name):
            by_file.setdefault(rel, []).append(name)
    for rel, names in sorted(by_file.items()):
        if ser.method == "files":
            name = names[0]
            findings.append(_finding(
                "MLF-ART-001", where(rel),
                f"{rel}: content changed since signing ({ser.hash_type} {want[name][:16]}… expected, "
                f"{actual[name][:16]}… found)",
                file=rel, algorithm=ser.hash_type, expected=want[name], actual=actual[name],
            ))
        else:
            findings.append(_finding(
                "MLF-ART-001", where(rel),
                f"{rel}: content changed since signing ({len(names)} shard(s) differ, "
                f"first {names[0]})",
                file=rel, algorithm=ser.resource_algorithm, shards=names[:20],
            ))
    return VerifyResult(
        path, sig_path, tuple(findings), files_checked=len(to_hash), bytes_checked=total, manifest=expected,
        signer_hint=signed.key_hint, seconds=time.perf_counter() - t0,
    )

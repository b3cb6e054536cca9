"""Sign a model or dataset (file or tree) and verify it against its signature, file by file."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from mlfort.artifacts import rules
from mlfort.artifacts.bundle import (
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
    file_of,
    unsafe_path_reason,
)
from mlfort.artifacts.tree import FileEntry, TreeError, files_under, walk
from mlfort.errors import InputError
from mlfort.report import Finding, Severity


def default_signature_path(path: Path) -> Path:
    """`PATH/model.sig` for a directory, `PATH.sig` for a file."""
    return path / "model.sig" if path.is_dir() else path.with_name(path.name + ".sig")


def _model_name(path: Path) -> str:
    return path.name or os.path.basename(os.path.realpath(path))


def _lexical_rel(root: Path, path: str | Path) -> str:
    """`path` relative to `root`, judged on the paths as written (never resolved: resolving a symlinked
    `model.sig` would ignore whatever file it points to). `..`-prefixed when outside, `.` for the root."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def _outside(rel: str) -> bool:
    return rel == ".." or rel.startswith("../")


def signature_rel(root: Path, signature: Path) -> str | None:
    """The signature's path relative to the tree when it lies inside it (a directory tree), else None."""
    if not root.is_dir():
        return None
    rel = _lexical_rel(root, signature)
    return None if rel == "." or _outside(rel) else rel


def _ignored(root: Path, signature: Path, extra: tuple[str, ...], git: bool) -> tuple[str, ...]:
    """Relative ignore paths: the user's, git's (as model-signing does), and the signature if it is inside."""
    out = set(DEFAULT_IGNORE_PATHS) if git else set()
    for p in extra:
        given = p
        if os.path.isabs(p):
            p = _lexical_rel(root, p)
            if _outside(p):
                continue  # outside the tree: nothing to ignore
        posix = Path(p).as_posix() if p else ""
        if posix in ("", "."):
            raise InputError(f"--ignore-paths {given!r} would leave out the whole tree; nothing would be signed")
        reason = unsafe_path_reason(posix)
        if reason is not None:
            raise InputError(f"--ignore-paths {given!r} {reason}; give a path relative to {root}")
        out.add(posix)
    sig = signature_rel(root, signature)
    if sig is not None:
        out.add(sig)
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
    before_write: Callable[[Manifest, Path], None] | None = None,
) -> SignResult:
    """Hash every file under `path`, sign the manifest with `key`, write the signature; return what was done.

    `before_write(manifest, signature_path)` runs once the manifest is signed and before the signature file is
    written: the CLI records the signing in the ledger there, so if that fails no signature is left behind (and an
    existing one is not replaced).
    """
    t0 = time.perf_counter()
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path}: no such file or directory")
    sig_path = signature or default_signature_path(path)
    ignore = _ignored(path, sig_path, ignore_paths, ignore_git_paths)
    entries = walk(path, allow_symlinks=allow_symlinks, ignore=ignore)
    if not entries:
        raise InputError(f"{path}: no files to sign (a signature over nothing would vouch for any tree)")
    method = "shards" if shard_size else "files"
    if shard_size is not None and shard_size <= 0:
        raise InputError("--shard-size must be a positive number of bytes")
    empty = tuple(sorted(e.rel for e in entries if e.size == 0)) if method == "shards" else ()
    total = sum(e.size for e in entries)
    if on_plan is not None:
        on_plan(total)
    digests = hash_tasks(plan(entries, method, shard_size), hash_type, workers=workers, progress=progress)
    serialization = Serialization(method, hash_type, allow_symlinks, ignore, shard_size, empty)
    manifest = Manifest.build(_model_name(path), serialization, (Resource(n, d) for n, d in digests.items()))
    bundle = encode_bundle(manifest, key)
    if before_write is not None:
        before_write(manifest, sig_path)
    write_atomic(sig_path, bundle)
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


def _finding(
    rule_id: str, target: str, message: str, *, severity: Severity | None = None, **evidence: object
) -> Finding:
    r = rules.RULES[rule_id]
    return Finding(
        rule_id=rule_id,
        severity=severity or r.default_severity,
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
    except ManifestError as exc:  # each kind of signature failure carries the rule it is reported as
        return failed(exc.rule_id, str(exc), signature=str(sig_path))
    expected = signed.manifest
    ser = expected.serialization
    if require_hash is not None and ser.hash_type != require_hash:
        return failed(
            "MLF-ART-007",
            f"signature uses hashing method {ser.hash_type!r} but {require_hash!r} is required",
            signature=str(sig_path),
        )
    single = path.is_file() or (path.is_symlink() and not path.is_dir())
    if (expected.file_names() == {"."}) != single:
        kind = "a single file" if single else "a directory"
        return failed("MLF-ART-004", f"signature is for a different kind of artifact: {path} is {kind}")

    ignore = set(ser.ignore_paths)
    sig_rel = signature_rel(path, sig_path)
    if sig_rel is not None:
        ignore.add(sig_rel)
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
        if allow_unsigned_files:
            findings.append(_finding("MLF-ART-002", where(rel), f"{rel}: not covered by the signature (allowed by "
                                     "--allow-unsigned-files)", severity=Severity.INFO, file=rel))
        else:
            findings.append(
                _finding("MLF-ART-002", where(rel), f"{rel}: file added since signing (not in the signature)", file=rel)
            )
    for rel in sorted(signed_files - set(present)):
        findings.append(_finding("MLF-ART-003", where(rel), f"{rel}: file removed since signing", file=rel))

    # What the signer chose to ignore is not checked; say so, naming each file a loader might still read.
    for ignored in sorted(set(ser.ignore_paths) - set(DEFAULT_IGNORE_PATHS) - {sig_rel}):
        for rel in files_under(path, ignored):
            findings.append(_finding("MLF-ART-010", where(rel), f"{rel}: not checked: the signer excluded "
                                     f"{ignored!r} (ignore_paths); make sure nothing loads it",
                                     file=rel, ignore_path=ignored))

    empty_signed = set(ser.empty_files)
    for rel in sorted(empty_signed & set(present)):
        if present[rel].size != 0:
            findings.append(_finding("MLF-ART-001", where(rel), f"{rel}: content changed since signing (it was "
                                     f"empty, now {present[rel].size} bytes)", file=rel, expected_size=0,
                                     actual_size=present[rel].size))
    to_hash: list[FileEntry] = [present[r] for r in sorted((signed_files - empty_signed) & set(present))]
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
        rel = file_of(name, ser.method)
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

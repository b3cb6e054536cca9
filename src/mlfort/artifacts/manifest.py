"""The manifest: every file (or file shard) of a model or dataset with its digest, in the OpenSSF model-signing
layout (an in-toto Statement v1 whose predicate lists the resources), and its strict parser.

The parser is the security boundary for signatures made elsewhere: it refuses anything a verifier could read
two ways (duplicate names, `..`, absolute paths, unknown hash types, mixed algorithms) before any file is read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlfort.errors import VerificationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"

HASH_TYPES: dict[str, int] = {"sha256": 32, "blake2b": 64, "blake3": 32}
"""Hash types a manifest may use (model-signing's names), with their digest size in bytes."""

HASH_ALIASES = {"blake2": "blake2b"}
"""model-signing's command line says `blake2` and records `blake2b`."""

DEFAULT_IGNORE_PATHS = (".git", ".github", ".gitattributes", ".gitignore")
"""What model-signing leaves out by default; we do the same so either tool verifies the other's default."""

EMPTY_FILES_KEY = "mlfort_empty_files"

MAX_RESOURCES = 2_000_000
"""More entries than any real model repository has; a larger list is refused as hostile."""

_HEX = re.compile(r"[0-9a-f]+")
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "a whole number", bool: "true or false"}


class ManifestError(VerificationError):
    """A signature's manifest is malformed or unsafe. Verification fails closed (exit 1)."""

    rule_id = "MLF-ART-004"
    """The finding verify reports for it (signature invalid)."""


class UnsafeManifestError(ManifestError):
    """The manifest names a path that leaves the tree, or one entry twice: a crafted signature."""

    rule_id = "MLF-ART-005"


class HashMethodError(ManifestError):
    """The manifest uses a hashing method that is unknown, mixed, or not the one required."""

    rule_id = "MLF-ART-007"


def canonical_hash(name: str) -> str:
    """Map a user-facing hash name (`sha256`, `blake2`, `blake2b`, `blake3`) to the manifest's name."""
    key = HASH_ALIASES.get(name.lower(), name.lower())
    if key not in HASH_TYPES:
        raise ValueError(f"unsupported hash {name!r}; choose one of sha256, blake2b, blake3")
    return key


@dataclass(frozen=True, slots=True)
class Serialization:
    """How the tree was turned into resources: by whole files or by fixed-size shards."""

    method: str
    """`files` or `shards`."""
    hash_type: str
    """One of HASH_TYPES."""
    allow_symlinks: bool = False
    """Whether symlinks inside the tree were followed (never those that leave it)."""
    ignore_paths: tuple[str, ...] = ()
    """Relative POSIX paths left out of the manifest (a directory leaves out all below it)."""
    shard_size: int | None = None
    """Bytes per shard, for the `shards` method."""
    empty_files: tuple[str, ...] = ()
    """mlfort's extension for the `shards` method, which has no shard to record an empty file by: the empty
    files of the tree, so that adding or removing one is caught. Recorded as `mlfort_empty_files`; verifiers
    that do not know it (model-signing) ignore it."""

    @property
    def resource_algorithm(self) -> str:
        """The `algorithm` every resource of this serialization records (model-signing's spelling)."""
        if self.method == "shards":
            return f"{self.hash_type}-sharded-{self.shard_size}"
        return self.hash_type

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "hash_type": self.hash_type}
        if self.method == "shards":
            out["shard_size"] = self.shard_size
        out["allow_symlinks"] = self.allow_symlinks
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        if self.empty_files:
            out[EMPTY_FILES_KEY] = list(self.empty_files)
        return out


@dataclass(frozen=True, slots=True)
class Resource:
    """One file (`name` is its relative POSIX path, `.` for a single-file artifact) or one shard
    (`name` is `path:start:end`) with its digest."""

    name: str
    digest: str
    """Lower-case hex."""


_SHARD_NAME = re.compile(r"(.*):([0-9]+):([0-9]+)", re.ASCII | re.DOTALL)


def split_shard_name(name: str) -> tuple[str, int, int] | None:
    """`path:start:end` -> (path, start, end) with ASCII decimal offsets; anything else -> None."""
    m = _SHARD_NAME.fullmatch(name)
    return (m[1], int(m[2]), int(m[3])) if m else None


def file_of(name: str, method: str) -> str:
    """The file a resource belongs to: the name itself for `files` (which may well contain colons), the path
    part of `path:start:end` for `shards`."""
    if method == "shards":
        parts = split_shard_name(name)
        return parts[0] if parts else name
    return name


def sort_key(name: str, method: str) -> tuple[tuple[str, ...], int, int]:
    """model-signing orders resources by path components (not by string), then by shard offsets."""
    if method == "shards" and (parts := split_shard_name(name)) is not None:
        return (tuple(parts[0].split("/")), parts[1], parts[2])
    return (tuple(name.split("/")), 0, 0)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a signature says about a tree: its name, how it was serialised, and every resource's digest."""

    model_name: str
    serialization: Serialization
    resources: tuple[Resource, ...]
    """In canonical order (see sort_key)."""

    @classmethod
    def build(cls, model_name: str, serialization: Serialization, resources: Iterable[Resource]) -> Manifest:
        method = serialization.method
        return cls(model_name, serialization, tuple(sorted(resources, key=lambda r: sort_key(r.name, method))))

    def root_digest(self) -> str:
        """SHA-256 over the raw digests in manifest order: the in-toto subject digest."""
        h = hashlib.sha256()
        for r in self.resources:
            h.update(bytes.fromhex(r.digest))
        return h.hexdigest()

    def digests(self) -> dict[str, str]:
        """name -> digest."""
        return {r.name: r.digest for r in self.resources}

    def file_names(self) -> set[str]:
        """The file paths the manifest covers (shards folded into their file, recorded empty files included)."""
        method = self.serialization.method
        return {file_of(r.name, method) for r in self.resources} | set(self.serialization.empty_files)

    def to_statement(self) -> dict[str, Any]:
        """The in-toto Statement v1 (as a dict) that the DSSE envelope carries (see statement_json)."""
        algorithm = self.serialization.resource_algorithm
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.model_name, "digest": {"sha256": self.root_digest()}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "serialization": self.serialization.to_dict(),
                "resources": [
                    {"digest": r.digest, "algorithm": algorithm, "name": r.name} for r in self.resources
                ],
            },
        }

    def statement_json(self) -> bytes:
        """The statement as compact UTF-8 JSON, written resource by resource: a million-file manifest never
        exists as a million dicts at once."""
        head = self.to_statement()
        head["predicate"]["resources"] = []
        prefix, _, suffix = json.dumps(head, ensure_ascii=False, separators=(",", ":")).rpartition('"resources":[]')
        algorithm = json.dumps(self.serialization.resource_algorithm)
        body = ",".join(
            f'{{"digest":"{r.digest}","algorithm":{algorithm},"name":{json.dumps(r.name, ensure_ascii=False)}}}'
            for r in self.resources
        )
        return f'{prefix}"resources":[{body}]{suffix}'.encode()


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ManifestError(f"malformed signature: {message}")


def _expect_type(value: Any, typ: type, where: str) -> Any:
    ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
    _need(ok, f"{where} must be {_TYPE_NAMES.get(typ, typ.__name__)}")
    return value


def unsafe_path_reason(name: str) -> str | None:
    """Why `name` is not a safe, normalised relative POSIX path (None when it is). Signing and verifying share
    this one rule, so mlfort never writes a signature it would refuse to read."""
    if name == ".":
        return None
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL byte"
    if "\\" in name:
        return "contains a backslash (paths in a manifest are POSIX)"
    if name.startswith("/"):
        return "is an absolute path"
    if re.match(r"[A-Za-z]:", name):
        return "starts like a Windows drive path"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "contains a control character"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return f"is not a normalised relative path (component {part!r})"
    return None


def check_relative_path(name: str, where: str) -> None:
    """Refuse any path a verifier could resolve outside the tree or two ways."""
    reason = unsafe_path_reason(name)
    if reason == "is empty":
        raise ManifestError(f"malformed signature: {where}: empty path")
    if reason is not None:
        raise UnsafeManifestError(f"unsafe path in signature: {where} {name!r} {reason}")


def parse_statement(statement: Mapping[str, Any]) -> Manifest:
    """Turn an in-toto Statement (already JSON-decoded) into a Manifest, refusing anything unsafe or ambiguous."""
    _expect_type(statement, dict, "the statement")
    _need(statement.get("_type") == STATEMENT_TYPE, f"_type must be {STATEMENT_TYPE!r}")
    predicate_type = statement.get("predicateType")
    _need(
        predicate_type == PREDICATE_TYPE,
        f"predicateType is {predicate_type!r}, expected {PREDICATE_TYPE!r} (OpenSSF model signing v1.0)",
    )
    subjects = _expect_type(statement.get("subject"), list, "subject")
    _need(len(subjects) == 1, f"expected exactly one subject, found {len(subjects)}")
    subject = _expect_type(subjects[0], dict, "subject[0]")
    model_name = _expect_type(subject.get("name"), str, "subject[0].name")
    digest = _expect_type(subject.get("digest"), dict, "subject[0].digest")
    root = _expect_type(digest.get("sha256"), str, "subject[0].digest.sha256")
    _need(len(root) == 64 and bool(_HEX.fullmatch(root)), "subject digest is not a lower-case SHA-256 hex digest")

    predicate = _expect_type(statement.get("predicate"), dict, "predicate")
    ser = _expect_type(predicate.get("serialization"), dict, "predicate.serialization")
    method = ser.get("method")
    _need(method in ("files", "shards"), f"unknown serialization method {method!r} (expected files or shards)")
    hash_type = ser.get("hash_type")
    if hash_type not in HASH_TYPES:
        raise HashMethodError(
            f"signature uses hashing method {hash_type!r}, which mlfort does not accept "
            f"(accepted: {', '.join(HASH_TYPES)})"
        )
    allow_symlinks = ser.get("allow_symlinks", False)
    _need(isinstance(allow_symlinks, bool), "serialization.allow_symlinks must be true or false")
    ignore_raw = ser.get("ignore_paths", [])
    _expect_type(ignore_raw, list, "serialization.ignore_paths")
    ignore: list[str] = []
    for i, p in enumerate(ignore_raw):
        _expect_type(p, str, f"serialization.ignore_paths[{i}]")
        check_relative_path(p, "ignore path")
        _need(p != ".", "serialization.ignore_paths may not ignore the whole tree")
        ignore.append(p)
    shard_size = None
    if method == "shards":
        raw_size = ser.get("shard_size")
        # model-signing writes it through a protobuf Struct, where every number is a double (4096.0)
        _need(
            isinstance(raw_size, int | float) and not isinstance(raw_size, bool) and float(raw_size).is_integer()
            and 0 < raw_size <= 1 << 62,
            "serialization.shard_size must be a positive whole number of bytes",
        )
        shard_size = int(raw_size)
    empty_raw = ser.get(EMPTY_FILES_KEY, [])
    _expect_type(empty_raw, list, f"serialization.{EMPTY_FILES_KEY}")
    _need(method == "shards" or not empty_raw, f"serialization.{EMPTY_FILES_KEY} belongs to the shards method only")
    _need(len(empty_raw) <= MAX_RESOURCES, f"more than {MAX_RESOURCES} empty files")
    for i, p in enumerate(empty_raw):
        _expect_type(p, str, f"serialization.{EMPTY_FILES_KEY}[{i}]")
        check_relative_path(p, "empty file")
    if len(set(empty_raw)) != len(empty_raw):
        raise UnsafeManifestError("duplicate entry in signature: an empty file is listed more than once")
    serialization = Serialization(
        method, hash_type, allow_symlinks, tuple(sorted(set(ignore))), shard_size, tuple(sorted(empty_raw))
    )

    resources_raw = _expect_type(predicate.get("resources"), list, "predicate.resources")
    _need(len(resources_raw) <= MAX_RESOURCES, f"more than {MAX_RESOURCES} resources")
    expected_alg = serialization.resource_algorithm
    digest_len = 2 * HASH_TYPES[hash_type]
    resources: list[Resource] = []
    seen: set[str] = set()
    h = hashlib.sha256()
    for i, raw in enumerate(resources_raw):
        where = f"resources[{i}]"
        _expect_type(raw, dict, where)
        name = _expect_type(raw.get("name"), str, f"{where}.name")
        alg = raw.get("algorithm")
        if alg != expected_alg:
            raise HashMethodError(
                f"signature mixes hashing methods: {where} ({name!r}) uses {alg!r} but the serialization "
                f"says {expected_alg!r}"
            )
        value = _expect_type(raw.get("digest"), str, f"{where}.digest")
        _need(
            len(value) == digest_len and bool(_HEX.fullmatch(value)), f"{where}.digest is not a {hash_type} hex digest"
        )
        path = name
        if method == "shards":
            parts = split_shard_name(name)
            _need(
                parts is not None and parts[2] > parts[1], f"{where}.name {name!r} is not a shard name path:start:end"
            )
            assert parts is not None
            path = parts[0]
        check_relative_path(path, f"{where}.name")
        if name in seen:
            raise UnsafeManifestError(f"duplicate entry in signature: {name!r} is listed more than once")
        seen.add(name)
        h.update(bytes.fromhex(value))
        resources.append(Resource(name, value))
    if method == "files" and "." in seen and len(seen) > 1:
        raise ManifestError("malformed signature: a single-file manifest ('.') cannot list other files")
    if not resources and not serialization.empty_files:
        raise ManifestError("malformed signature: it covers no file at all, so it would vouch for any tree")
    clash = {file_of(n, method) for n in seen} & set(serialization.empty_files)
    if clash:
        raise UnsafeManifestError(
            f"duplicate entry in signature: {sorted(clash)[0]!r} is listed as empty and with content"
        )
    if h.hexdigest() != root:
        raise ManifestError(
            "malformed signature: the subject digest does not match the listed resources "
            "(the manifest was edited after it was made)"
        )
    return Manifest.build(model_name, serialization, resources)

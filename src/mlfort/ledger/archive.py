"""`ledger archive`: copy the log to write-once storage for long-term retention, in segments the archive alone proves.

Layout under the destination (a local directory, or `s3://bucket/prefix`), for each segment of entries
`[start, end)` (indexes zero-padded to 20 digits, so names sort in log order):

    segments/<start>-<end>.jsonl.gz        the entries: one JSON object per line, {"index", "leaf_hash", "entry"}
    segments/<start>-<end>.checkpoint      the signed checkpoint of the log at size `end` (C2SP signed note)
    segments/<start>-<end>.manifest.json   what the two hold: their SHA-256 digests, sizes, the root; written last

`entry` is the stored event's exact bytes as text (`entry_b64` if they are not UTF-8), so the archive keeps what the
leaf hashes cover. The manifest is the commit marker of a segment: a run resumes after the last one, and a segment
or checkpoint a crashed run left without its manifest is checked and adopted, never written twice. Every object is
written once: a local file is written to a temporary name, flushed to disk, made read-only (0444) and linked into
place (failing if the name exists); an S3 object is put with `If-None-Match: *`, Content-MD5, a SHA-256 checksum
and S3 Object Lock in COMPLIANCE mode until the retention date (which no one, the root account included, can
shorten or delete before). A bucket without Object Lock or versioning is refused before anything is written.

Segments end on signed checkpoints the ledger already holds (about `SEGMENT_ENTRIES` entries each when checkpoints
are frequent, as they are by default). Before a segment is written its entries are re-hashed and their Merkle root
(continued from the archived checkpoint before it) must equal the signed root: an archive is never written from a
ledger that disagrees with its own signatures, or with what was archived before.

`verify_archive` needs nothing but the archive and the checkpoint keys: it re-reads every segment, checks digests,
leaf hashes and index order, recomputes the tree from entry 0, and holds the root at each segment's end against the
signed checkpoint stored beside it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import gzip
import hashlib
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import orjson

import mlfort
from mlfort.errors import InputError
from mlfort.ledger import merkle
from mlfort.ledger.event import utc_now
from mlfort.ledger.log import Ledger, LedgerError
from mlfort.ledger.merkle import CompactRange
from mlfort.ledger.note import Checkpoint, NoteError, NoteVerifier, open_checkpoint
from mlfort.ledger.store.base import StoreError
from mlfort.ledger.verify import VerifyReport, as_bytes
from mlfort.report import Finding, Rule, Severity, register_rules

FORMAT = "mlfort-ledger-archive/1"
SEGMENT_ENTRIES = 100_000
"""Aim for segments about this large: cut at the last checkpoint at or below it (or the first one beyond)."""
SEGMENTS = "segments/"
MAX_MANIFEST_BYTES = 64 * 1024
MAX_LINE_BYTES = 256 * 1024
_NAME = re.compile(r"(\d{20})-(\d{20})\.(jsonl\.gz|checkpoint|manifest\.json)")
_READ_CHUNK = 1 << 20


# -- findings of verify_archive --------------------------------------------------------------------------------------

_REFS = (
    "RFC 9162 Certificate Transparency 2.0 (Merkle tree, proofs)",
    "https://github.com/C2SP/C2SP/blob/main/tlog-checkpoint.md",
    "NIST SP 800-53 AU-9(2) Store on Separate Physical Systems; AU-11 Audit Record Retention",
    "AWS S3 Object Lock (compliance mode)",
)
RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("MLF-ARC-001", "Archived entries changed",
             "A segment no longer matches its manifest digest, or an archived entry no longer matches its leaf "
             "hash. The archive was edited where it is stored (a local directory is only read-only, not WORM); "
             "compare with the ledger and another copy.", Severity.CRITICAL, _REFS),
        Rule("MLF-ARC-002", "Archive does not match its signed checkpoint",
             "The entries were rewritten together with their hashes: the Merkle root recomputed from the archive "
             "differs from the signed checkpoint. Treat the archive as altered.", Severity.CRITICAL, _REFS),
        Rule("MLF-ARC-003", "Archive incomplete",
             "Segments are missing (deleted, or never written): the archive does not hold a contiguous log from "
             "entry 0, or is shorter than a trusted checkpoint. Re-run `mlfort ledger archive` from an intact "
             "ledger; investigate deletions.", Severity.CRITICAL, _REFS),
        Rule("MLF-ARC-004", "Archived checkpoint invalid",
             "A checkpoint in the archive is not signed by a trusted key, is for another log or size, or does not "
             "match its manifest. The archive's anchors were replaced.", Severity.CRITICAL, _REFS),
        Rule("MLF-ARC-005", "Archive manifest unreadable",
             "A manifest is not the JSON mlfort writes, or names objects that are not there.", Severity.HIGH, _REFS),
        Rule("MLF-ARC-006", "Unfinished archive segment",
             "A segment or checkpoint has no manifest yet: an archive run stopped before finishing it. The next "
             "run checks and completes it.", Severity.INFO, _REFS),
    )
}
register_rules(*RULES.values())


def _finding(rule_id: str, target: str, message: str, **evidence: object) -> Finding:
    return RULES[rule_id].finding(target, message, **evidence)


# -- results --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """What one `archive` run did."""

    dest: str
    origin: str
    start: int
    """Entries the archive held before this run."""
    end: int
    """Entries it holds now (always a signed checkpoint's size)."""
    segments: tuple[str, ...]
    """Segments written by this run (names under the destination)."""
    bytes_written: int
    """Compressed bytes of those segments."""
    pending: int
    """Entries appended after the newest signed checkpoint: archived by a later run."""
    retain_until: str
    """Retention date of the objects written (enforced by S3 Object Lock; recorded only, in a directory)."""
    locked: bool
    """True when the storage enforces the retention (S3 Object Lock, compliance mode)."""
    seconds: float

    @property
    def entries(self) -> int:
        """Entries archived by this run."""
        return self.end - self.start

    def __str__(self) -> str:
        if not self.segments:
            text = f"nothing new to archive: {self.dest} holds entries [0, {self.end})"
        else:
            n = len(self.segments)
            mib = self.bytes_written / (1 << 20)
            text = (f"archived entries [{self.start}, {self.end}) in {n} segment{'s' if n != 1 else ''} "
                    f"({mib:.1f} MiB) to {self.dest} in {self.seconds:.1f}s; ")
            text += (f"locked (compliance) until {self.retain_until}" if self.locked
                     else f"read-only files (retention to {self.retain_until} is recorded, not enforced)")
        if self.pending:
            text += (f"; {self.pending} newer entr{'y waits' if self.pending == 1 else 'ies wait'} for a signed "
                     "checkpoint")
        return text


# -- destinations ---------------------------------------------------------------------------------------------------

class _Sink(ABC):
    """Where an archive lives: names relative to the archive root, each object written once."""

    label: str
    locked: bool

    @abstractmethod
    def names(self, prefix: str) -> list[str]:
        """Names starting with `prefix` (sorted)."""

    @abstractmethod
    def read(self, name: str, limit: int) -> bytes | None:
        """A small object's bytes, None if absent; raises if larger than `limit`."""

    @abstractmethod
    def open(self, name: str) -> BinaryIO | None:
        """A stream of an object, None if absent."""

    @abstractmethod
    def put(self, name: str, src: Path, sha256: bytes, md5: bytes, retain_until: _dt.datetime) -> bool:
        """Write the file `src` as `name` if that name is free; False (and nothing written) if it exists."""

    @abstractmethod
    def scratch(self) -> Path:
        """A directory for temporary files (on the same file system, for a local archive)."""

    def put_bytes(self, name: str, data: bytes, retain_until: _dt.datetime) -> bool:
        """Write small bytes once (via a temporary file)."""
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.scratch())
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return self.put(name, Path(tmp), hashlib.sha256(data).digest(), hashlib.md5(data).digest(),  # noqa: S324 (Content-MD5, not security)
                            retain_until)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


class _DirSink(_Sink):
    locked = False

    def __init__(self, root: Path, *, create: bool) -> None:
        self.root = root
        self.label = str(root).rstrip(os.sep) + os.sep  # names are appended to it in messages
        if create:
            try:
                (root / SEGMENTS).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the archive directory {root}: {exc.strerror or exc}") from None
            for stale in (root / SEGMENTS).glob(".tmp-*"):  # left by a run that crashed mid-write
                with contextlib.suppress(OSError):
                    stale.unlink()
        elif not root.is_dir():
            raise InputError(f"no archive at {root}: not a directory")

    def names(self, prefix: str) -> list[str]:
        folder, _, start = prefix.rpartition("/")
        try:
            entries = os.listdir(self.root / folder)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list the archive {self.root / folder}: {exc.strerror or exc}") from None
        return sorted(f"{folder}/{n}" if folder else n for n in entries if n.startswith(start) and n[:1] != ".")

    def read(self, name: str, limit: int) -> bytes | None:
        try:
            with (self.root / name).open("rb") as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.root / name}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise StoreError(f"{self.root / name} is larger than {limit} bytes: not an archive object")
        return data

    def open(self, name: str) -> BinaryIO | None:
        try:
            return (self.root / name).open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.root / name}: {exc.strerror or exc}") from None

    def scratch(self) -> Path:
        return self.root / SEGMENTS

    def put(self, name: str, src: Path, sha256: bytes, md5: bytes, retain_until: _dt.datetime) -> bool:
        final = self.root / name
        try:
            with src.open("rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(src, 0o444)
            try:
                # link() fails if the name exists, atomically: no check-then-write race, no overwrite.
                os.link(src, final)
            except FileExistsError:
                return False
            dir_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(f"cannot write {final}: {exc.strerror or exc}") from None
        return True


def _client_error(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    return (str(response.get("Error", {}).get("Code", "")),
            int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0))


class _S3Sink(_Sink):
    locked = True

    def __init__(self, url: str, client: Any | None, *, check_lock: bool) -> None:
        rest = url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise InputError(f"archive destination {url!r}: use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.label = f"s3://{bucket}/{self.prefix}"
        if client is None:
            try:
                import boto3
            except ImportError:
                raise InputError("archiving to S3 needs boto3: pip install 'mlfort[aws]'") from None
            client = boto3.client("s3")
        self.client = client
        self._botocore_errors = _botocore_errors()
        self._scratch = Path(tempfile.mkdtemp(prefix="mlfort-archive-"))
        if check_lock:
            self._check_lock()

    def close(self) -> None:
        """Remove the local scratch directory."""
        import shutil

        shutil.rmtree(self._scratch, ignore_errors=True)

    def _fail(self, what: str, exc: Exception) -> StoreError:
        code, status = _client_error(exc)
        detail = f"{code or type(exc).__name__}" + (f" (HTTP {status})" if status else "")
        return StoreError(f"{what} {self.label}: {detail}: {exc}")

    def _check_lock(self) -> None:
        """Refuse a bucket that cannot keep objects write-once: no versioning, or no Object Lock."""
        try:
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket)
        except self._botocore_errors as exc:
            raise self._fail("cannot read the versioning of", exc) from None
        if versioning.get("Status") != "Enabled":
            raise InputError(f"refusing to archive to {self.label}: bucket versioning is not enabled, so archived "
                             "objects could be overwritten or deleted. Use a bucket created with Object Lock "
                             "(aws s3api create-bucket --object-lock-enabled-for-bucket); nothing was written")
        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except self._botocore_errors as exc:
            if _client_error(exc)[0] == "ObjectLockConfigurationNotFoundError":
                raise InputError(f"refusing to archive to {self.label}: the bucket has no S3 Object Lock, so "
                                 "nothing would stop the archive being deleted. Use a bucket created with Object "
                                 "Lock (aws s3api create-bucket --object-lock-enabled-for-bucket); nothing was "
                                 "written") from None
            raise self._fail("cannot read the Object Lock configuration of", exc) from None
        if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise InputError(f"refusing to archive to {self.label}: S3 Object Lock is not enabled on the bucket; "
                             "nothing was written")

    def names(self, prefix: str) -> list[str]:
        out: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                           Prefix=self.prefix + prefix)
            for page in pages:
                out.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", ()))
        except self._botocore_errors as exc:
            raise self._fail("cannot list", exc) from None
        return sorted(out)

    def _get(self, name: str) -> Any | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except self._botocore_errors as exc:
            if _client_error(exc)[0] in ("NoSuchKey", "404"):
                return None
            raise self._fail(f"cannot read {name} in", exc) from None

    def read(self, name: str, limit: int) -> bytes | None:
        got = self._get(name)
        if got is None:
            return None
        if int(got.get("ContentLength", 0)) > limit:
            got["Body"].close()
            raise StoreError(f"{self.label}{name} is larger than {limit} bytes: not an archive object")
        try:
            return got["Body"].read()
        except self._botocore_errors as exc:
            raise self._fail(f"cannot read {name} in", exc) from None

    def open(self, name: str) -> BinaryIO | None:
        got = self._get(name)
        return None if got is None else got["Body"]

    def scratch(self) -> Path:
        return self._scratch

    def put(self, name: str, src: Path, sha256: bytes, md5: bytes, retain_until: _dt.datetime) -> bool:
        try:
            with src.open("rb") as body:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.prefix + name, Body=body,
                    ContentMD5=base64.b64encode(md5).decode(),
                    ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(sha256).decode(),
                    ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=retain_until,
                    IfNoneMatch="*",  # write-once: S3 answers 412 if the key exists
                    ContentType=_content_type(name),
                )
        except self._botocore_errors as exc:
            code, status = _client_error(exc)
            if code == "PreconditionFailed" or status == 412:
                return False
            raise self._fail(f"cannot write {name} to", exc) from None
        return True


def _botocore_errors() -> tuple[type[Exception], ...]:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # a test double without botocore
        return (OSError,)
    return (ClientError, BotoCoreError)


def _content_type(name: str) -> str:
    if name.endswith(".gz"):
        return "application/gzip"
    if name.endswith(".json"):
        return "application/json"
    return "text/plain; charset=utf-8"


def _open_sink(dest: str, s3_client: Any | None, *, writing: bool) -> _Sink:
    if not isinstance(dest, str) or not dest:
        raise InputError("archive destination is empty: give a directory or s3://bucket/prefix")
    if dest.startswith("s3://"):
        return _S3Sink(dest, s3_client, check_lock=writing)
    if "://" in dest and not dest.startswith("file://"):
        raise InputError(f"archive destination {dest!r}: use a directory, file:///path or s3://bucket/prefix")
    path = Path(dest[len("file://") :] if dest.startswith("file://") else dest).expanduser()
    return _DirSink(path, create=writing)


@contextlib.contextmanager
def _sink(dest: str, s3_client: Any | None, *, writing: bool) -> Iterator[_Sink]:
    sink = _open_sink(dest, s3_client, writing=writing)
    try:
        yield sink
    finally:
        close = getattr(sink, "close", None)
        if close is not None:
            close()


# -- segment names and manifests ------------------------------------------------------------------------------------

def segment_base(start: int, end: int) -> str:
    """`segments/<start>-<end>` (20-digit zero-padded indexes: names sort in log order)."""
    return f"{SEGMENTS}{start:020d}-{end:020d}"


@dataclass(frozen=True, slots=True)
class _Listing:
    manifests: list[tuple[int, int]]
    segments: dict[tuple[int, int], str]
    checkpoints: dict[tuple[int, int], str]


def _list(sink: _Sink) -> _Listing:
    manifests: list[tuple[int, int]] = []
    segments: dict[tuple[int, int], str] = {}
    checkpoints: dict[tuple[int, int], str] = {}
    for name in sink.names(SEGMENTS):
        m = _NAME.fullmatch(name[len(SEGMENTS) :])
        if not m:
            continue
        span = (int(m.group(1)), int(m.group(2)))
        if m.group(3) == "manifest.json":
            manifests.append(span)
        elif m.group(3) == "jsonl.gz":
            segments[span] = name
        else:
            checkpoints[span] = name
    manifests.sort()
    return _Listing(manifests, segments, checkpoints)


def _parse_manifest(data: bytes, start: int, end: int) -> dict[str, Any]:
    """A manifest's fields, checked for shape and for agreeing with its name; raises ValueError otherwise."""
    obj = orjson.loads(data)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"not an {FORMAT} manifest")
    seg, cp = obj.get("segment"), obj.get("checkpoint")
    if obj.get("start") != start or obj.get("end") != end or not isinstance(seg, dict) or not isinstance(cp, dict):
        raise ValueError("its start, end, segment or checkpoint do not match its name")
    base = segment_base(start, end)
    if seg.get("name") != f"{base}.jsonl.gz" or cp.get("name") != f"{base}.checkpoint" or cp.get("size") != end:
        raise ValueError("it names other objects than its own segment and checkpoint")
    for field in (seg.get("sha256"), cp.get("sha256")):
        if not isinstance(field, str) or not re.fullmatch(r"[0-9a-f]{64}", field):
            raise ValueError("a SHA-256 digest is missing or malformed")
    if not isinstance(obj.get("origin"), str) or not obj["origin"]:
        raise ValueError("the log origin is missing")
    return obj


# -- writing a segment ----------------------------------------------------------------------------------------------

class _HashingWriter:
    """A file wrapper that hashes (SHA-256, MD5) and counts what is written through it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()  # noqa: S324 (S3 Content-MD5 integrity header, not a security digest)
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


class _HashingReader:
    """A stream wrapper that hashes (SHA-256) and counts what is read through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_READ_CHUNK):
            pass


def _line(index: int, leaf: bytes, body: bytes) -> bytes:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return orjson.dumps({"index": index, "leaf_hash": leaf.hex(),
                             "entry_b64": base64.b64encode(body).decode()}) + b"\n"
    return orjson.dumps({"index": index, "leaf_hash": leaf.hex(), "entry": text}) + b"\n"


def _write_segment_file(ledger: Ledger, tree: CompactRange, start: int, end: int, path: Path,
                        progress: Callable[[int], None] | None) -> tuple[bytes, bytes, int, bytes]:
    """Write entries [start, end) gzipped to `path`, extending `tree`; return (sha256, md5, size, raw_sha256), where
    raw_sha256 is the digest of the uncompressed lines (what two writers of the same segment agree on)."""
    raw = hashlib.sha256()
    expected = start
    with path.open("wb") as fh:
        hashing = _HashingWriter(fh)
        # mtime=0 and no file name: the bytes depend only on the entries (and zlib).
        with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0, compresslevel=6) as gz:  # type: ignore[arg-type]
            batch: list[bytes] = []
            for idx, stored_leaf, stored_body in ledger.store.entries(start, end):
                if idx != expected:
                    raise LedgerError(f"entry {expected} is missing from the ledger, so entries [{start}, {end}) "
                                      "cannot be archived (run `mlfort ledger verify`)")
                body, leaf = as_bytes(stored_body), as_bytes(stored_leaf)
                if body is None or leaf is None or merkle.leaf_hash(body) != leaf:
                    raise LedgerError(f"entry {idx} no longer matches its leaf hash: it was changed after it was "
                                      "logged; nothing was archived from it on (run `mlfort ledger verify`)")
                tree.append(leaf)
                line = _line(idx, leaf, body)
                raw.update(line)
                batch.append(line)
                expected += 1
                if len(batch) >= 1024:
                    gz.write(b"".join(batch))
                    batch.clear()
                if progress is not None and idx % 4096 == 0:
                    progress(idx)
            if batch:
                gz.write(b"".join(batch))
    if expected != end:
        raise LedgerError(f"the ledger holds entries up to {expected}, not {end}: entries [{expected}, {end}) are "
                          "missing (run `mlfort ledger verify`)")
    return hashing.sha256.digest(), hashing.md5.digest(), hashing.size, raw.digest()


def _raw_digest(stream: BinaryIO) -> bytes:
    """SHA-256 of a stored segment's uncompressed lines."""
    raw = hashlib.sha256()
    with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
        while chunk := gz.read(_READ_CHUNK):
            raw.update(chunk)
    return raw.digest()


# -- archive --------------------------------------------------------------------------------------------------------

def _retain_until(days: int) -> _dt.datetime:
    # Whole seconds: S3 stores the date at second precision, and the manifest should say exactly what S3 holds.
    return (_dt.datetime.now(_dt.UTC) + _dt.timedelta(days=days)).replace(microsecond=0)


def _archived_state(sink: _Sink, listing: _Listing, origin: str,
                    verifiers: Sequence[NoteVerifier]) -> tuple[int, Checkpoint | None]:
    """(entries archived, the signed checkpoint at that size) from the manifests already at the destination."""
    expected = 0
    for start, end in listing.manifests:
        if start != expected:
            raise StoreError(f"the archive at {sink.label} is missing entries [{expected}, {start}) (a segment was "
                             "deleted?); run verify_archive on it, and archive to a new destination")
        expected = end
    if not listing.manifests:
        return 0, None
    start, end = listing.manifests[-1]
    base = segment_base(start, end)
    data = sink.read(f"{base}.manifest.json", MAX_MANIFEST_BYTES)
    try:
        manifest = _parse_manifest(data or b"", start, end)
    except ValueError as exc:
        raise StoreError(f"the archive manifest {sink.label}{base}.manifest.json is unreadable: {exc}") from None
    if manifest["origin"] != origin:
        raise InputError(f"{sink.label} holds the archive of log {manifest['origin']!r}, not of this ledger "
                         f"({origin!r}): archive each ledger to its own destination")
    note = sink.read(f"{base}.checkpoint", MAX_MANIFEST_BYTES)
    if note is None or hashlib.sha256(note).hexdigest() != manifest["checkpoint"]["sha256"]:
        raise StoreError(f"the archived checkpoint {sink.label}{base}.checkpoint is missing or does not match its "
                         "manifest; run verify_archive on the archive")
    try:
        cp = open_checkpoint(note, list(verifiers), origin)
    except NoteError as exc:
        raise StoreError(f"the archived checkpoint {sink.label}{base}.checkpoint does not verify with this "
                         f"ledger's keys: {exc}") from None
    if cp.size != end:
        raise StoreError(f"the archived checkpoint {sink.label}{base}.checkpoint is for size {cp.size}, not {end}")
    return end, cp


def _plan(ledger: Ledger, start: int, last: int, forced_end: int | None) -> list[tuple[int, int, str]]:
    """(start, end, note) of the segments to write from `start` up to the checkpoint at `last`, cut at checkpoints
    the ledger holds: each at the last checkpoint within SEGMENT_ENTRIES of its start (or the first one beyond, when
    none is), except that the first ends at `forced_end` when a crashed run left a segment ending there."""
    plan: list[tuple[int, int, str]] = []
    cut = start
    candidate: tuple[int, str] | None = None  # the furthest checkpoint within reach of `cut` seen so far
    # By size, in one pass from the first one past `start` (a range read: an incremental run reads only new ones).
    for size, note in ledger.store.checkpoints(after=start):
        if size <= cut:
            continue
        if size > last:
            break
        if forced_end is not None:
            if size < forced_end:
                continue
            if size > forced_end:
                raise LedgerError(f"a crashed archive run left a segment ending at {forced_end}, but the ledger "
                                  f"holds no checkpoint of that size: the ledger is not the one archived there")
            plan.append((cut, size, note))
            cut, forced_end = size, None
            continue
        if size - cut <= SEGMENT_ENTRIES:
            candidate = (size, note)
            continue
        if candidate is not None:
            plan.append((cut, candidate[0], candidate[1]))
            cut = candidate[0]
            candidate = None
        if size - cut <= SEGMENT_ENTRIES:
            candidate = (size, note)
        else:  # no checkpoint within reach: the segment runs to the next one, however far
            plan.append((cut, size, note))
            cut = size
    if forced_end is not None:
        raise LedgerError(f"a crashed archive run left a segment ending at {forced_end}, beyond the ledger's newest "
                          f"checkpoint ({last}): the ledger was rolled back, or is not the one archived there")
    if candidate is not None:
        plan.append((cut, candidate[0], candidate[1]))
    if plan and plan[-1][1] != last:
        raise LedgerError(f"the ledger's checkpoints changed while archiving (expected one at {last})")
    return plan


def _manifest(origin: str, start: int, end: int, seg: tuple[str, bytes, int, bytes], cp: tuple[str, bytes],
              root: bytes, retain_until: _dt.datetime, locked: bool) -> bytes:
    seg_name, seg_sha, seg_size, lines_sha = seg
    cp_name, cp_sha = cp
    return orjson.dumps({
        "format": FORMAT, "origin": origin, "start": start, "end": end,
        "segment": {"name": seg_name, "sha256": seg_sha.hex(), "bytes": seg_size, "entries": end - start,
                    "lines_sha256": lines_sha.hex(), "compression": "gzip"},
        "checkpoint": {"name": cp_name, "sha256": cp_sha.hex(), "size": end, "root": root.hex()},
        "archived_at": utc_now(), "retain_until": retain_until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "object_lock": "COMPLIANCE" if locked else None, "mlfort_version": mlfort.__version__,
    }, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def _orphan_end(sink: _Sink, listing: _Listing, start: int) -> int | None:
    """The end of a segment or checkpoint at `start` that a crashed run left without its manifest."""
    ends = {e for s, e in (*listing.segments, *listing.checkpoints) if s == start}
    if len(ends) > 1:
        raise StoreError(f"{sink.label} holds unfinished segments from {start} with different ends {sorted(ends)}: "
                         "it was written by more than one ledger or edited; archive to a new destination")
    return ends.pop() if ends else None


def _put_segment(sink: _Sink, name: str, tmp: Path, written: tuple[bytes, bytes, int, bytes],
                 retain_until: _dt.datetime, span: tuple[int, int]) -> tuple[bytes, int]:
    """Store the segment; if a crashed run stored it already, adopt it when it holds the same lines.
    Returns the (sha256, size) of the stored object."""
    sha, md5, size, lines = written
    if sink.put(name, tmp, sha, md5, retain_until):
        return sha, size
    stream = sink.open(name)
    if stream is None:
        raise StoreError(f"{sink.label}{name} exists but cannot be read")
    reader = _HashingReader(stream)
    try:
        found = _raw_digest(reader)  # type: ignore[arg-type]
        reader.drain()
    except (OSError, EOFError, ValueError) as exc:
        raise StoreError(f"{sink.label}{name} exists but is not a readable segment ({exc}); archive to a new "
                         "destination") from None
    finally:
        with contextlib.suppress(Exception):
            stream.close()
    if found != lines:
        raise StoreError(f"{sink.label}{name} exists and holds other entries than the ledger's "
                         f"[{span[0]}, {span[1]}): refusing to go on (written by another ledger, or edited)")
    return reader.sha256.digest(), reader.size


def _put_checkpoint(sink: _Sink, name: str, note: str, cp: Checkpoint, verifiers: list[NoteVerifier],
                    retain_until: _dt.datetime) -> bytes:
    data = note.encode()
    if sink.put_bytes(name, data, retain_until):
        return hashlib.sha256(data).digest()
    existing = sink.read(name, MAX_MANIFEST_BYTES)
    if existing is not None:
        try:
            if existing == data or open_checkpoint(existing, verifiers, cp.origin) == cp:
                return hashlib.sha256(existing).digest()
        except NoteError:
            pass
    raise StoreError(f"{sink.label}{name} exists and is not this ledger's signed checkpoint {cp.size}: refusing "
                     "to go on (written by another ledger, or edited)")


def archive(ledger: Ledger, dest: str, *, retain_days: int = 2555, s3_client: Any | None = None,
            progress: Callable[[int], None] | None = None) -> ArchiveResult:
    """Copy the entries appended since the last archive at `dest`, up to the ledger's newest signed checkpoint, in
    segments with their signed checkpoints and manifests. `dest` is a directory (or file:///path) or
    s3://bucket/prefix (Object Lock and versioning required; `s3_client` defaults to boto3's). Objects are kept
    `retain_days` (S3 Object Lock, compliance mode). `progress(index)` is called now and then with the entry
    being archived. Idempotent: a run with nothing new writes nothing; a crashed run is completed by the next."""
    started = time.perf_counter()
    if isinstance(retain_days, bool) or not isinstance(retain_days, int) or retain_days < 1:
        raise InputError(f"retain_days must be a whole number of days, at least 1 (got {retain_days!r})")
    if retain_days > 36500:
        raise InputError("retain_days is more than 100 years: S3 Object Lock in compliance mode cannot be shortened "
                         "afterwards, so check the number")
    origin = ledger.origin
    verifiers = list(ledger.verifiers)
    latest = ledger.latest_checkpoint()  # its signature checked
    with _sink(dest, s3_client, writing=True) as sink:
        listing = _list(sink)
        archived, archived_cp = _archived_state(sink, listing, origin, verifiers)
        last = latest.checkpoint.size if latest is not None else 0
        pending = max(0, ledger.size() - last)
        retain_until = _retain_until(retain_days)
        if last < archived:
            raise LedgerError(f"{sink.label} holds {archived} entries, but the ledger's newest signed checkpoint "
                              f"covers only {last}: the ledger was rolled back or replaced")
        if latest is None and ledger.size() > 0:
            raise LedgerError("no signed checkpoint covers the ledger yet: run `mlfort ledger checkpoint` first "
                              "(an archive ends on a signed checkpoint)")

        # Continue the Merkle tree from the ledger's stored frontier at `archived` entries; it must fold to the
        # archived signed root, or the ledger was rewritten since (or is another log with the same origin).
        front = merkle.frontier(archived)
        nodes = ledger.store.nodes(front)
        if any(n not in nodes for n in front):
            raise LedgerError(f"the ledger is damaged: Merkle nodes at size {archived} are missing "
                              "(run `mlfort ledger verify`)")
        tree = CompactRange(archived, [as_bytes(nodes[n]) or b"" for n in front])
        if archived_cp is not None and tree.root() != archived_cp.root:
            raise LedgerError(f"the ledger's first {archived} entries no longer match the signed checkpoint "
                              f"archived at {sink.label}: the ledger was rewritten since the last archive. Check it "
                              "with `mlfort ledger verify --from-checkpoint` and that archived checkpoint")

        segments: list[str] = []
        total = 0
        if last > archived:
            plan = _plan(ledger, archived, last, _orphan_end(sink, listing, archived))
            for start, end, note in plan:
                try:
                    cp = open_checkpoint(note, verifiers, origin)
                except NoteError as exc:
                    raise LedgerError(f"the ledger's checkpoint at size {end} does not verify ({exc}); run "
                                      "`mlfort ledger verify`") from None
                if cp.size != end:
                    raise LedgerError(f"the ledger's checkpoint stored for size {end} is signed for size {cp.size}")
                base = segment_base(start, end)
                fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".jsonl.gz", dir=sink.scratch())
                os.close(fd)
                tmp = Path(tmp_name)
                try:
                    written = _write_segment_file(ledger, tree, start, end, tmp, progress)
                    if tree.root() != cp.root:
                        raise LedgerError(f"entries [{start}, {end}) do not lead to the root signed in the ledger's "
                                          f"checkpoint {end}: the ledger was rewritten under its checkpoint; "
                                          "nothing from them was archived (run `mlfort ledger verify`)")
                    seg_sha, seg_size = _put_segment(sink, f"{base}.jsonl.gz", tmp, written, retain_until,
                                                     (start, end))
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                cp_sha = _put_checkpoint(sink, f"{base}.checkpoint", note, cp, verifiers, retain_until)
                manifest = _manifest(origin, start, end, (f"{base}.jsonl.gz", seg_sha, seg_size, written[3]),
                                     (f"{base}.checkpoint", cp_sha), cp.root, retain_until, sink.locked)
                if not sink.put_bytes(f"{base}.manifest.json", manifest, retain_until):
                    raise StoreError(f"{sink.label}{base}.manifest.json appeared while this run wrote it: another "
                                     "archive run is writing to the same destination; run one at a time")
                segments.append(f"{base}.jsonl.gz")
                total += seg_size
        return ArchiveResult(
            dest=sink.label, origin=origin, start=archived, end=max(archived, last), segments=tuple(segments),
            bytes_written=total, pending=pending, retain_until=retain_until.strftime("%Y-%m-%dT%H:%M:%SZ"),
            locked=sink.locked, seconds=time.perf_counter() - started,
        )


# -- verify_archive -------------------------------------------------------------------------------------------------

def _entry_bytes(obj: dict[str, Any]) -> bytes:
    if isinstance(obj.get("entry"), str):
        return obj["entry"].encode("utf-8")
    if isinstance(obj.get("entry_b64"), str):
        return base64.b64decode(obj["entry_b64"], validate=True)
    raise ValueError("the line has no entry")


class _ArchiveCheck:
    """One pass over an archive's segments, recomputing the tree from entry 0."""

    def __init__(self, sink: _Sink, verifiers: list[NoteVerifier], trusted: list[Checkpoint], report: VerifyReport,
                 progress: Callable[[int], None] | None) -> None:
        self.sink = sink
        self.verifiers = verifiers
        self.trusted = sorted(trusted, key=lambda c: c.size)
        self.report = report
        self.progress = progress
        self.target = f"archive {sink.label}"
        self.tree = CompactRange()
        self.last_good = 0

    def bad(self, index: int | None, rule_id: str, message: str, **evidence: object) -> None:
        self.report.bad(index, _finding(rule_id, self.target, message, **evidence))

    def _trusted_at(self, size: int) -> None:
        while self.trusted and self.trusted[0].size == size:
            cp = self.trusted.pop(0)
            if cp.root != self.tree.root():
                self.bad(0, "MLF-ARC-002", f"the trusted checkpoint (size {size}) does not match the archived "
                         "entries: the archive was rewritten since that checkpoint was taken", checkpoint_size=size)
            self.report.checkpoints += 1

    def segment(self, name: str, manifest: dict[str, Any], start: int, end: int) -> bool:
        """Check one segment's entries and digest; False when the tree cannot be carried past it."""
        stream = self.sink.open(name)
        if stream is None:
            self.bad(start, "MLF-ARC-003", f"segment {name} is missing: entries [{start}, {end}) are gone",
                     first_bad=start, segment=name)
            return False
        reader = _HashingReader(stream)
        try:
            with gzip.GzipFile(fileobj=reader, mode="rb") as gz:  # type: ignore[arg-type]
                while True:
                    line = gz.readline(MAX_LINE_BYTES + 1)
                    if not line:
                        break
                    if len(line) > MAX_LINE_BYTES:
                        raise ValueError(f"a line is longer than {MAX_LINE_BYTES} bytes")
                    if not self._line(line, name):
                        return False
            reader.drain()
        except (OSError, EOFError, ValueError) as exc:  # gzip.BadGzipFile and zlib.error are OSError/ValueError
            self.bad(self.tree.size, "MLF-ARC-001", f"segment {name} is unreadable after entry {self.tree.size}: "
                     f"{exc} (truncated or edited)", first_bad=self.tree.size, segment=name)
            return False
        finally:
            with contextlib.suppress(Exception):
                stream.close()
        if self.tree.size != end:
            self.bad(self.tree.size, "MLF-ARC-001", f"segment {name} ends at entry {self.tree.size}, not {end}: "
                     "entries were removed from it", first_bad=self.tree.size, segment=name)
            return False
        if reader.sha256.hexdigest() != manifest["segment"]["sha256"]:
            self.bad(start, "MLF-ARC-001", f"segment {name} does not match the SHA-256 in its manifest: it was "
                     "replaced or edited after it was archived", first_bad=start, segment=name,
                     expected=manifest["segment"]["sha256"], found=reader.sha256.hexdigest())
        return True

    def _line(self, line: bytes, name: str) -> bool:
        index = self.tree.size
        try:
            obj = orjson.loads(line)
            if not isinstance(obj, dict) or obj.get("index") != index:
                found = obj.get("index") if isinstance(obj, dict) else obj
                raise ValueError(f"expected entry {index} next, found {found!r}")
            body = _entry_bytes(obj)
            stated = bytes.fromhex(obj["leaf_hash"])
            if len(stated) != merkle.HASH_SIZE:
                raise ValueError("leaf hash is not 32 bytes")
        except (ValueError, KeyError, TypeError) as exc:
            self.bad(index, "MLF-ARC-001", f"segment {name}: entry {index} is unreadable ({exc}): entries were "
                     "removed, reordered or edited", first_bad=index, segment=name)
            return False
        leaf = merkle.leaf_hash(body)
        if leaf != stated:
            self.bad(index, "MLF-ARC-001", f"archived entry {index} (in {name}) was changed: it no longer matches "
                     "its leaf hash", first_bad=index, segment=name)
            leaf = stated  # go on with what the tree committed to, so one edit is reported once
        self.tree.append(leaf)
        if self.progress is not None and index % 4096 == 0:
            self.progress(index)
        self._trusted_at(self.tree.size)
        return True

    def checkpoint(self, name: str, manifest: dict[str, Any], end: int, origin: str) -> None:
        note = self.sink.read(name, MAX_MANIFEST_BYTES)
        if note is None:
            self.bad(None, "MLF-ARC-004", f"checkpoint {name} is missing: nothing anchors entries up to {end}",
                     checkpoint_size=end)
            return
        if hashlib.sha256(note).hexdigest() != manifest["checkpoint"]["sha256"]:
            self.bad(None, "MLF-ARC-004", f"checkpoint {name} does not match the SHA-256 in its manifest "
                     "(replaced)", checkpoint_size=end)
        try:
            cp = open_checkpoint(note, self.verifiers, origin)
        except NoteError as exc:
            self.bad(None, "MLF-ARC-004", f"checkpoint {name} is not validly signed: {exc}", checkpoint_size=end)
            return
        self.report.checkpoints += 1
        if cp.size != end:
            self.bad(None, "MLF-ARC-004", f"checkpoint {name} is signed for size {cp.size}, not {end} (moved)",
                     checkpoint_size=end)
        elif cp.root != self.tree.root():
            self.bad(self.last_good, "MLF-ARC-002", f"the archived entries [{self.last_good}, {end}) do not lead to "
                     f"the root signed in checkpoint {end}: they were rewritten together with their hashes",
                     first_bad=self.last_good, checkpoint_size=end)
        else:
            self.last_good = end


def archive_origin(dest: str, *, s3_client: Any | None = None) -> str:
    """The origin (log identity) the archive's first manifest names: which name a checkpoint key signs under."""
    with _sink(dest, s3_client, writing=False) as sink:
        listing = _list(sink)
        if not listing.manifests:
            raise InputError(f"no mlfort archive at {sink.label} (nothing under {SEGMENTS})")
        start, end = listing.manifests[0]
        base = segment_base(start, end)
        try:
            manifest = _parse_manifest(sink.read(f"{base}.manifest.json", MAX_MANIFEST_BYTES) or b"", start, end)
        except ValueError as exc:
            raise InputError(f"manifest {base}.manifest.json is unreadable: {exc}") from None
        return str(manifest["origin"])


def verify_archive(dest: str, verifiers: Sequence[NoteVerifier], *, s3_client: Any | None = None,
                   trusted: Sequence[str] = (), origin: str | None = None,
                   progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Re-read an archive written by `archive` and check it with nothing but `verifiers` (the checkpoint keys):
    manifests, segment digests, every entry's leaf hash and index, and the Merkle root recomputed from entry 0
    against each segment's signed checkpoint. `trusted` are signed checkpoints kept elsewhere (they catch an
    archive cut short); `origin` pins the log. Problems are findings in the report (MLF-ARC-00x)."""
    started = time.perf_counter()
    with _sink(dest, s3_client, writing=False) as sink:
        listing = _list(sink)
        if not (listing.manifests or listing.segments or listing.checkpoints):
            raise InputError(f"no mlfort archive at {sink.label} (nothing under {SEGMENTS})")
        head = listing.manifests[-1][1] if listing.manifests else 0
        report = VerifyReport(origin=origin or "", size=0, head=head)
        outside: list[Checkpoint] = []
        target = f"archive {sink.label}"
        for note in trusted:
            try:
                outside.append(open_checkpoint(note, list(verifiers), origin))
            except NoteError as exc:
                report.bad(None, _finding("MLF-ARC-004", target, f"the trusted checkpoint does not verify: {exc}"))
        check = _ArchiveCheck(sink, list(verifiers), outside, report, progress)
        expected = 0
        for start, end in listing.manifests:
            base = segment_base(start, end)
            if start != expected:
                check.bad(expected, "MLF-ARC-003", f"entries [{expected}, {start}) are missing from the archive "
                          "(their segment and manifest were deleted)", first_bad=expected)
                break
            try:
                manifest = _parse_manifest(sink.read(f"{base}.manifest.json", MAX_MANIFEST_BYTES) or b"", start, end)
            except (ValueError, StoreError) as exc:
                check.bad(start, "MLF-ARC-005", f"manifest {base}.manifest.json is unreadable: {exc}",
                          first_bad=start)
                break
            if not report.origin:
                report.origin = manifest["origin"]
            elif manifest["origin"] != report.origin:
                check.bad(start, "MLF-ARC-005", f"manifest {base}.manifest.json is for log {manifest['origin']!r}, "
                          f"not {report.origin!r}", first_bad=start)
                break
            if not check.segment(f"{base}.jsonl.gz", manifest, start, end):
                break
            check.checkpoint(f"{base}.checkpoint", manifest, end, report.origin)
            expected = end
        report.size = check.tree.size
        report.root = check.tree.root()
        for cp in check.trusted:
            report.checkpoints += 1
            check.bad(report.size, "MLF-ARC-003", f"a trusted checkpoint covers {cp.size} entries but the archive "
                      f"holds {report.size}: later segments are missing", first_bad=report.size,
                      checkpoint_size=cp.size)
        finished = set(listing.manifests)
        for span in sorted({*listing.segments, *listing.checkpoints} - finished):
            report.findings.append(_finding("MLF-ARC-006", target, f"{segment_base(*span)} has no manifest: an "
                                            "archive run stopped before finishing it (the next run completes it)"))
        if not listing.manifests:
            check.bad(0, "MLF-ARC-003", "the archive holds no finished segment", first_bad=0)
        report.finish()
        report.seconds = time.perf_counter() - started
        return report

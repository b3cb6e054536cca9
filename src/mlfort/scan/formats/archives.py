"""Zip and tar archives (PyTorch checkpoints, TorchScript, `.npz`, `.keras`, `.tar.gz` bundles), read as loaders read
them, not as `zipfile` would like them to be.

The zip reader is our own: `zipfile` gives up on things PyTorch's loader shrugs off (a bad CRC, the encrypted flag
bit on plain data, a local header that disagrees with the central directory), and a scanner that gives up where the
loader does not is a bypass (picklescan CVE-2025-1944 and CVE-2025-1945, modelscan's fail-open iteration). So every
member the central directory names is scanned whatever is odd about it, the oddity is reported (MLF-MOD-012), and
members only a streaming unzipper would see (local entries missing from the central directory) are scanned too.
Members are read through the archive's own stream, in order, and decompressed as streams: never whole in memory,
never extracted to disk. Tar archives are walked the same way; links and devices are reported, never followed.
"""

from __future__ import annotations

import re
import struct
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.formats.compressed import Opener, decoded_member, window_member
from mlfort.scan.rules import finding

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_CENTRAL_FMT = struct.Struct("<4s6H3L5HLL")
_LOCAL_FMT = struct.Struct("<4s5H3L2H")
_EOCD_FMT = struct.Struct("<4s4H2LH")
_EOCD64_FMT = struct.Struct("<4sQ2H2L4Q")

MAX_CENTRAL_DIRECTORY = 256 << 20
"""A central directory larger than this is a limit finding, not a memory spike."""
MAX_GAP_READ = 1 << 20
"""Bytes between members read to look for hidden local entries."""

_METHODS = {0: None, 8: "deflate", 12: "bz2", 14: "zip-lzma"}
"""Compression methods the scanner decodes (PyTorch reads only 0 and 8; zipfile, and so NumPy, reads all four)."""
_METHOD_NAMES = {1: "shrink", 6: "implode", 9: "deflate64", 93: "zstandard", 95: "xz", 98: "ppmd", 99: "AES"}
_STORAGE = re.compile(r"^[^/]+/data/[^/]+$")
_TORCH_LEGACY_TAR = frozenset({"sys_info", "pickle", "storages", "tensors"})
"""Members of torch's pre-1.6 tar checkpoints, each read with pickle.load."""


@dataclass
class _Entry:
    """One zip member as the central directory (or a hidden local header) describes it."""

    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    header: int
    """Absolute offset of the local header."""
    hidden: bool = False
    """Found in a gap between members, not in the central directory."""
    data: int = -1
    """Absolute offset of the data (after the local header); -1 when the local header is unusable."""
    local_name: bytes = b""
    anomalies: list[str] = field(default_factory=list)


def _decode_name(raw: bytes, flags: int) -> str:
    # zipfile's rule: UTF-8 when flag bit 11 says so, else code page 437
    return raw.decode("utf-8", "replace") if flags & 0x800 else raw.decode("cp437")


def _name_anomalies(raw: bytes, name: str) -> list[str]:
    out = []
    if b"\x00" in raw:
        out.append("the name holds a NUL byte (zipfile cuts the name there, other readers do not)")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        out.append("absolute name")
    if ".." in re.split(r"[/\\]", name):
        out.append("the name climbs out of the archive (`..`)")
    if "\\" in name:
        out.append("backslashes in the name")
    if any(ord(c) < 32 for c in name.replace("\x00", "")):
        out.append("control characters in the name")
    return out


def _find_eocd(stream: BinaryIO, size: int) -> tuple[int, tuple[int, ...]] | None:
    """The last end-of-central-directory record (where zipfile and miniz look): (offset, fields)."""
    tail_len = min(size, _EOCD_FMT.size + 0xFFFF)
    stream.seek(size - tail_len)
    tail = stream.read(tail_len)
    i = tail.rfind(_EOCD)
    while i >= 0:
        if len(tail) - i >= _EOCD_FMT.size:
            return size - tail_len + i, _EOCD_FMT.unpack_from(tail, i)
        i = tail.rfind(_EOCD, 0, i)
    return None


def _zip64_extra(extra: bytes, usize: int, csize: int, header: int) -> tuple[int, int, int]:
    """Replace 0xFFFFFFFF sizes and offset with their ZIP64 extra-field values (in the order the spec gives)."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, ln = struct.unpack_from("<2H", extra, pos)
        body = extra[pos + 4 : pos + 4 + ln]
        if tag == 1:
            values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if header == 0xFFFFFFFF and values:
                header = values.pop(0)
            break
        pos += 4 + ln
    return usize, csize, header


def _central_entries(member: Member, stream: BinaryIO, ctx: ScanContext, size: int) -> tuple[list[_Entry], int] | None:
    """The central directory's entries and where the central directory starts, or None (reported)."""
    found = _find_eocd(stream, size)
    if found is None:
        return None
    eocd_at, (_, disk, cd_disk, _, count, cd_size, cd_offset, comment_len) = found
    records_start = eocd_at
    if eocd_at >= 20 + _EOCD64_FMT.size:
        stream.seek(eocd_at - 20)
        if stream.read(4) == _EOCD64_LOCATOR:
            stream.seek(eocd_at - 20 - _EOCD64_FMT.size)
            rec = stream.read(_EOCD64_FMT.size)
            if rec[:4] == _EOCD64:
                (_, _, _, _, disk, cd_disk, _, count, cd_size, cd_offset) = _EOCD64_FMT.unpack(rec)
                records_start = eocd_at - 20 - _EOCD64_FMT.size
            else:
                _anomaly(ctx, member, "a ZIP64 locator points at no ZIP64 end record")
    if disk or cd_disk:
        _anomaly(ctx, member, "claims to span several disks (zipfile refuses such archives; others read them)")
    # Like zipfile: bytes in front of the archive shift every offset by the same amount.
    shift = records_start - cd_size - cd_offset
    if shift < 0:
        ctx.add(finding("MLF-MOD-003", member.path, "zip central directory points past its own end record; "
                        "not a readable zip"))
        return None
    if shift:
        _anomaly(ctx, member, f"{shift} bytes precede the zip archive (junk, a second file, or another archive)",
                 prefix_bytes=shift)
    end = eocd_at + _EOCD_FMT.size + comment_len
    if end != size:
        _anomaly(ctx, member, f"the end record's comment length disagrees with the file ({size - end:+d} bytes)")
    if cd_size > MAX_CENTRAL_DIRECTORY:
        ctx.add(finding("MLF-MOD-004", member.path, f"zip central directory of {cd_size} bytes is larger than the "
                        "scanner reads; not scanned", limit="central-directory"))
        return None
    cd_start = shift + cd_offset
    stream.seek(cd_start)
    cd = stream.read(cd_size)
    entries: list[_Entry] = []
    pos = 0
    while pos + _CENTRAL_FMT.size <= len(cd):
        if cd[pos : pos + 4] != _CENTRAL:
            ctx.add(finding("MLF-MOD-003", member.path, f"zip central directory is corrupt after {len(entries)} "
                            "entries; the rest were not scanned"))
            break
        (_, _, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _, _, header) = \
            _CENTRAL_FMT.unpack_from(cd, pos)
        raw = cd[pos + 46 : pos + 46 + nlen]
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
        pos += 46 + nlen + elen + clen
        usize, csize, header = _zip64_extra(extra, usize, csize, header)
        entries.append(_Entry(_decode_name(raw, flags), raw, flags, method, crc, csize, usize, shift + header))
    if len(entries) != count:
        _anomaly(ctx, member, f"the end record counts {count} entries, the central directory holds {len(entries)}")
    return entries, cd_start


def _anomaly(ctx: ScanContext, member: Member, message: str, **evidence: object) -> None:
    ctx.add(finding("MLF-MOD-012", member.path, message, **evidence))


def _read_local(stream: BinaryIO, entry: _Entry, size: int) -> None:
    """Check the local header against the central directory and find where the data starts."""
    stream.seek(entry.header)
    raw = stream.read(_LOCAL_FMT.size)
    if len(raw) < _LOCAL_FMT.size or raw[:4] != _LOCAL:
        entry.anomalies.append("no local header where the central directory points (loaders fail on it)")
        return
    (_, _, flags, method, _, _, crc, csize, usize, nlen, elen) = _LOCAL_FMT.unpack(raw)
    entry.local_name = stream.read(nlen)
    entry.data = entry.header + _LOCAL_FMT.size + nlen + elen
    if entry.hidden:
        return
    if entry.local_name != entry.raw_name:
        entry.anomalies.append(f"the local header names it {entry.local_name!r} (zipfile refuses; PyTorch uses the "
                               "central directory)")
    if method != entry.method:
        entry.anomalies.append(f"the local header says compression method {method}, the central directory "
                               f"{entry.method}")
    if (flags ^ entry.flags) & ~0x8:
        entry.anomalies.append(f"general-purpose flags differ between the local header ({flags:#06x}) and the "
                               f"central directory ({entry.flags:#06x})")
    if not flags & 0x8 and (csize, usize) != (0xFFFFFFFF, 0xFFFFFFFF) and (crc, csize, usize) != (
            entry.crc, entry.csize & 0xFFFFFFFF, entry.usize & 0xFFFFFFFF):
        entry.anomalies.append("CRC or sizes differ between the local header and the central directory")
    if entry.data + entry.csize > size:
        entry.anomalies.append("its data runs past the end of the file")


def _hidden_entries(member: Member, ctx: ScanContext, stream: BinaryIO, entries: list[_Entry], cd_start: int,
                    first: int) -> list[_Entry]:
    """Local entries in the gaps between members: stream readers see them, the central directory hides them."""
    spans = sorted((e.header, max(e.data, e.header) + e.csize) for e in entries if e.data >= 0)
    gaps: list[tuple[int, int]] = []
    cursor = first
    for start, end in spans:
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cd_start > cursor:
        gaps.append((cursor, cd_start))
    hidden: list[_Entry] = []
    for start, end in gaps:
        stream.seek(start)
        gap = stream.read(min(end - start, MAX_GAP_READ))
        at = gap.find(_LOCAL)
        if at < 0 and start > first and end - start > 24:  # more than a data descriptor
            _anomaly(ctx, member, f"{end - start} bytes between members at offset {start} belong to no member",
                     offset=start)
        elif end - start > MAX_GAP_READ:
            _anomaly(ctx, member, f"{end - start} bytes at offset {start} belong to no member; only the first "
                     f"{MAX_GAP_READ} were searched for hidden entries", offset=start)
        while at >= 0 and at + _LOCAL_FMT.size <= len(gap):
            (_, _, flags, method, _, _, crc, csize, usize, nlen, _) = _LOCAL_FMT.unpack_from(gap, at)
            raw = gap[at + _LOCAL_FMT.size : at + _LOCAL_FMT.size + nlen]
            e = _Entry(_decode_name(raw, flags), raw, flags, method, crc, csize, usize, start + at, hidden=True)
            _read_local(stream, e, cd_start)
            hidden.append(e)
            at = gap.find(_LOCAL, at + 4)
    return hidden


def _torch_layout(names: list[str]) -> tuple[set[str], bool]:
    """Top folders that hold a PyTorch checkpoint (`<top>/data.pkl`), and whether any holds TorchScript code."""
    tops = {n.split("/", 1)[0] for n in names if n.count("/") == 1 and n.endswith(("/data.pkl", "/constants.pkl"))}
    script = any(n.split("/", 1)[0] in tops and (n.split("/", 2)[1:2] == ["code"] or n.endswith("/constants.pkl"))
                 for n in names)
    return tops, script


def _scan_zip(member: Member, stream: BinaryIO, ctx: ScanContext, *, appended: bool) -> None:
    size = stream.seek(0, 2)
    listed = _central_entries(member, stream, ctx, size)
    if listed is None:
        if not appended:
            ctx.add(finding("MLF-MOD-003", member.path, "zip archive without a readable central directory "
                            "(truncated?); its local entries were scanned in order"))
            # what a streaming unzipper would still read
            _scan_entries(member, stream, ctx, _hidden_entries(member, ctx, stream, [], size, 0), size)
        return
    entries, cd_start = listed
    for e in entries:
        _read_local(stream, e, size)
    # Look for hidden local entries from the very start, unless the front of the file is another format's content
    # (an appended zip: that content was scanned as what it is, and may hold "PK" by chance).
    first = min((e.header for e in entries), default=cd_start) if appended else 0
    hidden = _hidden_entries(member, ctx, stream, entries, cd_start, first)
    for e in hidden:
        e.anomalies.append("a local entry the central directory does not list (streaming unzippers read it; "
                           "zipfile and PyTorch do not)")
    _check_overlaps(entries)
    _scan_entries(member, stream, ctx, entries + hidden, size)


def _check_overlaps(entries: list[_Entry]) -> None:
    reach = -1
    for e in sorted((e for e in entries if e.data >= 0), key=lambda e: e.header):
        if e.header < reach:
            e.anomalies.append("its bytes overlap another member's (a zip-bomb technique)")
        reach = max(reach, e.data + e.csize)


def _scan_entries(member: Member, stream: BinaryIO, ctx: ScanContext, entries: list[_Entry], size: int) -> None:
    names = [e.name for e in entries]
    tops, script = _torch_layout(names)
    if script:
        code = [n for n in names if "/code/" in n or n.endswith("/constants.pkl")][:10]
        ctx.add(finding("MLF-MOD-002", member.path, "TorchScript archive: torch.jit.load runs the TorchScript code "
                        "it holds; load it only from a trusted source (its pickles were scanned too)",
                        members=code))
    seen: dict[str, int] = {}
    for e in entries:
        e.anomalies[:0] = _name_anomalies(e.raw_name, e.name)
        key = e.name.split("\x00", 1)[0]
        if key in seen and not e.hidden:
            e.anomalies.append("a second member with the same name (readers disagree on which one they load)")
        seen[key] = seen.get(key, 0) + 1
        if e.flags & 0x1:
            e.anomalies.append("the encrypted flag is set (PyTorch ignores it: the data was scanned as plain)")
        if e.flags & 0x2040:
            e.anomalies.append("strong or central-directory encryption flags are set")
        if e.name.endswith("/") and e.csize == 0:
            _report(ctx, member, e)
            continue
        local_name = _decode_name(e.local_name, e.flags)
        if e.data >= 0 and (e.name.split("/", 1)[0] in tops and _STORAGE.match(e.name)
                            and not e.name.endswith(".pkl")):
            # tensor storage: raw numbers with no magic, read by torch as bytes, never unpickled
            ctx.formats["torch-storage"] += 1
            _report(ctx, member, e)
            continue
        if e.data < 0:
            _report(ctx, member, e)
            continue
        if e.method not in _METHODS:
            method = _METHOD_NAMES.get(e.method, str(e.method))
            e.anomalies.append(f"compression method {method} cannot be read by the scanner (nor by PyTorch): "
                               "not scanned")
            _report(ctx, member, e)
            continue
        if e.method not in (0, 8):
            e.anomalies.append(f"compressed with {_METHOD_NAMES.get(e.method, _METHODS[e.method])} (PyTorch reads "
                               "only stored and deflated members; zipfile and NumPy read it)")
        pickle_name = any(n.split("\x00", 1)[0].endswith(".pkl") or n in _TORCH_LEGACY_TAR
                          for n in (e.name, local_name))
        path = f"{member.path}!{e.name}"
        hint = "pickle" if pickle_name else None
        opener: Opener
        kind = _METHODS[e.method]
        if kind is None:
            child, opener = window_member(member, stream, path, e.data, e.csize, hint=hint, drain=True)
        else:
            child, opener = decoded_member(member, stream, ctx, kind, path, offset=e.data, length=e.csize,
                                           hint=hint)
        ctx.scan(child)
        stopped = opener.stopped()
        for why in opener.problems():
            if not stopped:
                ctx.add(finding("MLF-MOD-003", path, f"zip member is damaged: {why}; what could be read was "
                                "scanned"))
        done = opener.complete()
        if done is not None and not e.hidden:
            crc, n = done
            if crc != e.crc:
                e.anomalies.append("CRC-32 mismatch (zipfile refuses the member; PyTorch loads it): scanned anyway")
            if n != e.usize:
                e.anomalies.append(f"{n} bytes, not the {e.usize} the central directory declares")
        _report(ctx, member, e)


def _report(ctx: ScanContext, member: Member, e: _Entry) -> None:
    if e.anomalies:
        ctx.add(finding("MLF-MOD-012", f"{member.path}!{e.name}", "; ".join(e.anomalies), member=e.name,
                        hidden=e.hidden or None))


@handles("zip")
def scan_zip(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """A zip archive: every member scanned by content, pickles by name too, anomalies reported."""
    _scan_zip(member, stream, ctx, appended=False)


@handles("zip-appended")
def scan_appended_zip(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """A zip archive behind some other content (zipfile opens it by its end record): a polyglot file."""
    if member.depth > 0 and member.size is None:
        return  # a decompressed stream: finding its end costs a full decompression, and loaders see a stream
    size = stream.seek(0, 2)
    found = _find_eocd(stream, size) if size >= _EOCD_FMT.size else None
    if found is None:
        return
    eocd_at, (_, _, _, _, count, cd_size, cd_offset, _) = found
    start = eocd_at - cd_size
    if count == 0 or start < 0 or cd_offset > start:
        return
    stream.seek(start)
    if stream.read(4) != _CENTRAL:
        return
    _anomaly(ctx, member, "a zip archive is appended to this file: zipfile-based loaders open it as a zip "
             "(its members were scanned)")
    _scan_zip(member, stream, ctx, appended=True)


@handles("tar")
def scan_tar(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """A tar archive read in order (never extracted): regular members scanned, links and devices reported."""
    try:
        tar = tarfile.open(fileobj=stream, mode="r:", ignore_zeros=True)  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, EOFError) as exc:
        ctx.add(finding("MLF-MOD-003", member.path, f"tar archive cannot be read: {exc}"))
        return
    try:
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, OSError, EOFError) as exc:
                ctx.add(finding("MLF-MOD-003", member.path, f"tar archive is damaged: {exc}; the members before "
                                "it were scanned"))
                return
            if info is None:
                return
            tar.members.clear()  # tarfile keeps every header it has read; a huge archive would pile them up
            _scan_tar_member(member, stream, ctx, info)
    finally:
        tar.close()


def _scan_tar_member(member: Member, stream: BinaryIO, ctx: ScanContext, info: tarfile.TarInfo) -> None:
    path = f"{member.path}!{info.name}"
    anomalies = _name_anomalies(info.name.encode("utf-8", "surrogateescape"), info.name)
    if info.issym() or info.islnk():
        anomalies.append(f"a {'symbolic' if info.issym() else 'hard'} link to {info.linkname!r}: not followed; "
                         "extracting it can expose or overwrite another file")
    elif info.ischr() or info.isblk() or info.isfifo():
        anomalies.append("a device or FIFO entry")
    elif info.issparse():
        anomalies.append("a sparse file (scanned as stored)")
    if anomalies:
        ctx.add(finding("MLF-MOD-012", path, "; ".join(anomalies), member=info.name))
    if not info.isreg():
        return
    base = info.name.rsplit("/", 1)[-1]
    hint = "pickle" if base.endswith(".pkl") or base in _TORCH_LEGACY_TAR else None
    child, opener = window_member(member, stream, path, info.offset_data, info.size, hint=hint)
    ctx.scan(child)
    for why in opener.problems():
        ctx.add(finding("MLF-MOD-003", path, f"tar member is truncated: {why}"))

"""Containers cannot hide a malicious pickle: zips as PyTorch reads them (not as zipfile would like), tar, every
compressor, NumPy files; plus bombs and depth limits, and real benign files that raise nothing above info.

Each hostile file is built here, in the test, from one payload: a pickle that calls os.system when loaded. Nothing
here ever loads it. The bypass classes come from scanner advisories: picklescan CVE-2025-1944 (flag bits) and
CVE-2025-1945 (bad CRC), modelscan's fail-open zip iteration, saferpickle's PK-marker routing, non-standard names.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from mlfort.report import Severity
from mlfort.scan.base import Limits, ScanContext
from mlfort.scan.engine import scan_file


class _Exec:
    """Pickles to a call of os.system: what a malicious model file does. Never loaded here."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


EVIL = pickle.dumps(_Exec(), protocol=2)
BENIGN = pickle.dumps({"w": [1.0, 2.0], "b": 0.5}, protocol=4)


def _scan(path: Path, limits: Limits | None = None) -> ScanContext:
    return scan_file(path, path.parent, limits)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _rules(ctx: ScanContext) -> set[str]:
    return {f.rule_id for f in ctx.findings}


def _caught(ctx: ScanContext, where: str = "") -> bool:
    """The payload was found (MLF-MOD-001), in a member whose display path contains `where`."""
    return any(f.rule_id == "MLF-MOD-001" and where in f.target for f in ctx.findings)


def _anomalies(ctx: ScanContext) -> str:
    return " | ".join(f.message for f in ctx.findings if f.rule_id == "MLF-MOD-012")


def _above_info(ctx: ScanContext) -> list[str]:
    return [f"{f.rule_id} {f.target}: {f.message}" for f in ctx.findings if f.severity.rank > Severity.INFO.rank]


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED, **kw: object) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method, **kw) as z:  # type: ignore[arg-type]
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def _headers(data: bytes) -> list[tuple[str, int, int]]:
    """(name, local header offset, central header offset) of each member."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        out, pos = [], z.start_dir  # type: ignore[attr-defined]
        for info in z.infolist():
            out.append((info.filename, info.header_offset, pos))
            nlen, elen, clen = struct.unpack_from("<3H", data, pos + 28)
            pos += 46 + nlen + elen + clen
    return out


def _patch(data: bytes, name: str, *, flags_or: int = 0, crc_xor: int = 0, local_name: bytes | None = None) -> bytes:
    """Set flag bits / spoil the CRC in both headers of `name`, or rename it in its local header only."""
    out = bytearray(data)
    for n, local, central in _headers(data):
        if n != name:
            continue
        for off, flags_at, crc_at in ((local, 6, 14), (central, 8, 16)):
            (flags,) = struct.unpack_from("<H", out, off + flags_at)
            struct.pack_into("<H", out, off + flags_at, flags | flags_or)
            (crc,) = struct.unpack_from("<L", out, off + crc_at)
            struct.pack_into("<L", out, off + crc_at, crc ^ crc_xor)
        if local_name is not None:
            assert len(local_name) == len(name.encode())
            out[local + 30 : local + 30 + len(local_name)] = local_name
    return bytes(out)


# -- zip: what PyTorch loads, the scanner scans ---------------------------------------------------------------------


def test_a_pickle_in_a_torch_like_zip_is_caught_and_storage_blobs_are_counted_not_reported(tmp_path):
    data = _zip([("archive/data.pkl", EVIL), ("archive/data/0", os.urandom(4096)), ("archive/version", b"3\n"),
                 ("archive/.data/serialization_id", b"1234567890\n")], zipfile.ZIP_STORED)
    ctx = _scan(_write(tmp_path, "model.pt", data))
    assert _caught(ctx, "model.pt!archive/data.pkl")
    assert ctx.formats["torch-storage"] == 1
    assert "MLF-MOD-005" not in _rules(ctx)


def test_any_top_folder_and_any_pickle_name_is_scanned(tmp_path):
    """picklescan GHSA-769v-p64c-89pr: pickles with non-standard names inside a PyTorch zip were skipped."""
    data = _zip([("my_model/data.pkl", BENIGN), ("my_model/extra/weights.bin", EVIL), ("my_model/version", b"3")],
                zipfile.ZIP_DEFLATED)
    ctx = _scan(_write(tmp_path, "model.bin", data))
    assert _caught(ctx, "my_model/extra/weights.bin")


def test_a_broken_crc_does_not_hide_the_pickle(tmp_path):
    """picklescan CVE-2025-1945: zipfile raises on a bad CRC, PyTorch does not check it."""
    data = _patch(_zip([("archive/data.pkl", EVIL)], zipfile.ZIP_DEFLATED), "archive/data.pkl", crc_xor=0xDEADBEEF)
    ctx = _scan(_write(tmp_path, "model.pt", data))
    assert _caught(ctx, "archive/data.pkl")
    assert "CRC-32 mismatch" in _anomalies(ctx)


@pytest.mark.parametrize("bits", [0x0001, 0x0040, 0x2000, 0x0001 | 0x0002 | 0x0004 | 0x0010 | 0x0020])
def test_odd_flag_bits_do_not_hide_the_pickle(tmp_path, bits):
    """picklescan CVE-2025-1944: the encrypted bit on plain data made zipfile refuse what PyTorch reads."""
    data = _patch(_zip([("archive/data.pkl", EVIL)], zipfile.ZIP_STORED), "archive/data.pkl", flags_or=bits)
    ctx = _scan(_write(tmp_path, "model.pt", data))
    assert _caught(ctx, "archive/data.pkl")
    if bits & 0x0041:
        assert "encrypt" in _anomalies(ctx)


def test_a_local_header_that_names_another_file_is_reported_and_scanned(tmp_path):
    data = _patch(_zip([("archive/data.pkl", EVIL)]), "archive/data.pkl", local_name=b"archive/data.txt")
    ctx = _scan(_write(tmp_path, "model.pt", data))
    assert _caught(ctx, "archive/data.pkl")
    assert "local header names it" in _anomalies(ctx)


def test_a_damaged_entry_before_data_pkl_does_not_stop_the_scan(tmp_path):
    """modelscan #354: one unreadable entry ended the iteration, and data.pkl behind it went unscanned."""
    data = bytearray(_zip([("archive/bad", b"x" * 100), ("archive/data.pkl", EVIL)]))
    (_, local, _), _ = _headers(bytes(data))
    data[local : local + 4] = b"XXXX"  # the first member's local header is gone
    ctx = _scan(_write(tmp_path, "model.pt", bytes(data)))
    assert _caught(ctx, "archive/data.pkl")
    assert "no local header" in _anomalies(ctx)


def test_duplicate_names_are_reported_and_both_copies_scanned(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is told to write
        data = _zip([("archive/data.pkl", BENIGN), ("archive/data.pkl", EVIL)])
    ctx = _scan(_write(tmp_path, "model.pt", data))
    assert _caught(ctx, "archive/data.pkl")
    assert "same name" in _anomalies(ctx)


@pytest.mark.parametrize(("name", "says"), [("../../evil.pkl", "climbs out"), ("/etc/evil.pkl", "absolute"),
                                            ("dir\\evil.pkl", "backslashes"), ("C:/evil.pkl", "absolute")])
def test_unsafe_member_names_are_reported_and_still_scanned(tmp_path, name, says):
    ctx = _scan(_write(tmp_path, "model.zip", _zip([(name, EVIL)])))
    assert _caught(ctx)
    assert says in _anomalies(ctx)


def test_a_nul_in_a_member_name_is_reported(tmp_path):
    data = _zip([("archive/data.pkl.txt", EVIL)])
    data = data.replace(b"archive/data.pkl.txt", b"archive/data.pkl\x00txt")
    ctx = _scan(_write(tmp_path, "model.pt", data))
    assert _caught(ctx)
    assert "NUL" in _anomalies(ctx)


@pytest.mark.parametrize("junk", [b"\x00" * 100, b"just some text in front\n" * 5, BENIGN, os.urandom(3000)])
def test_a_zip_behind_junk_or_another_file_is_found(tmp_path, junk):
    """zipfile opens a zip appended to anything (it reads the end record): a polyglot must not hide the zip."""
    ctx = _scan(_write(tmp_path, "model.bin", junk + _zip([("archive/data.pkl", EVIL)], zipfile.ZIP_DEFLATED)))
    assert _caught(ctx, "archive/data.pkl")
    assert "appended" in _anomalies(ctx) or "precede" in _anomalies(ctx)


@pytest.mark.parametrize("marker", [b"PK\x07\x08", b"PK\x05\x06"])
def test_a_zip_that_starts_with_another_pk_signature_is_scanned(tmp_path, marker):
    """saferpickle #46: only `PK\\x03\\x04` was routed to the zip scanner; zipfile also opens these."""
    ctx = _scan(_write(tmp_path, "model.pt", marker + _zip([("archive/data.pkl", EVIL)])))
    assert _caught(ctx, "archive/data.pkl")


def test_a_zip_with_a_comment_is_scanned(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", EVIL)
        z.comment = b"PK\x01\x02 a comment that looks like structure " * 20
    ctx = _scan(_write(tmp_path, "model.pt", buf.getvalue()))
    assert _caught(ctx, "archive/data.pkl")


def test_zip64_records_are_read(tmp_path, monkeypatch):
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)  # forces the ZIP64 end records with two members
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/version", "w", force_zip64=True) as f:
            f.write(b"3")
        with z.open("archive/data.pkl", "w", force_zip64=True) as f:
            f.write(EVIL)
    data = buf.getvalue()
    assert b"PK\x06\x06" in data
    ctx = _scan(_write(tmp_path, "model.pt", data))
    assert _caught(ctx, "archive/data.pkl")
    assert not _anomalies(ctx)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_members_compressed_with_bzip2_or_lzma_are_scanned_and_reported(tmp_path, method):
    """PyTorch reads only stored and deflated members, but zipfile (and so np.load) reads these."""
    ctx = _scan(_write(tmp_path, "arrays.npz", _zip([("x.pkl", EVIL)], method)))
    assert _caught(ctx, "x.pkl")
    assert "PyTorch reads only" in _anomalies(ctx)


def test_a_member_with_an_unreadable_compression_method_is_reported(tmp_path):
    data = bytearray(_zip([("archive/data.pkl", EVIL)]))
    for _, local, central in _headers(bytes(data)):
        struct.pack_into("<H", data, local + 8, 9)  # deflate64
        struct.pack_into("<H", data, central + 10, 9)
    ctx = _scan(_write(tmp_path, "model.pt", bytes(data)))
    assert "deflate64" in _anomalies(ctx) and "not scanned" in _anomalies(ctx)


def test_a_local_entry_missing_from_the_central_directory_is_scanned(tmp_path):
    """Streaming unzippers read local headers in order: an entry the central directory hides is still read."""
    hidden = _zip([("hidden.pkl", EVIL)])
    ((_, _, cd_at),) = _headers(hidden)
    local_part = hidden[:cd_at]  # the hidden entry's local header and data, without its central directory
    data = local_part + _shifted(_zip([("archive/version", b"3")]), len(local_part))
    ctx = _scan(_write(tmp_path, "model.zip", data))
    assert _caught(ctx, "hidden.pkl")
    assert "does not list" in _anomalies(ctx)


def _shifted(data: bytes, by: int) -> bytes:
    """A zip whose recorded offsets are moved on by `by` bytes (so it can sit behind other bytes, offsets intact)."""
    out = bytearray(data)
    heads = _headers(data)
    for _, _, central in heads:
        (off,) = struct.unpack_from("<L", out, central + 42)
        struct.pack_into("<L", out, central + 42, off + by)
    eocd = data.rfind(b"PK\x05\x06")
    (cd_off,) = struct.unpack_from("<L", out, eocd + 16)
    struct.pack_into("<L", out, eocd + 16, cd_off + by)
    return bytes(out)


def test_a_zip_nested_three_levels_deep_is_scanned(tmp_path):
    inner = _zip([("archive/data.pkl", EVIL)], zipfile.ZIP_DEFLATED)
    middle = _zip([("inner.zip", inner)], zipfile.ZIP_DEFLATED)
    outer = _zip([("middle.bin", middle)], zipfile.ZIP_STORED)
    ctx = _scan(_write(tmp_path, "bundle.zip", outer))
    assert _caught(ctx, "bundle.zip!middle.bin!inner.zip!archive/data.pkl")


def test_nesting_past_the_depth_limit_is_a_finding(tmp_path):
    data = EVIL
    for i in range(5):
        data = _zip([(f"level{i}.zip", data)])
    ctx = _scan(_write(tmp_path, "deep.zip", data), Limits(max_depth=3))
    assert any(f.rule_id == "MLF-MOD-004" and f.evidence.get("limit") == "depth" for f in ctx.findings)


def test_a_torchscript_archive_is_high_and_its_pickles_are_scanned(tmp_path):
    data = _zip([("m/data.pkl", BENIGN), ("m/constants.pkl", EVIL), ("m/code/__torch__.py", b"def forward(x):\n"),
                 ("m/version", b"3")])
    ctx = _scan(_write(tmp_path, "scripted.pt", data))
    assert "MLF-MOD-002" in _rules(ctx)
    assert _caught(ctx, "m/constants.pkl")


# -- zip bombs --------------------------------------------------------------------------------------------------------


def _deflate_of_zeros(total: int, chunk: int = 1 << 20) -> bytes:
    """A raw deflate stream of `total` zero bytes, built without compressing them all: after a full flush the
    compressor's output for the next identical chunk repeats, so one block is copied."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(b"\0" * chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(b"\0" * chunk) + c.flush(zlib.Z_FULL_FLUSH)
    n = total // chunk
    return first + again * (n - 1) + c.flush()


def _gzip_of_zeros(total: int) -> bytes:
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + _deflate_of_zeros(total) + struct.pack("<LL", 0, total & 0xFFFFFFFF)


def test_a_gigabyte_deflate_bomb_stops_at_the_expansion_limit(tmp_path):
    bomb = _gzip_of_zeros(1 << 30)
    assert len(bomb) < 2 << 20
    ctx = _scan(_write(tmp_path, "weights.gz", bomb), Limits(max_expanded_bytes=64 << 20))
    assert any(f.rule_id == "MLF-MOD-004" and f.evidence.get("limit") == "expanded" for f in ctx.findings)
    assert ctx.expanded_bytes < 80 << 20


def test_a_nested_zip_bomb_stops_at_the_expansion_limit(tmp_path):
    """42.zip in small: 8 copies per level, 3 levels, 16 MiB of zeros at the bottom: 8 GiB if fully expanded."""
    level = _zip([("zeros.bin", b"\0" * (16 << 20))], zipfile.ZIP_DEFLATED)
    for depth in range(3):
        level = _zip([(f"{depth}-{i}.zip", level) for i in range(8)], zipfile.ZIP_DEFLATED)
    ctx = _scan(_write(tmp_path, "42.zip", level), Limits(max_expanded_bytes=256 << 20))
    assert any(f.rule_id == "MLF-MOD-004" and f.evidence.get("limit") == "expanded" for f in ctx.findings)


def test_overlapping_members_are_reported(tmp_path):
    """Fifield's non-recursive bomb: many central entries pointing into the same bytes."""
    data = bytearray(_zip([("a.bin", b"\0" * 1000), ("b.bin", b"\0" * 1000)]))
    heads = _headers(bytes(data))
    struct.pack_into("<L", data, heads[1][2] + 42, heads[0][1])  # b's central entry points at a's local header
    ctx = _scan(_write(tmp_path, "overlap.zip", bytes(data)))
    assert "overlap" in _anomalies(ctx)


# -- compressed streams and tar ------------------------------------------------------------------------------------

_COMPRESSORS = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
}


@pytest.mark.parametrize("fmt", sorted(_COMPRESSORS))
def test_a_compressed_pickle_is_decompressed_and_caught(tmp_path, fmt):
    ctx = _scan(_write(tmp_path, "model.bin", _COMPRESSORS[fmt](EVIL)))
    assert ctx.formats[fmt] == 1
    assert _caught(ctx, f"model.bin!{fmt}")


@pytest.mark.parametrize("fmt", ["gzip", "xz", "bz2"])
def test_a_truncated_stream_is_reported_and_what_decompressed_is_scanned(tmp_path, fmt):
    data = _COMPRESSORS[fmt](EVIL + os.urandom(2_000_000))  # bz2 decodes whole 900 kB blocks only
    ctx = _scan(_write(tmp_path, "model.bin", data[: len(data) * 3 // 4]))
    assert _caught(ctx)
    assert any(f.rule_id == "MLF-MOD-003" and "truncated" in f.message for f in ctx.findings)


@pytest.mark.parametrize("compress", ["zlib", "gzip", "bz2", "lzma", "xz"])
def test_joblib_files_are_scanned_with_every_compressor(tmp_path, compress):
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump({"model": _Exec()}, path, compress=(compress, 3))
    assert _caught(_scan(path))


def test_joblibs_old_zfile_format_is_scanned(tmp_path):
    data = b"ZF" + hex(len(EVIL)).encode().ljust(19) + zlib.compress(EVIL)
    assert _caught(_scan(_write(tmp_path, "old.pkl", data)))


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
def test_a_tar_holding_a_pickle_is_scanned(tmp_path, mode):
    path = tmp_path / "bundle.tar"
    with tarfile.open(path, mode) as tar:
        for name, data in (("README", b"hello\n"), ("model/weights.pkl", EVIL)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _caught(_scan(path), "model/weights.pkl")


def test_a_torch_legacy_tar_checkpoint_is_scanned(tmp_path):
    path = tmp_path / "old.pth.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (("sys_info", BENIGN), ("pickle", EVIL)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _caught(_scan(path), "!pickle")


def test_links_devices_and_escaping_names_in_a_tar_are_reported_not_followed(tmp_path):
    path = tmp_path / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        link = tarfile.TarInfo("model.pkl")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        dev = tarfile.TarInfo("dev")
        dev.type = tarfile.CHRTYPE
        tar.addfile(dev)
        info = tarfile.TarInfo("../../outside.pkl")
        info.size = len(EVIL)
        tar.addfile(info, io.BytesIO(EVIL))
    ctx = _scan(path)
    text = _anomalies(ctx)
    assert "symbolic link" in text and "device" in text and "climbs out" in text
    assert _caught(ctx, "outside.pkl")


@pytest.mark.parametrize("magic", [b"7z\xbc\xaf\x27\x1c\x00\x04", b"\x04\x22\x4d\x18\x64\x40\xa7\x00"])
def test_containers_that_cannot_be_opened_say_so(tmp_path, magic):
    ctx = _scan(_write(tmp_path, "model.7z", magic + os.urandom(100)))
    assert any(f.rule_id == "MLF-MOD-004" and "cannot be scanned" in f.message for f in ctx.findings)


# -- NumPy ---------------------------------------------------------------------------------------------------------


def test_a_numpy_object_array_is_reported_and_its_pickle_scanned(tmp_path):
    path = tmp_path / "arr.npy"
    np.save(path, np.array([_Exec(), 1], dtype=object), allow_pickle=True)
    ctx = _scan(path)
    assert "MLF-MOD-006" in _rules(ctx)
    assert _caught(ctx, "arr.npy!pickle")


def test_a_structured_dtype_with_an_object_field_is_an_object_array(tmp_path):
    path = tmp_path / "rec.npy"
    arr = np.zeros(2, dtype=[("x", "<f4"), ("o", "O")])
    arr["o"][0] = _Exec()
    np.save(path, arr, allow_pickle=True)
    ctx = _scan(path)
    assert "MLF-MOD-006" in _rules(ctx) and _caught(ctx)


def test_an_npz_holding_an_object_array_is_caught(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez_compressed(path, weights=np.ones(3), evil=np.array([_Exec()], dtype=object))
    ctx = _scan(path)
    assert "MLF-MOD-006" in _rules(ctx)
    assert _caught(ctx, "arrays.npz!evil.npy")


@pytest.mark.parametrize("header", [b"{'descr': '<f8', 'shape': (2,)}", b"__import__('os').system('id')",
                                    b"{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}", b"\xff" * 40])
def test_a_malformed_numpy_header_is_reported(tmp_path, header):
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    ctx = _scan(_write(tmp_path, "bad.npy", data))
    assert "MLF-MOD-003" in _rules(ctx)


def test_bytes_behind_a_numpy_array_are_reported_and_scanned(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype="<i8"))
    ctx = _scan(_write(tmp_path, "arr.npy", buf.getvalue() + EVIL))
    assert "MLF-MOD-011" in _rules(ctx)
    assert _caught(ctx)


# -- real benign files raise nothing above info ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i2", "|u1", "|b1", "<c16", "<U5", "|S3", "<M8[ns]",
                                   [("a", "<i4"), ("b", "<f8", (2,))]])
def test_benign_numpy_files_raise_nothing_above_info(tmp_path, dtype):
    arr = np.zeros((3, 2), dtype=dtype)
    np.save(tmp_path / "a.npy", arr)
    np.savez(tmp_path / "b.npz", x=arr, y=np.arange(5))
    np.savez_compressed(tmp_path / "c.npz", x=arr)
    for name in ("a.npy", "b.npz", "c.npz"):
        ctx = _scan(tmp_path / name)
        assert not _above_info(ctx), (name, _above_info(ctx))
        assert ctx.formats["numpy"] >= 1


@pytest.mark.parametrize("compress", [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)])
def test_a_joblib_sklearn_model_with_every_compression_raises_nothing_above_info(tmp_path, compress):
    import joblib
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
    path = tmp_path / "model.joblib"
    joblib.dump(model, path, compress=compress)
    ctx = _scan(path)
    assert not _above_info(ctx), _above_info(ctx)


try:
    import torch
except ImportError:  # torch is optional: the real-file checks run where it is installed
    torch = None


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_a_real_torch_save_raises_nothing_above_info(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state": torch.nn.Linear(3, 2).state_dict(), "step": 7}, path)
    ctx = _scan(path)
    assert not _above_info(ctx), _above_info(ctx)
    assert ctx.formats["torch-storage"] == 2 and ctx.formats["pickle"] == 1


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_a_real_torchscript_archive_is_reported_as_code(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), str(path))
    ctx = _scan(path)
    assert any(f.rule_id == "MLF-MOD-002" and f.target == str(path) and "TorchScript" in f.message
               for f in ctx.findings)
    assert ctx.formats["pickle"] == 3  # data.pkl, constants.pkl and the code's debug pickle all reached the analyzer

"""`archive` and `verify_archive`: the log copied to write-once storage in segments the archive alone proves."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlfort.errors import InputError
from mlfort.ledger import Event, Ledger, LedgerError, StoreError, open_ledger
from mlfort.ledger import archive as archive_mod
from mlfort.ledger.archive import archive, verify_archive
from mlfort.ledger.note import NoteSigner, open_checkpoint


def _append(led: Ledger, batches: int, size: int = 3, prefix: str = "u") -> None:
    """`batches` appends of `size` events; each append signs a checkpoint (as every mlfort action does)."""
    for b in range(batches):
        led.append([Event("artifacts.sign", f"user:{prefix}{b}", f"model:m{b}-{i}") for i in range(size)])


def _files(dest: Path) -> list[str]:
    return sorted(os.listdir(dest / "segments"))


def _lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _rules(report) -> list[str]:
    return [f.rule_id for f in report.findings]


def _rewrite(path: Path, lines: list[dict]) -> None:
    """What an attacker with write access to the directory does: make the file writable and replace it."""
    os.chmod(path, 0o644)
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(json.dumps(obj).encode() + b"\n" for obj in lines))


@pytest.fixture
def led() -> Ledger:
    with open_ledger() as ledger:
        yield ledger


# -- a local directory ----------------------------------------------------------------------------------------------

def test_archive_writes_segment_checkpoint_and_manifest_read_only(led, tmp_path):
    _append(led, 4)
    dest = tmp_path / "worm"
    result = archive(led, str(dest), retain_days=30)
    assert (result.start, result.end, result.entries, result.pending) == (0, 12, 12, 0)
    base = "00000000000000000000-00000000000000000012"
    assert _files(dest) == [f"{base}.checkpoint", f"{base}.jsonl.gz", f"{base}.manifest.json"]
    assert result.segments == (f"segments/{base}.jsonl.gz",)
    for name in _files(dest):
        assert stat.S_IMODE((dest / "segments" / name).stat().st_mode) == 0o444
    # the segment holds the exact stored bytes, their index and leaf hash
    stored = list(led.store.entries())
    lines = _lines(dest / "segments" / f"{base}.jsonl.gz")
    assert [(x["index"], bytes.fromhex(x["leaf_hash"]), x["entry"].encode()) for x in lines] == stored
    # the checkpoint is the ledger's signed checkpoint at the segment's end
    note = (dest / "segments" / f"{base}.checkpoint").read_text()
    cp = open_checkpoint(note, led.verifiers, led.origin)
    assert (cp.size, cp.root) == (12, led.root(12))
    manifest = json.loads((dest / "segments" / f"{base}.manifest.json").read_text())
    seg_bytes = (dest / "segments" / f"{base}.jsonl.gz").read_bytes()
    assert manifest["segment"]["sha256"] == hashlib.sha256(seg_bytes).hexdigest()
    assert manifest["segment"]["bytes"] == len(seg_bytes) == result.bytes_written
    assert manifest["checkpoint"]["sha256"] == hashlib.sha256(note.encode()).hexdigest()
    assert (manifest["origin"], manifest["start"], manifest["end"]) == (led.origin, 0, 12)
    assert manifest["checkpoint"]["root"] == led.root(12).hex() and manifest["object_lock"] is None
    retain = dt.datetime.fromisoformat(manifest["retain_until"])
    assert abs(retain - (dt.datetime.now(dt.UTC) + dt.timedelta(days=30))) < dt.timedelta(minutes=5)
    assert "read-only files" in str(result) and "[0, 12)" in str(result)


def test_a_second_run_writes_only_new_entries_and_a_third_nothing(led, tmp_path):
    dest = tmp_path / "worm"
    _append(led, 2)
    first = archive(led, str(dest))
    before = {n: (dest / "segments" / n).stat().st_ino for n in _files(dest)}
    _append(led, 3, prefix="v")
    second = archive(led, str(dest))
    assert (second.start, second.end, second.entries) == (6, 15, 9)
    assert second.segments == ("segments/00000000000000000006-00000000000000000015.jsonl.gz",)
    assert {n: (dest / "segments" / n).stat().st_ino for n in before} == before  # untouched
    third = archive(led, str(dest))
    assert (third.segments, third.entries, third.end) == ((), 0, 15) and "nothing new" in str(third)
    assert len(_files(dest)) == 6
    assert first.end == 6
    report = verify_archive(str(dest), led.verifiers)
    assert report.ok and (report.size, report.head, report.checkpoints) == (15, 15, 2)


def test_entries_after_the_newest_checkpoint_wait_for_the_next_run(led, tmp_path):
    _append(led, 2)
    led.append([Event("artifacts.verify", "user:late", "model:m")], checkpoint=False)
    result = archive(led, str(tmp_path / "worm"))
    assert (result.end, result.pending) == (6, 1) and "1 newer entry waits" in str(result)


def test_segments_end_on_checkpoints_near_the_target_size(led, tmp_path, monkeypatch):
    monkeypatch.setattr(archive_mod, "SEGMENT_ENTRIES", 10)
    _append(led, 7, size=5)  # checkpoints at 5, 10, ..., 35
    led.append([Event("bulk.load", "user:x", f"r:{i}") for i in range(25)])  # one checkpoint 25 entries later
    result = archive(led, str(tmp_path / "worm"))
    spans = [tuple(int(x) for x in s.split("/")[1].split(".")[0].split("-")) for s in result.segments]
    assert spans == [(0, 10), (10, 20), (20, 30), (30, 35), (35, 60)]
    assert verify_archive(str(tmp_path / "worm"), led.verifiers).ok


def test_progress_is_reported_by_entry_index(led, tmp_path):
    led.append([Event("bulk.load", "user:x", f"r:{i}") for i in range(5000)])
    seen: list[int] = []
    archive(led, str(tmp_path / "worm"), progress=seen.append)
    assert seen == [0, 4096]


def test_an_empty_ledger_archives_nothing(led, tmp_path):
    result = archive(led, str(tmp_path / "worm"))
    assert (result.end, result.segments) == (0, ())


def test_retain_days_must_be_sensible(led, tmp_path):
    for bad in (0, -1, 1.5, True, 40000):
        with pytest.raises(InputError, match="retain_days"):
            archive(led, str(tmp_path / "worm"), retain_days=bad)


def test_an_archive_of_another_ledger_is_refused(led, tmp_path):
    _append(led, 1)
    archive(led, str(tmp_path / "worm"))
    with open_ledger(f"sqlite:///{tmp_path / 'other.db'}") as other:
        _append(other, 1)
        with pytest.raises(InputError, match="holds the archive of log"):
            archive(other, str(tmp_path / "worm"))


def _tamper_db(home: Path, sql: str) -> None:
    db = sqlite3.connect(home / "ledger.db")
    for trigger in ("entries_no_update", "nodes_no_update"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute(sql)
    db.commit()
    db.close()


def test_an_edited_entry_is_never_archived(led, tmp_path, mlfort_home):
    _append(led, 2)
    _tamper_db(mlfort_home, "UPDATE entries SET body = replace(body, 'user:u1', 'user:zz') WHERE idx = 4")
    dest = tmp_path / "worm"
    with pytest.raises(LedgerError, match="entry 4 no longer matches its leaf hash"):
        archive(led, str(dest))
    assert [n for n in _files(dest) if not n.startswith(".")] == []


def test_entries_rewritten_with_their_leaf_hashes_are_never_archived(led, tmp_path, mlfort_home):
    _append(led, 2)
    body = next(b for i, _, b in led.store.entries(4, 5)).replace(b"user:u1", b"user:zz")
    leaf = hashlib.sha256(b"\x00" + body).hexdigest()
    _tamper_db(mlfort_home, f"UPDATE entries SET body = x'{body.hex()}', leaf = x'{leaf}' WHERE idx = 4")
    with pytest.raises(LedgerError, match=r"entries \[0, 6\) do not lead to the root signed"):
        archive(led, str(tmp_path / "worm"))


def test_a_ledger_rewritten_since_the_last_archive_is_refused(led, tmp_path, mlfort_home):
    _append(led, 2)
    dest = tmp_path / "worm"
    archive(led, str(dest))
    _append(led, 1, prefix="v")
    # rewrite the archived part of the tree: node (level 1, index 2) over entries 4-5 is in the frontier at 6
    _tamper_db(mlfort_home, "UPDATE nodes SET hash = zeroblob(32) WHERE id = (1 << 48) + 2")
    with pytest.raises(LedgerError, match="no longer match the signed checkpoint archived"):
        archive(led, str(dest))


def test_a_crashed_run_is_completed_by_the_next(led, tmp_path, monkeypatch):
    dest = tmp_path / "worm"
    _append(led, 2)
    real_put_bytes = archive_mod._DirSink.put_bytes

    def crash_before_manifest(self, name, data, retain_until):
        if name.endswith(".manifest.json"):
            raise KeyboardInterrupt("power cut")
        return real_put_bytes(self, name, data, retain_until)

    monkeypatch.setattr(archive_mod._DirSink, "put_bytes", crash_before_manifest)
    with pytest.raises(KeyboardInterrupt):
        archive(led, str(dest))
    monkeypatch.undo()
    base = "00000000000000000000-00000000000000000006"
    assert _files(dest) == [f"{base}.checkpoint", f"{base}.jsonl.gz"]
    unfinished = verify_archive(str(dest), led.verifiers)
    assert "MLF-ARC-006" in _rules(unfinished) and not unfinished.ok  # nothing finished yet
    _append(led, 1, prefix="v")  # the log moves on meanwhile: the unfinished segment keeps its end
    result = archive(led, str(dest))
    assert [s.split("/")[1] for s in result.segments] == [f"{base}.jsonl.gz",
                                                          "00000000000000000006-00000000000000000009.jsonl.gz"]
    report = verify_archive(str(dest), led.verifiers)
    assert report.ok and report.size == 9 and report.findings == []


def test_a_foreign_object_where_a_segment_goes_is_not_adopted(led, tmp_path):
    dest = tmp_path / "worm"
    _append(led, 2)
    (dest / "segments").mkdir(parents=True)
    base = "00000000000000000000-00000000000000000006"
    with gzip.open(dest / "segments" / f"{base}.jsonl.gz", "wb") as fh:
        fh.write(b'{"index": 0}\n')
    with pytest.raises(StoreError, match="holds other entries than the ledger's"):
        archive(led, str(dest))
    assert not (dest / "segments" / f"{base}.manifest.json").exists()


# -- verify_archive -------------------------------------------------------------------------------------------------

@pytest.fixture
def archived(led, tmp_path) -> Path:
    """An archive of 3 segments: [0, 6), [6, 12), [12, 18)."""
    dest = tmp_path / "worm"
    for n in range(3):
        _append(led, 2, prefix=f"s{n}-")
        archive(led, str(dest))
    return dest


def _segment(dest: Path, start: int, end: int, ext: str = "jsonl.gz") -> Path:
    return dest / "segments" / f"{start:020d}-{end:020d}.{ext}"


def test_an_intact_archive_verifies_with_only_the_checkpoint_key(led, archived):
    report = verify_archive(str(archived), led.verifiers)
    assert report.ok and report.findings == []
    assert (report.origin, report.size, report.checkpoints, report.root) == (led.origin, 18, 3, led.root(18))


def test_an_edited_archived_entry_is_caught(led, archived):
    path = _segment(archived, 6, 12)
    lines = _lines(path)
    lines[2]["entry"] = lines[2]["entry"].replace("user:s1-0", "user:mallory")
    _rewrite(path, lines)
    report = verify_archive(str(archived), led.verifiers)
    assert not report.ok and report.first_bad == 6
    messages = {f.rule_id: f.message for f in report.findings}
    assert "archived entry 8" in messages["MLF-ARC-001"] and "changed" in messages["MLF-ARC-001"]


def test_entries_rewritten_with_their_hashes_are_caught_by_the_signed_checkpoint(led, archived):
    path = _segment(archived, 6, 12)
    lines = _lines(path)
    lines[2]["entry"] = lines[2]["entry"].replace("user:s1-0", "user:mallory")
    lines[2]["leaf_hash"] = hashlib.sha256(b"\x00" + lines[2]["entry"].encode()).hexdigest()
    _rewrite(path, lines)
    report = verify_archive(str(archived), led.verifiers)
    rules = _rules(report)
    assert "MLF-ARC-002" in rules  # the root no longer matches checkpoint 12 (nor 18)
    assert "MLF-ARC-001" in rules  # and the file no longer matches its manifest digest
    assert report.first_bad == 6


def test_a_deleted_segment_is_caught(led, archived):
    for ext in ("jsonl.gz", "checkpoint", "manifest.json"):
        _segment(archived, 6, 12, ext).unlink()
    report = verify_archive(str(archived), led.verifiers)
    assert _rules(report) == ["MLF-ARC-003"] and report.first_bad == 6 and report.size == 6


def test_a_truncated_or_reordered_segment_is_caught(led, archived):
    path = _segment(archived, 12, 18)
    lines = _lines(path)
    _rewrite(path, [lines[1], lines[0], *lines[2:]])
    assert "MLF-ARC-001" in _rules(verify_archive(str(archived), led.verifiers))
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:30])
    report = verify_archive(str(archived), led.verifiers)
    assert "MLF-ARC-001" in _rules(report) and "unreadable" in report.findings[0].message


def test_a_forged_checkpoint_is_caught(led, archived):
    path = _segment(archived, 12, 18, "checkpoint")
    forger = NoteSigner(led.origin, Ed25519PrivateKey.generate())
    cp = open_checkpoint(path.read_text(), led.verifiers, led.origin)
    os.chmod(path, 0o644)
    path.write_text(forger.sign(cp.text()))
    report = verify_archive(str(archived), led.verifiers)
    assert "MLF-ARC-004" in _rules(report) and not report.ok


def test_a_cut_short_archive_is_caught_with_a_checkpoint_kept_elsewhere(led, archived):
    kept = led.latest_checkpoint().note  # e.g. in a ticket, or with an auditor
    for ext in ("jsonl.gz", "checkpoint", "manifest.json"):
        _segment(archived, 12, 18, ext).unlink()
    assert verify_archive(str(archived), led.verifiers).ok  # nothing in the archive itself says it was longer
    report = verify_archive(str(archived), led.verifiers, trusted=[kept])
    assert _rules(report) == ["MLF-ARC-003"]
    assert "covers 18 entries but the archive holds 12" in report.findings[0].message


def test_a_trusted_checkpoint_inside_the_archive_must_match(led, archived):
    kept = led.store_checkpoint(9).note
    assert verify_archive(str(archived), led.verifiers, trusted=[kept]).ok
    path = _segment(archived, 6, 12)
    lines = _lines(path)
    lines[1]["entry"] = lines[1]["entry"].replace("user:s1-0", "user:mallory")
    lines[1]["leaf_hash"] = hashlib.sha256(b"\x00" + lines[1]["entry"].encode()).hexdigest()
    _rewrite(path, lines)
    assert "MLF-ARC-002" in _rules(verify_archive(str(archived), led.verifiers, trusted=[kept]))


def test_no_archive_at_the_destination_is_an_input_error(led, tmp_path):
    with pytest.raises(InputError, match="no archive"):
        verify_archive(str(tmp_path / "nowhere"), led.verifiers)
    (tmp_path / "empty" / "segments").mkdir(parents=True)
    with pytest.raises(InputError, match="no mlfort archive"):
        verify_archive(str(tmp_path / "empty"), led.verifiers)


# -- S3 with Object Lock (moto's server) ------------------------------------------------------------------------------

def _locked_bucket(s3, name: str = "audit-archive") -> str:
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_archive_to_s3_puts_every_object_under_compliance_retention(led, s3_client):
    bucket = _locked_bucket(s3_client)
    _append(led, 2)
    result = archive(led, f"s3://{bucket}/mlfort/prod", retain_days=3650, s3_client=s3_client)
    assert (result.end, result.locked) == (6, True) and "locked (compliance) until" in str(result)
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    base = "mlfort/prod/segments/00000000000000000000-00000000000000000006"
    assert keys == [f"{base}.checkpoint", f"{base}.jsonl.gz", f"{base}.manifest.json"]
    expected_until = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)
    manifest = json.loads(s3_client.get_object(Bucket=bucket, Key=f"{base}.manifest.json")["Body"].read())
    for key in keys:
        # (moto 5.2 does not implement GetObjectRetention; HeadObject reports the same lock)
        head = s3_client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert abs(head["ObjectLockRetainUntilDate"] - expected_until) < dt.timedelta(minutes=5)
        assert head["ObjectLockRetainUntilDate"].strftime("%Y-%m-%dT%H:%M:%SZ") == manifest["retain_until"]
        data = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert head["ETag"].strip('"') == hashlib.md5(data).hexdigest()  # Content-MD5 was sent and kept
    assert manifest["object_lock"] == "COMPLIANCE"
    report = verify_archive(f"s3://{bucket}/mlfort/prod", led.verifiers, s3_client=s3_client)
    assert report.ok and report.size == 6


def test_s3_archive_is_incremental_and_writes_each_object_once(led, s3_client):
    bucket = _locked_bucket(s3_client)
    dest = f"s3://{bucket}/a"
    _append(led, 2)
    archive(led, dest, s3_client=s3_client)
    assert archive(led, dest, s3_client=s3_client).segments == ()
    _append(led, 1, prefix="v")
    second = archive(led, dest, s3_client=s3_client)
    assert second.segments == ("segments/00000000000000000006-00000000000000000009.jsonl.gz",)
    versions = s3_client.list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) == 6 and len({v["Key"] for v in versions}) == 6  # one version per key: nothing rewritten
    assert verify_archive(dest, led.verifiers, s3_client=s3_client).size == 9


def test_a_bucket_without_object_lock_is_refused_and_nothing_written(led, s3_client):
    _append(led, 1)
    s3_client.create_bucket(Bucket="plain")
    with pytest.raises(InputError, match=r"versioning is not enabled.*nothing was written"):
        archive(led, "s3://plain/x", s3_client=s3_client)
    s3_client.create_bucket(Bucket="versioned-only")
    s3_client.put_bucket_versioning(Bucket="versioned-only", VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(InputError, match=r"no S3 Object Lock.*nothing was written"):
        archive(led, "s3://versioned-only/x", s3_client=s3_client)
    for bucket in ("plain", "versioned-only"):
        assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_missing_bucket_is_a_store_error(led, s3_client):
    _append(led, 1)
    with pytest.raises(StoreError, match="NoSuchBucket"):
        archive(led, "s3://does-not-exist/x", s3_client=s3_client)


def test_moto_enforces_compliance_mode_on_archived_versions(led, s3_client):
    from botocore.exceptions import ClientError

    bucket = _locked_bucket(s3_client)
    _append(led, 1)
    archive(led, f"s3://{bucket}/a", s3_client=s3_client)
    key = "a/segments/00000000000000000000-00000000000000000003.jsonl.gz"
    version = s3_client.head_object(Bucket=bucket, Key=key)["VersionId"]
    for bypass in (False, True):  # compliance mode: not even with the governance bypass
        with pytest.raises(ClientError, match="AccessDenied"):
            s3_client.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=bypass)
    # A delete without a version only hides the object behind a delete marker: the archive then looks cut short,
    # and the locked version is still there to restore from.
    s3_client.delete_object(Bucket=bucket, Key=key)
    report = verify_archive(f"s3://{bucket}/a", led.verifiers, s3_client=s3_client)
    assert _rules(report) == ["MLF-ARC-003"]
    kept = s3_client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    assert hashlib.sha256(kept).hexdigest() == json.loads(s3_client.get_object(
        Bucket=bucket, Key=key.replace(".jsonl.gz", ".manifest.json"))["Body"].read())["segment"]["sha256"]

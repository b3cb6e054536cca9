"""Events: canonical encoding, strict decoding, and hostile entries refused."""

from __future__ import annotations

import json

import pytest

from mlfort.ledger.event import MAX_ENTRY_BYTES, ArtifactRef, Event, EventError, parse_time

DIGEST = "sha256:" + "ab" * 32


def _event(**kw) -> Event:
    base = {"action": "artifacts.sign", "actor": "user:alice", "resource": "model:churn"}
    return Event(**{**base, **kw})


def test_encoding_is_canonical_json_with_sorted_keys_and_no_spaces():
    e = _event(writes=(ArtifactRef(DIGEST, name="churn", kind="model", uri="/m"),), details={"b": 1, "a": "ü"},
               time="2026-11-23T10:00:00.000000Z")
    data = e.encode()
    obj = json.loads(data)
    assert data == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert obj["v"] == 1 and obj["writes"][0]["digest"] == DIGEST
    assert "decision" not in obj  # empty fields are left out


def test_decode_is_the_inverse_of_encode():
    e = _event(decision="deny", reason="no grant", environment="aws", run_id="r1", request_id="q1",
               reads=(ArtifactRef(DIGEST, kind="dataset"),), details={"nested": {"list": [1, 2.5, None, True]}})
    assert Event.decode(e.encode()) == e
    assert Event.decode(e.encode()).encode() == e.encode()


def test_times_are_normalised_to_utc_microseconds():
    assert _event(time="2026-11-23T10:00:00Z").time == "2026-11-23T10:00:00.000000Z"
    assert parse_time("2026-11-23") == "2026-11-23T00:00:00.000000Z"
    assert parse_time("2026-11-23T12:00:00+02:00") == "2026-11-23T10:00:00.000000Z"
    assert parse_time("-1h") < parse_time("-1m")
    with pytest.raises(EventError):
        parse_time("yesterday")
    with pytest.raises(EventError):
        _event(time="2026-11-23T10:00:00")  # no zone: ambiguous


@pytest.mark.parametrize("kw", [
    {"action": "Sign"}, {"action": "sign"}, {"action": "a.b c"}, {"actor": ""}, {"resource": None},
    {"outcome": "maybe"}, {"decision": "perhaps"}, {"reason": 5}, {"resource": "x" * 5000},
    {"details": {"k": object()}}, {"details": {"k": float("nan")}}, {"details": {1: "non-text key"}},
    {"details": "not a mapping"}, {"reads": ("not a ref",)},
])
def test_malformed_events_are_refused(kw):
    with pytest.raises(EventError):
        _event(**kw)


def test_deeply_nested_details_are_refused():
    deep: dict = {}
    node = deep
    for _ in range(20):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(EventError, match="deeper"):
        _event(details=deep)


@pytest.mark.parametrize("digest", ["sha256:XYZ", "md5:" + "a" * 32, "sha256:" + "A" * 64, "ab" * 32, ""])
def test_bad_digests_are_refused(digest):
    with pytest.raises(EventError):
        ArtifactRef(digest)


def test_oversized_events_are_refused():
    with pytest.raises(EventError, match="limit"):
        _event(details={"blob": "x" * (MAX_ENTRY_BYTES + 1)}).encode()
    with pytest.raises(EventError):
        _event(details={"big": 2**70}).encode()


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b'{"v": 2}', b"\xff\xfe", b'{"v":1}', b"[" * 100_000,
    b'{"v":1,"time":"2026-11-23T10:00:00.000000Z","action":"a.b","actor":"u","resource":"r","outcome":"success",'
    b'"extra":1}',
    b'{"v":1,"time":"2026-11-23T10:00:00.000000Z","action":"a.b","actor":"u","resource":"r","outcome":"success",'
    b'"reads":"x"}',
    b'{"v":1,"time":"2026-11-23T10:00:00.000000Z","action":"a.b","actor":"u","resource":"r","outcome":"success",'
    b'"reads":[{"digest":"sha256:00","evil":1}]}',
    b"x" * (MAX_ENTRY_BYTES + 1),
])
def test_hostile_entries_fail_to_decode_with_a_clear_error(data):
    with pytest.raises(EventError):
        Event.decode(data)


def test_actor_type_comes_from_the_prefix():
    assert _event(actor="workload:trainer").actor_type == "workload"
    assert _event(actor="alice").actor_type == "unknown"

"""`export`: the ledger as OCSF API Activity, the stored events, or ArcSight CEF, one event per line, streamed."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import sqlite3
import tracemalloc
import typing
from pathlib import Path

import pytest

from mlfort import __version__
from mlfort.errors import InputError
from mlfort.ledger import ArtifactRef, Event, Ledger, LedgerError, open_ledger
from mlfort.ledger.export import export, to_ocsf

DATASET = "sha256:" + "d" * 64
MODEL = "sha256:" + "e" * 64
T0 = "2026-11-20T08:00:00.123456Z"
T1 = "2026-11-21T09:30:00.000001Z"
T2 = "2026-11-22T10:45:30.999999Z"
T3 = "2026-11-23T12:00:00.500000Z"


def _events() -> list[Event]:
    """One of each kind a SIEM must tell apart: a signature, a verification, a failed verification, a denial,
    an action with no CRUD meaning, and a policy check."""
    ds = ArtifactRef(DATASET, name="customers", kind="dataset", uri="/data/customers")
    md = ArtifactRef(MODEL, name="churn-model", kind="model", uri="s3://models/churn")
    return [
        Event("artifacts.sign", "user:alice@build-01", "model:churn-model", writes=(md,), time=T0),
        Event("artifacts.verify", "workload:trainer", "dataset:customers", reads=(ds,), run_id="train-0001",
              environment="onprem", time=T1),
        Event("artifacts.verify", "workload:inference", "model:churn-model", outcome="failure",
              reason="MLF-ART-001 model.joblib changed", reads=(md,), environment="aws", time=T2),
        Event("gateway.read", "service:gateway", "dataset:customers", outcome="failure", decision="deny",
              reason="workload:scorer holds no read grant on customers", request_id="req-42", time=T2),
        Event("run.finish", "workload:trainer", "run:train-0001", run_id="train-0001", reads=(ds,), writes=(md,),
              details={"command": "python train.py", "test_accuracy": 0.91}, time=T3),
        Event("policy.validate", "user:bob", "policy:/etc/mlfort.yaml", time=T3),
    ]


@pytest.fixture
def ledger() -> typing.Iterator[Ledger]:
    with open_ledger() as led:
        led.append(_events())
        yield led


def _export(ledger: Ledger, fmt: str, **kwargs: typing.Any) -> list[str]:
    out = io.StringIO()
    count = export(ledger, fmt, out, **kwargs)
    text = out.getvalue()
    assert text.endswith("\n") or count == 0
    lines = text.split("\n")[:-1]
    assert len(lines) == count
    return lines


# -- an independent reading of the formats ----------------------------------------------------------------------------

def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """(the 7 header fields after `CEF:0`, extension dict), unescaped, parsed the way a SIEM does: the header splits
    on unescaped pipes; a key starts at a space (or the start) followed by letters and digits and an `=`."""
    assert line.startswith("CEF:0|")
    fields: list[str] = []
    current: list[str] = []
    i = 0
    while len(fields) < 7:
        c = line[i]
        if c == "\\":
            assert line[i + 1] in "\\|", f"bad header escape in {line!r}"
            current.append(line[i + 1])
            i += 2
        elif c == "|":
            fields.append("".join(current))
            current = []
            i += 1
        else:
            current.append(c)
            i += 1
    extension = line[i:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9]+)=", extension))
    unescape = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}
    ext: dict[str, str] = {}
    for n, m in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(extension)
        raw = extension[m.end() : end]
        assert not re.search(r"(?<!\\)(\\\\)*=", raw), f"unescaped = in the value of {m.group(1)}: {raw!r}"
        assert m.group(1) not in ext, f"key {m.group(1)} appears twice"
        ext[m.group(1)] = re.sub(r"\\(.)", lambda e: unescape[e.group(1)], raw)
    return fields[1:], ext


PROFILE_ATTRIBUTES = {"cloud": "cloud", "action": "security_control", "action_id": "security_control",
                      "disposition": "security_control", "disposition_id": "security_control"}
FREE_FORM = {"unmapped", "data"}
"""OCSF `object` / `json_t` attributes: anything goes inside."""


def _model_of(annotation: typing.Any) -> typing.Any:
    import pydantic

    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _unknown_attributes(value: dict, model: typing.Any, path: str) -> list[str]:
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    problems = []
    for key, item in value.items():
        if key in FREE_FORM:
            continue
        if key not in fields:
            problems.append(f"{path}{key} is not an attribute of {model.__name__}")
            continue
        sub = _model_of(fields[key].annotation)
        for element in item if isinstance(item, list) else [item]:
            if sub is not None and isinstance(element, dict):
                problems += _unknown_attributes(element, sub, f"{path}{key}.")
    return problems


def ocsf_problems(obj: dict) -> list[str]:
    """Check one event against the OCSF 1.4.0 schema as pydantic-ocsf ships it: types, enums, required attributes
    and the type_uid rule (pydantic), plus what pydantic lets through (it allows extra keys): every attribute must be
    one the schema defines, and profile attributes need their profile in metadata.profiles."""
    import importlib.resources

    from ocsf.v1_4_0.events import ApiActivity
    from ocsf.v1_4_0.objects import Cloud

    ApiActivity.model_validate(obj)
    dictionary = json.loads((importlib.resources.files("ocsf") / "schemas" / "v1_4_0.json").read_text())
    enums = dictionary["dictionary"]["attributes"]
    top = {k: v for k, v in obj.items() if k not in PROFILE_ATTRIBUTES}
    problems = _unknown_attributes(top, ApiActivity, "")
    profiles = obj["metadata"].get("profiles", [])
    for key, profile in PROFILE_ATTRIBUTES.items():
        if key in obj and profile not in profiles:
            problems.append(f"{key} is set but metadata.profiles lacks {profile}")
    for key in ("action_id", "disposition_id"):
        if key in obj:
            enum = enums[key]["enum"]
            if str(obj[key]) not in enum:
                problems.append(f"{key} {obj[key]} is not in the OCSF enum")
            elif enum[str(obj[key])]["caption"] != obj[key.removesuffix("_id")]:
                problems.append(f"{key.removesuffix('_id')} is not the caption of {key} {obj[key]}")
    if "cloud" in obj:
        Cloud.model_validate(obj["cloud"])
        problems += _unknown_attributes(obj["cloud"], Cloud, "cloud.")
    user = obj["actor"]["user"]
    if not {"uid", "name", "account"} & set(user):
        problems.append("actor.user needs one of uid, name, account")
    if not {"ip", "uid", "name", "hostname", "svc_name", "instance_uid"} & set(obj["src_endpoint"]):
        problems.append("src_endpoint needs one of ip, uid, name, hostname, svc_name, ...")
    return problems


# -- OCSF -----------------------------------------------------------------------------------------------------------

def test_ocsf_lines_are_valid_ocsf_1_4_0_api_activity_events(ledger):
    pytest.importorskip("ocsf.v1_4_0.events", reason="test dependency pydantic-ocsf==3.0.0 (OCSF 1.0-1.7 models)")
    for line in _export(ledger, "ocsf"):
        obj = json.loads(line)
        assert ocsf_problems(obj) == [], line


def test_ocsf_validator_notices_misnamed_and_misplaced_attributes(ledger):
    pytest.importorskip("ocsf.v1_4_0.events", reason="test dependency pydantic-ocsf==3.0.0 (OCSF 1.0-1.7 models)")
    obj = json.loads(_export(ledger, "ocsf")[3])
    obj["actor"]["user"]["username"] = "x"
    obj["metadata"]["profiles"] = []
    problems = ocsf_problems(obj)
    assert "actor.user.username is not an attribute of User" in problems
    assert any("security_control" in p for p in problems)


def test_ocsf_maps_each_action_to_an_api_activity(ledger):
    events = [json.loads(line) for line in _export(ledger, "ocsf")]
    got = [(e["api"]["operation"], e["activity_id"], e["activity_name"], e["type_uid"]) for e in events]
    assert got == [
        ("artifacts.sign", 1, "Create", 600301),
        ("artifacts.verify", 2, "Read", 600302),
        ("artifacts.verify", 2, "Read", 600302),
        ("gateway.read", 2, "Read", 600302),
        ("run.finish", 99, "run.finish", 600399),  # Other, named by the source's own activity
        ("policy.validate", 2, "Read", 600302),
    ]
    assert {(e["class_uid"], e["category_uid"], e["metadata"]["version"]) for e in events} == {(6003, 6, "1.4.0")}


def test_ocsf_status_severity_and_disposition_follow_outcome_and_decision(ledger):
    sign, verified, tampered, denied, _finish, _policy = (json.loads(x) for x in _export(ledger, "ocsf"))
    assert (sign["status_id"], sign["status"], sign["severity_id"]) == (1, "Success", 1)
    assert "disposition_id" not in sign and "profiles" not in sign["metadata"]
    assert (tampered["status_id"], tampered["status"], tampered["severity_id"], tampered["severity"]) == (
        2, "Failure", 4, "High")
    assert tampered["status_detail"] == "MLF-ART-001 model.joblib changed"
    assert (denied["status_id"], denied["severity_id"]) == (2, 3)
    assert (denied["action_id"], denied["action"], denied["disposition_id"], denied["disposition"]) == (
        2, "Denied", 2, "Blocked")
    assert denied["metadata"]["profiles"] == ["security_control"]
    assert verified["severity_id"] == 1


def test_ocsf_carries_actor_resources_time_and_what_has_no_ocsf_field(ledger):
    sign, verified, tampered, denied, finish, policy = (json.loads(x) for x in _export(ledger, "ocsf"))
    origin = ledger.origin
    assert sign["actor"] == {"user": {"uid": "user:alice@build-01", "name": "alice", "type_id": 1, "type": "User"}}
    assert sign["src_endpoint"] == {"hostname": "build-01"}
    assert verified["actor"]["user"]["type_id"] == 99 and verified["actor"]["user"]["type"] == "Workload"
    assert verified["actor"]["app_name"] == "trainer" and verified["src_endpoint"] == {"svc_name": "trainer"}
    assert policy["src_endpoint"] == {"name": "unknown"}  # required by the class; the entry does not say
    assert sign["resources"][0] == {"uid": "model:churn-model", "name": "churn-model", "type": "model"}
    assert sign["resources"][1]["uid"] == MODEL and sign["resources"][1]["data"]["role"] == "written"
    assert [r["data"]["role"] for r in finish["resources"][1:]] == ["read", "written"]
    assert finish["unmapped"]["reads"][0]["digest"] == DATASET and finish["unmapped"]["writes"][0]["digest"] == MODEL
    assert finish["unmapped"]["details"] == {"command": "python train.py", "test_accuracy": 0.91}
    assert finish["unmapped"]["run_id"] == "train-0001" and finish["metadata"]["correlation_uid"] == "train-0001"
    assert denied["api"]["request"] == {"uid": "req-42"}
    assert sign["time"] == int(dt.datetime(2026, 11, 20, 8, 0, 0, 123000, tzinfo=dt.UTC).timestamp() * 1000)
    assert sign["metadata"]["original_time"] == T0
    assert [e["metadata"]["uid"] for e in (sign, verified)] == [f"{origin}/0", f"{origin}/1"]
    assert sign["metadata"]["product"] == {"name": "mlfort", "vendor_name": "mlfort", "version": __version__}
    assert sign["metadata"]["sequence"] == 0 and sign["metadata"]["log_name"] == origin
    # the cloud is named only when the environment is a provider; any environment stays in unmapped
    assert tampered["cloud"] == {"provider": "AWS"} and tampered["metadata"]["profiles"] == ["cloud"]
    assert "cloud" not in verified and verified["unmapped"]["environment"] == "onprem"


def test_ocsf_builder_keeps_microsecond_times_exact():
    event = Event("artifacts.sign", "user:a", "model:m", time="2038-01-19T03:14:08.999999Z")
    obj = to_ocsf(event, 7, "mlfort.ledger/x")
    assert obj["time"] == 2147483648999  # integer arithmetic: no float rounding up to ...49000


# -- JSON lines -----------------------------------------------------------------------------------------------------

def test_jsonl_lines_are_the_stored_entries_with_index_and_leaf_hash(ledger):
    stored = {i: (leaf, body) for i, leaf, body in ledger.store.entries()}
    lines = _export(ledger, "jsonl")
    assert len(lines) == len(stored)
    for line in lines:
        obj = json.loads(line)
        index, leaf = obj.pop("index"), obj.pop("leaf_hash")
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert canonical == stored[index][1]
        assert hashlib.sha256(b"\x00" + canonical).hexdigest() == leaf == stored[index][0].hex()


# -- CEF ------------------------------------------------------------------------------------------------------------

def test_cef_lines_have_the_header_and_dictionary_keys(ledger):
    lines = _export(ledger, "cef")
    header, ext = parse_cef(lines[0])
    assert header == ["mlfort", "mlfort", __version__, "artifacts.sign", "artifacts.sign success", "1"]
    assert ext["rt"] == str(int(dt.datetime(2026, 11, 20, 8, 0, 0, 123000, tzinfo=dt.UTC).timestamp() * 1000))
    assert ext["externalId"] == "0" and ext["deviceExternalId"] == ledger.origin
    assert ext["suser"] == "user:alice@build-01" and ext["outcome"] == "success" and ext["cat"] == "artifacts"
    assert (ext["fileHash"], ext["fname"], ext["request"]) == (MODEL, "churn-model", "s3://models/churn")
    assert (ext["cs2Label"], ext["cs2"], ext["cs3Label"], ext["cs3"]) == (
        "digestsWritten", MODEL, "resource", "model:churn-model")
    header, ext = parse_cef(lines[2])
    assert header[3:] == ["artifacts.verify", "artifacts.verify failure", "8"]
    assert ext["reason"] == "MLF-ART-001 model.joblib changed" and ext["cs1"] == MODEL
    header, ext = parse_cef(lines[3])
    assert header[4:] == ["gateway.read failure (denied)", "5"] and ext["act"] == "deny"
    assert (ext["cs6Label"], ext["cs6"]) == ("requestId", "req-42")
    _, ext = parse_cef(lines[4])
    assert json.loads(ext["msg"]) == {"command": "python train.py", "test_accuracy": 0.91}
    assert (ext["fname"], ext["request"]) == ("churn-model", "s3://models/churn")  # the first artifact written
    _, ext = parse_cef(lines[1])
    assert (ext["fname"], ext["filePath"]) == ("customers", "/data/customers")  # else the first one read


HOSTILE = [
    "pipe|in|header",
    "equals=sign and key=value suser=root",
    "back\\slash\\ and \\= and \\|",
    "new\nline\r\nCEF:0|evil|evil|1|x|injected|10|suser=root",
    "trailing backslash\\",
    "unicode: \u00fcml\u00e4ut \u4e2d\u6587 \U0001f600 \u202eRTL override",
    "line separators \u2028 \u2029 \x85 \x0b \x0c and NUL \x00 and ESC \x1b[31m",
]


def _hostile_ledger() -> Ledger:
    led = open_ledger()
    events = []
    for n, text in enumerate(HOSTILE):
        events.append(Event(f"hostile.case{n}", f"user:{text}", f"model:{text}", outcome="failure", reason=text,
                            run_id=text, request_id=text, environment=text,
                            reads=(ArtifactRef(DATASET, name=text[:256], kind="dataset", uri=text),),
                            details={text: text, "nested": [text, {"k=v": text}]}))
    events.append(Event("hostile.long", "user:" + "x" * 500, "model:" + "|" * 2000, reason="=" * 2048,
                        details={"blob": "\\" * 20000}))
    led.append(events)
    return led


def test_cef_escaping_keeps_hostile_values_inside_their_fields():
    with _hostile_ledger() as led:
        lines = _export(led, "cef")
        assert len(lines) == len(HOSTILE) + 1
        for n, text in enumerate(HOSTILE):
            line = lines[n]
            assert "\n" not in line and "\r" not in line and len(line.splitlines()) == 1
            header, ext = parse_cef(line)
            assert header[:3] == ["mlfort", "mlfort", __version__] and header[3] == f"hostile.case{n}"
            assert set(ext) == {"rt", "externalId", "deviceExternalId", "cat", "suser", "outcome", "reason",
                                "fileHash", "fname", "filePath", "request", "msg",
                                *(f"cs{i}{s}" for i in (1, 3, 4, 5, 6) for s in ("", "Label"))} - (
                {"request"} if "://" not in text else {"filePath"})
            # values come back as written, except control and line-separator characters, which become U+FFFD
            expected = re.sub("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]", "\ufffd", text)
            assert ext["reason"] == expected
            assert ext["suser"] == f"user:{expected}" and ext["cs3"] == f"model:{expected}"
            assert ext["cs4"] == ext["cs5"] == ext["cs6"] == expected
            assert ext["externalId"] == str(n) and ext["outcome"] == "failure"
        header, ext = parse_cef(lines[-1])
        assert len(ext["reason"]) == 1023 and ext["reason"].endswith("\u2026")  # cut to the CEF key's length
        assert len(ext["msg"]) == 1023 and len(ext["suser"]) == 505 and len(ext["cs3"]) == 2006


def test_ocsf_and_jsonl_keep_hostile_values_exactly():
    with _hostile_ledger() as led:
        for fmt in ("ocsf", "jsonl"):
            lines = _export(led, fmt)
            assert len(lines) == len(HOSTILE) + 1
            for n, text in enumerate(HOSTILE):
                assert len(lines[n].splitlines()) == 1  # JSON escapes every control character
                obj = json.loads(lines[n])
                reason = obj["status_detail"] if fmt == "ocsf" else obj["reason"]
                assert reason == text


# -- filtering, limits, streaming -------------------------------------------------------------------------------------

def test_since_and_until_select_a_half_open_time_window(ledger):
    def times(**kwargs):
        return [json.loads(x)["time"] for x in _export(ledger, "jsonl", **kwargs)]

    assert times(since=T1) == [T1, T2, T2, T3, T3]
    assert times(until=T2) == [T0, T1]
    assert times(since=T1, until=T3) == [T1, T2, T2]
    assert times(since="2026-11-22") == [T2, T2, T3, T3]  # a date, as the CLI accepts
    assert times(since=T3, limit=1) == [T3]
    assert times(since="2030-01-01T00:00:00Z") == []
    assert _export(ledger, "cef", limit=0) == []


def test_export_takes_entries_in_index_order_not_time_order():
    with open_ledger() as led:
        led.append([Event("a.late", "user:a", "r:x", time=T3), Event("a.early", "user:a", "r:x", time=T0)])
        assert [json.loads(x)["index"] for x in _export(led, "jsonl")] == [0, 1]


def test_unknown_format_and_negative_limit_are_refused(ledger):
    with pytest.raises(InputError, match="unknown export format 'xml'"):
        export(ledger, "xml", io.StringIO())
    with pytest.raises(InputError, match="limit"):
        export(ledger, "ocsf", io.StringIO(), limit=-1)


def test_an_edited_entry_is_not_exported(ledger, mlfort_home: Path):
    db = sqlite3.connect(mlfort_home / "ledger.db")
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET body = replace(body, 'alice', 'mallory') WHERE idx = 0")
    db.commit()
    db.close()
    out = io.StringIO()
    with pytest.raises(LedgerError, match="entry 0 does not match its leaf hash"):
        export(ledger, "ocsf", out)
    assert out.getvalue() == ""


class _CountingSink(io.TextIOBase):
    """Counts what is written without keeping it."""

    def __init__(self) -> None:
        self.lines = 0
        self.chars = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        self.chars += len(text)
        return len(text)


def _peak_export(led: Ledger, fmt: str) -> tuple[int, int, int]:
    """(events, peak bytes allocated during the export, characters written)."""
    sink = _CountingSink()
    tracemalloc.start()
    try:
        count = export(led, fmt, sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.lines == count
    return count, peak, sink.chars


def _verify_events(start: int, n: int) -> list[Event]:
    return [Event("artifacts.verify", f"workload:w{i % 7}", f"model:m{i}", run_id=f"run-{i}",
                  reads=(ArtifactRef(DATASET, name="customers", kind="dataset", uri="/data/customers"),),
                  details={"i": i, "pad": "x" * 400}) for i in range(start, start + n)]


class _HeldSink(io.TextIOBase):
    """Records, at each write, how many entries had been read but not yet written."""

    def __init__(self, progress: dict[str, int]) -> None:
        self.progress = progress
        self.written = 0
        self.held: list[int] = []

    def write(self, text: str) -> int:
        self.written += text.count("\n")
        self.held.append(self.progress["read"] - self.written)
        return len(text)


def test_export_writes_as_it_reads(monkeypatch):
    """Lines go out in small batches while the log is still being read: never more than a batch is held."""
    n = 3000
    with open_ledger() as led:
        led.append(_verify_events(0, n), checkpoint=False)
        progress = {"read": 0}
        entries = led.store.entries

        def counting(*args, **kwargs):
            for row in entries(*args, **kwargs):
                progress["read"] += 1
                yield row

        monkeypatch.setattr(led.store, "entries", counting)
        for fmt in ("ocsf", "cef", "jsonl"):
            progress["read"] = 0
            sink = _HeldSink(progress)
            assert export(led, fmt, sink) == n
            assert len(sink.held) > 4 and max(sink.held) <= 512, (fmt, len(sink.held), max(sink.held))


@pytest.mark.slow
def test_export_memory_does_not_grow_with_the_log():
    n = 9_000  # beyond the SQLite store's read chunk (8192 rows), so both runs hold a full chunk
    with open_ledger() as led:
        led.append(_verify_events(0, n), checkpoint=False)
        count, peak, _ = _peak_export(led, "ocsf")
        led.append(_verify_events(n, 2 * n), checkpoint=False)
        count3, peak3, chars3 = _peak_export(led, "ocsf")
        assert (count, count3) == (n, 3 * n)
        # Three times the log, about the same peak (the store's read chunk and a batch of lines), far below what
        # holding the output or the events would take.
        assert peak3 < peak * 1.3 + 1_000_000, (peak, peak3)
        assert peak3 < chars3 / 3, (peak3, chars3)

"""`scan_pii` end to end in-process: findings and their evidence, no value ever shown, sampling that is seeded and
spread over the whole file, malformed and hostile files as findings, the policy's dataset classification."""

from __future__ import annotations

import gzip
import json
import os
import random
import time
from pathlib import Path

import pytest

from mlfort.errors import InputError
from mlfort.policy import load_policy
from mlfort.report import Severity
from mlfort.scan.pii import detectors as d
from mlfort.scan.pii import readers, scan_file, scan_pii
from mlfort.scan.pii.synth import make_table

EMAILS = [f"person{i}.name@mailhost.eu" for i in range(300)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def by_rule(result, rule_id: str) -> list:
    return [f for f in result.findings if f.rule_id == rule_id]


def _filler_csv(path: Path, rows: int, tail: list[str] | None = None, quoted: bool = False) -> Path:
    """id,comment,contact rows with no PII; `tail` values go in the contact column of the last rows."""
    rng = random.Random(1)
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    with path.open("w", encoding="utf-8") as f:
        f.write("id,comment,contact\n")
        n_tail = len(tail or [])
        for i in range(rows):
            comment = " ".join(rng.choice(words) for _ in range(3))
            if quoted and i % 97 == 0:
                comment = f'"{comment}\nsecond line, with a comma"'
            contact = tail[i - (rows - n_tail)] if tail and i >= rows - n_tail else "none given"
            f.write(f"{i},{comment},{contact}\n")
    return path


# ---------------------------------------------------------------------------------------------------- findings


def test_one_finding_per_column_and_entity_with_its_evidence(tmp_path):
    table = make_table(rows=400, seed=21)
    path = table.write_csv(tmp_path / "customers.csv")
    result = scan_pii([path], sample_rows=None)
    keys = [(f.evidence["column"], f.evidence["entity"]) for f in result.findings if "entity" in f.evidence]
    assert len(keys) == len(set(keys))
    email = next(f for f in result.findings if f.evidence.get("column") == "email")
    assert email.rule_id == "MLF-PII-002" and email.severity is Severity.MEDIUM
    ev = email.evidence
    assert ev["entity"] == d.EMAIL and ev["rows"] == ev["whole_cell"] and 0.9 < ev["share"] <= 1
    assert ev["rows_scanned"] == 400 and ev["sampled"] is False and ev["sampling_method"] == "every row"
    assert ev["shape"].startswith("***@***.") and ev["first_row"] >= 1
    assert email.target == str(path) and email.location is not None and email.location.line == 1
    assert email.location.column == 4  # "id," then "email"
    card = next(f for f in result.findings if f.evidence.get("column") == "card_number")
    assert card.rule_id == "MLF-PII-001" and card.severity is Severity.HIGH
    ip = next(f for f in result.findings if f.evidence.get("column") == "ip_address")
    assert ip.rule_id == "MLF-PII-003" and ip.severity is Severity.LOW
    notes = [f for f in result.findings if f.evidence.get("column") == "notes"]
    assert {f.rule_id for f in notes} == {"MLF-PII-004"} and all(f.evidence["free_text"] for f in notes)
    assert {f.severity for f in notes if f.evidence["entity"] == d.CREDIT_CARD} == {Severity.HIGH}
    tracking = [f for f in result.findings if f.evidence.get("column") == "tracking_id"]
    assert [f.rule_id for f in tracking] == ["MLF-PII-008"] and "not personal data" in tracking[0].message
    assert not [f for f in result.findings if f.evidence.get("column") in ("order_number", "order_ref", "created_at",
                                                                           "app_version", "uuid", "sha256")]
    assert "PII in" in result.summary() and "every row read" in result.summary()
    assert result.counts["rows_scanned"] == 400 and result.counts["files_with_pii"] == 1


def test_no_value_ever_appears_in_findings_or_summary(tmp_path):
    table = make_table(rows=300, seed=22)
    path = table.write_csv(tmp_path / "t.csv")
    result = scan_pii([path], sample_rows=None)
    text = json.dumps([f.to_dict() for f in result.findings]) + result.summary()
    pii_values = {table.rows[r][table.columns.index(c)] for (r, c) in table.labels}
    leaked = [v for v in pii_values if len(v) >= 6 and v in text]
    assert leaked == []
    assert not any(ch.isdigit() for f in result.findings for ch in str(f.evidence.get("shape", "")))


def test_jsonl_findings_point_at_the_line_of_the_first_hit(tmp_path):
    lines = ['{"id": 1, "note": "hello"}', "", "not json", '{"id": 2, "contact": {"email": "a.b@example.org"}}']
    path = write(tmp_path / "events.jsonl", "\n".join(lines) + "\n")
    result = scan_pii([path], sample_rows=None)
    email = next(f for f in result.findings if f.evidence.get("entity") == d.EMAIL)
    assert email.evidence["column"] == "contact.email" and email.location.line == 4
    bad = by_rule(result, "MLF-PII-006")
    assert bad and bad[0].evidence["problem"] == "bad_record" and bad[0].location.line == 3


def test_nested_json_and_lists_are_flattened(tmp_path):
    rows = [{"user": {"emails": [f"u{i}@example.com", f"v{i}@example.org"], "age": 30}, "tags": ["x", "y"]}
            for i in range(20)]
    path = write(tmp_path / "nested.ndjson", "\n".join(json.dumps(r) for r in rows) + "\n")
    result = scan_pii([path], sample_rows=None)
    assert [(f.evidence["column"], f.evidence["entity"]) for f in result.findings] == [("user.emails[]", d.EMAIL)]


def test_parquet_columns_of_strings_integers_structs_and_lists(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    n = 200
    table = pa.table({
        "phone": pa.array([4155550000 + i * 7 for i in range(n)], pa.int64()),
        "person": pa.array([{"email": f"p{i}@example.com", "age": i} for i in range(n)]),
        "ips": pa.array([[f"203.0.113.{i % 250 + 1}"] for i in range(n)]),
        "city": pa.array(["Lyon"] * n).dictionary_encode(),
        "score": pa.array([0.5] * n),
    })
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    result = scan_pii([path], sample_rows=None)
    found = {(f.evidence["column"], f.evidence["entity"]) for f in result.findings}
    assert found == {("phone", d.PHONE), ("person.email", d.EMAIL), ("ips[]", d.IP_ADDRESS)}
    assert all(f.location is None for f in result.findings)  # binary: no line to point at


# ---------------------------------------------------------------------------------------------------- sampling


def test_seek_sampling_reaches_the_end_of_a_large_csv_and_estimates_its_rows(tmp_path):
    path = _filler_csv(tmp_path / "big.csv", 200_000, tail=EMAILS)  # PII only in the last 0.15% of the rows
    start = time.perf_counter()
    result = scan_pii([path], sample_rows=20_000)
    assert time.perf_counter() - start < 10
    email = next(f for f in result.findings if f.evidence.get("entity") == d.EMAIL)
    ev = email.evidence
    assert ev["sampled"] is True and ev["rows_scanned"] == 20_000 and ev["rows_total_estimated"] is True
    assert 180_000 < ev["rows_total"] < 220_000
    assert "seeded slices" in ev["sampling_method"] and "sampled" in email.message
    again = scan_pii([path], sample_rows=20_000)
    assert [f.to_dict() for f in again.findings] == [f.to_dict() for f in result.findings]  # deterministic
    assert "1 file(s) sampled" in result.summary()


def test_quoted_newlines_make_the_reader_stream_with_a_reservoir(tmp_path):
    path = _filler_csv(tmp_path / "quoted.csv", 60_000, tail=EMAILS[:200], quoted=True)
    result = scan_pii([path], sample_rows=2_000)
    email = next(f for f in result.findings if f.evidence.get("entity") == d.EMAIL)
    assert "reservoir" in email.evidence["sampling_method"]
    assert email.evidence["rows_total"] == 60_000 and email.evidence["rows_total_estimated"] is False
    assert not by_rule(result, "MLF-PII-006")  # the multi-line fields parsed fine


def test_a_quoted_newline_found_only_by_a_slice_still_falls_back(tmp_path):
    path = tmp_path / "late-quotes.csv"
    _filler_csv(path, 100_000, tail=EMAILS[:50])
    with path.open("a", encoding="utf-8") as f:  # multi-line fields only after the first MiB
        for i in range(30_000):
            f.write(f'{i},"line one\nline two",x\n')
    result = scan_pii([path], sample_rows=5_000)
    methods = {f.evidence.get("sampling_method") for f in result.findings if "sampling_method" in f.evidence}
    assert methods and all("reservoir" in m for m in methods), methods


def test_seek_sampling_of_jsonl_reaches_the_end(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(150_000):
            f.write(json.dumps({"id": i, "msg": "nothing to see"}) + "\n")
        for e in EMAILS:
            f.write(json.dumps({"id": 0, "msg": "hi", "email": e}) + "\n")
    result = scan_pii([path], sample_rows=20_000)
    email = next(f for f in result.findings if f.evidence.get("entity") == d.EMAIL)
    assert email.evidence["sampled"] and "seeded slices" in email.evidence["sampling_method"]
    assert email.location.line is None  # sampled: the line is not known


def test_parquet_sampling_spans_row_groups(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    n = 100_000
    contact = ["-"] * (n - 300) + EMAILS
    pq.write_table(pa.table({"id": list(range(n)), "contact": contact}), tmp_path / "t.parquet",
                   row_group_size=10_000)
    result = scan_pii([tmp_path / "t.parquet"], sample_rows=20_000)
    email = next(f for f in result.findings if f.evidence.get("entity") == d.EMAIL)
    ev = email.evidence
    assert ev["sampled"] and ev["rows_total"] == n and not ev["rows_total_estimated"]
    assert 20_000 <= ev["rows_scanned"] < 20_000 + readers.PARQUET_SLICE and "10 row group(s)" in ev["sampling_method"]


def test_small_files_are_read_whole_even_in_sampled_mode(tmp_path):
    path = _filler_csv(tmp_path / "small.csv", 500, tail=EMAILS[:100])
    result = scan_pii([path], sample_rows=10_000)
    email = next(f for f in result.findings if f.evidence.get("entity") == d.EMAIL)
    assert email.evidence["sampled"] is False and email.evidence["rows_scanned"] == 500


def test_a_million_rows_in_sampled_mode_stay_fast_and_small(tmp_path):
    import tracemalloc

    path = tmp_path / "million.csv"
    chunk = "".join(f"{i},some words here,{i * 7 % 1000}\n" for i in range(10_000))
    with path.open("w", encoding="utf-8") as f:
        f.write("id,comment,amount\n")
        for _ in range(100):
            f.write(chunk)
    tracemalloc.start()
    start = time.perf_counter()
    result = scan_pii([path], sample_rows=10_000)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.counts["rows_scanned"] == 10_000 and 900_000 < result.counts["rows_total"] < 1_100_000
    assert seconds < 5 and peak < 60 << 20, (seconds, peak)


def test_parallel_classification_gives_the_same_result(tmp_path):
    table = make_table(rows=3_000, seed=23)
    path = table.write_csv(tmp_path / "t.csv")
    one = scan_file(path, sample_rows=None, workers=1)
    two = scan_file(path, sample_rows=None, workers=2)
    assert [f.to_dict() for f in one.findings] == [f.to_dict() for f in two.findings]


# ---------------------------------------------------------------------------------------------------- hostile input


def test_bad_utf8_is_a_finding_and_the_rest_is_still_scanned(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"name,email\n" + b"".join(b"Jos\xe9,p%d@example.com\n" % i for i in range(50)))
    result = scan_pii([path], sample_rows=None)
    bad = by_rule(result, "MLF-PII-006")
    assert len(bad) == 1 and bad[0].evidence["problem"] == "encoding" and bad[0].evidence["affected"] == 50
    assert bad[0].severity is Severity.HIGH and "could not check" in bad[0].message
    assert any(f.evidence.get("entity") == d.EMAIL for f in result.findings)


def test_ragged_rows_are_a_finding_and_their_fields_are_scanned_by_position(tmp_path):
    rows = ["id,email"] + [f"{i},p{i}@example.com" for i in range(30)] + ["31,x@example.com,extra,fields", "32"]
    path = write(tmp_path / "ragged.csv", "\n".join(rows) + "\n")
    result = scan_pii([path], sample_rows=None)
    bad = by_rule(result, "MLF-PII-006")
    assert [b.evidence["problem"] for b in bad] == ["ragged"] and bad[0].evidence["affected"] == 2
    assert bad[0].location.line == 32
    assert any(f.evidence.get("column") == "email" for f in result.findings)


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("broken.parquet", b"PAR1" + os.urandom(200) + b"PAR1", "unreadable"),
    ("truncated.parquet", b"PAR1\x00\x00", "unreadable"),
    ("nul.csv", b"a,b\n1,\x002\n", "binary"),
    ("not-gzip.csv.gz", b"this is not gzip", "unreadable"),
    ("array.jsonl", b"[1, 2, 3]\n\"just a string\"\n{\"a\": 1}\n", "bad_record"),
    ("deep.jsonl", b"[" * 100_000 + b"\n", "bad_record"),
])
def test_malformed_files_are_findings_never_crashes(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    result = scan_pii([path], sample_rows=None)
    bad = by_rule(result, "MLF-PII-006")
    assert bad and bad[0].evidence["problem"] == problem and bad[0].severity is Severity.HIGH
    assert bad[0].target == str(path)


def test_a_huge_line_stops_the_read_with_a_finding(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE", 1 << 16)
    for name, line in (("huge.jsonl", '{"a": "' + "x" * 200_000 + '"}\n'), ("huge.csv", "a,b\n1," + "x" * 200_000)):
        path = write(tmp_path / name, line + "\n")
        result = scan_pii([path], sample_rows=None)
        assert [f.evidence["problem"] for f in by_rule(result, "MLF-PII-006")] in (["huge_line"], ["parse"])


def test_empty_and_header_only_files_pass_quietly(tmp_path):
    for name, text in (("empty.csv", ""), ("header.csv", "a,b,c\n"), ("empty.jsonl", ""), ("blank.jsonl", "\n\n")):
        result = scan_pii([write(tmp_path / name, text)], sample_rows=None)
        assert result.findings == ()


def test_fifos_and_unsupported_files(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    write(tmp_path / "readme.txt", "hello")
    result = scan_pii([tmp_path / "pipe.csv", tmp_path / "readme.txt"], sample_rows=None)
    assert [(f.rule_id, Path(f.target).name) for f in result.findings] == [
        ("MLF-PII-006", "pipe.csv"), ("MLF-PII-007", "readme.txt")]
    assert result.findings[1].severity is Severity.LOW


def test_folders_are_walked_for_dataset_files_only(tmp_path):
    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    write(tmp_path / "data" / "a.csv", "email\n" + "\n".join(EMAILS[:20]) + "\n")
    write(tmp_path / "data" / "deep" / "b.tsv", "id\temail\n" + "\n".join(f"{i}\t{e}" for i, e in
                                                                       enumerate(EMAILS[:20])) + "\n")
    with gzip.open(tmp_path / "data" / "c.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps({"e": e}) for e in EMAILS[:20]) + "\n")
    write(tmp_path / "data" / "notes.txt", "a@b.com")
    write(tmp_path / ".git" / "x.csv", "email\na@example.com\n")
    seen: list[int] = []
    result = scan_pii([tmp_path], sample_rows=None, progress=seen.append)
    assert sorted(Path(f.target).name for f in result.findings) == ["a.csv", "b.tsv", "c.jsonl.gz"]
    assert seen == [1, 2, 3] and result.counts["files"] == 3


def test_a_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nope"):
        scan_pii([tmp_path / "nope.csv"])


def test_semicolon_csv_and_a_headerless_file(tmp_path):
    semi = write(tmp_path / "eu.csv", "Vorname;E-Mail\n" + "\n".join(f"Jürgen;{e}" for e in EMAILS[:30]) + "\n")
    found = {(f.evidence["column"], f.evidence["entity"]) for f in scan_pii([semi], sample_rows=None).findings}
    assert found == {("Vorname", d.PERSON_NAME), ("E-Mail", d.EMAIL)}
    bare = write(tmp_path / "bare.csv", "\n".join(f"{i},{e}" for i, e in enumerate(EMAILS[:30])) + "\n")
    result = scan_pii([bare], sample_rows=None)
    assert [(f.evidence["column"], f.evidence["rows"]) for f in result.findings] == [("column_2", 30)]


# ---------------------------------------------------------------------------------------------------- policy


def _policy(tmp_path: Path, classification: str, location: str) -> tuple:
    policy = tmp_path / "mlfort.yaml"
    policy.write_text(
        "version: 1\n"
        "environments: {onprem: {jurisdiction: DE}}\n"
        "datasets:\n"
        "  customers:\n"
        f"    classification: {classification}\n"
        "    residency: [EU]\n"
        "    owner: data@acme.eu\n"
        f"    locations: {{onprem: '{location}'}}\n"
        "  archive:\n"
        "    classification: pii\n"
        "    residency: [EU]\n"
        "    owner: data@acme.eu\n"
        f"    locations: {{onprem: '{location}/archive'}}\n"
    )
    return load_policy(policy), tmp_path


def test_pii_in_a_dataset_not_classified_pii_is_high(tmp_path):
    data = tmp_path / "data"
    (data / "archive").mkdir(parents=True)
    path = write(data / "c.csv", "email\n" + "\n".join(EMAILS[:20]) + "\n")
    archived = write(data / "archive" / "old.csv", "email\n" + "\n".join(EMAILS[:20]) + "\n")
    policy, base = _policy(tmp_path, "internal", f"file://{data}")
    result = scan_pii([path, archived], policy=policy, policy_dir=base)
    high = by_rule(result, "MLF-PII-005")
    assert [Path(f.target).name for f in high] == ["c.csv"]  # the archive (pii) is the more specific location
    ev = high[0].evidence
    assert ev["dataset"] == "customers" and ev["classification"] == "internal" and ev["entities"] == [d.EMAIL]
    assert high[0].severity is Severity.HIGH and "'customers'" in high[0].message
    ok, _ = _policy(tmp_path, "pii", str(data))
    assert not by_rule(scan_pii([path], policy=ok, policy_dir=base), "MLF-PII-005")


def test_the_dataset_can_be_named_and_must_exist(tmp_path):
    path = write(tmp_path / "c.csv", "email\n" + "\n".join(EMAILS[:20]) + "\n")
    policy, base = _policy(tmp_path, "confidential", "/nowhere")
    named = scan_pii([path], policy=policy, policy_dir=base, dataset="customers")
    assert by_rule(named, "MLF-PII-005")[0].evidence["classification"] == "confidential"
    outside = scan_pii([path], policy=policy, policy_dir=base)
    assert [f.rule_id for f in outside.findings if f.rule_id.endswith(("005", "009"))] == ["MLF-PII-009"]
    with pytest.raises(InputError, match="datasets defined: archive, customers"):
        scan_pii([path], policy=policy, dataset="nope")
    with pytest.raises(InputError, match=r"none was given"):
        scan_pii([path], dataset="customers")


def test_files_without_pii_raise_no_policy_finding(tmp_path):
    path = write(tmp_path / "c.csv", "id,comment\n1,hello\n2,world\n")
    policy, base = _policy(tmp_path, "public", str(tmp_path))
    assert scan_pii([path], policy=policy, policy_dir=base).findings == ()

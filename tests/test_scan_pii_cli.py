"""`mlfort scan pii` as a user runs it: exit codes, JSON and SARIF output, sampling options, the policy link."""

from __future__ import annotations

import json
from pathlib import Path

from mlfort.scan.pii.synth import make_table
from tests.conftest import run_cli
from tests.test_report_sarif import assert_valid, oasis_schema  # noqa: F401 - the fixture is used by name

EMAILS = [f"member{i}.x@mailhost.eu" for i in range(50)]


def _emails_csv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "contacts.csv"
    path.write_text("id,email\n" + "".join(f"{i},{e}\n" for i, e in enumerate(EMAILS)), encoding="utf-8")
    return path


def _findings(stdout: str) -> list[dict]:
    return json.loads(stdout)["findings"]


def test_help_teaches_with_an_example():
    out = run_cli("scan", "pii", "--help")
    assert out.returncode == 0 and "Example" in out.stdout and "--sample-rows" in out.stdout


def test_contact_columns_are_reported_without_failing_and_without_values(tmp_path):
    path = _emails_csv(tmp_path)
    out = run_cli("scan", "pii", str(path), "--format", "json")
    assert out.returncode == 0, out.stderr
    found = _findings(out.stdout)
    assert [(f["rule_id"], f["evidence"]["column"]) for f in found] == [("MLF-PII-002", "email")]
    assert not any(e in out.stdout for e in EMAILS)
    assert run_cli("scan", "pii", str(path), "--fail-on", "medium").returncode == 1


def test_card_numbers_fail_the_run(tmp_path):
    table = make_table(rows=200, seed=31, columns=["id", "card_number", "order_ref"])
    path = table.write_csv(tmp_path / "payments.csv")
    out = run_cli("scan", "pii", str(path), "--format", "json")
    assert out.returncode == 1
    assert {(f["rule_id"], f["evidence"]["column"]) for f in _findings(out.stdout)} == {
        ("MLF-PII-001", "card_number")}


def test_sampling_is_stated_and_full_reads_every_row(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("id,note,email\n")
        for i in range(60_000):
            f.write(f"{i},nothing here,{EMAILS[i % 50]}\n")
    sampled = _findings(run_cli("scan", "pii", str(path), "--sample-rows", "1000", "--format", "json").stdout)
    assert sampled[0]["evidence"]["sampled"] is True and sampled[0]["evidence"]["rows_scanned"] == 1_000
    full = _findings(run_cli("scan", "pii", str(path), "--full", "--format", "json").stdout)
    assert full[0]["evidence"]["sampled"] is False and full[0]["evidence"]["rows_scanned"] == 60_000
    table = run_cli("scan", "pii", str(path), "--sample-rows", "1000")
    assert "sampled" in table.stdout


def test_a_policy_that_does_not_classify_the_dataset_pii_fails_the_run(tmp_path):
    data = tmp_path / "data"
    _emails_csv(data)
    policy = tmp_path / "mlfort.yaml"
    policy.write_text(
        "version: 1\n"
        "environments: {onprem: {jurisdiction: DE}}\n"
        "datasets:\n"
        "  contacts:\n"
        "    classification: internal\n"
        "    residency: [EU]\n"
        "    owner: data@acme.eu\n"
        f"    locations: {{onprem: '{data}'}}\n"
    )
    out = run_cli("scan", "pii", str(data), "--policy", str(policy), "--format", "json")
    assert out.returncode == 1, out.stderr
    high = [f for f in _findings(out.stdout) if f["rule_id"] == "MLF-PII-005"]
    assert high and high[0]["evidence"]["dataset"] == "contacts" and high[0]["severity"] == "high"
    unknown = run_cli("scan", "pii", str(data), "--policy", str(policy), "--dataset", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_sarif_output_validates_and_points_at_the_column(tmp_path, oasis_schema):  # noqa: F811
    table = make_table(rows=150, seed=32)
    path = table.write_csv(tmp_path / "t.csv")
    out = run_cli("scan", "pii", str(path), "--format", "sarif")
    doc = json.loads(out.stdout)
    assert_valid(oasis_schema, doc)
    results = doc["runs"][0]["results"]
    assert results and all(r["ruleId"].startswith("MLF-PII-") for r in results)
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 1 and region["startColumn"] >= 1


def test_broken_and_missing_files(tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    out = run_cli("scan", "pii", str(broken), "--format", "json")
    assert out.returncode == 1 and _findings(out.stdout)[0]["rule_id"] == "MLF-PII-006"
    missing = run_cli("scan", "pii", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "nope.csv" in missing.stderr

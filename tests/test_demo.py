"""The main job: `mlfort demo` tells the whole story and catches the tampered model."""

from __future__ import annotations

import json

from rich.console import Console

from mlfort.demo import run_demo
from tests.conftest import run_cli


def test_demo_story_signs_verifies_and_catches_the_flipped_byte(tmp_path):
    console = Console(record=True, width=200)
    story = run_demo(tmp_path / "work", console=console)
    outcomes = {s["title"]: s["outcome"] for s in story.steps}
    assert outcomes == {
        "policy": "valid", "dataset": "created", "train": "trained", "sign dataset": "signed",
        "sign model": "signed", "verify dataset": "verified", "verify model": "verified",
        "scan": "clean and planted caught", "tamper and verify": "caught", "ledger verify": "intact",
        "lineage": "answered", "ledger tamper": "caught", "scan pii": "classified",
        "scan deps": "clean and vulnerable pin caught", "encrypt dataset": "encrypted for both environments",
    }
    steps = {s["title"]: s for s in story.steps}
    caught = steps["tamper and verify"]
    assert caught["file"] == "model.joblib" and caught["rule_id"] == "MLF-ART-001"
    assert steps["ledger verify"]["entries"] == 16
    enc = steps["encrypt dataset"]
    assert enc["keyrings"] == ["onprem-keys", "aws-keys"] and enc["opened_with"] == "onprem-keys"
    assert enc["refused_rule"] == "MLF-ENC-003" and enc["kinds"] == ["local"]
    sealed = (tmp_path / "work" / "data" / "encrypted" / "customers.csv.mlfe").read_bytes()
    assert sealed.startswith(b"MLFE") and b"customer_id" not in sealed
    workspace = tmp_path / "work" / "work" / "train-0001" / "customers" / "customers.csv"
    assert workspace.stat().st_mode & 0o777 == 0o600
    assert steps["scan pii"]["columns"] == ["email (email address)", "phone (phone number)"]
    assert steps["scan pii"]["misfiled_rule"] == "MLF-PII-005"
    assert steps["scan deps"]["caught_rule"] == "MLF-DEP-001"
    assert steps["scan deps"]["advisory"] == "GHSA-6hrg-qmvc-2xh8" and steps["scan deps"]["packages"] > 10
    assert steps["scan"]["caught_rule"] == "MLF-MOD-001"
    assert steps["lineage"]["trained_on"] == ["customers"]
    assert steps["lineage"]["deployed"] == ["endpoint:churn in aws"]
    assert steps["ledger tamper"]["first_bad"] == 15  # the failed verification an attacker tried to rewrite
    text = console.export_text()
    assert "FAILED as it must" in text and "model.joblib" in text
    for name in ("data-steward", "release"):  # the signers the example policy names
        assert (tmp_path / "work" / "keys" / f"{name}.key").stat().st_mode & 0o777 == 0o600
    assert "each artifact trusts only its own signers" in text
    assert "PRIVATE KEY" not in text


def test_demo_command_exits_zero_and_json_lists_the_steps(tmp_path):
    proc = run_cli("demo", "--json", "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(proc.stdout)["steps"]
    assert steps[-1]["outcome"] == "caught"
    assert (tmp_path / "w" / ".mlfort" / "ledger.db").exists()  # the ledger the example policy names


def test_demo_without_workdir_leaves_nothing_behind(tmp_path):
    proc = run_cli("demo", env={"TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "FAILED as it must" in proc.stdout
    assert list(tmp_path.iterdir()) == []

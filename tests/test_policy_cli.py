"""Specifications of `mlfort policy validate` and `mlfort init`: exit codes, findings, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlfort.cli import main
from mlfort.policy import example_policy_text, load_policy

BROKEN = Path(__file__).parent / "data" / "policy" / "broken.yaml"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


def test_validate_valid_policy_exits_0_with_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlfort.crypto.signing_keys import create_signing_keypair

    path = tmp_path / "mlfort.yaml"
    path.write_text(example_policy_text(), encoding="utf-8")
    for name in ("data-steward", "release"):  # the signer keys the example names, beside it
        create_signing_keypair(tmp_path / "keys", name=name)
    code, out, err = run(["policy", "validate", str(path)], capsys)
    assert code == 0, out + err
    assert "valid: 2 environments, 5 roles, 3 human groups, 2 workloads, 2 datasets, 1 model, 3 keyrings" in out


def test_validate_warns_about_missing_signer_key_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mlfort.yaml"
    path.write_text(example_policy_text(), encoding="utf-8")
    code, out, _ = run(["policy", "validate", str(path), "--format", "json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert {(f["rule_id"], f["severity"]) for f in report["findings"]} == {("MLF-POL-012", "medium")}
    assert any("keys/release.pub" in f["message"] for f in report["findings"])
    code, _, _ = run(["policy", "validate", str(path), "--fail-on", "high"], capsys)
    assert code == 0  # a warning: the policy itself is valid


def test_validate_broken_policy_exits_1_with_positioned_findings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["policy", "validate", str(BROKEN), "--format", "json"], capsys)
    assert code == 1
    report = json.loads(out)
    findings = {f["target"].split("#", 1)[1]: f for f in report["findings"]}
    classification = findings["datasets.customers.classification"]
    assert classification["rule_id"] == "MLF-POL-007"
    assert classification["severity"] == "high"
    assert classification["location"] == {"path": str(BROKEN), "line": 28, "column": 21}
    assert classification["message"] == "expected one of public, internal, confidential, pii; got 'secret'"
    assert findings["principals.workloads.trainer.extra"]["location"]["line"] == 25
    assert len(findings) == 6


def test_validate_writes_sarif_with_policy_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "policy.sarif"
    code, _, _ = run(["policy", "validate", str(BROKEN), "-f", "sarif", "-o", str(out_file)], capsys)
    assert code == 1
    sarif = json.loads(out_file.read_text(encoding="utf-8"))
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"MLF-POL-005", "MLF-POL-007"}
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] >= 1 and region["startColumn"] >= 1


def test_validate_fail_on_above_high_exits_0_for_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(["policy", "validate", str(BROKEN), "-f", "json", "--fail-on", "critical"], capsys)
    assert code == 0


def test_validate_missing_file_exits_2_with_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["policy", "validate", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2
    assert err.startswith("error: policy file not found:")
    assert "Traceback" not in err + out


def test_validate_huge_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    code, _, err = run(["policy", "validate", str(path)], capsys)
    assert code == 2
    assert "limit" in err


def test_validate_hostile_yaml_is_a_finding_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("version: 1\nledger: !!python/object/apply:os.system ['touch pwned']\n", encoding="utf-8")
    code, out, err = run(["policy", "validate", str(path), "-f", "json"], capsys)
    assert code == 1
    (finding,) = json.loads(out)["findings"]
    assert finding["rule_id"] == "MLF-POL-004"
    assert finding["location"]["line"] == 2
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert "Traceback" not in err


def test_init_writes_a_policy_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mlfort.yaml"
    code, stdout, _ = run(["init", "--out", str(out)], capsys)
    assert code == 0
    assert f"wrote {out}" in stdout
    assert out.read_text(encoding="utf-8") == example_policy_text()
    assert load_policy(out).workload_grants("trainer").reads == {"customers"}


def test_init_defaults_to_mlfort_yaml_in_the_current_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(["init"], capsys)
    assert code == 0
    assert (tmp_path / "mlfort.yaml").is_file()


def test_init_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mlfort.yaml"
    out.write_text("mine\n", encoding="utf-8")
    code, _, err = run(["init", "--out", str(out)], capsys)
    assert code == 2
    assert "already exists" in err and "--force" in err
    assert out.read_text(encoding="utf-8") == "mine\n"


def test_init_force_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mlfort.yaml"
    out.write_text("mine\n", encoding="utf-8")
    code, _, _ = run(["init", "--out", str(out), "--force"], capsys)
    assert code == 0
    assert out.read_text(encoding="utf-8") == example_policy_text()
    assert [p.name for p in tmp_path.iterdir()] == ["mlfort.yaml"]  # no temp file left behind


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_init_does_not_follow_a_symlink_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n", encoding="utf-8")
    link = tmp_path / "mlfort.yaml"
    link.symlink_to(target)
    code, _, _ = run(["init", "--out", str(link)], capsys)
    assert code == 2
    assert target.read_text(encoding="utf-8") == "keep\n"


@pytest.mark.parametrize("command", [["policy", "--help"], ["policy", "validate", "--help"], ["init", "--help"]])
def test_help_explains_with_an_example(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(command, capsys)
    assert code == 0
    assert "Example" in out


def test_cli_import_does_not_load_pydantic() -> None:
    import subprocess
    import sys

    probe = "import sys, mlfort.cli; print('pydantic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_validate_reports_references_residency_and_wildcard_warning(capsys: pytest.CaptureFixture[str]) -> None:
    path = BROKEN.with_name("broken-references.yaml")
    code, out, _ = run(["policy", "validate", str(path), "-f", "json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["summary_text"] == "invalid: 5 errors, 1 warning"
    by_rule = sorted((f["rule_id"], f["severity"], f["location"]["line"]) for f in report["findings"])
    assert ("MLF-POL-009", "high", 31) in by_rule
    assert ("MLF-POL-010", "medium", 11) in by_rule
    assert [r for r, _, _ in by_rule].count("MLF-POL-008") == 4

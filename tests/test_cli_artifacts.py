"""The `mlfort` command line as a user meets it (the installed console script): help and examples, version,
exit codes 0/1/2 of `artifacts sign|verify`, and the json/sarif/--output reports of a failed verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlfort
from tests.conftest import run_cli


@pytest.fixture(autouse=True)
def _no_ambient_password(monkeypatch):
    monkeypatch.delenv("MLFORT_KEY_PASSWORD", raising=False)


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    root = tmp_path / "tiny-model"
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(b"\x00\x01\x02" * 100)
    (root / "config.json").write_text('{"layers": 1}')
    (root / "sub" / "tokenizer.json").write_text("{}")
    return root


@pytest.fixture
def signed(tiny_model: Path, keypair) -> Path:
    proc = run_cli("artifacts", "sign", str(tiny_model), "--key", str(keypair[0]))
    assert proc.returncode == 0, proc.stderr
    return tiny_model


def _verify(model: Path, pub: Path, *extra: str, cwd: Path | None = None):
    return run_cli("artifacts", "verify", str(model), "--key", str(pub), *extra, cwd=cwd)


# --- help, version, usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["policy"],
        ["policy", "validate"],
        ["init"],
        ["artifacts"],
        ["artifacts", "sign"],
        ["artifacts", "verify"],
        ["keys"],
        ["keys", "create-signing"],
        ["demo"],
    ],
    ids=lambda c: " ".join(c) or "mlfort",
)
def test_every_command_has_help_with_an_example(command):
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: mlfort" in proc.stdout
    assert "Example" in proc.stdout
    assert f"mlfort {' '.join(command)}".strip() in proc.stdout  # the example is a command line to copy


def test_version_prints_the_package_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mlfort {mlfort.__version__}"


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-option"],
        ["artifacts", "sign", "x", "--key", "k", "--no-such-option"],
        ["artifacts", "verify", "x", "--key", "k", "--no-such-option"],
        ["artifacts", "sign", "x", "--key", "k", "--hash", "md5"],
        ["artifacts", "sign", "x", "--key", "k", "--shard-size", "0"],
        ["artifacts", "sign", "x"],
    ],
    ids=["root-option", "sign-option", "verify-option", "bad-hash", "zero-shard", "sign-without-key"],
)
def test_usage_errors_exit_2(args):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_verify_without_any_trusted_key_is_a_usage_error(signed):
    proc = run_cli("artifacts", "verify", str(signed))
    assert proc.returncode == 2
    assert "--key" in proc.stderr


# --- exit codes of sign and verify ---------------------------------------------------------------------------


def test_sign_then_verify_exit_0_and_say_so(tiny_model, keypair):
    signed = run_cli("artifacts", "sign", str(tiny_model), "--key", str(keypair[0]))
    assert signed.returncode == 0, signed.stderr
    assert "signed 3 file(s)" in signed.stdout
    assert str(tiny_model / "model.sig") in signed.stdout
    verified = _verify(tiny_model, keypair[1])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified: 3 file(s)" in verified.stdout


def test_sign_json_output_parses(tiny_model, keypair):
    proc = run_cli("artifacts", "sign", str(tiny_model), "--key", str(keypair[0]), "--format", "json",
                   "--hash", "blake3")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["files"] == 3
    assert out["serialization"]["hash_type"] == "blake3"
    assert len(out["root_digest"]["sha256"]) == 64


def test_sign_and_verify_from_inside_the_tree_with_dot(tiny_model, keypair):
    assert run_cli("artifacts", "sign", ".", "--key", str(keypair[0]), cwd=tiny_model).returncode == 0
    assert (tiny_model / "model.sig").is_file()
    assert _verify(tiny_model, keypair[1]).returncode == 0


def test_verify_exits_1_when_a_file_changed(signed, keypair):
    (signed / "config.json").write_text('{"layers": 2}')
    proc = _verify(signed, keypair[1])
    assert proc.returncode == 1
    assert "config.json" in proc.stdout
    assert "FAILED" in proc.stdout


def test_verify_exits_1_when_the_signature_is_missing(tiny_model, keypair):
    proc = _verify(tiny_model, keypair[1])
    assert proc.returncode == 1
    assert "no signature at" in proc.stdout


def test_verify_exits_1_with_the_wrong_key(signed, other_keypair):
    proc = _verify(signed, other_keypair[1])
    assert proc.returncode == 1
    assert "wrong key" in proc.stdout


def test_verify_exits_2_for_a_path_that_does_not_exist(tmp_path, keypair):
    proc = _verify(tmp_path / "nope", keypair[1])
    assert proc.returncode == 2
    assert "no such file or directory" in proc.stderr


def test_sign_exits_2_for_a_missing_key_file(tiny_model, tmp_path):
    proc = run_cli("artifacts", "sign", str(tiny_model), "--key", str(tmp_path / "missing.key"))
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    assert not (tiny_model / "model.sig").exists()


def test_fail_on_cannot_turn_a_failed_verification_into_a_pass(signed, keypair):
    (signed / "extra.pkl").write_bytes(b"x")  # a HIGH finding, below --fail-on critical
    proc = _verify(signed, keypair[1], "--fail-on", "critical")
    assert proc.returncode == 1


def test_allow_unsigned_files_passes_with_an_added_file_but_still_names_it(signed, keypair):
    (signed / "README.md").write_text("notes")
    proc = _verify(signed, keypair[1], "--allow-unsigned-files", "--format", "json")
    assert proc.returncode == 0, proc.stdout
    findings = json.loads(proc.stdout)["findings"]
    assert [(f["rule_id"], f["severity"]) for f in findings] == [("MLF-ART-002", "info")]
    assert findings[0]["target"].endswith("README.md")


def test_require_hash_refuses_another_hash_with_exit_1(signed, keypair):
    proc = _verify(signed, keypair[1], "--require-hash", "blake3")
    assert proc.returncode == 1
    assert "MLF-ART-007" in proc.stdout


def test_a_bad_fail_on_value_is_a_usage_error(signed, keypair):
    proc = _verify(signed, keypair[1], "--fail-on", "catastrophic")
    assert proc.returncode == 2


# --- reports of a failed verification ------------------------------------------------------------------------


def _tamper(model: Path) -> None:
    (model / "weights.bin").write_bytes(b"swapped")
    (model / "sub" / "evil.pkl").write_bytes(b"cos\nsystem\n")
    (model / "config.json").unlink()


def test_failed_verify_json_names_each_file_once(signed, keypair):
    _tamper(signed)
    proc = _verify(signed, keypair[1], "--format", "json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    by_file = {f["evidence"]["file"]: f["rule_id"] for f in report["findings"]}
    assert by_file == {"weights.bin": "MLF-ART-001", "sub/evil.pkl": "MLF-ART-002", "config.json": "MLF-ART-003"}
    assert len(report["findings"]) == 3
    assert all(f["target"].startswith(str(signed)) for f in report["findings"])


def test_failed_verify_sarif_parses_and_locates_each_file(signed, keypair):
    _tamper(signed)
    proc = _verify(signed, keypair[1], "--format", "sarif")
    assert proc.returncode == 1
    sarif = json.loads(proc.stdout)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert {u.rsplit("/", 2)[-1] for u in uris} == {"weights.bin", "evil.pkl", "config.json"}
    assert {r["ruleId"] for r in results} == {"MLF-ART-001", "MLF-ART-002", "MLF-ART-003"}
    assert all(r["level"] == "error" for r in results)


def test_output_writes_the_report_to_a_file(signed, keypair, tmp_path):
    _tamper(signed)
    out = tmp_path / "verify.sarif"
    proc = _verify(signed, keypair[1], "--format", "sarif", "--output", str(out))
    assert proc.returncode == 1
    sarif = json.loads(out.read_text(encoding="utf-8"))
    assert len(sarif["runs"][0]["results"]) == 3
    assert '"runs"' not in proc.stdout  # the report went to the file, not to standard output


def test_failed_verify_of_a_malformed_signature_reports_it_in_json(signed, keypair):
    (signed / "model.sig").write_text('{"mediaType": "application/x-evil"}')
    proc = _verify(signed, keypair[1], "--format", "json")
    assert proc.returncode == 1
    [finding] = json.loads(proc.stdout)["findings"]
    assert finding["rule_id"] == "MLF-ART-004"
    assert "mediaType" in finding["message"]


# --- open weaknesses -----------------------------------------------------------------------------------------


def test_sign_with_an_escaping_ignore_path_is_a_usage_error(tiny_model, keypair):
    proc = run_cli("artifacts", "sign", str(tiny_model), "--key", str(keypair[0]), "--ignore-paths", "../x")
    assert proc.returncode == 2
    assert "--ignore-paths" in proc.stderr

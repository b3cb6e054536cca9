"""`mlfort scan models` end to end: walking, exit codes, formats, and SARIF that validates."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

from mlfort.scan.engine import scan_paths
from tests.conftest import run_cli
from tests.test_report_sarif import assert_valid, oasis_schema  # noqa: F401 - the fixture is used by name


class _Exec:
    """Pickles to a call of os.system: what a malicious model file does. Never loaded here."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _benign_folder(root: Path) -> Path:
    root.mkdir()
    (root / "README.md").write_text("a model card\n")
    (root / "config.json").write_text('{"hidden": 8}')
    (root / "weights.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0], "b": 0.5}, protocol=4))
    return root


def test_help_teaches_with_an_example():
    out = run_cli("scan", "models", "--help")
    assert out.returncode == 0 and "Example" in out.stdout and "content" in out.stdout


def test_a_clean_folder_exits_0_and_the_summary_counts_formats(tmp_path):
    folder = _benign_folder(tmp_path / "m")
    out = run_cli("scan", "models", str(folder))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "scanned 3 file(s)" in out.stdout and "1 pickle" in out.stdout and "1 json" in out.stdout


def test_a_malicious_pickle_fails_the_run_and_is_named(tmp_path):
    folder = _benign_folder(tmp_path / "m")
    (folder / "model.bin").write_bytes(pickle.dumps(_Exec(), protocol=2))
    out = run_cli("scan", "models", str(folder), "--format", "json")
    assert out.returncode == 1
    found = json.loads(out.stdout)["findings"]
    assert any(f["rule_id"] == "MLF-MOD-001" and f["target"].endswith("model.bin") for f in found)


def test_unrecognised_binary_is_reported_but_fails_only_with_fail_on_low(tmp_path):
    (tmp_path / "blob.dat").write_bytes(bytes(range(256)) * 4)
    out = run_cli("scan", "models", str(tmp_path / "blob.dat"), "--format", "json")
    assert out.returncode == 0
    assert [f["rule_id"] for f in json.loads(out.stdout)["findings"]] == ["MLF-MOD-005"]
    assert run_cli("scan", "models", str(tmp_path / "blob.dat"), "--fail-on", "low").returncode == 1


def test_a_missing_path_is_a_usage_error(tmp_path):
    out = run_cli("scan", "models", str(tmp_path / "nope"))
    assert out.returncode == 2 and "nope" in out.stderr


def test_symlinks_out_of_the_folder_and_fifos_are_findings(tmp_path):
    folder = _benign_folder(tmp_path / "m")
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps(_Exec()))
    (folder / "link.pkl").symlink_to(outside)
    os.mkfifo(folder / "pipe")
    report = scan_paths([folder], workers=1)
    rules = sorted((f.rule_id, Path(f.target).name) for f in report.findings)
    assert ("MLF-MOD-012", "link.pkl") in rules and ("MLF-MOD-003", "pipe") in rules
    assert not any(f.rule_id == "MLF-MOD-001" for f in report.findings)  # the outside file was not followed


def test_many_files_fan_out_over_processes_with_the_same_result(tmp_path, monkeypatch):
    from mlfort.scan import engine

    monkeypatch.setattr(engine, "PROCESS_MIN_BYTES", 0)  # small files normally stay in-process
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        (folder / f"p{i:02d}.pkl").write_bytes(pickle.dumps({"i": i}))
    (folder / "evil.pkl").write_bytes(pickle.dumps(_Exec()))
    one = scan_paths([folder], workers=1)
    many = scan_paths([folder], workers=2)
    assert one.files == many.files == 41
    assert sorted(f.to_dict()["target"] for f in one.findings) == sorted(f.to_dict()["target"] for f in many.findings)
    assert one.formats == many.formats


def test_sarif_output_validates(tmp_path, oasis_schema):  # noqa: F811
    folder = _benign_folder(tmp_path / "m")
    with zipfile.ZipFile(folder / "nested.zip", "w") as z:
        z.writestr("inner/data.pkl", pickle.dumps(_Exec()))
    out = run_cli("scan", "models", str(folder), "--format", "sarif")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert_valid(oasis_schema, doc)
    assert any(r["ruleId"] == "MLF-MOD-001" for r in doc["runs"][0]["results"])


@pytest.mark.parametrize("content", [b"", b"\n", b"\x80", b"\x80\x05", b"PK\x03\x04", b"\x93NUMPY", b"GGUF"])
def test_tiny_and_truncated_files_never_crash(tmp_path, content):
    path = tmp_path / "f"
    path.write_bytes(content)
    report = scan_paths([path], workers=1)
    assert report.files == 1  # findings or none, but never an exception


def test_a_handler_that_chokes_is_a_finding_not_a_crash(tmp_path, monkeypatch):
    from mlfort.scan import dispatch

    def broken(member, stream, ctx):
        raise ValueError("a bug the file found")

    dispatch.load_handlers()
    monkeypatch.setitem(dispatch.HANDLERS, "pickle", broken)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    (finding,) = scan_paths([path], workers=1).findings
    assert finding.rule_id == "MLF-MOD-003" and "ValueError" in finding.message


def test_every_registered_format_has_its_module_named_for_lazy_loading():
    from mlfort.scan import dispatch

    dispatch.load_handlers()
    assert set(dispatch.HANDLERS) == set(dispatch.MODULE_OF)

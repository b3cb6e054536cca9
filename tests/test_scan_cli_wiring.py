"""The scan commands' shared wiring: the policy's `scan` settings and their precedence, `--record` in the ledger,
`scan all` over a mixed folder, and the `sbom` command's arguments."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest

from mlfort.errors import InputError
from tests.conftest import run_cli
from tests.test_report_sarif import assert_valid, oasis_schema  # noqa: F401 - the fixture is used by name

ADVISORY = {
    "id": "GHSA-6hrg-qmvc-2xh8",
    "aliases": ["CVE-2022-21797"],
    "summary": "joblib vulnerable to arbitrary code execution",
    "modified": "2024-01-01T00:00:00Z",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "joblib"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.1"}]}]}],
    "database_specific": {"severity": "CRITICAL"},
}


def _osv_zip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{ADVISORY['id']}.json", json.dumps(ADVISORY))
    return path


def _requirements(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    req = folder / "requirements.txt"
    req.write_text("joblib==1.1.0\n")
    return req


def _policy(folder: Path, scan: str = "", classification: str = "internal") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    policy = folder / "mlfort.yaml"
    policy.write_text(
        "version: 1\n"
        f"{scan}"
        "environments:\n"
        "  onprem: {jurisdiction: DE}\n"
        "datasets:\n"
        "  events:\n"
        f"    classification: {classification}\n"
        "    residency: [EU]\n"
        "    owner: data@acme.eu\n"
        f"    locations: {{onprem: {folder / 'data'}}}\n"
    )
    return policy


def _ids(stdout: str) -> set[str]:
    return {f["rule_id"] for f in json.loads(stdout)["findings"]}


def test_the_policy_scan_section_is_strict(tmp_path):
    from mlfort.policy import load_policy

    good = _policy(tmp_path / "a", "scan:\n  osv_db: osv.zip\n  pii_sample_rows: 500\n")
    assert load_policy(good).scan.pii_sample_rows == 500
    for bad in ("scan:\n  osv_dbb: osv.zip\n", "scan:\n  pii_sample_rows: 5\n"):
        with pytest.raises(InputError):
            load_policy(_policy(tmp_path / "b", bad))


def test_no_database_fails_closed_and_each_source_of_the_database_is_used(tmp_path, mlfort_home):
    req = _requirements(tmp_path / "project")
    out = run_cli("scan", "deps", str(req), "--format", "json")
    assert out.returncode == 1, out.stderr
    assert not any("GHSA-6hrg-qmvc-2xh8" in f["message"] + json.dumps(f["evidence"])
                   for f in json.loads(out.stdout)["findings"])

    def found(*args: str, env: dict[str, str] | None = None) -> bool:
        res = run_cli("scan", "deps", str(req), "--format", "json", *args, env=env)
        assert res.returncode == 1, res.stderr
        return any("GHSA-6hrg-qmvc-2xh8" in json.dumps(f) for f in json.loads(res.stdout)["findings"])

    explicit = _osv_zip(tmp_path / "dbs" / "explicit.zip")
    assert found("--osv-db", str(explicit))
    assert found(env={"MLFORT_OSV_DB": str(explicit)})
    policy = _policy(tmp_path / "p", "scan:\n  osv_db: ../dbs/explicit.zip\n")
    assert found("--policy", str(policy))
    _osv_zip(mlfort_home / "osv" / "PyPI-all.zip")
    assert found()


def test_record_puts_the_scan_and_its_outcome_in_the_ledger(tmp_path):
    folder = tmp_path / "code"
    folder.mkdir()
    fixture = "S3cr3t-" + "Pa55w0rd-q8"  # built at run time, so the repository itself holds no secret
    (folder / "settings.py").write_text(f"DATABASE_URL = 'postgresql://app:{fixture}@db.internal:5432/app'\n")
    out = run_cli("scan", "secrets", str(folder), "--record", "--format", "json")
    assert out.returncode == 1, out.stderr
    tail = run_cli("ledger", "query", "--action", "scan.secrets", "--format", "json")
    assert tail.returncode == 0, tail.stderr
    assert "failure" in tail.stdout and "S3cr3t" not in tail.stdout


def test_an_unrecordable_scan_reports_nothing_and_exits_2(tmp_path):
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "a.py").write_text("x = 1\n")
    out = run_cli("scan", "secrets", str(folder), "--record", "--ledger", "postgresql://nobody@127.0.0.1:1/none")
    assert out.returncode == 2
    assert "No findings" not in out.stdout


def _hostile_pickle() -> bytes:
    return b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R."


def test_scan_all_runs_every_scanner_once_over_a_mixed_folder(tmp_path, oasis_schema):  # noqa: F811
    policy = _policy(tmp_path, "scan:\n  osv_db: osv.zip\n")
    _osv_zip(tmp_path / "osv.zip")
    _requirements(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pkl").write_bytes(_hostile_pickle())
    (tmp_path / "models" / "clean.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    token = "ghp_" + "k3Xq9Lm2Pv7Rz4Tw8Yb1" + "Nc6Hd5Jf0Gs2Ae9U"  # built at run time, like every test secret
    (tmp_path / "deploy.env").write_text(f"GITHUB_TOKEN={token}\n")
    rows = "\n".join(f"{i},person{i}.name@mailhost.eu,+49 151 {1000000 + i * 7919}" for i in range(200))
    (tmp_path / "data" / "events.csv").write_text("id,email,phone\n" + rows + "\n")
    (tmp_path / "README.md").write_text("# project\n")

    out = run_cli("scan", "all", str(tmp_path), "--policy", str(policy), "--format", "json")
    assert out.returncode == 1, out.stderr
    ids = _ids(out.stdout)
    prefixes = {i.rsplit("-", 1)[0] for i in ids}
    assert {"MLF-MOD", "MLF-DEP", "MLF-SEC", "MLF-PII"} <= prefixes, ids
    # text files are not the model scanner's: no "format not recognised" for README.md, the CSV or the .env
    targets = {f["target"] for f in json.loads(out.stdout)["findings"] if f["rule_id"].startswith("MLF-MOD")}
    assert all(t.endswith("model.pkl") for t in targets), targets
    assert "k3Xq9Lm2Pv7Rz4Tw8Yb1" not in out.stdout and "person1.name" not in out.stdout

    sarif = run_cli("scan", "all", str(tmp_path), "--policy", str(policy), "--format", "sarif")
    assert_valid(oasis_schema, json.loads(sarif.stdout))

    # files named one by one go only to the scanners that read their kind: README.md is nobody's finding
    files = run_cli("scan", "all", str(tmp_path / "README.md"), str(tmp_path / "requirements.txt"),
                    str(tmp_path / "models" / "model.pkl"), "--policy", str(policy), "--format", "json")
    found = json.loads(files.stdout)["findings"]
    assert not [f for f in found if f["target"].endswith("README.md")], found
    assert {f["rule_id"].rsplit("-", 1)[0] for f in found} == {"MLF-DEP", "MLF-MOD"}


def test_model_files_are_picked_by_content_or_model_name(tmp_path):
    from mlfort.cli.scan import _model_files

    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "venv" / "x.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01\x02unknown")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "config.json").write_text("{}")
    names = sorted(p.name for p in _model_files([tmp_path]))
    assert names == ["a.pkl", "weights.bin"]


def test_sbom_arguments(tmp_path):
    both = run_cli("sbom", str(tmp_path), "--model", str(tmp_path))
    assert both.returncode == 2
    unsigned = tmp_path / "model"
    unsigned.mkdir()
    (unsigned / "w.bin").write_bytes(b"x")
    out = run_cli("sbom", "--model", str(unsigned))
    assert out.returncode == 2 and "sign" in out.stderr
    env = run_cli("sbom", "-o", str(tmp_path / "env.cdx.json"))
    assert env.returncode == 0, env.stderr
    doc = json.loads((tmp_path / "env.cdx.json").read_text())
    assert doc["specVersion"] == "1.6"
    assert any(c["name"] == "mlfort" for c in doc["components"])

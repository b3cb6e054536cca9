"""`mlfort scan deps`: dependency files and environments parsed strictly, OSV records matched exactly as the OSV
schema defines, and no data never passing as "no vulnerabilities"."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from mlfort.errors import InputError
from mlfort.report import Severity
from mlfort.scan.dependencies import collect, scan_deps
from mlfort.scan.dependencies.osv import affects, cvss3_base_score
from tests.conftest import run_cli
from tests.test_report_sarif import assert_valid, oasis_schema  # noqa: F401 - the fixture is used by name


def record(rid: str, name: str, *ranges: list[dict], versions: tuple[str, ...] = (), aliases: tuple[str, ...] = (),
           **extra: object) -> dict:
    affected = {"package": {"ecosystem": "PyPI", "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": events} for events in ranges]}
    if versions:
        affected["versions"] = list(versions)
    return {"id": rid, "modified": "2025-01-01T00:00:00Z", "aliases": list(aliases), "summary": f"{rid} summary",
            "affected": [affected], **extra}


def osv_zip(path: Path, *records: dict, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for r in records:
            z.writestr(f"{r['id']}.json", json.dumps(r))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def ids(result) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in result.findings:
        out.setdefault(f.rule_id, []).append(f)
    return out


@pytest.mark.parametrize(("events", "version", "expected"), [
    ([{"introduced": "0"}, {"fixed": "1.2.0"}], "1.1.9", True),
    ([{"introduced": "0"}, {"fixed": "1.2.0"}], "1.2.0", False),
    ([{"introduced": "0"}, {"fixed": "1.2.0"}], "1.2.0rc1", True),  # a pre-release of the fix is still before it
    ([{"introduced": "1.0"}, {"fixed": "1.1"}, {"introduced": "2.0"}, {"fixed": "2.0.3"}], "1.5", False),
    ([{"introduced": "1.0"}, {"fixed": "1.1"}, {"introduced": "2.0"}, {"fixed": "2.0.3"}], "2.0.2", True),
    ([{"introduced": "1.0"}, {"fixed": "1.1"}, {"introduced": "2.0"}, {"fixed": "2.0.3"}], "0.9", False),
    ([{"introduced": "1.0"}, {"last_affected": "1.4"}], "1.4", True),
    ([{"introduced": "1.0"}, {"last_affected": "1.4"}], "1.4.1", False),
    ([{"introduced": "0"}, {"limit": "3.0"}], "2.9", True),
    ([{"introduced": "0"}, {"fixed": "2.1.1"}], "2.1.0+cu118", True),  # a local build of an affected version
    ([{"introduced": "0"}, {"fixed": "2.1.1"}], "1!1.0", False),  # epoch 1 sorts after every epoch-0 version
    ([{"introduced": "0"}], "99.0", True),  # no fix yet: every version
])
def test_ecosystem_ranges_follow_the_osv_schema(events, version, expected):
    assert affects(record("X-1", "pkg", events), "pkg", version) is expected


def test_explicit_versions_and_names_in_any_spelling():
    r = record("X-2", "Foo_Bar.baz", versions=("1.0", "1.0.1"))
    assert affects(r, "foo-bar-baz", "1.0.1") and not affects(r, "foo-bar-baz", "1.0.2")
    other = {**r, "affected": [{**r["affected"][0], "package": {"ecosystem": "npm", "name": "foo-bar-baz"}}]}
    assert not affects(other, "foo-bar-baz", "1.0.1")


@pytest.mark.parametrize(("vector", "score"), [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N", 3.3),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N", 4.2),
    ("CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
])
def test_cvss3_base_scores_match_the_specification_examples(vector, score):
    assert cvss3_base_score(vector) == score


def test_cvss_garbage_is_none():
    assert cvss3_base_score("CVSS:3.1/AV:Q") is None and cvss3_base_score("not a vector") is None


def test_a_vulnerable_pin_is_found_once_per_flaw_with_fixes_and_severity(tmp_path):
    db = osv_zip(tmp_path / "db.zip",
                 record("PYSEC-2022-1", "joblib", [{"introduced": "0"}, {"fixed": "1.1.1"}],
                        aliases=("CVE-2022-21797", "GHSA-6hrg-qmvc-2xh8")),
                 record("GHSA-6hrg-qmvc-2xh8", "joblib", [{"introduced": "0"}, {"fixed": "1.1.1"}],
                        aliases=("CVE-2022-21797",), database_specific={"severity": "CRITICAL"}),
                 record("PYSEC-9-9", "joblib", [{"introduced": "0"}, {"fixed": "0.5"}]),
                 record("GHSA-wdrn-0000-0000", "joblib", [{"introduced": "0"}], withdrawn="2024-01-01T00:00:00Z"))
    req = tmp_path / "requirements.txt"
    req.write_text("numpy==1.26.4\nJobLib==1.1.0  # the old image\n")
    found = ids(scan_deps([req], osv_db=db))
    [vuln] = found["MLF-DEP-001"]
    assert vuln.severity is Severity.CRITICAL
    assert vuln.evidence["advisory"] == "GHSA-6hrg-qmvc-2xh8"
    assert set(vuln.evidence["aliases"]) == {"CVE-2022-21797", "PYSEC-2022-1"}
    assert vuln.evidence["fixed"] == ["1.1.1"] and vuln.location.line == 2


def test_malicious_packages_are_critical_and_cvss_grades_the_rest(tmp_path):
    db = osv_zip(tmp_path / "db.zip",
                 record("MAL-2024-1", "reqeusts", [{"introduced": "0"}]),
                 record("PYSEC-1", "pillow", [{"introduced": "0"}, {"fixed": "10.0.1"}],
                        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"}]))
    req = tmp_path / "requirements.txt"
    req.write_text("reqeusts==2.31.0\npillow==9.0.0\n")
    found = ids(scan_deps([req], osv_db=db))
    assert found["MLF-DEP-002"][0].severity is Severity.CRITICAL
    assert found["MLF-DEP-001"][0].severity is Severity.LOW


def test_no_database_is_could_not_check_never_clean(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("joblib==1.1.0 --hash=sha256:" + "a" * 64 + "\n")
    result = scan_deps([req], osv_db=None)
    assert [f.rule_id for f in result.findings] == ["MLF-DEP-006"]
    assert result.findings[0].severity is Severity.HIGH


def test_an_unreachable_online_service_is_could_not_check(tmp_path):
    from mlfort.scan.dependencies.online import lookup

    req = tmp_path / "requirements.txt"
    req.write_text("joblib==1.1.0\nnumpy==1.26.4\n")
    packages = collect([req]).packages
    found, failed = lookup(packages, url="http://127.0.0.1:1/v1/query")
    assert not found and set(failed) == set(packages)
    import mlfort.scan.dependencies.online as online

    original = online.lookup
    try:
        online.lookup = lambda pkgs: original(pkgs, url="http://127.0.0.1:1/v1/query")
        result = scan_deps([req], osv_db=None, online=True)
    finally:
        online.lookup = original
    assert "MLF-DEP-006" in ids(result) and "MLF-DEP-001" not in ids(result)


def test_requirements_syntax_the_whole_class(tmp_path):
    (tmp_path / "base.txt").write_text("-r requirements.txt\nrequests==2.32.3 \\\n    --hash=sha256:" + "b" * 64
                                       + " \\\n    --hash=sha256:" + "c" * 64 + "\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "--index-url https://deploy:hunter22@pypi.internal.example/simple\n"
        "-r base.txt  # a loop back to this file\n"
        "-c constraints.txt\n"
        "numpy>=1.26 ; python_version >= '3.9'\n"
        "scikit-learn[extra]==1.5.2\n"
        "-e git+https://github.com/acme/feature.git@main#egg=feature\n"
        "private @ https://files.example/private-1.0.tar.gz\n"
        "not a requirement !!\n"
        "-r missing.txt\n")
    (tmp_path / "constraints.txt").write_text("urllib3<3\n")
    result = scan_deps([req], osv_db=None)
    found = ids(result)
    unpinned = {f.evidence["package"] for f in found["MLF-DEP-003"]}
    assert unpinned == {"numpy", "urllib3"}
    assert {f.evidence["package"] for f in found["MLF-DEP-005"]} == {"feature", "private"}
    assert any("hunter22" not in f.message and "***@pypi.internal.example" in f.message for f in found["MLF-DEP-008"])
    problems = {f.evidence["problem"] for f in found["MLF-DEP-007"]}
    assert problems == {"invalid-requirement", "missing-include"}
    # base.txt has hashes, requirements.txt does not: one file-level note, no per-line noise for base.txt
    assert all("requests" not in f.message for f in found["MLF-DEP-004"])
    assert "hunter22" not in json.dumps([f.to_dict() for f in result.findings])


def test_a_file_with_some_hashes_fails_on_the_unhashed_ones(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text(f"a==1.0 --hash=sha256:{'d' * 64}\nb==2.0\n")
    [f] = ids(scan_deps([req], osv_db=None))["MLF-DEP-004"]
    assert f.severity is Severity.MEDIUM and f.evidence["package"] == "b"


def test_ranges_in_pyproject_and_in_files_are_not_findings_but_pins_there_are_checked(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["numpy>=1.26", "joblib==1.1.0"]\n'
        '[project.optional-dependencies]\nfast = ["orjson"]\n'
        '[dependency-groups]\ndev = ["pytest>=8", {include-group = "lint"}]\nlint = ["ruff"]\n'
        '[tool.poetry.dependencies]\npython = "^3.11"\nrequests = "2.32.3"\n')
    (tmp_path / "requirements.in").write_text("pandas\n")
    db = osv_zip(tmp_path / "db.zip", record("GHSA-x", "joblib", [{"introduced": "0"}, {"fixed": "1.1.1"}]))
    result = scan_deps([tmp_path], osv_db=db)
    found = ids(result)
    assert set(found) == {"MLF-DEP-001"}, found
    assert result.counts["packages"] == 7


def test_lock_files_give_exact_versions(tmp_path):
    (tmp_path / "poetry.lock").write_text('[[package]]\nname = "Joblib"\nversion = "1.1.0"\n'
                                          f'files = [{{file = "j.whl", hash = "sha256:{"e" * 64}"}}]\n')
    (tmp_path / "uv.lock").write_text('version = 1\n[[package]]\nname = "joblib"\nversion = "1.0.0"\n'
                                      'source = { registry = "https://pypi.org/simple" }\n'
                                      f'sdist = {{ url = "https://x/j.tar.gz", hash = "sha256:{"f" * 64}" }}\n'
                                      '[[package]]\nname = "me"\nversion = "0.1"\nsource = { editable = "." }\n')
    (tmp_path / "Pipfile.lock").write_text(json.dumps({"default": {"joblib": {"version": "==0.9.0",
                                                                                "hashes": ["sha256:" + "1" * 64]}}}))
    (tmp_path / "pylock.toml").write_text('lock-version = "1.0"\n[[packages]]\nname = "joblib"\nversion = "0.8"\n')
    (tmp_path / "pdm.lock").write_text('[[package]]\nname = "joblib"\nversion = "0.7"\n')
    db = osv_zip(tmp_path / "db.zip", record("GHSA-x", "joblib", [{"introduced": "0"}, {"fixed": "1.1.1"}]))
    found = ids(scan_deps([tmp_path], osv_db=db))
    versions = sorted(f.evidence["version"] for f in found["MLF-DEP-001"])
    assert versions == ["0.7", "0.8", "0.9.0", "1.0.0", "1.1.0"]


def _dist(site: Path, name: str, version: str, *extra: str) -> None:
    d = site / f"{name}-{version}.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text("\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *extra])
                                + "\n")


def test_an_installed_environment_is_read_from_its_metadata(tmp_path):
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (venv).mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    _dist(site, "joblib", "1.1.0", "License: BSD")
    _dist(site, "torch", "2.1.0+cu118", "Requires-Dist: filelock", "Requires-Dist: pytest ; extra == 'test'")
    _dist(site, "bad", "1.0")
    (site / "bad-1.0.dist-info" / "METADATA").write_text("garbage without headers\n")
    db = osv_zip(tmp_path / "db.zip", record("GHSA-x", "joblib", [{"introduced": "0"}, {"fixed": "1.1.1"}]),
                 record("GHSA-t", "torch", [{"introduced": "2.0"}, {"fixed": "2.2.0"}]))
    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(venv, target_is_directory=True)
    for target in (venv, site):
        found = ids(scan_deps([target], osv_db=db))
        assert sorted(f.evidence["package"] for f in found["MLF-DEP-001"]) == ["joblib", "torch"]
        assert found["MLF-DEP-007"][0].evidence["problem"] == "metadata"
    torch = next(p for p in collect([site]).packages if p.key == "torch")
    assert torch.requires == ("filelock",)


def test_hostile_databases_fail_closed(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("joblib==1.1.0\n")
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputError):
        scan_deps([req], osv_db=not_zip)
    with pytest.raises(InputError):
        scan_deps([req], osv_db=tmp_path / "missing.zip")
    damaged = osv_zip(tmp_path / "damaged.zip", extra={
        "a.json": b'{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "joblib"}, ',
        "b.json": b'["name": "joblib"]', "c.json": b'"name": "joblib"' + b"[" * 100_000})
    found = ids(scan_deps([req], osv_db=damaged))
    assert found["MLF-DEP-006"][0].evidence["damaged"] == 3


def test_hostile_dependency_files_are_findings(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project\nthis is not toml")
    (tmp_path / "Pipfile.lock").write_text("[1, 2]")
    (tmp_path / "poetry.lock").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "requirements.txt").write_text("-r requirements.txt\n" * 3)
    result = scan_deps([tmp_path], osv_db=None)
    assert sorted(f.target.rsplit("/", 1)[-1] for f in result.findings if f.rule_id == "MLF-DEP-007") == [
        "Pipfile.lock", "poetry.lock", "pyproject.toml"]


def test_cli_exit_codes_and_sarif(tmp_path, oasis_schema):  # noqa: F811
    db = osv_zip(tmp_path / "db.zip", record("GHSA-x", "joblib", [{"introduced": "0"}, {"fixed": "1.1.1"}]))
    clean = tmp_path / "clean.txt"
    clean.write_text(f"joblib==1.4.2 --hash=sha256:{'a' * 64}\n")
    ok = run_cli("scan", "deps", str(clean), "--osv-db", str(db))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "requirements.txt"
    bad.write_text("joblib==1.1.0\n")
    out = run_cli("scan", "deps", str(bad), "--osv-db", str(db), "--format", "sarif")
    assert out.returncode == 1
    assert_valid(oasis_schema, json.loads(out.stdout))
    assert run_cli("scan", "deps", str(tmp_path / "nope.txt")).returncode == 2
    assert run_cli("scan", "deps", str(bad), "--osv-db", str(tmp_path / "nope.zip")).returncode == 2


def test_a_name_spelled_with_json_escapes_is_still_matched(tmp_path):
    r = record("GHSA-esc", "joblib", [{"introduced": "0"}, {"fixed": "1.1.1"}])
    text = json.dumps(r).replace('"joblib"', '"job\\u006cib"')
    db = osv_zip(tmp_path / "db.zip", extra={"GHSA-esc.json": text.encode()})
    req = tmp_path / "requirements.txt"
    req.write_text("joblib==1.1.0\n")
    assert "MLF-DEP-001" in ids(scan_deps([req], osv_db=db))


def test_an_explicit_file_of_another_kind_is_reported_low_not_parsed(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\nRun `pip install x`.\n")
    [f] = scan_deps([readme], osv_db=None).findings
    assert f.rule_id == "MLF-DEP-007" and f.severity is Severity.LOW
    pinned = tmp_path / "deps.txt"
    pinned.write_text("joblib==1.4.2\n")
    assert collect([pinned]).packages[0].version == "1.4.2"  # any explicit *.txt is read as pip requirements


def test_a_src_folder_with_its_own_egg_info_is_a_project_not_an_environment(tmp_path):
    src = tmp_path / "src"
    (src / "pkg.egg-info").mkdir(parents=True)
    (src / "pkg.egg-info" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 0.1\n")
    (src / "pkg").mkdir()
    (src / "pkg" / "__init__.py").write_text("")
    assert collect([src]).packages == []

"""`scan secrets`: where secrets are looked for (text, notebooks, binaries, zips, model metadata), what is skipped,
redaction in every output format, the allowlist and pragmas, hostile input, and the CLI."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import pickle
import struct
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlfort.scan.secrets as secrets_mod
from mlfort.errors import InputError
from mlfort.report.render import render
from mlfort.scan.secrets import fingerprint, scan_secrets
from mlfort.scan.secrets.patterns import Style, find_secrets
from tests.conftest import run_cli
from tests.test_report_sarif import assert_valid, oasis_schema  # noqa: F401 - the fixture is used by name
from tests.test_scan_secrets_corpus import POSITIVES, Forge, _fingerprint, _nb, _write

F = Forge(77)
TOKEN = F.github()
TOKEN2 = F.github()
SECRET_RULES = {f"MLF-SEC-00{i}" for i in range(1, 9)}


def _secrets(result):
    return [f for f in result.findings if f.rule_id in SECRET_RULES]


def _rules(result):
    return sorted(f.rule_id for f in result.findings)


# ---------------------------------------------------------------------------------------------------- locations


def test_a_finding_points_at_the_file_line_and_column(tmp_path):
    path = tmp_path / "app.env"
    path.write_text(f"# config\nLOG=1\nGITHUB_TOKEN={TOKEN}\n")
    (finding,) = _secrets(scan_secrets([path]))
    assert finding.target == str(path)
    assert (finding.location.path, finding.location.line, finding.location.column) == (str(path), 3, 14)
    assert finding.evidence["fingerprint"] == fingerprint(TOKEN) == _fingerprint(TOKEN)
    assert finding.evidence["kind"] == "github-token" and finding.severity.value == "high"


def test_relative_paths_stay_relative_in_target_and_location(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text(f'TOKEN = "{TOKEN}"\n')
    monkeypatch.chdir(tmp_path)
    (finding,) = _secrets(scan_secrets([Path("sub")]))
    assert finding.target == os.path.join("sub", "a.py") == finding.location.path


def test_notebook_findings_name_the_cell_the_part_and_the_line_within_the_cell(tmp_path):
    path = tmp_path / "nb.ipynb"
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# title\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": ["import os\n", f"t = '{TOKEN}'\n"],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["ok\n", "token is\n", TOKEN2 + "\n"]}]},
    ]
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}, indent=1))
    found = {f.evidence["fingerprint"]: f for f in _secrets(scan_secrets([path]))}
    src, out = found[fingerprint(TOKEN)], found[fingerprint(TOKEN2)]
    assert (src.evidence["cell"], src.evidence["part"], src.evidence["cell_line"]) == (1, "source", 2)
    assert (out.evidence["cell"], out.evidence["part"], out.evidence["output"]) == (1, "output", 0)
    assert out.evidence["cell_line"] == 3
    lines = path.read_text().splitlines()
    # SARIF and editors open the .ipynb itself: the location is the notebook file's own line
    assert src.location.line == src.evidence["file_line"] and TOKEN in lines[src.location.line - 1]
    assert TOKEN2 in lines[out.location.line - 1]


def test_base64_images_in_notebooks_are_never_scanned_but_text_outputs_are(tmp_path):
    png = F.s(5000, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    cell = {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": ["plot(api_key)\n"],
            "outputs": [{"output_type": "display_data", "metadata": {},
                         "data": {"image/png": png, "text/plain": [f"key={TOKEN}"]}}],
            "attachments": {"a.png": {"image/png": png}}}
    path = tmp_path / "plot.ipynb"
    path.write_text(_nb([cell]))
    found = _secrets(scan_secrets([path]))
    assert [f.evidence["fingerprint"] for f in found] == [fingerprint(TOKEN)]
    assert found[0].evidence["mime"] == "text/plain"


@pytest.mark.parametrize("content", ["{not json", '{"cells": "nope"}', "[1, 2]", '{"cells": [1]}',
                                     "[" * 100_000 + "]" * 100_000])
def test_a_malformed_notebook_is_a_low_finding_and_is_still_scanned_as_text(tmp_path, content):
    path = tmp_path / "broken.ipynb"
    path.write_text(content + f"\n{TOKEN}\n")
    result = scan_secrets([path])
    assert "MLF-SEC-009" in _rules(result)
    assert [f.evidence["fingerprint"] for f in _secrets(result)] == [fingerprint(TOKEN)]


def test_tokens_inside_binary_files_are_found_by_their_printable_runs(tmp_path):
    rng = F.rng
    data = rng.randbytes(5000) + b"\x00" + f"GITHUB_TOKEN={TOKEN}".encode() + b"\x00" + rng.randbytes(5000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    (finding,) = _secrets(scan_secrets([path]))
    assert finding.evidence["offset"] == data.index(TOKEN.encode())
    assert finding.location.line is None  # a line in a binary file means nothing


def test_symbol_names_in_compiled_code_are_not_tokens(tmp_path):
    blob = b"\x00".join([b"_ZN5highs_" + F.s(40).encode() + b"Ev", b"get_api_key_" + F.s(30).encode(),
                         b"token=" + F.s(32).encode() + b"Kv"])
    (tmp_path / "lib.so").write_bytes(b"\x7fELF\x00" + blob)
    assert _secrets(scan_secrets([tmp_path / "lib.so"])) == []


def test_safetensors_metadata_is_scanned_with_its_key(tmp_path):
    header = json.dumps({"__metadata__": {"token": TOKEN}, "w": {"dtype": "F32", "shape": [1],
                                                                 "data_offsets": [0, 4]}}).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
    (finding,) = _secrets(scan_secrets([path]))
    assert finding.evidence["metadata_key"] == "token"


def test_zip_members_are_scanned_and_encrypted_or_huge_ones_reported(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/config.yaml", f"hub:\n  token: {TOKEN}\n")
        z.writestr("a/zeros.bin", b"\0" * 3_000_000)
    path = tmp_path / "model.keras"
    path.write_bytes(buf.getvalue())
    result = scan_secrets([path])
    (finding,) = _secrets(result)
    assert finding.evidence["member"] == "a/config.yaml" and finding.evidence["member_line"] == 2
    monkeypatch.setattr(secrets_mod, "MAX_SCAN_BYTES", 1_000_000)
    assert "MLF-SEC-009" in _rules(scan_secrets([path]))  # the zeros blow the decompression budget


def test_an_oversized_file_is_scanned_up_to_the_limit_and_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(secrets_mod, "MAX_SCAN_BYTES", 4096)
    path = tmp_path / "big.txt"
    path.write_text(f"t={TOKEN}\n" + "x" * 10_000 + f"\nt={TOKEN2}\n")
    result = scan_secrets([path])
    assert [f.evidence["fingerprint"] for f in _secrets(result)] == [fingerprint(TOKEN)]
    (note,) = [f for f in result.findings if f.rule_id == "MLF-SEC-009"]
    assert note.severity.value == "low" and note.evidence["scanned_bytes"] == 4096


def test_utf16_and_bom_text_is_decoded(tmp_path):
    (tmp_path / "a.txt").write_bytes(("\ufeff" + f"t: {TOKEN}\n").encode("utf-8"))
    (tmp_path / "b.txt").write_bytes(("\ufeff" + f"t: {TOKEN2}\n").encode("utf-16-be"))
    found = {f.evidence["fingerprint"] for f in _secrets(scan_secrets([tmp_path]))}
    assert found == {fingerprint(TOKEN), fingerprint(TOKEN2)}


# ---------------------------------------------------------------------------------------------------- walking


def test_vendored_and_generated_folders_are_skipped_unless_passed_directly(tmp_path):
    root = tmp_path / "repo"
    for folder in (".git", "node_modules/x", "__pycache__", ".venv", "env2/lib/site-packages/pkg"):
        (root / folder).mkdir(parents=True)
        (root / folder / "f.txt").write_text(f"t={TOKEN}\n")
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "env2" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "app.py").write_text(f"t = '{TOKEN2}'\n")
    result = scan_secrets([root])
    assert [f.evidence["fingerprint"] for f in _secrets(result)] == [fingerprint(TOKEN2)]
    assert result.counts["files"] == 1
    assert len(_secrets(scan_secrets([root / ".venv"]))) == 1  # asked for explicitly: scanned


def test_links_out_of_the_tree_are_reported_not_followed_and_links_inside_scanned_once(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "creds.env").write_text(f"t={TOKEN}\n")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "real.env").write_text(f"t={TOKEN2}\n")
    (root / "out.env").symlink_to(outside / "creds.env")
    (root / "outdir").symlink_to(outside)
    (root / "again.env").symlink_to(root / "real.env")
    result = scan_secrets([root])
    assert [f.evidence["fingerprint"] for f in _secrets(result)] == [fingerprint(TOKEN2)]
    skipped = [f for f in result.findings if f.rule_id == "MLF-SEC-012"]
    assert len(skipped) == 2 and all(f.severity.value == "info" for f in skipped)
    assert len(_secrets(scan_secrets([root / "out.env"]))) == 1  # a link given directly is followed


def test_fifos_are_skipped_and_never_block(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a.env").write_text(f"t={TOKEN}\n")
    started = time.monotonic()
    result = scan_secrets([tmp_path])
    assert time.monotonic() - started < 5 and len(_secrets(result)) == 1


def test_an_unreadable_file_is_a_finding_not_a_pass(tmp_path, monkeypatch):
    path = tmp_path / "locked.env"
    path.write_text(f"t={TOKEN}\n")

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(secrets_mod, "read_file", deny)
    result = scan_secrets([path])
    (finding,) = result.findings
    assert finding.rule_id == "MLF-SEC-010" and finding.severity.value == "medium"
    assert result.counts["unreadable"] == 1


def test_a_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        scan_secrets([tmp_path / "nope"])


def test_progress_counts_files(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text("x\n")
    seen: list[int] = []
    scan_secrets([tmp_path], progress=seen.append)
    assert seen == [1, 2, 3]


# ---------------------------------------------------------------------------------------------------- redaction


def test_no_output_format_ever_carries_a_secret(tmp_path):
    for i, case in enumerate(POSITIVES):
        _write(tmp_path, case, i)
    result = scan_secrets([tmp_path])
    assert len(_secrets(result)) >= len(POSITIVES)
    outputs = {fmt: render(list(result.findings), fmt, title="secrets", summary=result.summary())
               for fmt in ("table", "json", "sarif")}
    leaks = []
    for case in POSITIVES:
        for _, secret in case.expect:
            for i in range(len(secret) - 7):
                piece = secret[i:i + 8]
                leaks += [(case.name, fmt, piece) for fmt, text in outputs.items() if piece in text]
    assert leaks == []


def test_redacted_forms_show_only_the_public_prefix_and_the_length():
    hit = find_secrets(f"t={TOKEN}")[0]
    assert secrets_mod.redact(hit) == "ghp_…(40 chars)"
    pem, _ = F.pem("RSA PRIVATE KEY")
    assert secrets_mod.redact(find_secrets(pem)[0]).startswith("RSA PRIVATE KEY block")
    password = find_secrets('password = "Zq8#mVt2pLx9"', Style.CODE)[0]  # mlfort: allow-secret
    assert secrets_mod.redact(password) == "…(12 chars)"


# ---------------------------------------------------------------------------------------------------- allowlist


def _allow(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_allowlist_by_fingerprint_and_by_path_and_the_summary_counts_them(tmp_path):
    root = tmp_path / "repo"
    (root / "tests" / "fixtures").mkdir(parents=True)
    (root / "app.env").write_text(f"A={TOKEN}\nB={TOKEN2}\n")
    (root / "tests" / "fixtures" / "fake.env").write_text("PASSWORD=Zq8#mVt2pLx9\n")
    allow = _allow(tmp_path / "allow.yaml", f"""
version: 1
allow:
  - fingerprint: {fingerprint(TOKEN)}
    reason: revoked on 2024-05-01, kept in the history
  - path: tests/fixtures/**
    rule: MLF-SEC-006
    reason: fake credentials for tests
""".replace("tests/fixtures/**", str(root / "tests" / "fixtures") + "/**"))
    result = scan_secrets([root], allowlist=allow)
    assert [f.evidence["fingerprint"] for f in _secrets(result)] == [fingerprint(TOKEN2)]
    assert result.counts["allowlisted"] == 2 and "2 allowlisted" in result.summary()


def test_the_allowlist_in_the_folder_root_is_found_and_its_globs_are_relative_to_it(tmp_path):
    root = tmp_path / "repo"
    (root / "tests" / "fixtures").mkdir(parents=True)
    (root / "tests" / "fixtures" / "fake.env").write_text(f"T={TOKEN}\n")
    (root / "main.env").write_text(f"T={TOKEN2}\n")
    (root / ".mlfort-secrets-allow.yaml").write_text("allow:\n  - path: tests/fixtures/\n    reason: fixtures\n"
                                                     f"  - fingerprint: {fingerprint(TOKEN2)}\n"
                                                     "    kind: aws-access-key-id\n    reason: wrong kind\n")
    result = scan_secrets([root])
    assert [f.evidence["fingerprint"] for f in _secrets(result)] == [fingerprint(TOKEN2)]  # kind did not match
    assert result.counts["allowlisted_by_file"] == 1 and result.counts["files"] == 2  # the allowlist is not scanned


def test_an_expired_entry_stops_suppressing_and_is_reported(tmp_path):
    path = tmp_path / "a.env"
    path.write_text(f"T={TOKEN}\n")
    allow = _allow(tmp_path / "allow.yaml", f"allow:\n  - fingerprint: {fingerprint(TOKEN)}\n"
                                            "    reason: temporary\n    expires: 2001-01-01\n"
                                            f"  - fingerprint: {fingerprint(TOKEN2)}\n    reason: still valid\n"
                                            f"    expires: {dt.date.today().isoformat()}\n")
    result = scan_secrets([path], allowlist=allow)
    assert len(_secrets(result)) == 1
    (expired,) = [f for f in result.findings if f.rule_id == "MLF-SEC-011"]
    assert expired.severity.value == "low" and expired.location.line == 2 and expired.target == str(allow)


@pytest.mark.parametrize("body", [
    "allow: [",  # not YAML
    "- a\n- b\n",  # not a mapping
    "allowed: []\n",  # unknown top-level key
    "version: 2\nallow: []\n",
    "allow: {fingerprint: x}\n",
    "allow:\n  - fingerprint: sha256:" + "0" * 64 + "\n",  # no reason
    "allow:\n  - fingerprint: sha256:" + "0" * 64 + "\n    reason: '  '\n",
    "allow:\n  - fingerprint: md5:abc\n    reason: r\n",
    "allow:\n  - rule: MLF-SEC-006\n    reason: everything everywhere\n",
    "allow:\n  - path: x\n    reason: r\n    expires: someday\n",
    "allow:\n  - path: x\n    reason: r\n    colour: red\n",
    "allow:\n  - path: x\n    reason: r\n    rule: MLF-MOD-001\n",
])
def test_a_malformed_allowlist_is_an_input_error_never_ignored(tmp_path, body):
    (tmp_path / "a.env").write_text("x=1\n")
    allow = _allow(tmp_path / "allow.yaml", body)
    with pytest.raises(InputError):
        scan_secrets([tmp_path / "a.env"], allowlist=allow)
    auto = tmp_path / "auto"
    auto.mkdir()
    (auto / ".mlfort-secrets-allow.yaml").write_text(body)
    with pytest.raises(InputError):
        scan_secrets([auto])


def test_an_allowlist_that_cannot_be_read_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        scan_secrets([tmp_path], allowlist=tmp_path / "missing.yaml")


@pytest.mark.parametrize("line", [
    f"T={TOKEN}  # mlfort: allow-secret",
    f"T={TOKEN}  # pragma: allowlist secret",
    f"T={TOKEN}  # gitleaks:allow",
    f"# pragma: allowlist nextline secret\nT={TOKEN}",
])
def test_inline_pragmas_accept_a_secret_and_are_counted(tmp_path, line):
    path = tmp_path / "a.env"
    path.write_text(line + "\n")
    result = scan_secrets([path])
    assert _secrets(result) == [] and result.counts["allowlisted_by_pragma"] == 1


def test_a_pragma_on_another_line_does_not_accept(tmp_path):
    path = tmp_path / "a.env"
    path.write_text(f"# mlfort: allow-secret\nT={TOKEN}\n")
    assert len(_secrets(scan_secrets([path]))) == 1


# ---------------------------------------------------------------------------------------------------- detectors


def test_jwt_severity_follows_expiry_and_role():
    expired = F.jwt({"sub": "svc", "exp": 946684800})
    service = F.jwt({"iss": "supabase", "role": "service_role", "exp": 4102444800})
    (low,) = find_secrets(f"t: {expired}")
    (high,) = find_secrets(f"t: {service}")
    assert (low.severity.value, dict(low.detail)["expires"]) == ("low", "2000-01-01")
    assert high.severity.value == "high"
    assert find_secrets(f"t: {F.s(10)}.{F.s(20)}.{F.s(20)}") == []  # not a JWT header


def test_stripe_test_keys_are_low_and_encrypted_private_keys_high():
    (test_key,) = find_secrets("k=sk_" + "test_" + F.s(40))
    assert test_key.severity.value == "low"
    pem, _ = F.pem("ENCRYPTED PRIVATE KEY")
    assert find_secrets(pem)[0].severity.value == "high"


def test_pem_keys_are_found_in_every_wrapping():
    pem, body = F.pem("EC PRIVATE KEY", 120)
    lines = pem.strip().splitlines()
    wrappings = [
        pem,
        json.dumps({"key": pem}),
        "KEY = (\n" + "".join(f'    "{line}\\n"\n' for line in lines) + ")\n",
        "key: |\n" + "".join(f"  {line}\n" for line in lines),
        pem.replace("\n", "\r\n"),
        "\n".join(lines[:-1]) + "\n",  # no END line: a truncated key is still a key
    ]
    for text in wrappings:
        hits = [h for h in find_secrets(text, Style.CODE) if h.kind == "private-key"]
        assert [h.secret for h in hits] == [body], text[:80]


def test_public_keys_certificates_and_elided_examples_are_not_private_keys():
    body = F.pem_body(300)
    for kind in ("PUBLIC KEY", "CERTIFICATE", "RSA PUBLIC KEY", "CERTIFICATE REQUEST"):
        assert find_secrets(f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n") == []
    assert find_secrets("-----BEGIN PRIVATE KEY-----\nMIIEvQ...snip...\n-----END PRIVATE KEY-----") == []


def test_overlapping_detectors_report_one_finding_the_most_specific():
    hits = find_secrets(f'GITHUB_TOKEN = "{TOKEN}"  # the token', Style.CODE)
    assert [h.kind for h in hits] == ["github-token"]


# ---------------------------------------------------------------------------------------------------- hostile input


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes_never_crash_any_reader(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    for name in ("x.bin", "x.ipynb", "x.safetensors", "x.pkl", "x.zip", "x.env"):
        (folder / name).write_bytes(data)
    (folder / "prefixed.zip").write_bytes(b"PK\x03\x04" + data)
    (folder / "prefixed.pkl").write_bytes(b"\x80\x02" + data)
    scan_secrets([folder])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*"aA0:/@=_-.'\"\n\\ {}$<>", "ghp_", "sk-", "://", "password",
                                 "-----BEGIN PRIVATE KEY-----", "eyJ", "Q~", "AKIA"]), max_size=200).map("".join))
def test_random_text_never_crashes_the_detectors(text):
    for style in Style:
        find_secrets(text, style)


@pytest.mark.parametrize("text", [
    "a" * 200_000 + "@",
    "x://" + ":" * 100_000 + "@",
    "password=" + "=" * 100_000,
    "-----BEGIN RSA PRIVATE KEY-----\n" * 2_000,
    "key " * 100_000,
    "eyJ" + "a" * 100_000 + ".eyJ" + "b" * 100_000,
    "Authorization: Bearer " + "A" * 100_000,
    ("token: " + "Ab9" * 30 + "\n") * 5_000,
    "{" * 50_000 + "\"secret\": \"" + "x" * 1000,
])
def test_pathological_input_finishes_quickly(text):
    started = time.monotonic()
    for style in (Style.CODE, Style.CONFIG, Style.BINARY):
        find_secrets(text, style)
    assert time.monotonic() - started < 10


def test_a_safetensors_header_that_lies_about_its_length_is_read_as_binary(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{" + f"t={TOKEN}".encode() + b"\0")
    assert len(_secrets(scan_secrets([path]))) == 1


def test_a_malformed_pickle_falls_back_to_printable_runs(tmp_path):
    good = pickle.dumps({"t": TOKEN}, protocol=2)
    (tmp_path / "cut.pkl").write_bytes(good[:-3] + b"\xff\xff")
    assert len(_secrets(scan_secrets([tmp_path / "cut.pkl"]))) == 1


def test_results_are_deterministic(tmp_path):
    for i, case in enumerate(POSITIVES[:20]):
        _write(tmp_path, case, i)
    first = render(list(scan_secrets([tmp_path]).findings), "json")
    assert first == render(list(scan_secrets([tmp_path]).findings), "json")


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_exit_codes_formats_and_sarif(tmp_path, oasis_schema):  # noqa: F811
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.py").write_text("password = os.environ['DB_PASSWORD']\n")
    out = run_cli("scan", "secrets", str(clean))
    assert out.returncode == 0, out.stderr + out.stdout

    dirty = tmp_path / "dirty"
    dirty.mkdir()
    (dirty / "a.env").write_text(f"GITHUB_TOKEN={TOKEN}\n")
    out = run_cli("scan", "secrets", str(dirty), "--format", "json")
    assert out.returncode == 1 and TOKEN[4:] not in out.stdout + out.stderr
    (finding,) = json.loads(out.stdout)["findings"]
    assert finding["location"]["line"] == 1 and finding["evidence"]["fingerprint"] == fingerprint(TOKEN)

    sarif = run_cli("scan", "secrets", str(dirty), "--format", "sarif")
    assert sarif.returncode == 1
    doc = json.loads(sarif.stdout)
    assert_valid(oasis_schema, doc)
    (result,) = doc["runs"][0]["results"]
    assert result["ruleId"] == "MLF-SEC-003" and result["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
    assert TOKEN[4:] not in sarif.stdout

    assert run_cli("scan", "secrets", str(dirty), "--fail-on", "critical").returncode == 0
    assert run_cli("scan", "secrets", str(tmp_path / "missing")).returncode == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("allow:\n  - path: x\n")
    assert run_cli("scan", "secrets", str(dirty), "--allowlist", str(bad)).returncode == 2
    good = tmp_path / "good.yaml"
    good.write_text(f"allow:\n  - fingerprint: {fingerprint(TOKEN)}\n    reason: revoked\n")
    accepted = run_cli("scan", "secrets", str(dirty), "--allowlist", str(good))
    assert accepted.returncode == 0 and "1 allowlisted" in accepted.stdout


def test_a_large_scan_uses_worker_processes_and_gives_the_same_result(tmp_path, monkeypatch):
    for i, case in enumerate(POSITIVES[:40]):
        _write(tmp_path, case, i)
    sequential = scan_secrets([tmp_path])
    monkeypatch.setattr(secrets_mod, "PROCESS_MIN_FILES", 2)
    monkeypatch.setattr(secrets_mod, "PROCESS_MIN_BYTES", 1)
    monkeypatch.setattr(secrets_mod.os, "cpu_count", lambda: 2)
    import concurrent.futures

    pools = []
    real = concurrent.futures.ProcessPoolExecutor

    def counting(*args, **kwargs):
        pools.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", counting)
    parallel = scan_secrets([tmp_path])
    assert pools == [1]
    assert render(list(parallel.findings), "json") == render(list(sequential.findings), "json")
    assert parallel.counts == sequential.counts


def test_a_file_of_nothing_but_keywords_is_cut_short_and_says_so(tmp_path, monkeypatch):
    import mlfort.scan.secrets.patterns as patterns

    monkeypatch.setattr(patterns, "MAX_WINDOWS", 1000)
    path = tmp_path / "keys.txt"
    path.write_text("key\n" * 5000 + f"T={TOKEN}\n")
    result = scan_secrets([path])
    assert [f.evidence["fingerprint"] for f in _secrets(result)] == [fingerprint(TOKEN)]  # formats still run
    assert "MLF-SEC-009" in _rules(result)


@pytest.mark.parametrize("line", [
    'requests.get(url, auth=("svc-deploy", "{pw}"))',
    "httpx.Client(auth=['admin', '{pw}'])",
    'session.auth = HTTPBasicAuth("etl", "{pw}")',
    'aiohttp.BasicAuth("bot", "{pw}")',
])
def test_a_literal_password_given_to_an_http_client_is_found(line):
    password = "Zq8!" + "mK2#pLx9"  # built at run time
    hits = [h for h in find_secrets(line.format(pw=password), Style.CODE) if h.secret == password]
    assert hits and hits[0].kind == "auth-tuple-password"


@pytest.mark.parametrize("line", [
    'requests.get(url, auth=("user", "password"))',
    'requests.get(url, auth=("admin", "admin"))',
    'requests.get(url, auth=(user, password))',
    'requests.get(url, auth=("bob", "<your-password>"))',
    'HTTPBasicAuth("svc", "${SVC_PASSWORD}")',
    'requests.get(url, auth=("svc", "{password}"))',
])
def test_placeholders_and_variables_given_to_an_http_client_are_not(line):
    assert not [h for h in find_secrets(line, Style.CODE) if h.kind == "auth-tuple-password"]

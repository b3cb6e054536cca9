"""`mlfort encrypt / decrypt / rewrap` and `mlfort keys create / rotate / list`, as a user runs them: the policy's
placement rules, atomic outputs, ledger events, and no key material anywhere it should not be."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from pathlib import Path

import pytest

from mlfort.crypto.envelope import read_header
from tests.conftest import run_cli

POLICY = """\
version: 1
environments:
  onprem: {jurisdiction: DE, key_service: onprem-keys}
  us: {jurisdiction: US, key_service: us-keys}
datasets:
  customers:
    classification: pii
    residency: [EU]
    owner: dpo@example.eu
    locations: {onprem: /srv/data/customers}
  clicks:
    classification: internal
    residency: [EU]
    owner: web@example.eu
keys:
  onprem-keys: {type: local, path: keyrings/onprem.json, jurisdiction: DE}
  backup-eu: {type: local, path: keyrings/backup.json}
  us-keys: {type: local, path: keyrings/us.json, jurisdiction: US}
  public-only: {type: local, path: keyrings/public.json, jurisdiction: DE, classifications: [public]}
ledger:
  url: sqlite:///ledger.db
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "mlfort.yaml").write_text(POLICY)
    for name in ("onprem-keys", "backup-eu", "us-keys", "public-only"):
        proc = run_cli("keys", "create", name, "--policy", str(tmp_path / "mlfort.yaml"))
        assert proc.returncode == 0, proc.stderr
    (tmp_path / "customers.csv").write_bytes(b"id,email\n" + b"".join(
        b"%d,user%d@example.eu\n" % (i, i) for i in range(50_000)))
    return tmp_path


def events(project: Path) -> list[dict]:
    db = sqlite3.connect(project / "ledger.db")
    try:
        return [json.loads(bytes(row[0])) for row in db.execute("SELECT body FROM entries ORDER BY idx")]
    finally:
        db.close()


def key_strings(project: Path) -> list[str]:
    """Every KEK of the project's keyrings, as hex and base64, to look for where they must not be."""
    out = []
    for f in (project / "keyrings").glob("*.json"):
        for entry in json.loads(f.read_text())["keys"]:
            raw = base64.b64decode(entry["key"])
            out += [raw.hex(), entry["key"]]
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "mlfort-tmp" in p.name)


def test_policy_picks_keyrings_and_the_environment_decides_who_opens(project: Path) -> None:
    pol = str(project / "mlfort.yaml")
    sealed, plain = project / "customers.csv.mlfe", project / "out.csv"
    proc = run_cli("encrypt", str(project / "customers.csv"), str(sealed), "--dataset", "customers", "--policy", pol,
                   "--format", "json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert [k["name"] for k in info["keyrings"]] == ["onprem-keys"]  # the key_service of where it lives
    assert info["context"] == {"mlfort:classification": "pii", "mlfort:dataset": "customers"}
    assert b"user1@example.eu" not in sealed.read_bytes()

    # In the US the pii dataset may not be opened at all, whatever keyring is at hand.
    proc = run_cli("decrypt", str(sealed), str(plain), "--environment", "us", "--policy", pol)
    assert proc.returncode == 1 and "MLF-ENC-005" in proc.stdout
    assert not plain.exists()
    # On-prem it opens through onprem-keys, into a 0600 file, identical to the original.
    proc = run_cli("decrypt", str(sealed), str(plain), "--environment", "onprem", "--policy", pol)
    assert proc.returncode == 0, proc.stderr
    assert plain.read_bytes() == (project / "customers.csv").read_bytes()
    assert plain.stat().st_mode & 0o777 == 0o600
    # An environment's rule is its key service: naming another keyring there is refused.
    proc = run_cli("decrypt", str(sealed), str(project / "x.csv"), "--environment", "onprem", "-k", "backup-eu",
                   "--policy", pol)
    assert proc.returncode == 2 and "only its key_service 'onprem-keys'" in proc.stderr
    # The file is the customers dataset's: asking for another dataset fails on the bound context.
    proc = run_cli("decrypt", str(sealed), str(project / "y.csv"), "--dataset", "clicks", "--policy", pol)
    assert proc.returncode == 1 and "encryption context mismatch" in proc.stderr
    assert not (project / "y.csv").exists()

    log = events(project)
    actions = [(e["action"], e["outcome"], e.get("decision")) for e in log]
    assert ("crypto.encrypt", "success", None) in actions
    assert ("crypto.decrypt", "failure", "deny") in actions
    assert ("crypto.decrypt", "success", None) in actions
    assert [e["environment"] for e in log if e["action"] == "crypto.decrypt" and e["outcome"] == "success"] == [
        "onprem"]
    dump = (project / "ledger.db").read_bytes().decode("latin-1")
    assert not [k for k in key_strings(project) if k in dump]


@pytest.mark.parametrize(("keyring", "rule"), [
    ("us-keys", "MLF-ENC-003"),      # held outside the residency
    ("public-only", "MLF-ENC-002"),  # not allowed for pii
    ("nowhere", "MLF-ENC-001"),      # not in the policy
])
def test_encrypt_refuses_keyrings_the_policy_does_not_allow(project: Path, keyring: str, rule: str) -> None:
    out = project / "c.mlfe"
    proc = run_cli("encrypt", str(project / "customers.csv"), str(out), "--dataset", "customers", "-k", keyring,
                   "--policy", str(project / "mlfort.yaml"), "--format", "sarif")
    assert proc.returncode == 1, proc.stderr
    sarif = json.loads(proc.stdout)
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == [rule]
    assert not out.exists() and leftovers(project) == []
    denied = [e for e in events(project) if e["action"] == "crypto.encrypt"]
    assert denied[-1]["decision"] == "deny" and rule in denied[-1]["reason"]


def test_keyring_without_jurisdiction_is_refused_for_pii_but_fine_for_internal(project: Path) -> None:
    pol = str(project / "mlfort.yaml")
    proc = run_cli("encrypt", str(project / "customers.csv"), str(project / "a.mlfe"), "--dataset", "customers",
                   "-k", "backup-eu", "--policy", pol)
    assert proc.returncode == 1 and "MLF-ENC-004" in proc.stdout  # where its keys are held is unknown
    proc = run_cli("encrypt", str(project / "customers.csv"), str(project / "b.mlfe"), "--dataset", "clicks",
                   "-k", "backup-eu", "-k", "us-keys", "--policy", pol)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # internal data: residency of keys not enforced


def test_tampered_file_fails_closed_and_the_failure_is_recorded(project: Path) -> None:
    pol = str(project / "mlfort.yaml")
    sealed = project / "c.mlfe"
    assert run_cli("encrypt", str(project / "customers.csv"), str(sealed), "--dataset", "customers",
                   "--policy", pol).returncode == 0
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 0x40
    sealed.write_bytes(bytes(data))
    out = project / "out.csv"
    out.write_bytes(b"previous content")  # an existing file must survive a failed --force decryption
    proc = run_cli("decrypt", str(sealed), str(out), "--environment", "onprem", "--policy", pol, "--force")
    assert proc.returncode == 1
    assert "failed authentication" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"previous content" and leftovers(project) == []
    failed = [e for e in events(project) if e["action"] == "crypto.decrypt"]
    assert failed[-1]["outcome"] == "failure" and "failed authentication" in failed[-1]["reason"]


def test_rewrap_changes_only_the_header_and_checks_added_keyrings(project: Path) -> None:
    pol = str(project / "mlfort.yaml")
    sealed = project / "c.mlfe"
    assert run_cli("encrypt", str(project / "customers.csv"), str(sealed), "--dataset", "clicks", "-k",
                   "onprem-keys", "--policy", pol).returncode == 0
    info = json.loads(run_cli("decrypt", str(sealed), "--info", "-f", "json").stdout)
    before = sealed.read_bytes()
    proc = run_cli("rewrap", str(sealed), "--add", "backup-eu", "--remove", "onprem-keys", "--policy", pol)
    assert proc.returncode == 0, proc.stderr
    after = sealed.read_bytes()
    old_header = read_header(io.BytesIO(before))
    new_header = read_header(io.BytesIO(after))
    assert after[new_header.size:] == before[old_header.size:]  # every frame byte-identical: not re-encrypted
    assert new_header.raw != old_header.raw
    new = json.loads(run_cli("decrypt", str(sealed), "--info", "-f", "json").stdout)
    assert new["message_id"] == info["message_id"] and [k["name"] for k in new["keyrings"]] == ["backup-eu"]
    proc = run_cli("decrypt", str(sealed), str(project / "o1"), "-k", "onprem-keys", "--policy", pol)
    assert proc.returncode == 1 and "opens with: backup-eu" in proc.stderr
    assert run_cli("decrypt", str(sealed), str(project / "o2"), "--policy", pol).returncode == 0
    # Adding a keyring the policy would refuse for this data is refused the same way as encrypting with it.
    pii = project / "p.mlfe"
    assert run_cli("encrypt", str(project / "customers.csv"), str(pii), "--dataset", "customers",
                   "--policy", pol).returncode == 0
    before = pii.read_bytes()
    proc = run_cli("rewrap", str(pii), "--add", "us-keys", "--policy", pol)
    assert proc.returncode == 1 and "MLF-ENC-003" in proc.stdout
    assert pii.read_bytes() == before
    assert [e["action"] for e in events(project)].count("crypto.rewrap") == 2


def test_rotate_keeps_old_files_readable_and_new_ones_use_the_new_version(project: Path) -> None:
    pol = str(project / "mlfort.yaml")
    old = project / "old.mlfe"
    assert run_cli("encrypt", str(project / "customers.csv"), str(old), "--dataset", "customers",
                   "--policy", pol).returncode == 0
    proc = run_cli("keys", "rotate", "onprem-keys", "--policy", pol)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(":v2")
    assert (project / "keyrings" / "onprem.json").stat().st_mode & 0o777 == 0o600
    new = project / "new.mlfe"
    assert run_cli("encrypt", str(project / "customers.csv"), str(new), "--dataset", "customers",
                   "--policy", pol).returncode == 0
    ids = [json.loads(run_cli("decrypt", str(f), "--info", "-f", "json").stdout)["keyrings"][0]["key_id"]
           for f in (old, new)]
    assert ids[0].endswith(":v1") and ids[1].endswith(":v2")
    for f in (old, new):
        assert run_cli("decrypt", str(f), str(f.with_suffix(".csv")), "-e", "onprem", "--policy", pol).returncode == 0
    assert [e["action"] for e in events(project)].count("keys.rotate") == 1


def test_without_a_policy_keyrings_are_local_files_under_mlfort_home(tmp_path: Path, mlfort_home: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(bytes(range(256)) * 5000)
    assert run_cli("keys", "create", "dev").returncode == 0
    key_file = mlfort_home / "keyrings" / "dev.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert run_cli("keys", "create", "dev").returncode == 2  # never overwrites a key
    sealed = tmp_path / "model.bin.mlfe"
    proc = run_cli("encrypt", str(src), str(sealed), "-k", "dev", "-c", "purpose=eval", "--frame-size", "64KiB")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("encrypt", str(src), str(sealed), "-k", "dev")
    assert proc.returncode == 2 and "--force" in proc.stderr
    proc = run_cli("decrypt", str(sealed), str(tmp_path / "a.bin"), "-c", "purpose=train")
    assert proc.returncode == 1 and "'purpose' is 'eval', expected 'train'" in proc.stderr
    proc = run_cli("decrypt", str(sealed), str(tmp_path / "a.bin"), "-c", "owner=ml")
    assert proc.returncode == 1 and "'owner' is missing" in proc.stderr
    assert not (tmp_path / "a.bin").exists()
    proc = run_cli("decrypt", str(sealed), str(tmp_path / "b.bin"), "-c", "purpose=eval")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()
    proc = run_cli("encrypt", str(src), str(tmp_path / "c.mlfe"), "-k", "dev", "-c", "mlfort:dataset=customers")
    assert proc.returncode == 2 and "may not set mlfort:dataset" in proc.stderr
    proc = run_cli("decrypt", str(src), str(tmp_path / "d.bin"), "-k", "dev")
    assert proc.returncode == 1 and "not an mlfort encrypted file" in proc.stderr


def test_keys_list_and_help(project: Path) -> None:
    rows = json.loads(run_cli("keys", "list", "--policy", str(project / "mlfort.yaml"), "-f", "json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["onprem-keys"]["environments"] == ["onprem"]
    assert by_name["backup-eu"]["jurisdiction"] == []
    assert by_name["public-only"]["classifications"] == ["public"]
    for command in (["encrypt"], ["decrypt"], ["rewrap"], ["keys", "create"], ["keys", "rotate"]):
        proc = run_cli(*command, "--help")
        assert proc.returncode == 0 and "Example:" in proc.stdout

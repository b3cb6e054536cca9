"""`mlfort ledger ...` and the events mlfort's actions record, end to end through the real CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from sigstore._internal.merkle import verify_merkle_inclusion

from mlfort.ledger import merkle
from tests.conftest import run_cli


def _ledger_db(home: Path) -> Path:
    return home / "ledger.db"


def _sign(model_dir: Path, key: Path, *extra: str):
    return run_cli("artifacts", "sign", str(model_dir), "--key", str(key), *extra)


def _events(*args: str) -> list[dict]:
    out = run_cli("ledger", "query", "--format", "json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_sign_and_verify_are_recorded_with_the_signed_digest(model_dir, keypair):
    signed = _sign(model_dir, keypair[0], "--name", "churn-model", "--kind", "model", "--format", "json")
    assert signed.returncode == 0, signed.stderr
    root = json.loads(signed.stdout)["root_digest"]["sha256"]
    ok = run_cli("artifacts", "verify", str(model_dir), "--key", str(keypair[1]), "--name", "churn-model",
                 "--kind", "model")
    assert ok.returncode == 0, ok.stderr
    (model_dir / "config.json").write_text("tampered")
    bad = run_cli("artifacts", "verify", str(model_dir), "--key", str(keypair[1]), "--name", "churn-model")
    assert bad.returncode == 1
    events = _events()
    assert [e["action"] for e in events] == ["artifacts.sign", "artifacts.verify", "artifacts.verify"]
    sign, good, failed = events
    assert sign["writes"][0] == {"digest": f"sha256:{root}", "kind": "model", "name": "churn-model",
                                 "uri": str(model_dir.resolve())}
    assert sign["resource"] == "model:churn-model" and sign["actor"].startswith("user:")
    assert good["outcome"] == "success" and good["reads"][0]["digest"] == f"sha256:{root}"
    assert failed["outcome"] == "failure" and "MLF-ART-001" in failed["reason"]
    assert run_cli("ledger", "verify").returncode == 0


def test_actor_comes_from_mlfort_actor(model_dir, keypair, monkeypatch):
    monkeypatch.setenv("MLFORT_ACTOR", "workload:trainer")
    assert _sign(model_dir, keypair[0]).returncode == 0
    assert _events("--actor", "workload:*")[0]["actor"] == "workload:trainer"


def test_sign_fails_closed_and_writes_no_signature_when_the_ledger_cannot_record(model_dir, keypair, tmp_path,
                                                                                 monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the ledger's folder should be")
    monkeypatch.setenv("MLFORT_LEDGER_URL", f"sqlite:///{blocker}/ledger.db")
    out = _sign(model_dir, keypair[0])
    assert out.returncode == 2
    assert "ledger" in out.stderr and "artifacts.sign" in out.stderr
    assert not (model_dir / "model.sig").exists()


def test_a_failed_record_keeps_the_previous_signature(model_dir, keypair, tmp_path, monkeypatch):
    assert _sign(model_dir, keypair[0]).returncode == 0
    before = (model_dir / "model.sig").read_bytes()
    (model_dir / "config.json").write_text("changed")
    monkeypatch.setenv("MLFORT_LEDGER_URL", "sqlite:///" + str(tmp_path / "file" / "x.db"))
    (tmp_path / "file").write_text("blocks the folder")
    assert _sign(model_dir, keypair[0]).returncode == 2
    assert (model_dir / "model.sig").read_bytes() == before


def test_verify_fails_closed_when_the_ledger_cannot_record(model_dir, keypair, tmp_path, monkeypatch):
    assert _sign(model_dir, keypair[0]).returncode == 0
    (tmp_path / "file").write_text("blocks the folder")
    monkeypatch.setenv("MLFORT_LEDGER_URL", "sqlite:///" + str(tmp_path / "file" / "x.db"))
    out = run_cli("artifacts", "verify", str(model_dir), "--key", str(keypair[1]))
    assert out.returncode == 2, out.stdout
    assert "could not record artifacts.verify" in out.stderr
    assert "verified" not in out.stdout  # nothing that looks like a pass


def test_verify_fails_closed_when_a_postgres_ledger_is_down(model_dir, keypair, monkeypatch):
    assert _sign(model_dir, keypair[0]).returncode == 0
    url = "postgresql://mlfort:s3cret@127.0.0.1:1/nowhere?connect_timeout=2"  # mlfort: allow-secret (a fixture)
    monkeypatch.setenv("MLFORT_LEDGER_URL", url)
    out = run_cli("artifacts", "verify", str(model_dir), "--key", str(keypair[1]))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "could not record artifacts.verify" in out.stderr and "Traceback" not in out.stderr
    assert "s3cret" not in out.stderr + out.stdout


def test_policy_validate_records_only_the_deployed_policy(tmp_path, monkeypatch):
    policy = tmp_path / "mlfort.yaml"
    assert run_cli("init", "--out", str(policy)).returncode == 0
    run_cli("policy", "validate", str(policy))
    monkeypatch.setenv("MLFORT_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    run_cli("policy", "validate", str(policy))
    assert _events() == []  # a draft leaves no trace
    monkeypatch.setenv("MLFORT_POLICY", str(policy))
    run_cli("policy", "validate", str(policy))
    run_cli("policy", "validate", str(policy), "--no-record")
    (events,) = _events()
    assert events["action"] == "policy.validate" and events["outcome"] == "success"
    assert events["reads"][0]["kind"] == "policy" and events["reads"][0]["digest"].startswith("sha256:")


def test_policy_ledger_url_is_used_for_the_deployed_policy(tmp_path, monkeypatch):
    policy = tmp_path / "p" / "mlfort.yaml"
    assert run_cli("init", "--out", str(policy)).returncode == 0
    monkeypatch.setenv("MLFORT_POLICY", str(policy))
    assert run_cli("policy", "validate", str(policy)).returncode in (0, 1)
    assert (tmp_path / "p" / ".mlfort" / "ledger.db").exists()  # ledger.url is relative to the policy


def test_verify_names_the_edited_entry_and_exits_1(model_dir, keypair, mlfort_home):
    for _ in range(3):
        assert _sign(model_dir, keypair[0]).returncode == 0
    db = sqlite3.connect(_ledger_db(mlfort_home))
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET body = replace(body, 'artifacts.sign', 'artifacts.sigm') WHERE idx = 1")
    db.commit()
    out = run_cli("ledger", "verify", "--format", "json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["findings"][0]["rule_id"] == "MLF-LED-001"
    assert report["findings"][0]["evidence"]["first_bad"] == 1
    assert "entry 1" in run_cli("ledger", "verify").stdout


def test_truncation_hidden_with_checkpoints_deleted_is_caught_by_a_kept_checkpoint(model_dir, keypair, mlfort_home,
                                                                                   tmp_path):
    for _ in range(2):
        assert _sign(model_dir, keypair[0]).returncode == 0
    kept = tmp_path / "kept-checkpoint"
    assert run_cli("ledger", "checkpoint", "-o", str(kept)).returncode == 0
    db = sqlite3.connect(_ledger_db(mlfort_home))
    for trig in ("entries_no_delete", "nodes_no_delete", "checkpoints_no_delete", "head_grows_only"):
        db.execute(f"DROP TRIGGER {trig}")
    db.execute("DELETE FROM entries WHERE idx = 1")
    db.execute(f"DELETE FROM nodes WHERE id = {merkle.pack((1, 0))}")
    db.execute("DELETE FROM checkpoints WHERE size > 1")
    db.execute("UPDATE head SET size = 1")
    db.commit()
    assert run_cli("ledger", "verify").returncode == 0  # consistent on its own: only an outside copy can tell
    out = run_cli("ledger", "verify", "--from-checkpoint", str(kept))
    assert out.returncode == 1
    assert "truncated" in out.stdout


def test_prove_output_verifies_with_an_independent_rfc6962_implementation(model_dir, keypair):
    for _ in range(5):
        assert _sign(model_dir, keypair[0]).returncode == 0
    out = run_cli("ledger", "prove", "3", "--format", "json")
    assert out.returncode == 0, out.stderr
    proof = json.loads(out.stdout)
    assert proof["tree_size"] == 5 and proof["checkpoint"]
    inner = SimpleNamespace(inclusion_proof=SimpleNamespace(
        log_index=proof["log_index"], tree_size=proof["tree_size"],
        hashes=[bytes.fromhex(h) for h in proof["audit_path"]], root_hash=bytes.fromhex(proof["root_hash"])),
        canonicalized_body=proof["entry"].encode())
    verify_merkle_inclusion(SimpleNamespace(_inner=inner))  # sigstore's verifier, the one Rekor clients use


def test_consistency_output_verifies(model_dir, keypair):
    for _ in range(6):
        assert _sign(model_dir, keypair[0]).returncode == 0
    out = run_cli("ledger", "consistency", "2", "6", "--format", "json")
    assert out.returncode == 0, out.stderr
    p = json.loads(out.stdout)
    merkle.verify_consistency(2, 6, bytes.fromhex(p["old_root_hash"]), bytes.fromhex(p["new_root_hash"]),
                              [bytes.fromhex(h) for h in p["consistency_path"]])
    assert run_cli("ledger", "consistency", "7", "2").returncode == 2


def test_prove_refuses_an_entry_that_does_not_exist(model_dir, keypair):
    assert _sign(model_dir, keypair[0]).returncode == 0
    out = run_cli("ledger", "prove", "5")
    assert out.returncode == 2 and "not in a tree" in out.stderr


def test_an_auditor_pins_the_checkpoint_key(model_dir, keypair, tmp_path):
    assert _sign(model_dir, keypair[0]).returncode == 0
    vkey = tmp_path / "ledger.vkey"
    vkey.write_text(run_cli("ledger", "key").stdout)
    assert run_cli("ledger", "verify", "--trusted-key", str(vkey)).returncode == 0
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mlfort.ledger.note import NoteSigner

    name = vkey.read_text().split("+")[0]
    impostor = tmp_path / "impostor.vkey"
    impostor.write_text(NoteSigner(name, Ed25519PrivateKey.generate()).verifier.vkey())
    out = run_cli("ledger", "verify", "--trusted-key", str(impostor))
    assert out.returncode == 1 and "MLF-LED-004" in out.stdout


def test_query_filters_and_tail(model_dir, keypair, monkeypatch):
    monkeypatch.setenv("MLFORT_ACTOR", "user:alice")
    assert _sign(model_dir, keypair[0], "--name", "a", "--kind", "model").returncode == 0
    monkeypatch.setenv("MLFORT_ACTOR", "user:bob")
    assert _sign(model_dir, keypair[0], "--name", "b", "--kind", "dataset").returncode == 0
    assert [e["actor"] for e in _events("--actor", "user:bob")] == ["user:bob"]
    assert [e["resource"] for e in _events("--resource", "model:*")] == ["model:a"]
    assert _events("--since", "2999-01-01") == []
    assert len(_events("--since", "-1h", "--until", "2999-01-01")) == 2
    assert run_cli("ledger", "query", "--since", "whenever").returncode == 2
    tail = run_cli("ledger", "tail", "-n", "1", "--format", "json")
    assert [e["actor"] for e in json.loads(tail.stdout)] == ["user:bob"]


def test_readers_need_a_key_to_trust(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFORT_HOME", str(tmp_path / "empty-home"))
    out = run_cli("ledger", "verify")
    assert out.returncode == 2 and "--trusted-key" in out.stderr
    assert not (tmp_path / "empty-home" / "keys").exists()  # a reader creates no key


def test_archive_then_verify_archive_and_a_tampered_segment_is_caught(model_dir, keypair, tmp_path):
    for _ in range(3):
        assert _sign(model_dir, keypair[0]).returncode == 0
    dest = tmp_path / "worm"
    out = run_cli("ledger", "archive", str(dest))
    assert out.returncode == 0, out.stderr
    assert run_cli("ledger", "verify-archive", str(dest)).returncode == 0
    segment = next(dest.rglob("*.jsonl.gz"))
    segment.chmod(0o644)
    segment.write_bytes(segment.read_bytes()[:-8] + b"\0" * 8)
    bad = run_cli("ledger", "verify-archive", str(dest), "--format", "json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["findings"][0]["rule_id"].startswith("MLF-ARC-")


def test_export_to_a_file_is_whole_or_absent(model_dir, keypair, mlfort_home, tmp_path):
    for _ in range(2):
        assert _sign(model_dir, keypair[0]).returncode == 0
    out_file = tmp_path / "events.ocsf"
    assert run_cli("ledger", "export", "--format", "ocsf", "-o", str(out_file)).returncode == 0
    assert [json.loads(line)["class_uid"] for line in out_file.read_text().splitlines()] == [6003, 6003]
    db = sqlite3.connect(_ledger_db(mlfort_home))
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'sign', 'sigh') AS BLOB) WHERE idx = 1")
    db.commit()
    again = tmp_path / "again.ocsf"
    assert run_cli("ledger", "export", "--format", "ocsf", "-o", str(again)).returncode != 0
    assert not again.exists() and not list(tmp_path.glob(".again*"))


@pytest.mark.parametrize("command", ["verify", "checkpoint", "key", "prove", "consistency", "tail", "query",
                                     "export", "archive", "verify-archive"])
def test_every_ledger_command_has_help_with_an_example(command):
    out = run_cli("ledger", command, "--help")
    assert out.returncode == 0 and "Example" in out.stdout


def test_key_creation_is_recorded_and_undone_when_it_cannot_be(tmp_path, monkeypatch):
    assert run_cli("keys", "create-signing", "--out", str(tmp_path / "k1")).returncode == 0
    (event,) = _events("--action", "keys.*")
    assert event["resource"].startswith("key:") and "PRIVATE" not in json.dumps(event)
    (tmp_path / "file").write_text("blocks the folder")
    monkeypatch.setenv("MLFORT_LEDGER_URL", "sqlite:///" + str(tmp_path / "file" / "x.db"))
    out = run_cli("keys", "create-signing", "--out", str(tmp_path / "k2"))
    assert out.returncode == 2 and "keys.create-signing" in out.stderr
    assert not list((tmp_path / "k2").glob("*"))

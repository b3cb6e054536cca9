"""`mlfort artifacts verify --policy mlfort.yaml --artifact NAME`: trust exactly the signers the policy lists."""

from __future__ import annotations

import shutil

from tests.conftest import run_cli


def _policy(tmp_path, signers_yaml: str) -> str:
    text = f"""
version: 1
environments:
  onprem: {{jurisdiction: DE, storage: [/srv/models]}}
models:
  churn-model:
    classification: internal
    residency: [EU]
    owner: ml@acme.eu
    locations: {{onprem: /srv/models/churn}}
    signers: {signers_yaml}
"""
    p = tmp_path / "mlfort.yaml"
    p.write_text(text)
    return str(p)


def test_verify_trusts_a_signer_listed_in_the_policy_by_relative_path(tmp_path, model_dir, keypair):
    shutil.copy(keypair[1], tmp_path / "release.pub")
    policy = _policy(tmp_path, "[release.pub]")
    assert run_cli("artifacts", "sign", str(model_dir), "--key", str(keypair[0])).returncode == 0
    ok = run_cli("artifacts", "verify", str(model_dir), "--policy", policy, "--artifact", "churn-model",
                 cwd=model_dir)  # the key path is relative to the policy file, not the cwd
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_verify_trusts_an_inline_pem_signer(tmp_path, model_dir, keypair):
    pem = keypair[1].read_text().strip().replace("\n", "\n        ")
    policy = _policy(tmp_path, f"\n      - |\n        {pem}\n")
    assert run_cli("artifacts", "sign", str(model_dir), "--key", str(keypair[0])).returncode == 0
    ok = run_cli("artifacts", "verify", str(model_dir), "--policy", policy, "--artifact", "churn-model")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_verify_refuses_a_signature_by_a_key_the_policy_does_not_list(tmp_path, model_dir, keypair, other_keypair):
    shutil.copy(other_keypair[1], tmp_path / "release.pub")
    policy = _policy(tmp_path, "[release.pub]")
    assert run_cli("artifacts", "sign", str(model_dir), "--key", str(keypair[0])).returncode == 0
    bad = run_cli("artifacts", "verify", str(model_dir), "--policy", policy, "--artifact", "churn-model")
    assert bad.returncode == 1
    assert "wrong key" in bad.stdout


def test_an_artifact_with_no_signers_can_never_verify(tmp_path, model_dir, keypair):
    policy = _policy(tmp_path, "[]")
    assert run_cli("artifacts", "sign", str(model_dir), "--key", str(keypair[0])).returncode == 0
    bad = run_cli("artifacts", "verify", str(model_dir), "--policy", policy, "--artifact", "churn-model")
    assert bad.returncode == 2
    assert "lists no signers" in bad.stderr


def test_unknown_artifact_name_and_missing_key_source_are_usage_errors(tmp_path, model_dir, keypair):
    policy = _policy(tmp_path, "[]")
    unknown = run_cli("artifacts", "verify", str(model_dir), "--policy", policy, "--artifact", "nope")
    assert unknown.returncode == 2 and "no dataset or model 'nope'" in unknown.stderr
    nokey = run_cli("artifacts", "verify", str(model_dir))
    assert nokey.returncode == 2 and "--key" in nokey.stderr

"""`mlfort sbom`: CycloneDX 1.6 documents that pass the official schema strictly, for environments, dependency files
and signed models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mlfort.errors import InputError, VerificationError
from mlfort.sbom import build_mlbom, build_sbom
from tests.conftest import run_cli


def assert_valid(doc: dict) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    assert error is None, error


def test_the_running_environment(tmp_path):
    doc = build_sbom(Path(sys.prefix))
    assert_valid(doc)
    by_name = {c["name"].lower(): c for c in doc["components"]}
    assert by_name["mlfort"]["purl"].startswith("pkg:pypi/mlfort@")
    numpy_ref = by_name["numpy"]["bom-ref"]
    sklearn = next(d for d in doc["dependencies"] if d["ref"] == by_name["scikit-learn"]["bom-ref"])
    assert numpy_ref in sklearn["dependsOn"]
    assert any("licenses" in c for c in doc["components"])


def test_requirements_and_lock_files_carry_hashes_and_unpinned_marks(tmp_path):
    (tmp_path / "requirements.txt").write_text(f"Scikit_Learn==1.5.2 --hash=sha256:{'a' * 64}\nnumpy>=1.26\n"
                                               "-e git+https://github.com/acme/x.git@main#egg=x\n")
    (tmp_path / "poetry.lock").write_text('[[package]]\nname = "joblib"\nversion = "1.4.2"\n'
                                          f'files = [{{file = "j.whl", hash = "sha256:{"b" * 64}"}}]\n'
                                          '[package.dependencies]\nnumpy = ">=1"\n')
    doc = build_sbom(tmp_path)
    assert_valid(doc)
    by_name = {c["name"]: c for c in doc["components"]}
    assert by_name["Scikit_Learn"]["purl"] == "pkg:pypi/scikit-learn@1.5.2"
    assert by_name["Scikit_Learn"]["hashes"] == [{"alg": "SHA-256", "content": "a" * 64}]
    assert {"name": "mlfort:unpinned", "value": ">=1.26"} in by_name["numpy"]["properties"]
    assert by_name["x"]["externalReferences"][0]["type"] == "vcs"


def _signed_model(tmp_path: Path, card: bytes | None) -> tuple[Path, str]:
    from mlfort.artifacts import sign_artifact
    from mlfort.crypto.signing_keys import create_signing_keypair, load_private_key

    model = tmp_path / "churn-model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    if card is not None:
        (model / "model-card.json").write_bytes(card)
    keys = create_signing_keypair(tmp_path / "keys")
    signed = sign_artifact(model, load_private_key(keys.private_key))
    return model, signed.manifest.root_digest()


POLICY = """version: 1
environments:
  onprem: {{jurisdiction: DE}}
datasets:
  customers:
    classification: pii
    residency: [EU]
    owner: dpo@acme.eu
    locations: {{onprem: {data}}}
models:
  churn-model:
    classification: confidential
    residency: [EU]
    owner: ml@acme.eu
    trained_on: [customers]
"""


def test_an_ml_bom_names_files_digests_card_and_datasets_from_policy_and_ledger(tmp_path):
    from mlfort.artifacts import sign_artifact
    from mlfort.crypto.signing_keys import create_signing_keypair, load_private_key
    from mlfort.ledger import ArtifactRef, Event, open_ledger
    from mlfort.policy import load_policy

    card = json.dumps({"algorithm": "LogisticRegression", "test_accuracy": 0.73, "trained_on": ["customers"]})
    model, root = _signed_model(tmp_path, card.encode())
    data = tmp_path / "data" / "customers"
    data.mkdir(parents=True)
    (data / "customers.csv").write_text("id,x\n1,2\n")
    ds_root = sign_artifact(data, load_private_key(create_signing_keypair(tmp_path / "k2").private_key)
                            ).manifest.root_digest()
    (tmp_path / "mlfort.yaml").write_text(POLICY.format(data=data))
    policy = load_policy(tmp_path / "mlfort.yaml")
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", key=tmp_path / "ledger.key") as ledger:
        ledger.record(Event(action="run.finish", actor="workload:trainer", resource="run:r1", run_id="r1",
                            reads=(ArtifactRef(f"sha256:{ds_root}", name="customers", kind="dataset"),),
                            writes=(ArtifactRef(f"sha256:{root}", name="churn-model", kind="model"),)))
        doc = build_mlbom(model, policy=policy, policy_dir=tmp_path, ledger=ledger)
    assert_valid(doc)
    subject = doc["metadata"]["component"]
    assert subject["type"] == "machine-learning-model" and subject["name"] == "churn-model"
    assert subject["hashes"] == [{"alg": "SHA-256", "content": root}]
    assert subject["modelCard"]["quantitativeAnalysis"]["performanceMetrics"] == [
        {"type": "test_accuracy", "value": "0.73"}]
    files = {c["name"]: c for c in doc["components"] if c["type"] == "file"}
    assert set(files) == {"model.safetensors", "model-card.json"}
    [dataset] = [c for c in doc["components"] if c["type"] == "data"]
    assert dataset["hashes"] == [{"alg": "SHA-256", "content": ds_root}]  # the policy's and the ledger's: one
    found_in = {p["value"] for p in dataset["properties"] if p["name"] == "mlfort:found-in"}
    assert found_in == {"policy", "ledger"}


@pytest.mark.parametrize("card", [b"not json", b"[1, 2]", b'{"test_accuracy": NaN, "algorithm": 7}',
                                  b'{"test_accuracy": 1e999}', b"[" * 50_000, b"\xff\xfe"])
def test_hostile_model_cards_never_break_the_bom(tmp_path, card):
    model, _ = _signed_model(tmp_path, card)
    assert_valid(build_mlbom(model))


def test_unsigned_and_corrupt_models_are_refused(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(InputError, match="sign it first"):
        build_mlbom(bare)
    model, _ = _signed_model(tmp_path, None)
    (model / "model.sig").write_text('{"mediaType": "nope"}')
    with pytest.raises(VerificationError):
        build_mlbom(model)


def test_cli_writes_valid_documents(tmp_path):
    model, _ = _signed_model(tmp_path, None)
    out = run_cli("sbom", "--model", str(model), "-o", str(tmp_path / "m.json"))
    assert out.returncode == 0, out.stderr
    assert_valid(json.loads((tmp_path / "m.json").read_text()))
    req = tmp_path / "requirements.txt"
    req.write_text("joblib==1.4.2\n")
    out = run_cli("sbom", str(req))
    assert out.returncode == 0, out.stderr
    assert_valid(json.loads(out.stdout))

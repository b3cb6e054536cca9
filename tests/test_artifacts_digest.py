"""artifact_digest: the one digest lineage names a model or dataset by, signed or not."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from mlfort.artifacts import artifact_digest, sign_artifact
from mlfort.crypto.signing_keys import load_private_key
from mlfort.errors import InputError


def _sign(path: Path, private: Path, **options) -> str:
    result = sign_artifact(path, load_private_key(private, None), **options)
    return f"sha256:{result.manifest.root_digest()}"


def test_unsigned_tree_gets_the_digest_a_default_signature_will_carry(model_dir: Path, keypair) -> None:
    found = artifact_digest(model_dir)
    assert not found.signed and found.signature is None
    assert (found.method, found.hash_type, found.files) == ("files", "sha256", 6)
    assert found.digest == _sign(model_dir, keypair[0])


def test_signed_tree_is_named_by_its_signature(model_dir: Path, keypair) -> None:
    signed = _sign(model_dir, keypair[0], hash_type="blake3", shard_size=4096)
    found = artifact_digest(model_dir)
    assert found.signed and found.signature == model_dir / "model.sig"
    assert (found.digest, found.method, found.hash_type) == (signed, "shards", "blake3")


def test_the_signature_is_read_not_verified(model_dir: Path, keypair) -> None:
    """Documented: the digest is what the signature claims; `artifacts verify` is the check of the files."""
    signed = _sign(model_dir, keypair[0])
    (model_dir / "config.json").write_text('{"layers": 3}')
    assert artifact_digest(model_dir).digest == signed


def test_single_file_uses_the_sig_beside_it(tmp_path: Path, keypair) -> None:
    data = tmp_path / "customers.csv"
    data.write_text("id,name\n1,a\n")
    unsigned = artifact_digest(data)
    assert unsigned.files == 1 and not unsigned.signed
    assert _sign(data, keypair[0]) == unsigned.digest
    found = artifact_digest(data)
    assert found.signed and found.signature == tmp_path / "customers.csv.sig"


def test_git_metadata_is_left_out_as_signing_leaves_it_out(model_dir: Path) -> None:
    before = artifact_digest(model_dir).digest
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert artifact_digest(model_dir).digest == before


def test_content_changes_the_computed_digest(model_dir: Path) -> None:
    before = artifact_digest(model_dir).digest
    (model_dir / "config.json").write_text('{"layers": 3}')
    assert artifact_digest(model_dir).digest != before


def test_a_malformed_signature_is_an_error_not_a_fallback(model_dir: Path) -> None:
    (model_dir / "model.sig").write_text("{not json")
    with pytest.raises(InputError, match="cannot read the digest from its signature"):
        artifact_digest(model_dir)


def test_a_signature_with_unknown_keys_is_refused(model_dir: Path, keypair) -> None:
    _sign(model_dir, keypair[0])
    sig = model_dir / "model.sig"
    bundle = json.loads(sig.read_text())
    bundle["extra"] = {}
    sig.write_text(json.dumps(bundle))
    with pytest.raises(InputError, match="unexpected key 'extra'"):
        artifact_digest(model_dir)


def test_a_statement_whose_digest_does_not_match_its_files_is_refused(model_dir: Path, keypair) -> None:
    """Without signature verification, the strict statement parser is what stops a made-up root digest."""
    _sign(model_dir, keypair[0])
    sig = model_dir / "model.sig"
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig.write_text(json.dumps(bundle))
    with pytest.raises(InputError, match="subject digest does not match"):
        artifact_digest(model_dir)


def test_missing_path_empty_tree_and_missing_explicit_signature(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        artifact_digest(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no files"):
        artifact_digest(tmp_path / "empty")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="no signature at"):
        artifact_digest(tmp_path / "f", signature=tmp_path / "elsewhere.sig")


def test_progress_is_reported_for_computed_digests(model_dir: Path) -> None:
    planned: list[int] = []
    hashed: list[int] = []
    artifact_digest(model_dir, on_plan=planned.append, progress=hashed.append)
    total = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    assert planned == [total] and sum(hashed) == total

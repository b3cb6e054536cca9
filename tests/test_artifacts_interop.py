"""Interoperability with OpenSSF model signing (PyPI model-signing 1.1.1), both ways, with EC P-256 keys.

Each direction runs the other tool's real command line (`model_signing sign key` / `verify key`), as a user
moving between the two would; the hashing variants its CLI cannot select go through its Python API.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN, run_cli

pytestmark = pytest.mark.interop

MODEL_SIGNING = BIN / "model_signing"


@pytest.fixture(autouse=True)
def _needs_model_signing():
    if not MODEL_SIGNING.exists():
        pytest.fail("model_signing is not installed: pip install -e '.[test]'")


def ms(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODEL_SIGNING), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def openssl_keys(tmp_path: Path) -> tuple[Path, Path]:
    """A P-256 pair made by openssl (SEC1 'EC PRIVATE KEY'), the way model-signing's docs make them."""
    priv, pub = tmp_path / "ossl.key", tmp_path / "ossl.pub"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(priv)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(priv), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True)
    return priv, pub


def test_model_signing_verifies_mlfort_signature_and_catches_tampering(model_dir, keypair):
    signed = run_cli("artifacts", "sign", str(model_dir), "--key", str(keypair[0]))
    assert signed.returncode == 0, signed.stderr
    ok = ms("verify", "key", str(model_dir), "--public_key", str(keypair[1]), "--signature",
            str(model_dir / "model.sig"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Verification succeeded" in ok.stdout
    (model_dir / "a" / "b").write_bytes(b"tampered")
    bad = ms("verify", "key", str(model_dir), "--public_key", str(keypair[1]), "--signature",
             str(model_dir / "model.sig"))
    assert bad.returncode != 0
    assert "a/b" in bad.stdout + bad.stderr


def test_mlfort_verifies_model_signing_signature_and_names_tampered_file(model_dir, openssl_keys, tmp_path):
    sig = tmp_path / "ms.sig"
    made = ms("sign", "key", str(model_dir), "--private_key", str(openssl_keys[0]), "--signature", str(sig))
    assert made.returncode == 0, made.stdout + made.stderr
    ok = run_cli("artifacts", "verify", str(model_dir), "--key", str(openssl_keys[1]), "--signature", str(sig))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verified: 6 file(s)" in ok.stdout
    (model_dir / "weights.safetensors").write_bytes(b"swapped weights")
    bad = run_cli("artifacts", "verify", str(model_dir), "--key", str(openssl_keys[1]), "--signature", str(sig),
                  "--format", "json")
    assert bad.returncode == 1
    assert '"file": "weights.safetensors"' in bad.stdout
    assert "MLF-ART-001" in bad.stdout


def test_mlfort_signs_with_an_openssl_key_and_model_signing_verifies(model_dir, openssl_keys):
    assert run_cli("artifacts", "sign", str(model_dir), "--key", str(openssl_keys[0])).returncode == 0
    ok = ms("verify", "key", str(model_dir), "--public_key", str(openssl_keys[1]), "--signature",
            str(model_dir / "model.sig"))
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_single_file_signatures_interoperate_both_ways(tmp_path, keypair):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"onnx bytes")
    assert run_cli("artifacts", "sign", str(f), "--key", str(keypair[0])).returncode == 0
    ok = ms("verify", "key", str(f), "--public_key", str(keypair[1]), "--signature", str(tmp_path / "model.onnx.sig"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    sig = tmp_path / "by-ms.sig"
    assert ms("sign", "key", str(f), "--private_key", str(keypair[0]), "--signature", str(sig)).returncode == 0
    assert run_cli("artifacts", "verify", str(f), "--key", str(keypair[1]), "--signature", str(sig)).returncode == 0


_API = """
import sys
from model_signing import hashing, signing, verifying
action, model, sig, key, method, alg = sys.argv[1:7]
hc = hashing.Config()
hc = hc.use_shard_serialization(hashing_algorithm=alg, shard_size=4096) if method == "shards" else \\
    hc.use_file_serialization(hashing_algorithm=alg)
if action == "sign":
    signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(hc).sign(model, sig)
else:
    verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(hc).verify(model, sig)
"""


@pytest.mark.parametrize(("method", "alg", "mlfort_args"), [
    ("files", "blake3", ["--hash", "blake3"]),
    ("shards", "sha256", ["--shard-size", "4096"]),
])
def test_blake3_and_shards_interoperate_through_the_model_signing_api(model_dir, keypair, tmp_path, method, alg,
                                                                      mlfort_args):
    # model_signing's CLI always verifies as sha256/files; its API takes the other methods.
    (model_dir / "empty.bin").unlink()  # model-signing's shards method cannot record empty files
    ours = tmp_path / "ours.sig"
    assert run_cli("artifacts", "sign", str(model_dir), "--key", str(keypair[0]), "--signature", str(ours),
                   *mlfort_args).returncode == 0
    verify = subprocess.run([sys.executable, "-c", _API, "verify", str(model_dir), str(ours), str(keypair[1]),
                             method, alg], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stderr
    theirs = tmp_path / "theirs.sig"
    sign = subprocess.run([sys.executable, "-c", _API, "sign", str(model_dir), str(theirs), str(keypair[0]),
                           method, alg], capture_output=True, text=True, timeout=120)
    assert sign.returncode == 0, sign.stderr
    ok = run_cli("artifacts", "verify", str(model_dir), "--key", str(keypair[1]), "--signature", str(theirs))
    assert ok.returncode == 0, ok.stdout + ok.stderr

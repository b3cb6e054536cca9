"""`mlfort keys create-signing` and the keys `artifacts sign|verify` accept or refuse, through the real console
script. Whatever goes wrong, no private key material may reach standard output or standard error."""

from __future__ import annotations

import datetime
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from mlfort.crypto.signing_keys import load_private_key
from tests.conftest import run_cli


@pytest.fixture(autouse=True)
def _no_ambient_password(monkeypatch):
    monkeypatch.delenv("MLFORT_KEY_PASSWORD", raising=False)


def _secret_lines(key: Path) -> list[str]:
    """The base64 body lines of a PEM private key."""
    return [ln for ln in key.read_text().splitlines() if ln and not ln.startswith("-----")]


def assert_no_key_material(proc: subprocess.CompletedProcess, *private_keys: Path) -> None:
    out = proc.stdout + proc.stderr
    assert "PRIVATE KEY" not in out
    for key in private_keys:
        for line in _secret_lines(key):
            assert line[:24] not in out, "a line of the private key's body appears in the output"


def _write_pem(path: Path, key) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _write_pub(path: Path, key) -> Path:
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    root = tmp_path / "tiny-model"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"\x00\x01\x02" * 100)
    (root / "config.json").write_text('{"layers": 1}')
    return root


# --- create-signing ------------------------------------------------------------------------------------------


def test_create_signing_writes_a_0600_private_key_and_a_public_key(tmp_path):
    proc = run_cli("keys", "create-signing", "--out", str(tmp_path / "keys"))
    assert proc.returncode == 0, proc.stderr
    priv, pub = tmp_path / "keys" / "signing.key", tmp_path / "keys" / "signing.pub"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert isinstance(load_private_key(priv).curve, ec.SECP256R1)
    assert str(priv) in proc.stdout and str(pub) in proc.stdout
    assert_no_key_material(proc, priv)


def test_create_signing_refuses_to_overwrite_an_existing_key(tmp_path):
    assert run_cli("keys", "create-signing", "--out", str(tmp_path)).returncode == 0
    before = (tmp_path / "signing.key").read_bytes()
    proc = run_cli("keys", "create-signing", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "already exists" in proc.stderr
    assert (tmp_path / "signing.key").read_bytes() == before
    assert_no_key_material(proc, tmp_path / "signing.key")


def test_create_signing_refuses_an_unset_password_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFORT_TEST_UNSET_PW", raising=False)
    proc = run_cli("keys", "create-signing", "--out", str(tmp_path), "--password-env", "MLFORT_TEST_UNSET_PW")
    assert proc.returncode == 2
    assert "MLFORT_TEST_UNSET_PW" in proc.stderr
    assert not (tmp_path / "signing.key").exists()


def test_password_env_encrypts_the_key_and_signing_then_needs_the_passphrase(tmp_path, tiny_model):
    made = run_cli("keys", "create-signing", "--out", str(tmp_path / "k"), "--password-env", "MY_PW",
                   env={"MY_PW": "correct horse"})
    assert made.returncode == 0, made.stderr
    priv = tmp_path / "k" / "signing.key"
    assert "ENCRYPTED PRIVATE KEY" in priv.read_text()
    sign = ("artifacts", "sign", str(tiny_model), "--key", str(priv))

    without = run_cli(*sign)
    assert without.returncode == 2
    assert "encrypted" in without.stderr and "MLFORT_KEY_PASSWORD" in without.stderr
    assert "Traceback" not in without.stderr

    wrong = run_cli(*sign, env={"MLFORT_KEY_PASSWORD": "wrong"})
    assert wrong.returncode == 2
    assert "wrong passphrase" in wrong.stderr

    right = run_cli(*sign, env={"MLFORT_KEY_PASSWORD": "correct horse"})
    assert right.returncode == 0, right.stderr
    for proc in (made, without, wrong, right):
        assert_no_key_material(proc, priv)
        assert "correct horse" not in proc.stdout + proc.stderr


def test_password_file_unlocks_an_encrypted_key(tmp_path, tiny_model):
    assert run_cli("keys", "create-signing", "--out", str(tmp_path / "k"), "--password-env", "MY_PW",
                   env={"MY_PW": "s3cret"}).returncode == 0
    pw = tmp_path / "pw.txt"
    pw.write_text("s3cret\n")
    proc = run_cli("artifacts", "sign", str(tiny_model), "--key", str(tmp_path / "k" / "signing.key"),
                   "--password-file", str(pw))
    assert proc.returncode == 0, proc.stderr


# --- keys made by openssl, and curves ------------------------------------------------------------------------


@pytest.mark.parametrize("curve", ["prime256v1", "secp384r1", "secp521r1"])
def test_openssl_sec1_keys_sign_and_verify(tmp_path, tiny_model, curve):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    priv, pub = tmp_path / "ossl.key", tmp_path / "ossl.pub"
    subprocess.run(["openssl", "ecparam", "-name", curve, "-genkey", "-noout", "-out", str(priv)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(priv), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True)
    assert "BEGIN EC PRIVATE KEY" in priv.read_text()  # SEC1, not PKCS#8
    signed = run_cli("artifacts", "sign", str(tiny_model), "--key", str(priv))
    assert signed.returncode == 0, signed.stderr
    verified = run_cli("artifacts", "verify", str(tiny_model), "--key", str(pub))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert_no_key_material(signed, priv)


@pytest.mark.parametrize(
    ("make", "word"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "RSA"),
        (ed25519.Ed25519PrivateKey.generate, "Ed25519"),
    ],
    ids=["rsa", "ed25519"],
)
def test_sign_and_verify_refuse_rsa_and_ed25519_keys_clearly(tmp_path, tiny_model, make, word):
    key = make()
    priv, pub = _write_pem(tmp_path / "k.pem", key), _write_pub(tmp_path / "k.pub", key)
    signed = run_cli("artifacts", "sign", str(tiny_model), "--key", str(priv))
    assert signed.returncode == 2
    assert word in signed.stderr and "elliptic-curve" in signed.stderr
    verified = run_cli("artifacts", "verify", str(tiny_model), "--key", str(pub))
    assert verified.returncode == 2
    assert "not an elliptic-curve key" in verified.stderr
    for proc in (signed, verified):
        assert "Traceback" not in proc.stderr
        assert_no_key_material(proc, priv)


def test_sign_and_verify_refuse_an_unsupported_curve(tmp_path, tiny_model):
    key = ec.generate_private_key(ec.SECP256K1())
    priv, pub = _write_pem(tmp_path / "k1.pem", key), _write_pub(tmp_path / "k1.pub", key)
    for proc in (run_cli("artifacts", "sign", str(tiny_model), "--key", str(priv)),
                 run_cli("artifacts", "verify", str(tiny_model), "--key", str(pub))):
        assert proc.returncode == 2
        assert "unsupported elliptic curve 'secp256k1'" in proc.stderr
        assert_no_key_material(proc, priv)


# --- the wrong half, certificates ----------------------------------------------------------------------------


def test_verify_refuses_a_private_key_without_printing_it(tiny_model, keypair):
    proc = run_cli("artifacts", "verify", str(tiny_model), "--key", str(keypair[0]))
    assert proc.returncode == 2
    assert "holds a private key" in proc.stderr and "public key" in proc.stderr
    assert_no_key_material(proc, keypair[0])


def test_sign_refuses_a_public_key(tiny_model, keypair):
    proc = run_cli("artifacts", "sign", str(tiny_model), "--key", str(keypair[1]))
    assert proc.returncode == 2
    assert "this is a public key" in proc.stderr
    assert not (tiny_model / "model.sig").exists()


def test_verify_accepts_a_certificate_for_the_signers_key(tmp_path, tiny_model, keypair):
    key = load_private_key(keypair[0])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "signer.crt"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert run_cli("artifacts", "sign", str(tiny_model), "--key", str(keypair[0])).returncode == 0
    proc = run_cli("artifacts", "verify", str(tiny_model), "--key", str(pem))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_private_key_material_when_the_key_is_misused_anywhere(tmp_path, tiny_model, keypair):
    priv, pub = keypair
    assert run_cli("artifacts", "sign", str(tiny_model), "--key", str(priv)).returncode == 0
    misuses = [
        ("artifacts", "verify", str(tiny_model), "--key", str(pub), "--signature", str(priv), "--format", "json"),
        ("artifacts", "verify", str(tiny_model), "--key", str(pub), "--signature", str(priv), "--format", "sarif"),
        ("artifacts", "verify", str(priv), "--key", str(pub)),
        ("artifacts", "sign", str(tiny_model), "--key", str(priv), "--password-file", str(priv)),
        ("artifacts", "verify", str(tiny_model), "--key", str(priv), "--format", "json"),
    ]
    for args in misuses:
        proc = run_cli(*args)
        assert proc.returncode in (1, 2), args
        assert_no_key_material(proc, priv)


def test_policy_validate_does_not_print_a_private_key_given_by_mistake(keypair):
    proc = run_cli("policy", "validate", str(keypair[0]))
    assert proc.returncode != 0
    assert_no_key_material(proc, keypair[0])

"""Shared fixtures: signing keys and small model trees built fresh in a temp dir for each test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Real servers for the tests: pg_server and pg_url (PostgreSQL); moto_server, aws_client and s3_client (moto).
pytest_plugins = ["tests.pgserver", "tests.motoserver"]

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def mlfort_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own MLFORT_HOME (ledger, checkpoint key), so nothing lands in the checkout."""
    home = tmp_path / "mlfort-home"
    monkeypatch.setenv("MLFORT_HOME", str(home))
    for name in ("MLFORT_LEDGER_URL", "MLFORT_LEDGER_KEY", "MLFORT_POLICY", "MLFORT_ACTOR", "MLFORT_OSV_DB"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    """A P-256 key pair made by mlfort: (private.pem, public.pem)."""
    from mlfort.crypto.signing_keys import create_signing_keypair

    paths = create_signing_keypair(tmp_path / "keys")
    return paths.private_key, paths.public_key


@pytest.fixture
def other_keypair(tmp_path: Path) -> tuple[Path, Path]:
    from mlfort.crypto.signing_keys import create_signing_keypair

    paths = create_signing_keypair(tmp_path / "other-keys")
    return paths.private_key, paths.public_key


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model tree whose names exercise ordering (a-c sorts before a/b as a string, after it by path)."""
    root = tmp_path / "churn-model"
    (root / "a").mkdir(parents=True)
    (root / "a" / "b").write_bytes(b"nested")
    (root / "a-c").write_bytes(b"dash")
    (root / "config.json").write_text('{"layers": 2}')
    (root / "weights.safetensors").write_bytes(os.urandom(300_000))
    (root / "empty.bin").write_bytes(b"")
    (root / "ünïcode name.txt").write_text("hi")
    return root


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed `mlfort` console script as a user would."""
    return subprocess.run([str(BIN / "mlfort"), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=120)

"""Where mlfort keeps its state and who it acts as, from the environment (no other module reads os.environ for these).

- `MLFORT_HOME`: state directory (default `./.mlfort`): the SQLite ledger, the ledger's checkpoint key, caches.
- `MLFORT_LEDGER_URL`: the ledger (sqlite:///path or postgresql://...), overriding the policy's `ledger.url`.
- `MLFORT_LEDGER_KEY`: the Ed25519 key that signs checkpoints (default `$MLFORT_HOME/keys/ledger.key`).
- `MLFORT_POLICY`: the deployed policy file (what `policy validate` records as the policy in force).
- `MLFORT_ACTOR`: who the local user acts as in the ledger, until identity tokens take over (default the OS user).
- `MLFORT_OSV_DB`: the offline OSV database (PyPI `all.zip`) `scan deps` checks versions against.
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path


def home() -> Path:
    """The state directory (not created here)."""
    return Path(os.environ.get("MLFORT_HOME") or ".mlfort")


def ledger_url_override() -> str | None:
    """MLFORT_LEDGER_URL, if set."""
    return os.environ.get("MLFORT_LEDGER_URL") or None


def ledger_key_path() -> Path:
    """The checkpoint signing key's file."""
    env = os.environ.get("MLFORT_LEDGER_KEY")
    return Path(env) if env else home() / "keys" / "ledger.key"


def deployed_policy() -> Path | None:
    """MLFORT_POLICY, if set."""
    env = os.environ.get("MLFORT_POLICY")
    return Path(env) if env else None


def osv_db() -> Path | None:
    """MLFORT_OSV_DB, if set."""
    env = os.environ.get("MLFORT_OSV_DB")
    return Path(env) if env else None


def default_osv_db() -> Path:
    """Where `scan deps` looks for the OSV database when nothing names one: `$MLFORT_HOME/osv/PyPI-all.zip`."""
    return home() / "osv" / "PyPI-all.zip"


def local_actor() -> str:
    """`user:<login>@<host>`, or MLFORT_ACTOR."""
    env = os.environ.get("MLFORT_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"user:{user}@{socket.gethostname()}"

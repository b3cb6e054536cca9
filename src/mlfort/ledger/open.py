"""Finding and opening the ledger, and `record`: the one call every mlfort action makes (fail closed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlfort import settings
from mlfort.errors import MlfortError
from mlfort.ledger.event import Event
from mlfort.ledger.log import Ledger, LedgerError
from mlfort.ledger.note import NoteVerifier, load_or_create_signer
from mlfort.ledger.store import open_store


def ledger_url(explicit: str | None = None, *, policy: Path | None = None) -> tuple[str, Path]:
    """(URL, directory relative sqlite paths are resolved against), by precedence:

    an explicit URL (`--ledger`), then MLFORT_LEDGER_URL, then `ledger.url` of the policy (`--policy`, else the
    deployed MLFORT_POLICY; relative to the policy's folder), then `sqlite:///$MLFORT_HOME/ledger.db`.
    """
    if explicit:
        return explicit, Path.cwd()
    env = settings.ledger_url_override()
    if env:
        return env, Path.cwd()
    policy = policy or settings.deployed_policy()
    if policy is not None:
        from mlfort.policy import load_policy

        configured = load_policy(policy).ledger
        if configured is not None and configured.url:
            return configured.url, policy.parent
    return f"sqlite:///{settings.home() / 'ledger.db'}", Path.cwd()


def open_ledger(url: str | None = None, *, policy: Path | None = None, key: Path | None = None, sign: bool = True,
                trusted: Sequence[NoteVerifier] = ()) -> Ledger:
    """Open (creating on first use) the ledger and, with `sign`, its checkpoint key (created 0600 on first use)."""
    resolved, base = ledger_url(url, policy=policy)
    store = open_store(resolved, base)
    try:
        signer = load_or_create_signer(key or settings.ledger_key_path(), store.origin()) if sign else None
        return Ledger(store, signer, trusted)
    except BaseException:
        store.close()
        raise


def record(events: Event | Sequence[Event], *, url: str | None = None, policy: Path | None = None) -> list[int]:
    """Append events to the ledger and checkpoint; any failure raises LedgerError naming what could not be recorded.

    Callers treat that error as the failure of their action: an action mlfort cannot record did not happen.
    """
    batch = [events] if isinstance(events, Event) else list(events)
    what = ", ".join(sorted({e.action for e in batch}))
    try:
        with open_ledger(url, policy=policy) as ledger:
            return ledger.append(batch)
    except (MlfortError, OSError) as exc:
        raise LedgerError(f"the ledger could not record {what}, so the action fails: {exc}") from None

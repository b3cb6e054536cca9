"""The events the CLI's actions leave in the ledger, built in one place so every command records the same way.

An action that cannot be recorded fails (fail closed): the caller undoes what it can and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlfort.ledger import ArtifactRef, Event


def artifact_ref(digest_hex: str, path: Path, *, name: str | None, kind: str) -> ArtifactRef:
    """A reference to a signed artifact by the root digest of its manifest."""
    from mlfort.ledger import ArtifactRef

    return ArtifactRef(digest=f"sha256:{digest_hex}", name=name, kind=kind, uri=str(path.resolve()))


def event(action: str, resource: str, *, outcome: str = "success", reason: str | None = None,
          reads: tuple[ArtifactRef, ...] = (), writes: tuple[ArtifactRef, ...] = (),
          details: dict[str, Any] | None = None, decision: str | None = None,
          environment: str | None = None) -> Event:
    """An event by the local actor (MLFORT_ACTOR or the OS user)."""
    from mlfort import settings
    from mlfort.ledger import Event

    return Event(action=action, actor=settings.local_actor(), resource=resource, outcome=outcome, reason=reason,
                 reads=reads, writes=writes, details=details or {}, decision=decision, environment=environment)


def record(ev: Event, *, ledger: str | None = None, policy: Path | None = None) -> int:
    """Append the event (and a signed checkpoint); raise LedgerError when that is impossible."""
    from mlfort.ledger import record as append

    return append(ev, url=ledger, policy=policy)[0]

"""The ledger: a tamper-evident, append-only Merkle log of everything mlfort does (RFC 6962, signed checkpoints).

Public face: `Event`, `ArtifactRef`, `Ledger`, `open_ledger`, `record`, `verify_ledger`, and the errors.
"""

from __future__ import annotations

from mlfort.ledger.event import ArtifactRef, Event, EventError
from mlfort.ledger.log import ConsistencyProof, InclusionProof, Ledger, LedgerError, SignedCheckpoint
from mlfort.ledger.open import ledger_url, open_ledger, record
from mlfort.ledger.store import StoreError
from mlfort.ledger.verify import VerifyReport, verify_ledger

__all__ = [
    "ArtifactRef", "ConsistencyProof", "Event", "EventError", "InclusionProof", "Ledger", "LedgerError",
    "SignedCheckpoint", "StoreError", "VerifyReport", "ledger_url", "open_ledger", "record", "verify_ledger",
]

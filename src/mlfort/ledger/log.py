"""The Ledger: append events, sign checkpoints, serve inclusion and consistency proofs, answer queries."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlfort.errors import InputError
from mlfort.ledger import merkle
from mlfort.ledger.event import Event, utc_now
from mlfort.ledger.note import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from mlfort.ledger.store.base import LedgerStore, Query, StoreError


class LedgerError(StoreError):
    """The ledger could not do what was asked (exit 2); the action that needed it must not go ahead."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint and its signed note text."""

    checkpoint: Checkpoint
    note: str


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Proof that entry `index` is in the tree of `size` entries with root `root` (RFC 6962 audit path)."""

    index: int
    size: int
    leaf_hash: bytes
    root: bytes
    path: tuple[bytes, ...]
    checkpoint: str | None
    """The signed checkpoint for `size`, when one exists (a verifier should check its signature)."""
    entry: bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON form: hashes in hex and base64, so any RFC 6962 verifier can take it."""
        return {
            "log_index": self.index, "tree_size": self.size,
            "leaf_hash": self.leaf_hash.hex(), "root_hash": self.root.hex(),
            "audit_path": [h.hex() for h in self.path],
            "leaf_hash_b64": _b64(self.leaf_hash), "root_hash_b64": _b64(self.root),
            "audit_path_b64": [_b64(h) for h in self.path],
            "entry": self.entry.decode("utf-8", "replace"),
            "entry_b64": _b64(self.entry),
            "checkpoint": self.checkpoint,
            "hashing": "RFC 6962: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right)",
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """Proof that the tree of `old` entries is a prefix of the tree of `new` entries (RFC 6962)."""

    old: int
    new: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]
    old_checkpoint: str | None
    new_checkpoint: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "old_size": self.old, "new_size": self.new,
            "old_root_hash": self.old_root.hex(), "new_root_hash": self.new_root.hex(),
            "consistency_path": [h.hex() for h in self.path],
            "consistency_path_b64": [_b64(h) for h in self.path],
            "old_checkpoint": self.old_checkpoint, "new_checkpoint": self.new_checkpoint,
        }


INDEX_INLINE = 64
"""Batches up to this size are indexed for search right after they commit; larger ones on the next query."""


def matches(event: Event, q: Query) -> bool:
    """Whether a decoded event meets the filters (query results are re-checked against the entries themselves)."""
    for value, actual in ((q.actor, event.actor), (q.action, event.action), (q.resource, event.resource),
                          (q.run_id, event.run_id)):
        if value is None:
            continue
        if actual is None:
            return False
        if value.endswith("*") and not actual.startswith(value[:-1]):
            return False
        if not value.endswith("*") and actual != value:
            return False
    if q.since and event.time < q.since:
        return False
    return not (q.until and event.time >= q.until)


class Ledger:
    """One log: a store, the key that signs its checkpoints (optional), and the keys trusted to have signed them."""

    def __init__(self, store: LedgerStore, signer: NoteSigner | None = None,
                 verifiers: Sequence[NoteVerifier] = ()) -> None:
        self.store = store
        self.origin = store.origin()
        if signer is not None and signer.name != self.origin:
            signer = NoteSigner(self.origin, signer.private)  # checkpoints are signed under the log's origin
        self.signer = signer
        trusted = list(verifiers)
        if signer is not None and signer.verifier not in trusted:
            trusted.append(signer.verifier)
        self.verifiers = trusted

    # -- writing --------------------------------------------------------------------------------------------------
    def append(self, events: Sequence[Event], *, checkpoint: bool = True) -> list[int]:
        """Append events as one durable batch; sign a checkpoint after it when a key is at hand. Returns indexes."""
        bodies = [e.encode() for e in events]
        first = self.store.append(bodies)
        if checkpoint and self.signer is not None:
            self.checkpoint()
        if len(bodies) <= INDEX_INLINE:
            self.store.catch_up()
        return list(range(first, first + len(bodies)))

    def record(self, event: Event) -> int:
        """Append one event (and checkpoint): what every mlfort action calls."""
        return self.append([event])[0]

    def checkpoint(self) -> SignedCheckpoint:
        """Sign and store a checkpoint of the current size (idempotent per size)."""
        if self.signer is None:
            raise LedgerError("no checkpoint key: set MLFORT_LEDGER_KEY or use the default under $MLFORT_HOME")
        size = self.store.size()
        cp = Checkpoint(self.origin, size, self.root(size))
        note = self.signer.sign(cp.text())
        if not self.store.add_checkpoint(size, note, utc_now()):
            stored = self.store_checkpoint(size)
            if stored is not None:
                return stored
        return SignedCheckpoint(cp, note)

    # -- reading --------------------------------------------------------------------------------------------------
    def size(self) -> int:
        """Committed entries."""
        return self.store.size()

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` entries, from O(log n) stored nodes."""
        size = self.store.size() if size is None else size
        try:
            return merkle.root_from(self.store.nodes, size)
        except KeyError as exc:
            raise LedgerError(f"ledger is damaged: node {exc} is missing; run `mlfort ledger verify`") from None

    def store_checkpoint(self, size: int) -> SignedCheckpoint | None:
        """The stored checkpoint for exactly `size`, verified, or None."""
        note = self.store.checkpoint_at(size)
        if note is None:
            return None
        return SignedCheckpoint(open_checkpoint(note, self.verifiers, self.origin), note)

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The newest stored checkpoint, its signature checked against the trusted keys."""
        latest = self.store.latest_checkpoint()
        if latest is None:
            return None
        return SignedCheckpoint(open_checkpoint(latest[1], self.verifiers, self.origin), latest[1])

    def _fetch(self, plan: list[list[merkle.NodeId]]) -> list[bytes]:
        nodes = self.store.nodes(merkle.needed(plan))
        try:
            return merkle.assemble(plan, nodes)
        except KeyError as exc:
            raise LedgerError(f"ledger is damaged: node {exc} is missing; run `mlfort ledger verify`") from None

    def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """Inclusion proof of entry `index`, by default in the tree of the latest checkpoint. Checked before return."""
        signed: SignedCheckpoint | None = None
        if size is None:
            signed = self.latest_checkpoint()
            size = signed.checkpoint.size if signed is not None else self.store.size()
        elif size > self.store.size():
            raise InputError(f"the ledger has {self.store.size()} entries; no tree of size {size} exists yet")
        if not 0 <= index < size:
            raise InputError(f"entry {index} is not in a tree of {size} entries")
        path = self._fetch(merkle.inclusion_plan(index, size))
        root = signed.checkpoint.root if signed is not None else self.root(size)
        entry = next(iter(self.store.entries(index, index + 1)), None)
        if entry is None:
            raise LedgerError(f"entry {index} is missing from the ledger; run `mlfort ledger verify`")
        leaf = merkle.leaf_hash(entry[2])
        try:
            merkle.verify_inclusion(leaf, index, size, path, root)
        except merkle.ProofError as exc:
            raise LedgerError(f"the ledger cannot prove entry {index} ({exc}): it was tampered with; "
                              "run `mlfort ledger verify`") from None
        if signed is None:
            found = self.store_checkpoint(size)
            note = found.note if found is not None else None
        else:
            note = signed.note
        return InclusionProof(index, size, leaf, root, tuple(path), note, entry[2])

    def consistency(self, old: int, new: int | None = None) -> ConsistencyProof:
        """Consistency proof from `old` entries to `new` (default: now). Checked before return."""
        new = self.store.size() if new is None else new
        if not 0 <= old <= new:
            raise InputError(f"need 0 <= OLD_SIZE <= NEW_SIZE, got {old} and {new}")
        if new > self.store.size():
            raise InputError(f"the ledger has {self.store.size()} entries; no tree of size {new} exists yet")
        path = self._fetch(merkle.consistency_plan(old, new))
        old_root, new_root = self.root(old), self.root(new)
        try:
            merkle.verify_consistency(old, new, old_root, new_root, path)
        except merkle.ProofError as exc:
            raise LedgerError(f"the ledger cannot prove consistency {old} -> {new} ({exc}); "
                              "run `mlfort ledger verify`") from None
        old_cp, new_cp = self.store_checkpoint(old), self.store_checkpoint(new)
        return ConsistencyProof(old, new, old_root, new_root, tuple(path),
                                old_cp.note if old_cp else None, new_cp.note if new_cp else None)

    def query(self, q: Query) -> list[tuple[int, Event]]:
        """Entries matching the filters, decoded; the index is brought up to date first, and every result is
        re-checked against its entry (a forged index row cannot add a result)."""
        self.store.catch_up()
        found = [(i, Event.decode(body)) for i, body in self.store.query(q)]
        return [(i, e) for i, e in found if matches(e, q)]

    def tail(self, n: int = 20) -> list[tuple[int, Event]]:
        """The last `n` entries, oldest first (read straight from the log)."""
        size = self.store.size()
        return [(i, Event.decode(body)) for i, _, body in self.store.entries(max(0, size - n), size)]

    def by_ref(self, digest: str | None = None, name: str | None = None, *, actions: Sequence[str] = (),
               exclude: Sequence[str] = (), newest: int | None = None) -> list[tuple[int, str, Event]]:
        """Entries that read (r) or wrote (w) an artifact with this digest or name, oldest first, optionally only
        some actions, without others, or the newest n; each re-checked against the entry itself."""
        self.store.catch_up()
        out = []
        rows = self.store.by_ref(digest=digest, name=name, actions=actions, exclude=exclude, newest=newest)
        for i, role, body in rows:
            event = Event.decode(body)
            if (actions and event.action not in actions) or event.action in exclude:
                continue
            refs = event.reads if role == "r" else event.writes
            if any((digest and r.digest == digest) or (name and r.name == name) for r in refs):
                out.append((i, role, event))
        return out

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""`ledger verify`: recompute the whole tree from the entries and hold it against everything that was signed.

One pass over the entries in index order with O(log n) memory: each entry's leaf hash is recomputed and compared
with the stored one; every interior node the stored tree has is recomputed and compared (proofs are served from
them); at each checkpoint's size the recomputed root must equal the signed root. Checkpoints are all prefixes of
the same recomputed sequence, so matching roots also proves each checkpoint consistent with the one before it.
A trusted checkpoint kept outside the machine (`--from-checkpoint`) catches what a local attacker with the
checkpoint key could otherwise hide: a rewritten or truncated log with fresh signatures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from mlfort.ledger import merkle
from mlfort.ledger.merkle import CompactRange, NodeId
from mlfort.ledger.note import Checkpoint, NoteError, NoteVerifier, open_checkpoint
from mlfort.ledger.rules import finding
from mlfort.ledger.store.base import LedgerStore
from mlfort.report import Finding, Severity


@dataclass
class VerifyReport:
    """What `ledger verify` found."""

    origin: str
    size: int
    """Entries found in the store."""
    head: int
    """The size the head row claims."""
    checkpoints: int = 0
    """Signed checkpoints checked."""
    root: bytes = merkle.EMPTY_ROOT
    findings: list[Finding] = field(default_factory=list)
    first_bad: int | None = None
    """The lowest entry index implicated in any problem."""
    seconds: float = 0.0
    _more: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """No problem found (informational notes aside)."""
        return all(f.severity is Severity.INFO for f in self.findings)

    def bad(self, index: int | None, f: Finding) -> None:
        """Record a problem implicating entries from `index`. Only the first problem of each rule is kept as a
        finding (one edit makes every later node and checkpoint disagree too); the rest are counted."""
        if index is not None and (self.first_bad is None or index < self.first_bad):
            self.first_bad = index
        if any(existing.rule_id == f.rule_id for existing in self.findings):
            self._more[f.rule_id] = self._more.get(f.rule_id, 0) + 1
        else:
            self.findings.append(f)

    def finish(self) -> None:
        """Fold the counts of repeated problems into their findings."""
        for i, f in enumerate(self.findings):
            more = self._more.get(f.rule_id)
            if more:
                self.findings[i] = replace(f, message=f"{f.message} (and {more} more problem(s) of this kind)",
                                           evidence={**f.evidence, "more": more})


def as_bytes(value: object) -> bytes | None:
    """A stored blob as bytes. A tampered database may hold text (SQLite's replace() returns TEXT), numbers or NULL
    where bytes belong: text is taken as its UTF-8 bytes, anything else is unreadable (None)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return None


class _LevelReader:
    """Walks the stored nodes of one level in step with the recomputation."""

    def __init__(self, store: LedgerStore, level: int, count: int) -> None:
        self._it: Iterator[tuple[int, bytes]] = store.level(level, 0, count)
        self._next: tuple[int, bytes] | None = next(self._it, None)

    def get(self, index: int) -> bytes | None:
        while self._next is not None and self._next[0] < index:
            self._next = next(self._it, None)
        if self._next is not None and self._next[0] == index:
            return as_bytes(self._next[1])
        return None


def verify_ledger(store: LedgerStore, verifiers: list[NoteVerifier], *, trusted: list[str] = (),  # type: ignore[assignment]
                  progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Check every entry, stored node and checkpoint of `store`; `trusted` are signed checkpoints kept elsewhere."""
    started = time.perf_counter()
    origin = store.origin()
    head = store.size()
    report = VerifyReport(origin=origin, size=0, head=head)
    target = f"ledger {store.url}"

    # Signed checkpoints: stored ones (in size order, lazily) and trusted outside ones (few; all checked first).
    outside: list[tuple[Checkpoint, str]] = []
    for note in trusted:
        try:
            outside.append((open_checkpoint(note, verifiers, origin), "the trusted checkpoint"))
        except NoteError as exc:
            report.bad(None, finding("MLF-LED-004", target, f"the trusted checkpoint does not verify: {exc}"))
    stored = _stored_checkpoints(store, verifiers, origin, report, target)
    pending = sorted(outside, key=lambda c: c[0].size)
    next_stored = next(stored, None)

    tree = CompactRange()
    levels: dict[int, _LevelReader] = {}
    last = -1
    last_good_checkpoint = 0
    # The highest entry index a reported problem points at. A node or checkpoint over [lo, here) that disagrees
    # while last_bad >= lo follows from that problem (one edit makes every node and checkpoint above it disagree):
    # it is counted, but must not drag first_bad down to the start of its range.
    last_bad = -1

    def implicate(lo: int) -> int | None:
        """Where a mismatch over entries [lo, here) points: None if an earlier problem explains it, else the first
        entry after the last matching checkpoint (entries before it are as signed)."""
        nonlocal last_bad
        if last_bad >= lo:
            return None
        last_bad = max(lo, last_good_checkpoint)
        return last_bad

    def check_checkpoints(size: int) -> None:
        nonlocal next_stored, last_good_checkpoint
        root = None
        while next_stored is not None and next_stored[0].size == size:
            cp, label = next_stored
            root = root or tree.root()
            if cp.root != root:
                report.bad(implicate(last_good_checkpoint), finding(
                    "MLF-LED-002", target,
                    f"{label} (size {size}) does not match the entries: an entry in "
                    f"[{last_good_checkpoint}, {size}) was changed, inserted or removed after it was signed",
                    first_bad=last_good_checkpoint, checkpoint_size=size))
            else:
                last_good_checkpoint = size
            report.checkpoints += 1
            next_stored = next(stored, None)
        while pending and pending[0][0].size == size:
            cp, label = pending.pop(0)
            root = root or tree.root()
            if cp.root != root:
                report.bad(0, finding("MLF-LED-004", target,
                                      f"{label} (size {size}) does not match the entries: the log was rewritten "
                                      "since that checkpoint was taken", checkpoint_size=size))
            report.checkpoints += 1

    check_checkpoints(0)
    interior: list[tuple[NodeId, bytes]] = []
    count = max(head, 1)
    for idx, stored_leaf, body in store.entries():
        expected = last + 1
        if idx != expected:
            report.bad(expected, finding("MLF-LED-001", target, f"entry {expected} is missing (deleted or renumbered)",
                                         first_bad=expected))
            break
        last = idx
        data = as_bytes(body)
        leaf = merkle.leaf_hash(data if data is not None else b"\x00unreadable")
        committed = as_bytes(stored_leaf)
        if data is None or leaf != committed:
            last_bad = idx
            report.bad(idx, finding("MLF-LED-001", target,
                                    f"entry {idx} was changed after it was appended (its hash no longer matches)",
                                    first_bad=idx))
            if committed is not None and len(committed) == merkle.HASH_SIZE:
                leaf = committed  # go on with what the tree committed to, so one edit is reported once
        tree.append(leaf, interior)
        for (lv, ix), h in interior:
            reader = levels.get(lv)
            if reader is None:
                reader = levels[lv] = _LevelReader(store, lv, (count >> lv) + 1)
            if reader.get(ix) != h:
                first = ix << lv
                at = implicate(first)
                report.bad(at, finding(
                    "MLF-LED-001", target,
                    f"the stored Merkle node over entries [{first}, {(ix + 1) << lv}) does not match them "
                    "(entries reordered, or the tree edited)", first_bad=first if at is None else at))
        interior.clear()
        check_checkpoints(tree.size)
        if progress is not None and idx % 4096 == 0:
            progress(idx)
    report.size = tree.size
    report.root = tree.root()

    if report.size < head:
        report.bad(report.size, finding("MLF-LED-003", target,
                                        f"the log says it holds {head} entries but only {report.size} are intact: "
                                        f"entries from {report.size} were deleted (truncated)", first_bad=report.size))
    elif report.size > head:
        report.bad(head, finding("MLF-LED-001", target,
                                 f"{report.size - head} entr{'y' if report.size - head == 1 else 'ies'} beyond the "
                                 f"log's size {head} were inserted", first_bad=head))
    for cp, label in [*([next_stored] if next_stored else []), *stored, *pending]:
        report.checkpoints += 1
        report.bad(report.size, finding(
            "MLF-LED-003", target,
            f"{label} covers {cp.size} entries but the log holds {report.size}: entries from {report.size} were "
            "deleted (truncated, or rolled back to an older copy)", first_bad=report.size, checkpoint_size=cp.size))
    if report.checkpoints == 0 and report.size > 0:
        report.bad(None, finding("MLF-LED-005", target,
                                 f"no signed checkpoint covers the {report.size} entries: nothing anchors them"))
    elif last_good_checkpoint < report.size and not report.findings:
        report.findings.append(finding("MLF-LED-006", target,
                                       f"entries [{last_good_checkpoint}, {report.size}) are not yet covered by a "
                                       "signed checkpoint (run `mlfort ledger checkpoint`)"))
    report.finish()
    report.seconds = time.perf_counter() - started
    return report


def _stored_checkpoints(store: LedgerStore, verifiers: list[NoteVerifier], origin: str, report: VerifyReport,
                        target: str) -> Iterator[tuple[Checkpoint, str]]:
    for size, note in store.checkpoints():
        try:
            cp = open_checkpoint(note, verifiers, origin)
        except NoteError as exc:
            report.bad(None, finding("MLF-LED-004", target,
                                     f"the checkpoint stored for size {size} is not validly signed: {exc} "
                                     "(replaced or forged)", checkpoint_size=size))
            continue
        if cp.size != size:
            report.bad(None, finding("MLF-LED-004", target,
                                     f"the checkpoint stored for size {size} is signed for size {cp.size} "
                                     "(moved or replaced)", checkpoint_size=size))
            continue
        yield cp, f"checkpoint {size}"

"""The one interface every ledger store implements, and the append algorithm they share.

A store keeps the log: the entries with their leaf hashes, the perfect subtree nodes of the Merkle tree (so a proof
reads O(log n) rows), a head row with the size (the lock appenders serialise on), and the signed checkpoints. The
append path writes only those, all at the end of their keys, so it stays fast however large the log grows.

Beside the log, a search index (time, actor, action, resource, run id, and the digests each event read or wrote)
is derived data: it is built from the entries by `catch_up`, which queries and lineage call first and small appends
call right after committing. It is not part of what checkpoints sign; query results are always re-read from the
entries, so a forged index row cannot add a result.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from mlfort.errors import MlfortError
from mlfort.ledger import merkle
from mlfort.ledger.merkle import NodeId


class StoreError(MlfortError):
    """The ledger store cannot be opened, read or written (exit 2). Actions that must be recorded fail with it."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class SearchRow:
    """The search-index columns of one entry (derived from its body by `catch_up`)."""

    idx: int
    time: str
    actor: str
    action: str
    resource: str
    run_id: str | None
    refs: tuple[tuple[str, str | None, str], ...]
    """(digest, name, role r|w) of each artifact the event read or wrote."""


def search_row(idx: int, body: bytes) -> SearchRow:
    """Index columns from an entry's bytes; an unreadable entry is indexed as such (verify reports it)."""
    import json

    try:
        obj = json.loads(body)
        refs = tuple((str(r["digest"]), r.get("name"), role)
                     for key, role in (("reads", "r"), ("writes", "w")) for r in obj.get(key, ()))
        return SearchRow(idx, str(obj["time"]), str(obj["actor"]), str(obj["action"]), str(obj["resource"]),
                         obj.get("run_id"), refs)
    except (ValueError, KeyError, TypeError, AttributeError):
        return SearchRow(idx, "", "", "(unreadable)", "", None, ())


@dataclass(frozen=True, slots=True)
class Query:
    """Filters for `ledger query` (all optional; combined with AND)."""

    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    since: str | None = None
    until: str | None = None
    run_id: str | None = None
    limit: int = 100
    newest_first: bool = False


class WriteTransaction(ABC):
    """Inside a store's exclusive write lock: read the head and frontier, then insert one batch."""

    @abstractmethod
    def size(self) -> int:
        """The size in the head row (under the lock)."""

    @abstractmethod
    def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Stored hashes of the given nodes (level 0: the entries' leaf hashes)."""

    @abstractmethod
    def insert(self, first: int, bodies: Sequence[bytes], leaves: Sequence[bytes],
               interior: Sequence[tuple[NodeId, bytes]]) -> None:
        """Insert entries `first..` and their interior nodes, and move the head to the new size."""


class LedgerStore(ABC):
    """A place the ledger lives. Implementations: `sqlite.py` (embedded default), `postgres.py`."""

    url: str
    """Where it is, with any password removed (safe to print)."""

    # -- set-up ---------------------------------------------------------------------------------------------------
    @abstractmethod
    def origin(self) -> str:
        """The log's origin line (its identity in checkpoints); created with the schema on first use."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    # -- writing --------------------------------------------------------------------------------------------------
    @abstractmethod
    def writing(self) -> AbstractContextManager[WriteTransaction]:
        """An exclusive, durable write transaction (committed on exit, rolled back on error)."""

    def append(self, bodies: Sequence[bytes]) -> int:
        """Append a batch atomically and durably; return the index of its first entry.

        Concurrent appenders from any number of processes serialise on the head row, so the log never forks: each
        batch extends exactly the tree the previous batch left.
        """
        if not bodies:
            raise ValueError("nothing to append")
        with self.writing() as txn:
            size = txn.size()
            front = merkle.frontier(size)
            got = txn.nodes(front)
            missing = [n for n in front if n not in got]
            if missing:
                raise StoreError(f"ledger {self.url} is damaged: Merkle node {missing[0]} is missing; "
                                 "run `mlfort ledger verify`")
            sha256, prefix = hashlib.sha256, merkle.LEAF_PREFIX
            leaves = [sha256(prefix + body).digest() for body in bodies]
            interior = merkle.extend(size, [got[n] for n in front], leaves)
            txn.insert(size, bodies, leaves, interior)
        return size

    # -- the derived search index ---------------------------------------------------------------------------------
    @abstractmethod
    def catch_up(self, batch: int = 5000) -> int:
        """Index entries appended since the last call (in batches, each its own transaction); return how many."""


    # -- reading --------------------------------------------------------------------------------------------------
    @abstractmethod
    def size(self) -> int:
        """The committed size (head row)."""

    @abstractmethod
    def nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        """Stored hashes of nodes, in one round trip; missing ones are absent from the result."""

    @abstractmethod
    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(index, stored leaf hash, body) in index order, streamed in chunks (bounded memory)."""

    @abstractmethod
    def level(self, level: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(index, hash) of stored interior nodes of one level (>= 1) with start <= index < end, in order."""

    @abstractmethod
    def query(self, q: Query) -> list[tuple[int, bytes]]:
        """(index, body) of entries whose index columns match (after `catch_up`); callers re-check the bodies."""

    @abstractmethod
    def by_ref(self, digest: str | None = None, name: str | None = None, *, actions: Sequence[str] = (),
               exclude: Sequence[str] = (), newest: int | None = None) -> list[tuple[int, str, bytes]]:
        """(index, role, body) of entries the index says read (r) or wrote (w) this digest or name, oldest first;
        only those `actions`, none of `exclude`, and only the `newest` n when given."""

    # -- checkpoints ----------------------------------------------------------------------------------------------
    @abstractmethod
    def add_checkpoint(self, size: int, note: str, created: str) -> bool:
        """Store a signed checkpoint; False if one for this size exists already."""

    @abstractmethod
    def checkpoints(self, after: int = -1) -> Iterator[tuple[int, str]]:
        """(size, note) of the stored checkpoints with size > `after`, by size (streamed)."""

    @abstractmethod
    def checkpoint_at(self, size: int) -> str | None:
        """The note of the stored checkpoint of exactly `size`, if any (one indexed read)."""

    @abstractmethod
    def latest_checkpoint(self) -> tuple[int, str] | None:
        """(size, note) of the largest stored checkpoint."""

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqlStore(LedgerStore):
    """The reads both SQL stores share (same tables, same statements); a backend supplies `_read` and its
    placeholder `mark`. Stored values are passed through as the driver returns them: `ledger verify` must see a
    tampered column's real type (SQLite's replace() turns a BLOB into TEXT) rather than crash converting it."""

    mark: str = "?"
    """The driver's placeholder. The only text formatted into statements: values always go as parameters."""
    CHUNK = 8192

    @abstractmethod
    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        """Run one read statement; driver errors become StoreError."""

    def size(self) -> int:
        rows = self._read("SELECT size FROM head WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        if end is None:
            last = self._read("SELECT MAX(idx) FROM entries")[0][0]
            end = -1 if last is None else int(last) + 1
        m = self.mark
        pos = start
        while pos < end:
            hi = min(pos + self.CHUNK, end)
            sql = f"SELECT idx, leaf, body FROM entries WHERE idx >= {m} AND idx < {m} ORDER BY idx"  # noqa: S608
            yield from self._read(sql, (pos, hi))
            pos = hi

    def level(self, level: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        base = level << merkle.MAX_LEVEL
        m = self.mark
        pos = start
        while pos < end:
            hi = min(pos + self.CHUNK, end)
            sql = f"SELECT id, hash FROM nodes WHERE id >= {m} AND id < {m} ORDER BY id"  # noqa: S608
            for key, h in self._read(sql, (base + pos, base + hi)):
                yield int(key) - base, h
            pos = hi

    def query(self, q: Query) -> list[tuple[int, bytes]]:
        sql, args = query_sql(q, self.mark)
        return [(int(i), bytes(b)) for i, b in self._read(sql, args)]

    def by_ref(self, digest: str | None = None, name: str | None = None, *, actions: Sequence[str] = (),
               exclude: Sequence[str] = (), newest: int | None = None) -> list[tuple[int, str, bytes]]:
        sql, args = by_ref_sql(digest, name, self.mark, actions=actions, exclude=exclude, newest=newest)
        rows = sorted(self._read(sql, args), key=lambda row: row[0])
        return [(int(i), str(r), bytes(b)) for i, r, b in rows]

    def checkpoints(self, after: int = -1) -> Iterator[tuple[int, str]]:
        last = after
        while True:
            sql = f"SELECT size, note FROM checkpoints WHERE size > {self.mark} ORDER BY size LIMIT 1000"  # noqa: S608
            rows = self._read(sql, (last,))
            if not rows:
                return
            for size, note in rows:
                yield int(size), str(note)
            last = int(rows[-1][0])

    def checkpoint_at(self, size: int) -> str | None:
        rows = self._read(f"SELECT note FROM checkpoints WHERE size = {self.mark}", (size,))  # noqa: S608
        return str(rows[0][0]) if rows else None

    def latest_checkpoint(self) -> tuple[int, str] | None:
        rows = self._read("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else None


def query_sql(q: Query, mark: str) -> tuple[str, list[object]]:
    """SELECT idx, body for a Query over the search index; `mark` is the driver's placeholder (values always go
    as parameters)."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (("actor", q.actor), ("action", q.action), ("resource", q.resource),
                          ("run_id", q.run_id)):
        if value is None:
            continue
        if value.endswith("*"):
            where.append(f"s.{column} LIKE {mark} ESCAPE '\\'")
            args.append(_like_prefix(value[:-1]))
        else:
            where.append(f"s.{column} = {mark}")
            args.append(value)
    if q.since:
        where.append(f"s.time >= {mark}")
        args.append(q.since)
    if q.until:
        where.append(f"s.time < {mark}")
        args.append(q.until)
    sql = "SELECT s.idx, e.body FROM search s JOIN entries e ON e.idx = s.idx"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY s.idx {'DESC' if q.newest_first else 'ASC'} LIMIT {int(q.limit)}"
    return sql, args


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def by_ref_sql(digest: str | None, name: str | None, mark: str, *, actions: Sequence[str] = (),
               exclude: Sequence[str] = (), newest: int | None = None) -> tuple[str, list[object]]:
    """SELECT idx, role, body of the entries referring to a digest or name (values always go as parameters)."""
    column, value = ("digest", digest) if digest else ("name", name)
    sql = "SELECT DISTINCT r.idx, r.role, e.body FROM refs r JOIN entries e ON e.idx = r.idx"
    args: list[object] = [value]
    where = [f"r.{column} = {mark}"]
    if actions or exclude:
        sql += " JOIN search s ON s.idx = r.idx"
    if actions:
        where.append(f"s.action IN ({', '.join([mark] * len(actions))})")
        args += list(actions)
    if exclude:
        where.append(f"s.action NOT IN ({', '.join([mark] * len(exclude))})")
        args += list(exclude)
    sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY r.idx DESC LIMIT {int(newest)}" if newest is not None else " ORDER BY r.idx"
    return sql, args

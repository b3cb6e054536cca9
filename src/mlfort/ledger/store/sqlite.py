"""The embedded ledger store: one SQLite file (WAL, synchronous=FULL, so an acknowledged batch survives a crash).

Writers take SQLite's write lock with BEGIN IMMEDIATE, so appenders in several processes serialise instead of
forking the log. Triggers refuse UPDATE and DELETE on entries, nodes and checkpoints: that stops accidents and
careless tools; a deliberate attacker can drop them, which is what signed checkpoints and `ledger verify` are for.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from mlfort.ledger import merkle
from mlfort.ledger.event import utc_now
from mlfort.ledger.merkle import NodeId
from mlfort.ledger.store.base import (
    SqlStore,
    StoreError,
    WriteTransaction,
    search_row,
)

BUSY_TIMEOUT_MS = 60_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL, created TEXT NOT NULL);
-- the derived search index (rebuilt from entries; not signed)
CREATE TABLE IF NOT EXISTS search_state (id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS search (
    idx INTEGER PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL,
    run_id TEXT);
CREATE INDEX IF NOT EXISTS search_time ON search (time);
CREATE INDEX IF NOT EXISTS search_actor ON search (actor);
CREATE INDEX IF NOT EXISTS search_action ON search (action);
CREATE INDEX IF NOT EXISTS search_resource ON search (resource);
CREATE INDEX IF NOT EXISTS search_run ON search (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS refs (digest TEXT NOT NULL, name TEXT, role TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refs_digest ON refs (digest);
CREATE INDEX IF NOT EXISTS refs_name ON refs (name) WHERE name IS NOT NULL;
"""
TABLES = ("entries", "nodes", "checkpoints", "meta")
APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
    BEGIN SELECT RAISE(ABORT, 'the mlfort ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
    BEGIN SELECT RAISE(ABORT, 'the mlfort ledger is append-only'); END;
"""
HEAD_GROWS_ONLY = """
CREATE TRIGGER IF NOT EXISTS head_grows_only BEFORE UPDATE ON head WHEN NEW.size < OLD.size
    BEGIN SELECT RAISE(ABORT, 'the mlfort ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS head_no_delete BEFORE DELETE ON head
    BEGIN SELECT RAISE(ABORT, 'the mlfort ledger is append-only'); END;
"""


def sqlite_path(url: str, base_dir: Path) -> Path:
    """The file of a `sqlite:///relative.db` (relative to base_dir) or `sqlite:////absolute.db` URL."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise StoreError(f"ledger URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db")
    rest = rest[1:]
    path = Path(rest)
    return path if path.is_absolute() else base_dir / path


class SqliteStore(SqlStore):
    """A ledger in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = not path.exists()
            self._db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                                       check_same_thread=False)
            if fresh:
                os.chmod(path, 0o600)
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _set_wal(self._db)
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA cache_size = -16384")  # 16 MiB: appends touch only the ends of the b-trees
            self._origin = self._init_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open ledger {path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot open ledger {path}: {exc.strerror or exc}") from None

    def _init_schema(self) -> str:
        row = None
        with suppress(sqlite3.OperationalError):
            row = self._db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        if row:
            return str(row[0])
        # Idempotent DDL (executescript runs in autocommit), then the one-time rows under the write lock, so
        # processes opening a new ledger at once agree on one origin.
        self._db.executescript(SCHEMA + "".join(APPEND_ONLY.format(table=t) for t in TABLES) + HEAD_GROWS_ONLY)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("INSERT OR IGNORE INTO head (id, size) VALUES (1, 0)")
            self._db.execute("INSERT OR IGNORE INTO search_state (id, upto) VALUES (1, 0)")
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('origin', ?)",
                             (f"mlfort.ledger/{secrets.token_hex(8)}",))
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)", (utc_now(),))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return str(self._db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()[0])

    def origin(self) -> str:
        return self._origin

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def writing(self) -> Iterator[WriteTransaction]:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot write ledger {self.path}: {exc}") from None
        try:
            yield _SqliteWrite(db)
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot write ledger {self.path}: {exc}") from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read ledger {self.path}: {exc}") from None

    def nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        return _read_nodes(self._read, ids)

    def catch_up(self, batch: int = 5000) -> int:
        done = 0
        while True:
            with self.writing():
                row = self._db.execute("SELECT upto FROM search_state WHERE id = 1").fetchone()
                upto = int(row[0]) if row else 0
                end = min(self.size(), upto + batch)
                if end <= upto:
                    return done
                rows = [search_row(int(i), bytes(b)) for i, _, b in self.entries(upto, end)]
                self._db.executemany(
                    "INSERT OR REPLACE INTO search (idx, time, actor, action, resource, run_id) VALUES (?,?,?,?,?,?)",
                    [(r.idx, r.time, r.actor, r.action, r.resource, r.run_id) for r in rows])
                self._db.executemany("INSERT INTO refs (digest, name, role, idx) VALUES (?, ?, ?, ?)",
                                     [(d, n, role, r.idx) for r in rows for d, n, role in r.refs])
                self._db.execute("UPDATE search_state SET upto = ? WHERE id = 1", (end,))
            done += end - upto

    def add_checkpoint(self, size: int, note: str, created: str) -> bool:
        try:
            cur = self._db.execute("INSERT OR IGNORE INTO checkpoints (size, note, created) VALUES (?, ?, ?)",
                                   (size, note, created))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot write ledger {self.path}: {exc}") from None
        return cur.rowcount == 1

class _SqliteWrite(WriteTransaction):
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def size(self) -> int:
        row = self._db.execute("SELECT size FROM head WHERE id = 1").fetchone()
        if row is None:
            raise StoreError("ledger head row is missing: the ledger was damaged; run `mlfort ledger verify`")
        return int(row[0])

    def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return _read_nodes(lambda sql, args: self._db.execute(sql, args).fetchall(), ids)

    def insert(self, first: int, bodies: Sequence[bytes], leaves: Sequence[bytes],
               interior: Sequence[tuple[NodeId, bytes]]) -> None:
        db = self._db
        db.executemany("INSERT INTO entries (idx, leaf, body) VALUES (?, ?, ?)",
                       [(first + i, leaf, body) for i, (body, leaf) in enumerate(zip(bodies, leaves, strict=True))])
        db.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)", [(merkle.pack(n), h) for n, h in interior])
        cur = db.execute("UPDATE head SET size = ? WHERE id = 1 AND size = ?", (first + len(bodies), first))
        if cur.rowcount != 1:
            raise StoreError("ledger head moved during an append (lost lock): nothing was written")


def _set_wal(db: sqlite3.Connection) -> None:
    """PRAGMA journal_mode = WAL, retried: switching a new file to WAL needs a lock SQLite does not wait for (no
    busy handler), so processes opening a new ledger at once would otherwise fail with "database is locked"."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005 + secrets.randbelow(20) / 1000)


def _read_nodes(read, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """Level-0 nodes come from entries.leaf, the rest from nodes; each in one query."""
    leaves = sorted({i for lv, i in ids if lv == 0})
    inner = sorted({merkle.pack((lv, i)) for lv, i in ids if lv > 0})
    out: dict[NodeId, bytes] = {}
    for chunk in _chunks(leaves):
        marks = ",".join("?" * len(chunk))
        for idx, leaf in read(f"SELECT idx, leaf FROM entries WHERE idx IN ({marks})", chunk):  # noqa: S608
            out[(0, int(idx))] = bytes(leaf)
    for chunk in _chunks(inner):
        marks = ",".join("?" * len(chunk))
        for key, h in read(f"SELECT id, hash FROM nodes WHERE id IN ({marks})", chunk):  # noqa: S608
            out[merkle.unpack(int(key))] = bytes(h)
    return out


def _chunks(items: list[int], size: int = 500) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

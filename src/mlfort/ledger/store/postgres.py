"""The shared ledger store: PostgreSQL through psycopg 3, for a ledger many hosts and processes append to.

Same tables and columns as the SQLite store (bytea for blobs, BIGINT indexes and sizes). Appenders serialise on
the head row (`SELECT ... FOR UPDATE` inside the write transaction), so concurrent processes on any machine extend
one tree and never fork it; every commit waits for the WAL flush (synchronous_commit on), so an acknowledged batch
survives a server crash. plpgsql triggers refuse UPDATE, DELETE and TRUNCATE on entries, nodes, checkpoints and
meta, and let the head only grow: that stops accidents and careless tools; an attacker who owns the database can
drop them, which is what signed checkpoints and `ledger verify` are for.

Every driver error becomes a StoreError whose message names the ledger by its redacted URL and never carries the
password.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mlfort.ledger import merkle
from mlfort.ledger.event import utc_now
from mlfort.ledger.merkle import NodeId
from mlfort.ledger.store import redact_url
from mlfort.ledger.store.base import (
    SqlStore,
    StoreError,
    WriteTransaction,
    search_row,
)

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # pragma: no cover - exercised only without the optional dependency
    psycopg = None  # type: ignore[assignment]

CONNECT_TIMEOUT_S = 10
LOCK_TIMEOUT = "60s"
"""How long an appender waits for the head row (SQLite's busy timeout is the same 60 s)."""
SCHEMA_LOCK = 0x6D6C666F72740001
"""pg_advisory_xact_lock key serialising schema creation ('mlfort' + 1), so processes opening a new database at
once do not race on CREATE TABLE IF NOT EXISTS (which is not safe against itself)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL CHECK (size >= 0));
CREATE TABLE IF NOT EXISTS entries (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL, body BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (id BIGINT PRIMARY KEY, hash BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (size BIGINT PRIMARY KEY, note TEXT NOT NULL, created TEXT NOT NULL);
-- the derived search index (rebuilt from entries; not signed). Byte order ("C") as in SQLite, which also lets
-- LIKE 'prefix%' use the indexes.
CREATE TABLE IF NOT EXISTS search_state (id INTEGER PRIMARY KEY CHECK (id = 1), upto BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS search (
    idx BIGINT PRIMARY KEY, time TEXT COLLATE "C" NOT NULL, actor TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL, resource TEXT COLLATE "C" NOT NULL, run_id TEXT COLLATE "C");
CREATE INDEX IF NOT EXISTS search_time ON search (time);
CREATE INDEX IF NOT EXISTS search_actor ON search (actor);
CREATE INDEX IF NOT EXISTS search_action ON search (action);
CREATE INDEX IF NOT EXISTS search_resource ON search (resource);
CREATE INDEX IF NOT EXISTS search_run ON search (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS refs (digest TEXT NOT NULL, name TEXT, role TEXT NOT NULL, idx BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS refs_digest ON refs (digest);
CREATE INDEX IF NOT EXISTS refs_name ON refs (name) WHERE name IS NOT NULL;
CREATE OR REPLACE FUNCTION mlfort_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the mlfort ledger is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END
$$;
"""
TABLES = ("entries", "nodes", "checkpoints", "meta")
TRIGGERS: dict[str, str] = {
    **{f"{t}_no_update": f"BEFORE UPDATE ON {t} FOR EACH ROW" for t in TABLES},
    **{f"{t}_no_delete": f"BEFORE DELETE ON {t} FOR EACH ROW" for t in (*TABLES, "head")},
    **{f"{t}_no_truncate": f"BEFORE TRUNCATE ON {t} FOR EACH STATEMENT" for t in (*TABLES, "head")},
    "head_grows_only": "BEFORE UPDATE ON head FOR EACH ROW WHEN (NEW.size < OLD.size)",
}


def _password(url: str) -> str | None:
    """The password in a libpq URL or conninfo (netloc or `?password=`), to keep it out of every message."""
    try:
        return conninfo_to_dict(url).get("password") or None  # type: ignore[return-value]
    except psycopg.Error:
        return urlsplit(url).password


def _safe_url(url: str) -> str:
    """`redact_url`, and a `password=` query parameter (libpq takes one there too) hidden the same way."""
    url = redact_url(url)
    parts = urlsplit(url)
    if "password" not in parts.query:
        return url
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*/")))


class PostgresStore(SqlStore):
    """A ledger in one PostgreSQL database (its own tables in the connection's default schema)."""

    mark = "%s"

    def __init__(self, url: str) -> None:
        if psycopg is None:
            raise StoreError("a postgresql:// ledger needs psycopg: pip install 'mlfort[postgres]'")
        self.url = _safe_url(url)
        self._conninfo = url
        self._secret = _password(url)
        self._db: psycopg.Connection | None = None
        self._closed = False
        try:
            self._connect()
            self._origin = self._init_schema()
        except psycopg.Error as exc:
            self.close()
            raise self._error("cannot open", exc) from None

    # -- connection and errors ------------------------------------------------------------------------------------
    def _error(self, doing: str, exc: BaseException) -> StoreError:
        """A StoreError for a driver error: one line, the server's reason, never the password."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if self._secret:
            reason = reason.replace(self._secret, "***")
        return StoreError(f"{doing} ledger {self.url}: {reason}")

    def _connect(self) -> psycopg.Connection:
        params = {} if "connect_timeout" in self._conninfo else {"connect_timeout": CONNECT_TIMEOUT_S}
        if "application_name" not in self._conninfo:
            params["application_name"] = "mlfort"
        db = psycopg.connect(self._conninfo, autocommit=True, **params)
        try:
            # Durable commits whatever the server default says: an acknowledged append must survive a crash.
            db.execute(f"SET synchronous_commit = on; SET lock_timeout = '{LOCK_TIMEOUT}'")
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _conn(self) -> psycopg.Connection:
        """The connection, reopened if the server dropped it (a restart). The call that found it dropped has
        already failed with a StoreError: nothing is retried behind the caller's back."""
        if self._closed:
            raise StoreError(f"ledger {self.url} is closed")
        db = self._db
        if db is None or db.closed:
            db = self._connect()
        return db

    def _init_schema(self) -> str:
        db = self._conn()
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        except pg_errors.UndefinedTable:
            row = None
        if row:
            return str(row[0])
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            db.execute(SCHEMA)
            have = {r[0] for r in db.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY(%s)",
                ([*TABLES, "head"],))}
            for name, when in TRIGGERS.items():
                if name not in have:
                    db.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION mlfort_ledger_append_only()")
            db.execute("INSERT INTO head (id, size) VALUES (1, 0) ON CONFLICT DO NOTHING")
            db.execute("INSERT INTO search_state (id, upto) VALUES (1, 0) ON CONFLICT DO NOTHING")
            db.execute("INSERT INTO meta (key, value) VALUES ('origin', %s) ON CONFLICT DO NOTHING",
                       (f"mlfort.ledger/{secrets.token_hex(8)}",))
            db.execute("INSERT INTO meta (key, value) VALUES ('created', %s) ON CONFLICT DO NOTHING", (utc_now(),))
            row = db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        return str(row[0])

    def origin(self) -> str:
        return self._origin

    def close(self) -> None:
        self._closed = True
        if self._db is not None:
            self._db.close()

    # -- writing --------------------------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[WriteTransaction]:
        try:
            db = self._conn()
            with db.transaction():
                yield _PgWrite(db)
        except psycopg.Error as exc:
            raise self._error("cannot write", exc) from None

    def add_checkpoint(self, size: int, note: str, created: str) -> bool:
        try:
            cur = self._conn().execute(
                "INSERT INTO checkpoints (size, note, created) VALUES (%s, %s, %s) ON CONFLICT (size) DO NOTHING",
                (size, note, created))
        except psycopg.Error as exc:
            raise self._error("cannot write", exc) from None
        return cur.rowcount == 1

    def catch_up(self, batch: int = 5000) -> int:
        done = 0
        while True:
            try:
                db = self._conn()
                with db.transaction():
                    # The search_state row is the indexers' lock, so indexing never waits for appenders (head row).
                    row = db.execute("SELECT upto FROM search_state WHERE id = 1 FOR UPDATE").fetchone()
                    upto = int(row[0]) if row else 0
                    end = min(self.size(), upto + batch)
                    if end <= upto:
                        return done
                    rows = [search_row(int(i), bytes(b)) for i, _, b in self.entries(upto, end)]
                    db.execute(
                        "INSERT INTO search (idx, time, actor, action, resource, run_id) "
                        "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], "
                        "%b::text[]) "
                        "ON CONFLICT (idx) DO UPDATE SET time = EXCLUDED.time, actor = EXCLUDED.actor, "
                        "action = EXCLUDED.action, resource = EXCLUDED.resource, run_id = EXCLUDED.run_id",
                        ([r.idx for r in rows], [r.time for r in rows], [r.actor for r in rows],
                         [r.action for r in rows], [r.resource for r in rows], [r.run_id for r in rows]))
                    refs = [(d, n, role, r.idx) for r in rows for d, n, role in r.refs]
                    if refs:
                        db.execute("INSERT INTO refs (digest, name, role, idx) "
                                   "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[])",
                                   tuple(list(col) for col in zip(*refs, strict=True)))
                    db.execute("UPDATE search_state SET upto = %s WHERE id = 1", (end,))
            except psycopg.Error as exc:
                raise self._error("cannot index", exc) from None
            done += end - upto

    # -- reading --------------------------------------------------------------------------------------------------
    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        try:
            # Binary results: bytea arrives as raw bytes instead of hex text to decode.
            with self._conn().cursor(binary=True) as cur:
                return cur.execute(sql, args).fetchall()
        except psycopg.Error as exc:
            raise self._error("cannot read", exc) from None

    def nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        return _read_nodes(self._read, ids)

class _PgWrite(WriteTransaction):
    def __init__(self, db: psycopg.Connection) -> None:
        self._db = db

    def size(self) -> int:
        # FOR UPDATE makes the head row the appenders' lock: the next appender waits here until this one commits,
        # then reads the size it left.
        row = self._db.execute("SELECT size FROM head WHERE id = 1 FOR UPDATE").fetchone()
        if row is None:
            raise StoreError("ledger head row is missing: the ledger was damaged; run `mlfort ledger verify`")
        return int(row[0])

    def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return _read_nodes(lambda sql, args: self._db.execute(sql, args).fetchall(), ids)

    def insert(self, first: int, bodies: Sequence[bytes], leaves: Sequence[bytes],
               interior: Sequence[tuple[NodeId, bytes]]) -> None:
        db = self._db
        # One statement per table whatever the batch size (unnest of arrays), not one round trip per row; binary
        # parameters (%b), as escaping bytea into text arrays cost more than the database's work.
        db.execute("INSERT INTO entries (idx, leaf, body) SELECT * FROM unnest(%b::bigint[], %b::bytea[], %b::bytea[])",
                   (list(range(first, first + len(bodies))), list(leaves), list(bodies)))
        if interior:
            db.execute("INSERT INTO nodes (id, hash) SELECT * FROM unnest(%b::bigint[], %b::bytea[])",
                       ([merkle.pack(n) for n, _ in interior], [h for _, h in interior]))
        cur = db.execute("UPDATE head SET size = %s WHERE id = 1 AND size = %s", (first + len(bodies), first))
        if cur.rowcount != 1:
            raise StoreError("ledger head moved during an append (lost lock): nothing was written")


def _read_nodes(read: Callable[[str, Sequence[object]], list[tuple]], ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """Level-0 nodes come from entries.leaf, the rest from nodes; each in one query."""
    wanted = list(ids)
    leaves = sorted({i for lv, i in wanted if lv == 0})
    inner = sorted({merkle.pack((lv, i)) for lv, i in wanted if lv > 0})
    out: dict[NodeId, bytes] = {}
    if leaves:
        for idx, leaf in read("SELECT idx, leaf FROM entries WHERE idx = ANY(%s::bigint[])", (leaves,)):
            out[(0, int(idx))] = bytes(leaf)
    if inner:
        for key, h in read("SELECT id, hash FROM nodes WHERE id = ANY(%s::bigint[])", (inner,)):
            out[merkle.unpack(int(key))] = bytes(h)
    return out


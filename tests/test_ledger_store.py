"""The ledger store contract, written once and run against every store: SQLite and a real PostgreSQL server.

Appends, nodes, proofs, checkpoints, queries, append-only triggers, many processes appending at once; then an
attacker who owns the database (drops the triggers, edits rows in SQL) and what `verify_ledger` says about each
kind of tampering: which rule, and which entry is the first bad one.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlfort.ledger import merkle
from mlfort.ledger.event import ArtifactRef, Event
from mlfort.ledger.log import Ledger
from mlfort.ledger.note import Checkpoint, NoteSigner, load_or_create_signer, open_checkpoint
from mlfort.ledger.store import LedgerStore, Query, StoreError, open_store
from mlfort.ledger.verify import VerifyReport, verify_ledger
from tests.test_ledger_merkle import mth, path, proof

KINDS = ["sqlite", "postgres"]


# --- the two stores, and raw SQL on them as the database's owner would write it --------------------------------


@dataclass
class Backend:
    """One store under test: its URL (password and all) and direct SQL access that bypasses mlfort."""

    kind: str
    url: str
    db_path: Path | None = None
    _db: object = None

    def open(self) -> LedgerStore:
        return open_store(self.url)

    def sql(self, statement: str, *args: object) -> list[tuple]:
        """Run one statement in its own committed transaction; `?` placeholders on both databases."""
        if self._db is None:
            if self.kind == "sqlite":
                self._db = sqlite3.connect(self.db_path, isolation_level=None)
            else:
                import psycopg

                self._db = psycopg.connect(self.url, autocommit=True)
        if self.kind == "sqlite":
            return self._db.execute(statement, args).fetchall()
        cur = self._db.execute(statement.replace("?", "%s"), args)
        return cur.fetchall() if cur.description else []

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def drop_triggers(self) -> None:
        """What an attacker who owns the database does first."""
        if self.kind == "sqlite":
            for (name,) in self.sql("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
                self.sql(f"DROP TRIGGER {name}")
        else:
            triggers = self.sql("SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal")
            self.sql("; ".join(f"DROP TRIGGER {name} ON {table}" for name, table in triggers))

    @property
    def refused(self) -> tuple[type[Exception], ...]:
        """What the driver raises when a trigger refuses a statement."""
        if self.kind == "sqlite":
            return (sqlite3.DatabaseError,)
        import psycopg

        return (psycopg.Error,)


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        b = Backend("sqlite", f"sqlite:///{path}", path)
    else:
        b = Backend("postgres", request.getfixturevalue("pg_url"))
    yield b
    b.close()


@pytest.fixture
def store(backend: Backend) -> Iterator[LedgerStore]:
    s = backend.open()
    yield s
    s.close()


@pytest.fixture
def signer(store: LedgerStore) -> NoteSigner:
    return NoteSigner(store.origin(), Ed25519PrivateKey.generate())


@pytest.fixture
def ledger(store: LedgerStore, signer: NoteSigner) -> Ledger:
    return Ledger(store, signer)


T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


def at(minute: int) -> str:
    return (T0 + dt.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(n: int, **fields: object) -> Event:
    """A distinct event per n (its resource and time say which)."""
    values: dict = {"action": "model.train", "actor": "user:alice", "resource": f"model:m{n}", "time": at(n)}
    values.update(fields)
    return Event(**values)


def append_batches(ledger: Ledger, sizes: list[int]) -> list[bytes]:
    """Append batches of the given sizes (a checkpoint after each); return every entry's bytes."""
    bodies: list[bytes] = []
    for size in sizes:
        batch = [event(len(bodies) + i) for i in range(size)]
        ledger.append(batch)
        bodies += [e.encode() for e in batch]
    return bodies


def perfect_nodes(bodies: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect subtree of the tree over `bodies`, computed from the RFC definition (level >= 1)."""
    out = {}
    for level in range(1, len(bodies).bit_length()):
        for index in range(len(bodies) >> level):
            out[(level, index)] = mth(bodies[index << level : (index + 1) << level])
    return out


# --- appending and reading -------------------------------------------------------------------------------------


def test_a_new_store_is_empty_and_keeps_its_origin_when_reopened(backend: Backend, store: LedgerStore) -> None:
    assert store.size() == 0
    assert list(store.entries()) == []
    assert store.latest_checkpoint() is None
    assert store.origin().startswith("mlfort.ledger/")
    with backend.open() as again:
        assert again.origin() == store.origin()


def test_append_returns_the_first_index_and_moves_the_head(store: LedgerStore) -> None:
    assert store.append([b"a", b"b", b"c"]) == 0
    assert store.append([b"d"]) == 3
    assert store.size() == 4
    assert [(i, leaf, body) for i, leaf, body in store.entries()] == [
        (i, merkle.leaf_hash(b), b) for i, b in enumerate([b"a", b"b", b"c", b"d"])]
    assert [i for i, _, _ in store.entries(1, 3)] == [1, 2]
    with pytest.raises(ValueError, match="nothing to append"):
        store.append([])


def test_entries_stream_in_chunks_across_chunk_boundaries(store: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "CHUNK", 7)  # the reads both SQL stores share page through CHUNK rows
    bodies = [f"entry {i}".encode() for i in range(50)]
    store.append(bodies)
    assert [b for _, _, b in store.entries()] == bodies
    assert [i for i, _, _ in store.entries(5, 23)] == list(range(5, 23))
    assert [i for i, _ in store.level(1, 0, 25)] == list(range(25))


def test_stored_nodes_are_the_perfect_subtrees_of_the_entries(store: LedgerStore) -> None:
    bodies: list[bytes] = []
    for size in (1, 2, 5, 1, 4, 13):
        batch = [f"e{len(bodies) + i}".encode() for i in range(size)]
        store.append(batch)
        bodies += batch
    expected = perfect_nodes(bodies)
    stored = {(lv, i): h for lv in range(1, 8) for i, h in store.level(lv, 0, 1 << 10)}
    assert stored == expected
    leaves = store.nodes([(0, 0), (0, 25), (0, 26)])
    assert leaves == {(0, 0): merkle.leaf_hash(bodies[0]), (0, 25): merkle.leaf_hash(bodies[25])}
    assert store.nodes([(2, 1), (4, 1), (4, 0)]) == {(2, 1): expected[(2, 1)], (4, 0): expected[(4, 0)]}


def test_inclusion_proofs_verify_and_match_a_naive_recomputation(ledger: Ledger) -> None:
    bodies = append_batches(ledger, [1, 2, 4, 1, 5])
    for size in range(1, len(bodies) + 1):
        for index in range(size):
            p = ledger.prove(index, size)
            assert list(p.path) == path(index, bodies[:size])
            assert p.root == mth(bodies[:size])
            assert p.entry == bodies[index]
            merkle.verify_inclusion(merkle.leaf_hash(bodies[index]), index, size, p.path, p.root)
    latest = ledger.prove(3)
    assert latest.size == len(bodies)
    assert open_checkpoint(latest.checkpoint, ledger.verifiers).root == latest.root


def test_consistency_proofs_verify_and_match_a_naive_recomputation(ledger: Ledger) -> None:
    bodies = append_batches(ledger, [3, 1, 4, 1, 5])
    for new in range(len(bodies) + 1):
        for old in range(new + 1):
            p = ledger.consistency(old, new)
            assert list(p.path) == proof(old, bodies[:new])
            assert (p.old_root, p.new_root) == (mth(bodies[:old]), mth(bodies[:new]))
            merkle.verify_consistency(old, new, p.old_root, p.new_root, p.path)


def test_checkpoints_are_stored_once_per_size_and_verify(store: LedgerStore, ledger: Ledger) -> None:
    bodies = append_batches(ledger, [2, 3, 1])
    sizes = [s for s, _ in store.checkpoints()]
    assert sizes == [2, 5, 6]
    for size, note in store.checkpoints():
        cp = open_checkpoint(note, ledger.verifiers, store.origin())
        assert (cp.size, cp.root) == (size, mth(bodies[:size]))
    assert store.latest_checkpoint() == (6, dict(store.checkpoints())[6])
    assert store.add_checkpoint(6, "another note", "2026-01-01T00:00:00.000000Z") is False
    assert ledger.checkpoint().note == dict(store.checkpoints())[6]  # idempotent: the stored one comes back
    report = verify_ledger(store, ledger.verifiers)
    assert report.ok, report.findings
    assert (report.size, report.checkpoints, report.root) == (6, 3, mth(bodies))


# --- the search index ------------------------------------------------------------------------------------------

D_DATA = "sha256:" + "d" * 64
D_MODEL = "sha256:" + "e" * 64


@pytest.fixture
def searchable(ledger: Ledger) -> Ledger:
    """Six events over two runs; one resource has a LIKE wildcard in it."""
    ledger.append([
        event(0, actor="user:alice", action="model.train", resource="model:churn", run_id="r1",
              reads=[ArtifactRef(D_DATA, name="customers", kind="dataset")],
              writes=[ArtifactRef(D_MODEL, name="churn", kind="model")]),
        event(1, actor="user:bob", action="dataset.read", resource="dataset:customers", run_id="r1"),
        event(2, actor="user:alice", action="model.sign", resource="model:churn-v2", run_id="r2",
              reads=[ArtifactRef(D_MODEL, name="churn", kind="model")]),
        event(3, actor="workload:trainer", action="model.train", resource="model:fraud"),
    ])
    ledger.append([event(4, actor="user:alice", action="dataset.read", resource="dataset:cust_eu")])
    ledger.append([event(5, actor="user:bob", action="dataset.read", resource="dataset:custXeu")])
    return ledger


@pytest.mark.parametrize(("q", "expected"), [
    (Query(actor="user:alice"), [0, 2, 4]),
    (Query(action="model.train"), [0, 3]),
    (Query(resource="model:churn*"), [0, 2]),
    (Query(resource="model:churn"), [0]),
    (Query(resource="dataset:cust_*"), [4]),  # `_` is a literal, not LIKE's any-character
    (Query(actor="user:*"), [0, 1, 2, 4, 5]),
    (Query(since=at(2), until=at(4)), [2, 3]),
    (Query(actor="user:alice", since=at(1)), [2, 4]),
    (Query(run_id="r1"), [0, 1]),
    (Query(actor="user:alice", limit=2, newest_first=True), [4, 2]),
    (Query(actor="user:nobody"), []),
])
def test_query_filters_by_actor_action_resource_prefix_time_and_run(searchable: Ledger, q: Query,
                                                                    expected: list[int]) -> None:
    assert [i for i, _ in searchable.query(q)] == expected


def test_by_ref_finds_the_readers_and_writers_of_an_artifact(searchable: Ledger) -> None:
    assert [(i, role) for i, role, _ in searchable.by_ref(digest=D_MODEL)] == [(0, "w"), (2, "r")]
    assert [(i, role) for i, role, _ in searchable.by_ref(name="customers")] == [(0, "r")]
    assert searchable.by_ref(digest="sha256:" + "0" * 64) == []


def test_by_ref_filters_by_action_and_takes_the_newest(searchable: Ledger) -> None:
    assert [i for i, _, _ in searchable.by_ref(digest=D_MODEL, actions=["model.sign"])] == [2]
    assert [i for i, _, _ in searchable.by_ref(digest=D_MODEL, exclude=["model.sign"])] == [0]
    assert [i for i, _, _ in searchable.by_ref(digest=D_MODEL, newest=1)] == [2]
    assert [i for i, _, _ in searchable.by_ref(digest=D_MODEL, newest=5)] == [0, 2]  # still oldest first


def test_large_batches_are_indexed_on_the_next_query(store: LedgerStore, ledger: Ledger) -> None:
    ledger.append([event(i, actor="user:carol") for i in range(70)])  # above INDEX_INLINE: not indexed yet
    ledger.append([event(70, actor="user:dave")])  # indexes everything up to here
    assert store.catch_up() == 0
    ledger.append([event(71 + i, actor="user:carol") for i in range(70)])
    assert store.catch_up(batch=16) == 70  # in several transactions
    assert len(ledger.query(Query(actor="user:carol", limit=1000))) == 140


def test_a_forged_index_row_does_not_add_a_query_result(backend: Backend, store: LedgerStore,
                                                        searchable: Ledger) -> None:
    backend.sql("UPDATE search SET actor = 'user:mallory' WHERE idx = 3")
    backend.sql("INSERT INTO refs (digest, name, role, idx) VALUES (?, 'churn', 'w', 5)", D_MODEL)
    assert [i for i, _ in store.query(Query(actor="user:mallory"))] == [3]  # the index alone would lie
    assert searchable.query(Query(actor="user:mallory")) == []
    assert [(i, role) for i, role, _ in searchable.by_ref(digest=D_MODEL)] == [(0, "w"), (2, "r")]


# --- append-only -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE entries SET body = ? WHERE idx = 0",
    "DELETE FROM entries WHERE idx = 1",
    "UPDATE nodes SET hash = ?",
    "DELETE FROM nodes",
    "UPDATE checkpoints SET note = ?",
    "DELETE FROM checkpoints",
    "UPDATE meta SET value = ? WHERE key = 'origin'",
    "DELETE FROM meta",
    "UPDATE head SET size = size - 1",
    "DELETE FROM head",
])
def test_append_only_triggers_refuse_rewriting_the_log(backend: Backend, store: LedgerStore, ledger: Ledger,
                                                       statement: str) -> None:
    append_batches(ledger, [2, 2])
    args = (b"forged",) if "?" in statement else ()
    with pytest.raises(backend.refused, match="append-only"):
        backend.sql(statement, *args)
    assert store.size() == 4
    report = verify_ledger(store, ledger.verifiers)
    assert report.ok and report.size == 4


def test_postgres_also_refuses_truncate(pg_url: str) -> None:
    import psycopg

    with open_store(pg_url) as s:
        s.append([b"x"])
    backend = Backend("postgres", pg_url)
    for table in ("entries", "nodes", "checkpoints", "meta", "head"):
        with pytest.raises(psycopg.Error, match="append-only"):
            backend.sql(f"TRUNCATE {table}")
    backend.close()


# --- many processes at once ------------------------------------------------------------------------------------

WORKER = r"""
import json, sys, time
from pathlib import Path
from mlfort.ledger.event import Event
from mlfort.ledger.log import Ledger
from mlfort.ledger.note import load_or_create_signer
from mlfort.ledger.store import open_store

url, key, go, worker, sizes = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
store = open_store(url)  # every worker at once, on a database no one has opened yet
ledger = Ledger(store, load_or_create_signer(key, store.origin()))
seq = 0
for size in sizes:
    ledger.append([Event(action="test.append", actor=f"workload:{worker}", resource=f"seq:{seq + i}")
                   for i in range(size)])
    seq += size
print("origin", store.origin(), flush=True)
store.close()
"""


def test_processes_appending_at_once_never_fork_or_lose_the_log(backend: Backend, tmp_path: Path) -> None:
    workers = 4
    sizes = [1, 3, 1, 5, 2, 1, 8, 1, 2, 4, 1, 1, 6, 2, 1, 3, 100, 1, 2, 1, 4, 1, 1, 2, 7, 1, 3, 1, 2, 1]
    key, go = tmp_path / "ledger-key.pem", tmp_path / "go"
    load_or_create_signer(key, "unused")  # one key for everyone, made before they start
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, backend.url, str(key), str(go), f"w{w}",
                               json.dumps(sizes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    origins = {line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("origin")}
    assert len(origins) == 1

    with backend.open() as store:
        ledger = Ledger(store, load_or_create_signer(key, store.origin()))
        assert store.size() == workers * sum(sizes)
        seen = [(e.actor, e.resource) for _, e in ledger.tail(store.size())]
        assert Counter(seen) == Counter((f"workload:w{w}", f"seq:{i}") for w in range(workers)
                                        for i in range(sum(sizes)))
        for w in range(workers):  # each worker's own events are in the order it appended them
            mine = [int(r.split(":")[1]) for a, r in seen if a == f"workload:w{w}"]
            assert mine == sorted(mine)
            assert len(ledger.query(Query(actor=f"workload:w{w}", limit=10_000))) == sum(sizes)
        if backend.kind == "postgres":
            # Row-lock waiters queue in order, so batches interleave; SQLite's busy handler lets one writer win
            # again and again (the log is just as correct, only less mixed).
            switches = sum(1 for a, b in itertools.pairwise(seen) if a[0] != b[0])
            assert switches > workers, "the workers ran one after another, not at once"
        report = verify_ledger(store, ledger.verifiers)
        assert report.ok, report.findings
        assert report.checkpoints >= 1


# --- tampering, by someone who owns the database ---------------------------------------------------------------


def assert_caught(report: VerifyReport, rule: str, first_bad: int | None) -> None:
    messages = [f"{f.rule_id}: {f.message}" for f in report.findings]
    assert not report.ok
    assert rule in {f.rule_id for f in report.findings}, messages
    assert report.first_bad == first_bad, messages


BATCHES = [3, 1, 4, 1, 3]
"""12 entries, signed checkpoints at sizes 3, 4, 8, 9 and 12."""
PER_EVENT = [1] * 12
"""12 entries, a signed checkpoint after each (so a checkpoint mismatch names one entry)."""


@pytest.fixture
def attacker(backend: Backend, ledger: Ledger) -> Backend:
    """The database's owner, triggers already dropped."""
    backend.drop_triggers()
    return backend


@pytest.mark.parametrize("batches", [BATCHES, PER_EVENT], ids=["batches", "per-event"])
def test_verify_names_an_entry_whose_body_was_edited(attacker: Backend, store: LedgerStore, ledger: Ledger,
                                                     batches: list[int]) -> None:
    append_batches(ledger, batches)
    attacker.sql("UPDATE entries SET body = ? WHERE idx = 5", event(99).encode())
    assert_caught(verify_ledger(store, ledger.verifiers), "MLF-LED-001", 5)


@pytest.mark.parametrize("index", [4, 5, 11])
def test_verify_names_an_entry_whose_body_and_leaf_hash_were_edited(attacker: Backend, store: LedgerStore,
                                                                    ledger: Ledger, index: int) -> None:
    append_batches(ledger, PER_EVENT)
    forged = event(99).encode()
    attacker.sql("UPDATE entries SET body = ?, leaf = ? WHERE idx = ?", forged, merkle.leaf_hash(forged), index)
    report = verify_ledger(store, ledger.verifiers)
    assert_caught(report, "MLF-LED-002", index)


def test_a_consistent_rewrite_is_caught_by_the_signed_checkpoint(attacker: Backend, store: LedgerStore,
                                                                 ledger: Ledger) -> None:
    bodies = append_batches(ledger, PER_EVENT)
    bodies[5] = event(99).encode()
    tree, interior = merkle.CompactRange(), []
    for body in bodies:
        tree.append(merkle.leaf_hash(body), interior)
    attacker.sql("UPDATE entries SET body = ?, leaf = ? WHERE idx = 5", bodies[5], merkle.leaf_hash(bodies[5]))
    for node, h in interior:
        attacker.sql("UPDATE nodes SET hash = ? WHERE id = ?", h, merkle.pack(node))
    assert ledger.root() == tree.root()  # the stored tree is consistent again: only a signature can tell
    report = verify_ledger(store, ledger.verifiers)
    assert_caught(report, "MLF-LED-002", 5)
    assert {f.rule_id for f in report.findings} == {"MLF-LED-002"}


def test_verify_names_a_deleted_entry(attacker: Backend, store: LedgerStore, ledger: Ledger) -> None:
    append_batches(ledger, BATCHES)
    attacker.sql("DELETE FROM entries WHERE idx = 5")
    assert_caught(verify_ledger(store, ledger.verifiers), "MLF-LED-001", 5)


def test_verify_names_an_entry_inserted_beyond_the_head(attacker: Backend, store: LedgerStore,
                                                        ledger: Ledger) -> None:
    append_batches(ledger, BATCHES)
    extra = event(99).encode()
    attacker.sql("INSERT INTO entries (idx, leaf, body) VALUES (12, ?, ?)", merkle.leaf_hash(extra), extra)
    assert_caught(verify_ledger(store, ledger.verifiers), "MLF-LED-001", 12)


@pytest.mark.parametrize("batches", [BATCHES, PER_EVENT], ids=["batches", "per-event"])
def test_verify_names_the_first_of_two_swapped_entries(attacker: Backend, store: LedgerStore, ledger: Ledger,
                                                       batches: list[int]) -> None:
    append_batches(ledger, batches)
    attacker.sql("UPDATE entries SET idx = -1 WHERE idx = 4")
    attacker.sql("UPDATE entries SET idx = 4 WHERE idx = 7")
    attacker.sql("UPDATE entries SET idx = 7 WHERE idx = -1")
    assert_caught(verify_ledger(store, ledger.verifiers), "MLF-LED-001", 4)


def truncate(attacker: Backend, size: int) -> None:
    """Delete entries from `size` on, every node over them, and lower the head: a consistent shorter log."""
    attacker.sql("DELETE FROM entries WHERE idx >= ?", size)
    for (key,) in attacker.sql("SELECT id FROM nodes"):
        level, index = merkle.unpack(key)
        if (index + 1) << level > size:
            attacker.sql("DELETE FROM nodes WHERE id = ?", key)
    attacker.sql("UPDATE head SET size = ? WHERE id = 1", size)


def test_verify_names_where_a_truncated_log_ends(attacker: Backend, store: LedgerStore, ledger: Ledger) -> None:
    append_batches(ledger, BATCHES)
    truncate(attacker, 9)
    assert_caught(verify_ledger(store, ledger.verifiers), "MLF-LED-003", 9)


def test_truncation_with_its_checkpoints_deleted_is_caught_only_by_a_trusted_checkpoint(
        attacker: Backend, store: LedgerStore, ledger: Ledger) -> None:
    append_batches(ledger, BATCHES)
    kept_outside = ledger.latest_checkpoint().note  # e.g. in a witness or the release notes
    truncate(attacker, 9)
    attacker.sql("DELETE FROM checkpoints WHERE size > 9")
    assert verify_ledger(store, ledger.verifiers).ok  # the database alone now tells a consistent story
    assert_caught(verify_ledger(store, ledger.verifiers, trusted=[kept_outside]), "MLF-LED-003", 9)


@pytest.mark.parametrize("how", ["note-edited", "re-signed-by-another-key"])
def test_a_replaced_checkpoint_is_refused(attacker: Backend, store: LedgerStore, ledger: Ledger, how: str) -> None:
    append_batches(ledger, BATCHES)
    note = dict(store.checkpoints())[8]
    fake_root = merkle.leaf_hash(b"not the root")
    if how == "note-edited":  # the root line changed, the old signature line kept
        lines = note.split("\n")
        lines[2] = base64.b64encode(fake_root).decode()
        forged = "\n".join(lines)
    else:
        forged = NoteSigner(store.origin(), Ed25519PrivateKey.generate()).sign(
            Checkpoint(store.origin(), 8, fake_root).text())
    assert forged != note
    attacker.sql("UPDATE checkpoints SET note = ? WHERE size = 8", forged)
    report = verify_ledger(store, ledger.verifiers)
    assert_caught(report, "MLF-LED-004", None)  # no entry is wrong: the signature is
    assert [f.evidence.get("checkpoint_size") for f in report.findings if f.rule_id == "MLF-LED-004"] == [8]


def test_a_raised_head_is_reported_as_missing_entries(backend: Backend, store: LedgerStore, ledger: Ledger) -> None:
    append_batches(ledger, BATCHES)
    backend.sql("UPDATE head SET size = 15 WHERE id = 1")  # the triggers let the head grow: no need to drop them
    assert_caught(verify_ledger(store, ledger.verifiers), "MLF-LED-003", 12)


def test_a_lowered_head_is_reported_at_the_entries_beyond_it(attacker: Backend, store: LedgerStore,
                                                             ledger: Ledger) -> None:
    append_batches(ledger, BATCHES)
    attacker.sql("UPDATE head SET size = 10 WHERE id = 1")
    assert_caught(verify_ledger(store, ledger.verifiers), "MLF-LED-001", 10)


# --- PostgreSQL: connections, secrets, errors ------------------------------------------------------------------


def test_postgres_url_and_errors_never_show_the_password(pg_url: str, pg_server) -> None:
    with open_store(pg_url) as s:
        assert pg_server.password not in s.url and "***" in s.url
    in_query = pg_url.replace(f":{pg_server.password}@", "@") + f"?password={pg_server.password}"
    with open_store(in_query) as s:  # libpq also takes the password as a query parameter
        assert pg_server.password not in s.url and "password=***" in s.url
    wrong = pg_url.replace(pg_server.password, "hunter2-wrong-secret")
    with pytest.raises(StoreError) as caught:
        open_store(wrong)
    assert "hunter2" not in str(caught.value)
    assert "password authentication failed" in str(caught.value)


def test_postgres_refuses_a_down_server_quickly_and_clearly(pg_server) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: nothing answers there
        started = time.perf_counter()
        with pytest.raises(StoreError, match=r"cannot open ledger postgresql://u:\*\*\*@127\.0\.0\.1") as caught:
            open_store(f"postgresql://u:s3cret-pw@127.0.0.1:{port}/ledger")
    assert time.perf_counter() - started < 5
    assert "s3cret" not in str(caught.value)


def test_postgres_errors_inside_a_write_become_store_errors(pg_url: str) -> None:
    with open_store(pg_url) as s:
        s.append([b"a"])
        attacker = Backend("postgres", pg_url)
        attacker.sql("INSERT INTO entries (idx, leaf, body) VALUES (1, ?, ?)", b"l", b"b")
        attacker.close()
        with pytest.raises(StoreError, match=r"cannot write ledger .*duplicate key"):
            s.append([b"c"])  # entry 1 exists beyond the head: the append must fail, not overwrite
        assert s.size() == 1


def test_postgres_reconnects_on_the_next_call_after_losing_its_connection(pg_url: str, pg_server) -> None:
    with open_store(pg_url) as s:
        s.append([b"a"])
        dbname = pg_url.rsplit("/", 1)[1]
        with pg_server.admin() as admin:  # a server restart or an administrator ending the session
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", (dbname,)).fetchone():
                assert time.monotonic() < deadline, "the server did not end the session"
                time.sleep(0.01)
        with pytest.raises(StoreError, match="cannot read ledger"):
            s.size()  # the call that finds the connection gone fails: nothing is retried behind its back
        assert s.size() == 1
        assert s.append([b"b"]) == 1

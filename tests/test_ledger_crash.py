"""Crash safety, on every store: a writer killed with SIGKILL at any moment loses nothing it was told was written.

A child process appends events in a loop (single events and small batches, each signed and indexed as `Ledger.append`
does) and prints every entry it appended only after `append` returned. The parent kills it at random moments, over
and over, then reopens the ledger: every acknowledged entry must be there with identical bytes and the whole log
must verify. An append the child was killed in the middle of may or may not have committed; either way the log
must be whole.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from mlfort.ledger.event import Event
from mlfort.ledger.log import Ledger
from mlfort.ledger.note import load_or_create_signer
from mlfort.ledger.store import open_store
from mlfort.ledger.verify import verify_ledger

KILLS = 20
DELAY_S = (0.02, 0.3)

CHILD = r"""
import base64, random, sys
from pathlib import Path
from mlfort.ledger.event import Event
from mlfort.ledger.log import Ledger
from mlfort.ledger.note import load_or_create_signer
from mlfort.ledger.store import open_store

url, key, run = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
store = open_store(url)
ledger = Ledger(store, load_or_create_signer(key, store.origin()))
rng = random.Random(run)
print("ready", flush=True)
batch = 0
while True:
    n = 1 if rng.random() < 0.5 else rng.randint(2, 8)
    events = [Event(action="test.append", actor=f"workload:{run}", resource=f"batch:{batch}",
                    details={"batch": batch, "n": n, "pad": "x" * rng.randint(0, 400)}) for _ in range(n)]
    indexes = ledger.append(events)
    # Acknowledged only now that append returned (committed); one write per batch.
    sys.stdout.write("".join(f"ack {i} {base64.b64encode(e.encode()).decode()}\n" for i, e in zip(indexes, events)))
    sys.stdout.flush()
    batch += 1
"""


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_url")


def run_and_kill(url: str, key: Path, run: str, delay: float) -> dict[int, bytes]:
    """Start a writer, let it append for `delay` seconds, SIGKILL it; return what it acknowledged."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(key), run], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        ready = child.stdout.readline()
        assert ready == "ready\n", child.communicate(timeout=30)[1]
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, f"the writer died on its own:\n{err}"
    acked: dict[int, bytes] = {}
    for line in out.split("\n")[:-1]:  # the part after the last newline may be cut short by the kill
        _, index, body = line.split(" ")
        acked[int(index)] = base64.b64decode(body)
    return acked


@pytest.mark.slow
def test_a_killed_writer_loses_nothing_it_acknowledged(ledger_url: str, tmp_path: Path) -> None:
    key = tmp_path / "ledger-key.pem"
    load_or_create_signer(key, "unused")
    rng = random.Random(20261123)
    acked: dict[int, bytes] = {}
    for kill in range(KILLS):
        got = run_and_kill(ledger_url, key, f"r{kill}", rng.uniform(*DELAY_S))
        overlap = acked.keys() & got.keys()
        assert not overlap, f"entries {sorted(overlap)[:5]} were acknowledged twice: the log was overwritten"
        acked.update(got)
    assert len(acked) > KILLS, "the writers were killed before appending anything: the test proved nothing"

    with open_store(ledger_url) as store:
        ledger = Ledger(store, load_or_create_signer(key, store.origin()))
        stored = {i: body for i, _, body in store.entries()}
        missing = [i for i in acked if i not in stored]
        assert not missing, f"acknowledged entries {missing[:5]} are gone"
        changed = [i for i, body in acked.items() if stored[i] != body]
        assert not changed, f"acknowledged entries {changed[:5]} changed"
        assert store.size() == len(stored) >= len(acked)
        batches: dict[tuple[str, int], list[int]] = defaultdict(list)
        for body in stored.values():
            e = Event.decode(body)
            batches[(e.actor, e.details["batch"])].append(e.details["n"])
        for (actor, batch), sizes in batches.items():
            assert len(sizes) == sizes[0], f"{actor} batch {batch}: {len(sizes)} of {sizes[0]} entries (half a batch)"
            assert batch == 0 or (actor, batch - 1) in batches, f"{actor} batch {batch} committed, an earlier one lost"
        report = verify_ledger(store, ledger.verifiers)
        assert report.ok, [f.message for f in report.findings]
        # Nothing was left locked or half-written: the next writer just goes on.
        [index] = ledger.append([Event(action="test.append", actor="workload:after", resource="seq:0")])
        assert index == len(stored)
        assert verify_ledger(store, ledger.verifiers).ok

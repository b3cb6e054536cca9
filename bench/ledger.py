"""Benchmark: the mlfort ledger against PyPI `pymerkle` 7.0 (RFC 6962 Merkle trees, in memory and on SQLite).

    .venv/bin/python bench/ledger.py                        # 200k appends, proofs and verify at 1M entries
    .venv/bin/python bench/ledger.py --append 100000 --entries 1000000 --dir bench/.data/ledger

pymerkle is GPL-3.0: it is installed only for this benchmark, into bench/.data/anchor (never a dependency of
mlfort). Every measurement runs in a fresh process (so peak RSS is honest) and the same event bytes feed both.

- appends: mlfort `Ledger.append` in batches of 1,000 events, a durable SQLite commit (WAL, synchronous=FULL)
  and a signed checkpoint per batch, event encoding included; pymerkle `InmemoryTree.append_entry`, in memory.
- inclusion proof at N entries read from disk: mlfort `Ledger.prove` (O(log n) stored nodes) against pymerkle
  `SqliteTree.prove_inclusion`, random indexes, median.
- full `ledger verify` of N entries, and its peak RSS at N/10 and N (memory must not grow with the log).

Not a test: numbers depend on the machine. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANCHOR = HERE / ".data" / "anchor"
PYMERKLE = "pymerkle==7.0.0"
BATCH = 1000


def events(n: int, seed: int = 1) -> list:
    """Realistic events: 50 actors, 5 actions, 1000 resources, random 256-bit digests read and written."""
    from mlfort.ledger import ArtifactRef, Event

    rng = random.Random(seed)
    actions = ["artifacts.sign", "artifacts.verify", "gateway.invoke", "run.start", "run.finish"]
    out = []
    for i in range(n):
        read = ArtifactRef(f"sha256:{rng.getrandbits(256):064x}", name=f"d{rng.randrange(100)}", kind="dataset")
        wrote = ArtifactRef(f"sha256:{rng.getrandbits(256):064x}", name=f"m{rng.randrange(100)}", kind="model")
        out.append(Event(action=actions[i % 5], actor=f"workload:step-{rng.randrange(50)}",
                         resource=f"model:m{rng.randrange(1000)}", run_id=f"run-{i // 10}", environment="onprem",
                         reads=(read,), writes=(wrote,)))
    return out


def _open(directory: Path):  # a Ledger, imported lazily
    from mlfort.ledger import open_ledger

    return open_ledger(f"sqlite:///{directory / 'ledger.db'}", key=directory / "ledger.key")


def _report(**data: object) -> None:
    data["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(data))


# --- tasks, each run in its own process -------------------------------------------------------------------------

def task_append_mlfort(directory: Path, n: int) -> None:
    evs = events(n)
    batches = [evs[i : i + BATCH] for i in range(0, n, BATCH)]
    gc.freeze()  # the input events are fixtures, not work: keep the collector from rescanning them (both sides)
    with _open(directory) as ledger:
        t = time.perf_counter()
        for b in batches:
            ledger.append(b)
        seconds = time.perf_counter() - t
    _report(seconds=seconds, per_second=n / seconds)


def task_append_pymerkle(directory: Path, n: int) -> None:
    from pymerkle import InmemoryTree

    bodies = [e.encode() for e in events(n)]
    gc.freeze()
    tree = InmemoryTree()
    t = time.perf_counter()
    for body in bodies:
        tree.append_entry(body)
    seconds = time.perf_counter() - t
    _report(seconds=seconds, per_second=n / seconds)


def task_build_mlfort(directory: Path, n: int) -> None:
    with _open(directory) as ledger:
        have = ledger.size()
        seconds = 0.0
        for start in range(have, n, 50_000):
            evs = events(min(50_000, n - start), seed=start)  # made outside the timing, as in the append race
            t = time.perf_counter()
            for i in range(0, len(evs), BATCH):
                ledger.append(evs[i : i + BATCH])
            seconds += time.perf_counter() - t
        _report(seconds=seconds, size=ledger.size())


def task_build_pymerkle(directory: Path, n: int) -> None:
    from pymerkle import SqliteTree

    tree = SqliteTree(str(directory / "pymerkle.db"))
    have = tree.get_size()
    seconds = 0.0
    for start in range(have, n, 50_000):
        bodies = [e.encode() for e in events(min(50_000, n - start), seed=start)]
        t = time.perf_counter()
        tree.append_entries(bodies)
        seconds += time.perf_counter() - t
    _report(seconds=seconds, size=tree.get_size())
    tree.close()


def task_prove_mlfort(directory: Path, n: int) -> None:
    rng = random.Random(2)
    with _open(directory) as ledger:
        size = ledger.size()
        t = time.perf_counter()
        ledger.prove(rng.randrange(size), size)
        first = time.perf_counter() - t
        times = []
        for _ in range(1000):
            i = rng.randrange(size)
            t = time.perf_counter()
            ledger.prove(i, size)
            times.append(time.perf_counter() - t)
    times.sort()
    _report(size=size, first_ms=first * 1e3, median_ms=statistics.median(times) * 1e3,
            p99_ms=times[int(len(times) * 0.99)] * 1e3)


def task_prove_pymerkle(directory: Path, n: int) -> None:
    from pymerkle import SqliteTree

    rng = random.Random(2)
    tree = SqliteTree(str(directory / "pymerkle.db"))
    size = tree.get_size()
    times = []
    for _ in range(20):
        i = rng.randrange(1, size + 1)  # pymerkle counts leaves from 1
        t = time.perf_counter()
        tree.prove_inclusion(i, size)
        times.append(time.perf_counter() - t)
    tree.close()
    _report(size=size, median_ms=statistics.median(times) * 1e3)


def task_verify_mlfort(directory: Path, n: int) -> None:
    from mlfort.ledger import verify_ledger

    with _open(directory) as ledger:
        t = time.perf_counter()
        report = verify_ledger(ledger.store, ledger.verifiers)
        seconds = time.perf_counter() - t
    assert report.ok, report.findings
    _report(seconds=seconds, size=report.size, checkpoints=report.checkpoints)


TASKS = {name[len("task_"):]: fn for name, fn in globals().items() if name.startswith("task_")}


def run(task: str, directory: Path, n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ANCHOR), str(HERE.parent / "src")])}
    proc = subprocess.run([sys.executable, __file__, "--task", task, "--dir", str(directory), "--n", str(n)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{task} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_anchor() -> None:
    if not (ANCHOR / "pymerkle").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(ANCHOR), PYMERKLE], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--append", type=int, default=200_000, help="events for the append race")
    ap.add_argument("--entries", type=int, default=1_000_000, help="log size for proofs and verify")
    ap.add_argument("--dir", type=Path, default=HERE / ".data" / "ledger")
    ap.add_argument("--task", choices=sorted(TASKS), help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.task:
        args.dir.mkdir(parents=True, exist_ok=True)
        TASKS[args.task](args.dir, args.n)
        return

    ensure_anchor()
    print(f"# ledger benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {PYMERKLE}")
    fresh = args.dir / f"append-{args.append}"
    if fresh.exists():
        import shutil

        shutil.rmtree(fresh)
    ours = run("append_mlfort", fresh, args.append)
    theirs = run("append_pymerkle", fresh, args.append)
    print(f"appends ({args.append:,} events, batches of {BATCH}):")
    print(f"  mlfort SQLite, durable commit + signed checkpoint per batch: {ours['per_second']:>10,.0f} /s "
          f"(RSS {ours['max_rss_mb']} MB)")
    print(f"  pymerkle InmemoryTree.append_entry, in memory:              {theirs['per_second']:>10,.0f} /s "
          f"(RSS {theirs['max_rss_mb']} MB)")
    print(f"  ratio: mlfort is {ours['per_second'] / theirs['per_second']:.2f}x pymerkle (target: >= 100,000/s)")

    big = args.dir / f"log-{args.entries}"
    small = args.dir / f"log-{args.entries // 10}"
    for d, n in ((small, args.entries // 10), (big, args.entries)):
        built = run("build_mlfort", d, n)
        if built["seconds"] > 1:
            print(f"built the mlfort log of {n:,} entries in {built['seconds']:.1f} s "
                  f"({n / built['seconds']:,.0f}/s)")
    built = run("build_pymerkle", big, args.entries)
    if built["seconds"] > 1:
        print(f"built the pymerkle SQLite tree of {args.entries:,} entries in {built['seconds']:.1f} s")

    ours = run("prove_mlfort", big, args.entries)
    theirs = run("prove_pymerkle", big, args.entries)
    print(f"inclusion proof at {args.entries:,} entries, from disk:")
    print(f"  mlfort:   median {ours['median_ms']:.3f} ms, p99 {ours['p99_ms']:.3f} ms, "
          f"first {ours['first_ms']:.2f} ms")
    print(f"  pymerkle: median {theirs['median_ms']:.1f} ms (SqliteTree)")
    print(f"  ratio: mlfort is {theirs['median_ms'] / ours['median_ms']:.0f}x faster (target: < 2 ms)")

    v_small = run("verify_mlfort", small, args.entries // 10)
    v_big = run("verify_mlfort", big, args.entries)
    print(f"full ledger verify: {args.entries // 10:,} entries {v_small['seconds']:.2f} s "
          f"(RSS {v_small['max_rss_mb']} MB); {args.entries:,} entries {v_big['seconds']:.2f} s "
          f"(RSS {v_big['max_rss_mb']} MB) (target: < 5 s, memory bounded)")


if __name__ == "__main__":
    main()

"""Benchmark: `mlfort scan models` against picklescan 1.0.5 and modelscan on the same inputs, in one run.

    .venv/bin/python bench/scan.py                    # a 1 GiB pickle of one bytes object, and 1,000 small pickles
    .venv/bin/python bench/scan.py --gib 1 --small 1000 --rounds 3

The anchors are installed only for this benchmark, into their own venv under bench/.data/scan-venv (never
dependencies of mlfort). Each tool runs as a user runs it, a fresh process per round; wall time is the median of
the rounds, peak RSS is the child's (getrusage). Not a test: numbers depend on the machine. Results go in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
ANCHOR_VENV = DATA / "scan-venv"
ANCHORS = ["picklescan==1.0.5", "modelscan==0.8.8"]
MLFORT = Path(sys.executable).parent / "mlfort"


def make_big(path: Path, gib: float) -> None:
    """One pickle (protocol 4) whose only object is a bytes value of `gib` GiB: BINBYTES8, written in chunks."""
    size = int(gib * (1 << 30))
    if path.exists() and path.stat().st_size == size + 12:
        return
    with path.open("wb") as f:
        f.write(b"\x80\x04\x8e" + size.to_bytes(8, "little"))
        chunk = os.urandom(1 << 20)
        left = size
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
        f.write(b".")


def make_small(folder: Path, n: int) -> None:
    """`n` small benign pickles of the kind a model folder holds (dicts, lists, numbers, strings)."""
    marker = folder / f".made-{n}"
    if marker.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        obj = {"layer": i, "weights": [float(j) for j in range(32)], "name": f"block{i}", "shape": (4, 8)}
        (folder / f"part-{i:05d}.pkl").write_bytes(pickle.dumps(obj, protocol=4))
    marker.touch()


def timed(cmd: list[str]) -> tuple[float, int]:
    """(seconds, exit code) of one run."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t, proc.returncode


def measure(cmd: list[str], rounds: int) -> dict[str, float]:
    runs = [timed(cmd) for _ in range(rounds)]
    return {"seconds": statistics.median(r[0] for r in runs), "code": runs[-1][1]}


def peak_rss(cmd: list[str]) -> float:
    """Peak RSS (MB) of one run, measured by a fresh python parent so earlier children do not mask it."""
    probe = ("import resource,subprocess,sys;subprocess.run(sys.argv[1:],capture_output=True);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


def ensure_anchors() -> None:
    if not (ANCHOR_VENV / "bin" / "picklescan").exists():
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        subprocess.run([str(ANCHOR_VENV / "bin" / "pip"), "install", "-q", *ANCHORS], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=DATA / "scan")
    args = ap.parse_args()
    ensure_anchors()
    args.dir.mkdir(parents=True, exist_ok=True)
    big = args.dir / "big.pkl"
    small = args.dir / f"small-{args.small}"
    make_big(big, args.gib)
    make_small(small, args.small)
    bindir = ANCHOR_VENV / "bin"
    tools = {
        "mlfort": lambda p: [str(MLFORT), "scan", "models", str(p), "--format", "json"],
        "picklescan 1.0.5": lambda p: [str(bindir / "picklescan"), "-p", str(p)],
        "modelscan 0.8.8": lambda p: [str(bindir / "modelscan"), "-p", str(p)],
    }
    print(f"# scan benchmark: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"median of {args.rounds}")
    for label, target in ((f"one {args.gib:g} GiB pickle (a single bytes object)", big),
                          (f"{args.small} small pickles", small)):
        print(f"{label}:")
        results = {}
        for name, cmd in tools.items():
            m = measure(cmd(target), args.rounds)
            m["rss"] = peak_rss(cmd(target))
            results[name] = m
            print(f"  {name:18s} {m['seconds']:7.3f} s   peak RSS {m['rss']:7.1f} MB   exit {m['code']}")
        ours = results["mlfort"]
        for name in list(tools)[1:]:
            print(f"  mlfort vs {name}: {results[name]['seconds'] / ours['seconds']:.2f}x faster, "
                  f"{results[name]['rss'] / ours['rss']:.1f}x less memory")


if __name__ == "__main__":
    main()

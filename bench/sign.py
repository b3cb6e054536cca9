"""Benchmark: `mlfort artifacts sign` against `model_signing sign key` (OpenSSF model-signing 1.1.1) on the same
2 GiB tree (4 x 512 MiB, warm page cache), beside the machine's SHA-256 limit measured with hashlib.

    .venv/bin/python bench/sign.py                 # 4 x 512 MiB under bench/.data, 5 rounds
    .venv/bin/python bench/sign.py --files 4 --mib 512 --rounds 5 --dir /tmp/mlfort-bench

Prints wall time (median of the rounds, each a fresh process, as a user runs it), peak RSS, and the ratios.
Not a test: numbers depend on the machine. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def make_many(root: Path, files: int, kib: int) -> None:
    """A dataset-shaped tree: many small files in 100 directories, reused across runs."""
    marker = root / f".made-{files}-{kib}"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    for i in range(files):
        d = root / f"part-{i % 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"rec-{i:07d}.json").write_bytes(os.urandom(kib * 1024))
    marker.touch()


def make_tree(root: Path, files: int, mib: int) -> None:
    """Random content (incompressible, nothing to dedupe), reused across runs when already the right size."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        p = root / f"model-{i:05d}-of-{files:05d}.safetensors"
        if p.exists() and p.stat().st_size == mib << 20:
            continue
        with p.open("wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))


def warm(files: list[Path]) -> None:
    buf = bytearray(8 << 20)
    for p in files:
        with p.open("rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# Contenders are started by a small runner process, not by this one: a child's peak RSS (ru_maxrss from wait4)
# includes the memory of the process it was forked from, and this one holds file lists and hashing buffers.
_RUNNER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    cmd = json.loads(line)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall": wall, "maxrss_kib": usage.ru_maxrss, "rc": os.waitstatus_to_exitcode(status),
                      "err": err[-2000:]}), flush=True)
"""


class Runner:
    """Runs one command at a time in a fresh process and reports its wall time and peak RSS."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _RUNNER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, cmd: list[str]) -> tuple[float, int]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        if out["rc"] != 0:
            raise SystemExit(f"{cmd[0]} failed ({out['rc']}): {out['err']}")
        return out["wall"], out["maxrss_kib"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def hashlib_limit(files: list[Path], workers: int) -> tuple[float, float]:
    """(in-memory compute limit, file-reading limit) for SHA-256 on `workers` threads, in seconds."""
    total = sum(p.stat().st_size for p in files)
    per_worker = total // workers
    chunk = bytes(max(1, min(64 << 20, per_worker)))

    def compute(_: int) -> None:
        h = hashlib.sha256()
        for _ in range(per_worker // len(chunk)):
            h.update(chunk)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(compute, range(workers)))
    mem = time.perf_counter() - t0

    def read(p: Path) -> str:
        with p.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(read, files))
    return mem, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=HERE / ".data" / "sign")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--many", type=int, default=0, metavar="N",
                    help="instead of large files, a dataset of N small files of --kib KiB each")
    ap.add_argument("--kib", type=int, default=2)
    args = ap.parse_args()
    runner = Runner()  # first, while this process is still small

    mlfort, model_signing = BIN / "mlfort", BIN / "model_signing"
    for exe in (mlfort, model_signing):
        if not exe.exists():
            raise SystemExit(f"{exe} not found: pip install -e '.[test]' in this venv first")
    if args.many:
        model = args.dir / "many"
        make_many(model, args.many, args.kib)
    else:
        model = args.dir / "model"
        make_tree(model, args.files, args.mib)
    files = [p for p in model.rglob("*") if p.is_file() and not p.name.startswith(".made-")]
    total = sum(p.stat().st_size for p in files)
    keys = Path(tempfile.mkdtemp(prefix="mlfort-bench-"))
    try:
        subprocess.run([str(mlfort), "keys", "create-signing", "--out", str(keys)], check=True,
                       stdout=subprocess.DEVNULL)
        key = keys / "signing.key"
        sig = keys / "out.sig"
        cmds = {
            "model_signing sign key (sha256)": [str(model_signing), "sign", "key", str(model), "--private_key",
                                                str(key), "--signature", str(keys / "ms.sig")],
            "mlfort artifacts sign (sha256)": [str(mlfort), "artifacts", "sign", str(model), "--key", str(key),
                                               "--signature", str(keys / "mlfort.sig")],
            "mlfort artifacts sign (blake3)": [str(mlfort), "artifacts", "sign", str(model), "--key", str(key),
                                               "--signature", str(sig), "--hash", "blake3"],
            "model_signing start-up (1 small file)": [str(model_signing), "sign", "key", str(keys / "signing.pub"),
                                                      "--private_key", str(key), "--signature", str(sig)],
            "mlfort start-up (1 small file)": [str(mlfort), "artifacts", "sign", str(keys / "signing.pub"),
                                               "--key", str(key), "--signature", str(sig)],
        }
        warm(files)
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in cmds}
        limits: list[tuple[float, float]] = []
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits every contender alike
            for name, cmd in cmds.items():
                results[name].append(runner.run(cmd))
            limits.append(hashlib_limit(files, args.workers))
        for made in ("ms.sig", "mlfort.sig"):  # both signatures must verify, or the timings mean nothing
            subprocess.run([str(mlfort), "artifacts", "verify", str(model), "--key", str(keys / "signing.pub"),
                            "--signature", str(keys / made), "--format", "json"], check=True, stdout=subprocess.DEVNULL)
    finally:
        runner.close()
        shutil.rmtree(keys, ignore_errors=True)

    med = {name: statistics.median(w for w, _ in r) for name, r in results.items()}
    rss = {name: max(m for _, m in r) / 1024 for name, r in results.items()}
    mem_limit = statistics.median(m for m, _ in limits)
    file_limit = statistics.median(f for _, f in limits)
    gib = total / (1 << 30)
    shape = f"{args.many} x {args.kib} KiB" if args.many else f"{args.files} x {args.mib} MiB"
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"tree: {shape} = {gib:.2f} GiB, warm page cache; median of {args.rounds} rounds")
    print(f"{'contender':40} {'wall s':>8} {'GB/s':>6} {'peak RSS MB':>12}")
    for name in cmds:
        rate = "" if "start-up" in name else f"{total / med[name] / 1e9:6.2f}"
        print(f"{name:40} {med[name]:8.3f} {rate:>6} {rss[name]:12.1f}")
    print(f"{'hashlib SHA-256 limit, in memory, ' + str(args.workers) + ' threads':40} {mem_limit:8.3f} "
          f"{total / mem_limit / 1e9:6.2f}")
    print(f"{'hashlib SHA-256 limit, from files, ' + str(args.workers) + ' thr.':40} {file_limit:8.3f} "
          f"{total / file_limit / 1e9:6.2f}")
    ms, ml, mb = (med["model_signing sign key (sha256)"], med["mlfort artifacts sign (sha256)"],
                  med["mlfort artifacts sign (blake3)"])
    best_possible = ms / mem_limit
    print(f"speed-up over model_signing: sha256 {ms / ml:.2f}x, blake3 {ms / mb:.2f}x (target 2x); "
          f"a zero-start-up SHA-256 signer at the in-memory limit would be {best_possible:.2f}x")
    print(f"mlfort sha256 vs the SHA-256 limit: {ml / mem_limit:.2f}x in-memory limit, "
          f"{ml / file_limit:.2f}x file limit (target <= 1.25x)")
    print(f"peak RSS mlfort sha256: {rss['mlfort artifacts sign (sha256)']:.1f} MB (target < 100 MB)")


if __name__ == "__main__":
    main()

"""Hash many files, and large files in shards, on every core.

hashlib and blake3 release the GIL while they hash, so threads scale with cores. Each worker reuses one
read buffer (memory stays flat whatever the model's size); work is handed out largest first so the last
file does not leave one core idle. SHA-256 of one whole file is sequential by nature: the `shards` method and
BLAKE3 (a tree hash, parallel inside one file) are the ways to use every core on a single huge file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mlfort.artifacts.tree import FileEntry
from mlfort.errors import InputError

READ_CHUNK = 4 * 1024 * 1024
"""Bytes per read: large enough that the per-call overhead vanishes, small enough to stay in L2/L3."""

BLAKE3_PARALLEL_MIN = 64 * 1024 * 1024
"""Files at least this large are hashed by BLAKE3 on several threads at once."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after the walk must not block the open

Progress = Callable[[int], None]
"""Called with a count of bytes just hashed, from worker threads."""


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of hashing: a whole file, or the byte range [start, end) of one for shards."""

    name: str
    entry: FileEntry
    """The file as the walk saw it; the open file must still be that file, of that size."""
    start: int
    end: int
    weight: int


def plan(entries: Iterable[FileEntry], method: str, shard_size: int | None) -> list[Task]:
    """The tasks for a tree, largest first."""
    tasks: list[Task] = []
    for e in entries:
        if method == "shards":
            assert shard_size
            # An empty file has no shards, so the format cannot record it (model-signing drops it too);
            # verify reports such files as not covered.
            for start in range(0, e.size, shard_size):
                end = min(start + shard_size, e.size)
                tasks.append(Task(f"{e.rel}:{start}:{end}", e, start, end, end - start))
        else:
            tasks.append(Task(e.rel, e, 0, e.size, e.size))
    tasks.sort(key=lambda t: t.weight, reverse=True)
    return tasks


def _new_hasher(hash_type: str, size_hint: int):
    if hash_type == "sha256":
        return hashlib.sha256()
    if hash_type == "blake2b":
        return hashlib.blake2b()
    if hash_type == "blake3":
        import blake3

        threads = blake3.blake3.AUTO if size_hint >= BLAKE3_PARALLEL_MIN else 1
        return blake3.blake3(max_threads=threads)
    raise InputError(f"unsupported hash {hash_type!r}")


class _Worker(threading.local):
    buf: bytearray | None = None


def hash_tasks(
    tasks: list[Task], hash_type: str, *, workers: int | None = None, progress: Progress | None = None
) -> dict[str, str]:
    """Hash every task; return name -> hex digest. Raises InputError naming a file that cannot be read."""
    local = _Worker()

    def run(task: Task) -> tuple[str, str]:
        if local.buf is None:
            local.buf = bytearray(READ_CHUNK)
        view = memoryview(local.buf)
        entry = task.entry
        h = _new_hasher(hash_type, task.weight)
        try:
            # O_NOFOLLOW and the fstat below close the gap between the walk and the read: a file swapped for a
            # symlink, or for another file, after the walk is refused instead of hashed.
            fd = os.open(entry.path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputError(f"{entry.rel}: became a symlink while it was being checked") from None
            raise InputError(f"{entry.rel}: cannot read ({exc.strerror})") from None
        with os.fdopen(fd, "rb", buffering=0) as f:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode) or (entry.ino and (before.st_dev, before.st_ino) != (entry.dev,
                                                                                                    entry.ino)):
                raise InputError(f"{entry.rel}: replaced by another file while it was being checked")
            if before.st_size != entry.size:
                raise InputError(f"{entry.rel}: changed size while it was being checked ({entry.size} -> "
                                 f"{before.st_size} bytes)")
            if task.start:
                f.seek(task.start)
            remaining = task.end - task.start
            while remaining > 0:
                n = f.readinto(view[: min(READ_CHUNK, remaining)])
                if not n:
                    raise InputError(f"{entry.rel}: shrank while it was being hashed")
                h.update(view[:n])
                remaining -= n
                if progress is not None:
                    progress(n)
            after = os.fstat(fd)
            if after.st_size != entry.size or after.st_mtime_ns != before.st_mtime_ns:
                raise InputError(f"{entry.rel}: changed while it was being hashed")
        return task.name, h.hexdigest()

    n_workers = workers or os.cpu_count() or 1
    if n_workers == 1 or len(tasks) <= 1:
        return dict(map(run, tasks))
    with ThreadPoolExecutor(max_workers=min(n_workers, len(tasks)), thread_name_prefix="mlfort-hash") as pool:
        return dict(pool.map(run, tasks))

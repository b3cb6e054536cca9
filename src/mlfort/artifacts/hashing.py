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


def hash_tasks(
    tasks: list[Task], hash_type: str, *, workers: int | None = None, progress: Progress | None = None
) -> dict[str, str]:
    """Hash every task; return name -> hex digest. Raises InputError naming a file that cannot be read.

    Workers pull tasks from one shared iterator (no future per task: a million-file dataset must not cost a
    million futures), each with its own reusable buffer.
    """
    results: dict[str, str] = {}
    errors: list[BaseException] = []
    pending = iter(tasks)
    lock = threading.Lock()

    def work() -> None:
        buf = bytearray(READ_CHUNK)
        view = memoryview(buf)
        while not errors:
            with lock:
                task = next(pending, None)
            if task is None:
                return
            try:
                results[task.name] = _hash_one(task, hash_type, view, progress)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread and re-raised there
                errors.append(exc)
                return

    n_workers = min(workers or os.cpu_count() or 1, max(len(tasks), 1))
    if n_workers == 1:
        work()
    else:
        threads = [threading.Thread(target=work, name=f"mlfort-hash-{i}", daemon=True) for i in range(n_workers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    if errors:
        raise errors[0]
    return results


def _hash_one(task: Task, hash_type: str, view: memoryview, progress: Progress | None) -> str:
    entry = task.entry
    h = _new_hasher(hash_type, task.weight)
    try:
        # O_NOFOLLOW and the fstat checks close the gap between the walk and the read: a file swapped for a
        # symlink, or for another file, after the walk is refused instead of hashed.
        fd = os.open(entry.path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{entry.rel}: became a symlink while it was being checked") from None
        raise InputError(f"{entry.rel}: cannot read ({exc.strerror})") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or (entry.ino and (before.st_dev, before.st_ino) != (entry.dev,
                                                                                                entry.ino)):
            raise InputError(f"{entry.rel}: replaced by another file while it was being checked")
        if before.st_size != entry.size:
            raise InputError(f"{entry.rel}: changed size while it was being checked ({entry.size} -> "
                             f"{before.st_size} bytes)")
        if task.start:
            os.lseek(fd, task.start, os.SEEK_SET)
        remaining = task.end - task.start
        while remaining > 0:
            n = os.readv(fd, [view[: min(READ_CHUNK, remaining)]])
            if not n:
                raise InputError(f"{entry.rel}: shrank while it was being hashed")
            h.update(view[:n])
            remaining -= n
            if progress is not None:
                progress(n)
        after = os.fstat(fd)
        if after.st_size != entry.size or after.st_mtime_ns != before.st_mtime_ns:
            raise InputError(f"{entry.rel}: changed while it was being hashed")
    except OSError as exc:
        raise InputError(f"{entry.rel}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    return h.hexdigest()

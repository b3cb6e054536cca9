"""Walk a model or dataset tree into the list of files a manifest covers, refusing what must not be followed.

Rules (the same when signing and verifying): symlinks are refused unless allowed, and even then one that
resolves outside the tree is refused; special files (FIFOs, sockets, devices) are refused, since reading a FIFO
hangs and a device is not part of a model; names must be valid UTF-8 and safe relative paths (the one rule the
manifest parser applies too), so mlfort never signs what it would refuse to verify.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mlfort.artifacts.manifest import unsafe_path_reason
from mlfort.errors import InputError

MAX_LISTED_IGNORED = 1000
"""How many files under ignored paths `files_under` lists before it stops counting names."""


class TreeError(InputError):
    """The tree holds something mlfort will not sign or verify (a symlink out of it, a FIFO, ...)."""

    def __init__(self, message: str, *, rel: str, kind: str) -> None:
        super().__init__(message)
        self.rel = rel
        """The offending path, relative to the tree."""
        self.kind = kind
        """`symlink`, `escape`, `special`, `name` or `unreadable`."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One regular file of the tree, with the identity the hasher re-checks on the open file (no TOCTOU)."""

    rel: str
    """Relative POSIX path (`.` when the artifact is a single file)."""
    path: str
    """Filesystem path to open (the resolved target, when a symlink inside the tree was allowed)."""
    size: int
    dev: int = 0
    ino: int = 0


def is_ignored(rel: str, ignore: tuple[str, ...] | frozenset[str]) -> bool:
    """True when `rel` is an ignore path or lies below one (`logs` ignores `logs/x`, not `logs2`)."""
    return any(rel == p or rel.startswith(p + "/") for p in ignore)


def _entry(rel: str, path: str, st: os.stat_result) -> FileEntry:
    return FileEntry(rel, path, st.st_size, st.st_dev, st.st_ino)


def walk(root: Path, *, allow_symlinks: bool, ignore: tuple[str, ...] = ()) -> list[FileEntry]:
    """Every regular file under `root` (or `root` itself if it is a file), minus ignored paths.

    `ignore` holds relative POSIX paths; a directory leaves out everything below it.
    """
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise InputError(f"{root}: no such file or directory") from None
    if stat.S_ISLNK(st.st_mode):
        if not allow_symlinks:
            raise TreeError(f"{root} is a symlink; pass the real path or --allow-symlinks", rel=".", kind="symlink")
        st = os.stat(root)
    if stat.S_ISREG(st.st_mode):
        return [_entry(".", os.path.realpath(root) if allow_symlinks else str(root), st)]
    if not stat.S_ISDIR(st.st_mode):
        raise TreeError(f"{root} is neither a file nor a directory", rel=".", kind="special")

    real_root = os.path.realpath(root)
    out: list[FileEntry] = []
    seen_dirs = {(st.st_dev, st.st_ino)}
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        dir_path, dir_rel = stack.pop()
        try:
            entries = list(os.scandir(dir_path))
        except OSError as exc:
            raise TreeError(f"{dir_rel or '.'}: cannot list directory ({exc.strerror})", rel=dir_rel or ".",
                            kind="unreadable") from None
        for entry in entries:
            rel = f"{dir_rel}/{entry.name}" if dir_rel else entry.name
            if is_ignored(rel, ignore):  # before any check: what is ignored is not ours to judge
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(rel).decode("utf-8", "replace")
                raise TreeError(f"{shown}: file name is not valid UTF-8 and cannot be recorded in a manifest",
                                rel=shown, kind="name") from None
            reason = unsafe_path_reason(rel)
            if reason is not None:
                raise TreeError(f"{rel!r}: this file name {reason}, which a manifest cannot record safely",
                                rel=rel, kind="name")
            path = entry.path
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise TreeError(f"{rel}: cannot stat ({exc.strerror})", rel=rel, kind="unreadable") from None
            if stat.S_ISLNK(est.st_mode):
                if not allow_symlinks:
                    raise TreeError(
                        f"{rel} is a symlink; symlinks are not followed unless --allow-symlinks is given",
                        rel=rel, kind="symlink",
                    )
                target = os.path.realpath(path)
                if os.path.commonpath([real_root, target]) != real_root:
                    raise TreeError(f"{rel} is a symlink that leaves the tree (-> {target})", rel=rel, kind="escape")
                try:
                    est = os.stat(target)
                except OSError:
                    raise TreeError(f"{rel} is a broken symlink", rel=rel, kind="escape") from None
                path = target
            if stat.S_ISDIR(est.st_mode):
                key = (est.st_dev, est.st_ino)
                if key in seen_dirs:
                    raise TreeError(
                        f"{rel}: directory reached twice (a symlink to a directory already in the tree, or a loop)",
                        rel=rel, kind="escape",
                    )
                seen_dirs.add(key)
                stack.append((path, rel))
            elif stat.S_ISREG(est.st_mode):
                out.append(_entry(rel, path, est))
            else:
                raise TreeError(
                    f"{rel} is a special file (FIFO, socket or device); a model tree holds regular files only",
                    rel=rel, kind="special",
                )
    return out


def files_under(root: Path, rel: str) -> list[str]:
    """The files and other entries at or below `root/rel`, never following symlinks, at most MAX_LISTED_IGNORED:
    what a signed ignore path hides, so verify can say so."""
    start = root / rel
    if not start.is_dir() or start.is_symlink():
        return [rel] if (start.exists() or start.is_symlink()) else []
    found: list[str] = []
    stack = [(str(start), rel)]
    while stack and len(found) < MAX_LISTED_IGNORED:
        dir_path, dir_rel = stack.pop()
        try:
            entries = list(os.scandir(dir_path))
        except OSError:
            found.append(dir_rel)
            continue
        for e in entries:
            child = f"{dir_rel}/{os.fsencode(e.name).decode('utf-8', 'replace')}"
            if e.is_dir(follow_symlinks=False):
                stack.append((e.path, child))
            else:
                found.append(child)
    return sorted(found)[:MAX_LISTED_IGNORED]

"""Walk a model or dataset tree into the list of files a manifest covers, refusing what must not be followed.

Rules (the same when signing and verifying): symlinks are refused unless allowed, and even then one that
resolves outside the tree is refused; special files (FIFOs, sockets, devices) are refused, since reading a FIFO
hangs and a device is not part of a model; names must be valid UTF-8 so they survive JSON.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mlfort.errors import InputError


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
    """One regular file of the tree."""

    rel: str
    """Relative POSIX path (`.` when the artifact is a single file)."""
    path: str
    """Filesystem path to open (through a followed symlink, when allowed)."""
    size: int


def _is_ignored(rel: str, ignore: tuple[str, ...]) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in ignore)


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
        return [FileEntry(".", str(root), st.st_size)]
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
            name = entry.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise TreeError(
                    f"{os.path.join(dir_rel, os.fsencode(name).decode('utf-8', 'replace'))}: "
                    "file name is not valid UTF-8 and cannot be recorded in a manifest",
                    rel=dir_rel, kind="name",
                ) from None
            rel = f"{dir_rel}/{name}" if dir_rel else name
            if "\\" in name or any(ord(c) < 0x20 for c in name):
                raise TreeError(f"{rel!r}: file name holds a backslash or control character", rel=rel, kind="name")
            if _is_ignored(rel, ignore):
                continue
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
                if key in seen_dirs:  # a symlink loop or a second way into the same directory
                    raise TreeError(f"{rel}: directory reached twice (symlink loop)", rel=rel, kind="escape")
                seen_dirs.add(key)
                stack.append((path, rel))
            elif stat.S_ISREG(est.st_mode):
                out.append(FileEntry(rel, path, est.st_size))
            else:
                raise TreeError(
                    f"{rel} is a special file (FIFO, socket or device); a model tree holds regular files only",
                    rel=rel, kind="special",
                )
    return out

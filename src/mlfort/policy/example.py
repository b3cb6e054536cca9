"""The example policy written by `mlfort init` (package data), and the safe way to write it."""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from pathlib import Path

from mlfort.errors import InputError

EXAMPLE_RESOURCE = "mlfort.example.yaml"


def example_policy_text() -> str:
    """The commented example policy: an on-prem EU cluster plus AWS eu-central-1."""
    return resources.files("mlfort").joinpath("data", EXAMPLE_RESOURCE).read_text(encoding="utf-8")


def write_example_policy(path: str | Path = "mlfort.yaml", *, force: bool = False) -> Path:
    """Write the example policy to `path`. An existing file is left alone unless `force` (InputError, exit 2)."""
    path = Path(path)
    text = example_policy_text()
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a file name such as {path / 'mlfort.yaml'}")
    if path.parent != Path() and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    if not force:
        try:
            # 'x' creates or fails in one step: no window between "does it exist?" and writing.
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            raise InputError(f"{path} already exists; not overwriting it (use --force to replace it)") from None
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
        return path
    # Replace atomically, so a crash never leaves half a policy behind.
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mlfort-", suffix=".yaml", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            Path(tmp).chmod(0o644)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path

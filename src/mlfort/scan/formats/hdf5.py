"""HDF5 files: Keras 2 `.h5` models (the root attribute `model_config` is the Keras config, walked by
`keras.check_config`) and the weights-only `model.weights.h5` inside a `.keras` zip.

Only metadata is read, through h5py: attributes (each bounded in size) and the object tree (bounded in count), never
a dataset's data. Besides the Keras config, the tree is checked for what makes an HDF5 reader open *another* file:
external links, datasets whose raw data lives in external files (which can point at `/etc/passwd` or `~/.ssh`), and
virtual datasets mapping other files (MLF-MOD-012). A weights-only file that carries a model config is reported too:
`keras.models.load_model` of that file alone would run it.

h5py (libhdf5) parses the file in this process; it is imported lazily. Without it the file is searched byte by byte
for an embedded Keras config (`{"class_name"...`), which finds Keras 2 configs stored the way Keras stores them
(inline string attributes), and the report says the structure was not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from mlfort.report import Severity
from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.formats.keras import check_config
from mlfort.scan.rules import finding

MAX_ATTRIBUTE = 64 << 20
"""Bytes of one attribute read (Keras 2 model configs are kilobytes to megabytes)."""
MAX_OBJECTS = 200_000
"""Groups and datasets walked in one file."""
CONFIG_ATTRIBUTES = ("model_config", "training_config")
"""Root attributes Keras 2's `load_model` deserializes (the training config names losses and metrics)."""
MAX_FALLBACK_READ = 256 << 20
"""Bytes searched for a config when h5py is not installed."""


def _text(value: Any) -> str | None:
    """An attribute value as text (h5py gives str, bytes, or a one-element numpy array of either)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _check_attribute(name: str, text: str, member: Member, ctx: ScanContext, weights_only: bool) -> None:
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        ctx.add(finding("MLF-MOD-003", member.path, f"HDF5 attribute {name} is not JSON; Keras refuses the file",
                        severity=Severity.MEDIUM, format="hdf5"))
        return
    if weights_only and name == "model_config":
        ctx.add(finding("MLF-MOD-012", member.path, "a weights-only HDF5 file inside a .keras archive carries a "
                        "Keras 2 model_config: loading this file on its own would deserialize it", format="hdf5"))
    check_config(config, member, ctx, f"Keras HDF5 {name}")


def _walk(root: Any, h5py: Any) -> Iterator[tuple[str, str]]:
    """(object path, problem) for every link or dataset that reaches outside the file; bounded in count."""
    stack = [root]
    seen: set[int] = set()
    count = 0
    while stack:
        group = stack.pop()
        addr = h5py.h5o.get_info(group.id).addr
        if addr in seen:
            continue  # hard links can make cycles
        seen.add(addr)
        for name in group:
            count += 1
            if count > MAX_OBJECTS:
                yield group.name, f"more than {MAX_OBJECTS} objects; the rest were not checked"
                return
            link = group.get(name, getlink=True)
            path = f"{group.name.rstrip('/')}/{name}"
            if isinstance(link, h5py.ExternalLink):
                yield path, f"external link to {link.path!r} in file {link.filename!r} (reading it opens that file)"
                continue
            if not isinstance(link, h5py.HardLink):
                continue  # soft links stay inside the file
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                stack.append(obj)
            elif isinstance(obj, h5py.Dataset):
                external = obj.external
                if external:
                    files = sorted({str(e[0]) for e in external})
                    yield path, f"dataset reads its data from external file(s) {files}"
                if obj.is_virtual:
                    files = sorted({vs.file_name for vs in obj.virtual_sources() if vs.file_name != "."})
                    if files:
                        yield path, f"virtual dataset maps data from other file(s) {files}"


@handles("hdf5")
def scan_hdf5(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """Read the root attributes Keras deserializes and walk the object tree; never dataset data."""
    weights_only = member.depth > 0 and member.path.rsplit("!", 1)[-1].endswith("model.weights.h5")
    try:
        import h5py
    except ImportError:
        _fallback(member, stream, ctx)
        return
    try:
        handle = h5py.File(stream, "r")
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        ctx.add(finding("MLF-MOD-003", member.path, f"HDF5 file cannot be parsed: {str(exc)[:160]}", format="hdf5"))
        return
    try:
        with handle:
            attrs = handle.attrs
            for name in CONFIG_ATTRIBUTES:
                if name not in attrs:
                    continue
                size = attrs.get_id(name).get_storage_size()
                if size > MAX_ATTRIBUTE:
                    ctx.add(finding("MLF-MOD-004", member.path, f"HDF5 attribute {name} is {size} bytes; not "
                                    "checked for Keras custom code", limit="size"))
                    continue
                text = _text(attrs[name])
                if text is not None:
                    _check_attribute(name, text, member, ctx, weights_only)
            for path, why in _walk(handle, h5py):
                rule = "MLF-MOD-004" if why.startswith("more than") else "MLF-MOD-012"
                ctx.add(finding(rule, member.path, f"HDF5 object {path}: {why}",
                                severity=Severity.HIGH if rule == "MLF-MOD-012" else None, format="hdf5",
                                object=path))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        ctx.add(finding("MLF-MOD-003", member.path, f"HDF5 file is malformed: {str(exc)[:160]}", format="hdf5"))


_CONFIG_START = re.compile(rb'\{\s*"class_name"\s*:')


def _fallback(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """Without h5py: find Keras configs stored inline and walk them; say what was not checked."""
    data = stream.read(MAX_FALLBACK_READ)
    decoder = json.JSONDecoder()
    pos = 0
    for _ in range(100):  # each try decodes up to MAX_ATTRIBUTE bytes: bound the work on a file full of decoys
        m = _CONFIG_START.search(data, pos)
        if m is None:
            break
        text = data[m.start():m.start() + MAX_ATTRIBUTE].decode("utf-8", "replace")
        try:
            config, end = decoder.raw_decode(text)
        except (ValueError, RecursionError):
            pos = m.end()
            continue
        check_config(config, member, ctx, "Keras HDF5 config (found by byte search)")
        pos = m.start() + len(text[:end].encode("utf-8"))
    ctx.add(finding("MLF-MOD-004", member.path, "h5py is not installed: the HDF5 structure (external links and "
                    "files) was not checked, only inline Keras configs", severity=Severity.LOW, limit="format"))

"""Turn a file into chunks of text to scan: plain text, notebook cells and outputs, safetensors metadata, zip
members, and the printable runs of any binary file (what `strings` shows), so tokens inside pickles, model files
and .pyc files are found too.

Nothing is parsed beyond what is needed to find text: a notebook is JSON, a safetensors header is JSON after an
8-byte length, a zip is its central directory. A file that does not parse as what it claims to be falls back to
plain text or printable runs, and the scanner is told (a note), never silently skipped.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mlfort.scan.secrets.patterns import Style

MAX_SCAN_BYTES = 32 * 1024 * 1024
"""Bytes scanned per file (and decompressed per zip); the rest is reported as not fully scanned."""
MAX_ZIP_MEMBERS = 10_000
"""Zip members looked at per archive; more is reported as not fully scanned."""
BINARY_SNIFF = 8192
"""A NUL byte in this many leading bytes makes a file binary."""
MIN_RUN = 8
"""Shortest printable run kept from a binary file (like `strings -n 8`)."""

_RUNS = re.compile(rb"[\t\n\r\x20-\x7e]{%d,}" % MIN_RUN)
_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

LOCKFILES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "pipfile.lock",
    "uv.lock", "pdm.lock", "pylock.toml", "cargo.lock", "go.sum", "composer.lock", "gemfile.lock", "podfile.lock",
    "packages.lock.json", "conda-lock.yml", "bun.lockb", "flake.lock", "mix.lock", "pubspec.lock",
})
"""Files whose digests and URLs are noise to entropy and assignment rules: only format detectors read them."""
CODE_SUFFIXES = frozenset({
    ".py", ".pyi", ".pyx", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".java", ".kt", ".kts", ".scala", ".go",
    ".rb", ".php", ".cs", ".fs", ".vb", ".c", ".h", ".cc", ".cpp", ".hpp", ".m", ".mm", ".rs", ".swift", ".r",
    ".jl", ".lua", ".pl", ".pm", ".dart", ".groovy", ".ex", ".exs", ".erl", ".clj", ".hs", ".ml", ".sql", ".vue",
    ".svelte",
})
"""Source code: an assigned secret must be a string literal there."""
_STRICT_SUFFIXES = (".min.js", ".min.css", ".js.map", ".css.map", ".map", ".svg")
_SKIP_MIME = ("image/", "audio/", "video/", "application/pdf", "application/octet-stream", "font/")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of text to scan and where it came from."""

    text: str
    style: Style
    where: tuple[tuple[str, object], ...] = ()
    """Evidence naming the place inside the file: `cell`, `part` (source/output/metadata), `output`, `member`,
    `metadata_key`."""
    has_lines: bool = True
    """Whether a line and column in `text` are meaningful to a reader of the file (not for printable runs)."""
    byte_map: tuple[tuple[int, int], ...] = ()
    """For printable runs: (offset in text, offset in the file) at the start of each run."""
    base_byte: int = 0
    """Offset in the file where `text` starts (printable runs of a member or of a file's tail)."""

    def byte_offset(self, index: int) -> int | None:
        """The file offset of character `index` of a chunk of printable runs."""
        if not self.byte_map:
            return None
        import bisect

        i = bisect.bisect_right(self.byte_map, (index, 1 << 62)) - 1
        text_at, byte_at = self.byte_map[max(i, 0)]
        return byte_at + (index - text_at)


@dataclass
class FileText:
    """Everything to scan in one file, with notes about what could not be scanned."""

    chunks: list[Chunk] = field(default_factory=list)
    notes: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    """(message, evidence) for each part that was not fully scanned or was malformed."""
    size: int = 0
    """Bytes on disk."""
    scanned: int = 0
    """Bytes read and scanned."""
    raw_text: str | None = None
    """The decoded file when it is a notebook (to find a cell's secret on the file's own lines)."""


def style_for(name: str) -> Style:
    """How text from a file of this name is read: lockfiles and minified files STRICT, code CODE, else CONFIG."""
    low = name.lower()
    base = PurePosixPath(low).name
    if base in LOCKFILES or low.endswith(_STRICT_SUFFIXES):
        return Style.STRICT
    if PurePosixPath(low).suffix in CODE_SUFFIXES:
        return Style.CODE
    return Style.CONFIG


def is_binary(head: bytes) -> bool:
    """NUL bytes in the first BINARY_SNIFF bytes, unless the file starts with a UTF-16/32 byte-order mark."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    return b"\x00" in head[:BINARY_SNIFF]


def decode_text(data: bytes) -> str:
    """UTF-8 with replacement (a UTF-8 BOM dropped); UTF-16 when the file starts with its byte-order mark."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def printable_runs(data: bytes, *, base: int = 0, where: tuple[tuple[str, object], ...] = ()) -> Chunk:
    """The printable ASCII runs of at least MIN_RUN characters, joined by newlines into one chunk."""
    parts: list[str] = []
    mapping: list[tuple[int, int]] = []
    pos = 0
    for m in _RUNS.finditer(data):
        mapping.append((pos, base + m.start()))
        run = m.group(0).decode("ascii")
        parts.append(run)
        pos += len(run) + 1
    return Chunk("\n".join(parts), Style.BINARY, where, has_lines=False, byte_map=tuple(mapping), base_byte=base)


def pickle_strings(data: bytes, *, base: int = 0, where: tuple[tuple[str, object], ...] = ()) -> Chunk | None:
    """The strings a pickle holds, each exactly (no neighbouring opcode bytes glued on, as `strings` would do
    with protocol 2's `X<len>...q<idx>`), read with `pickletools.genops`, which walks opcodes without executing
    anything. Bytes arguments (array data) contribute their printable runs; whatever follows the pickle's STOP is
    read as printable runs too. None when `data` is not a pickle that walks cleanly.

    A dict is pickled as key, value, key, value: a string that names a secret (`api_key`) is joined to the string
    after it as `api_key: value`, so a hyper-parameter dict saved in a checkpoint reads like a config file."""
    import pickletools

    from mlfort.scan.secrets.patterns import is_secret_name

    if len(data) < 2 or data[0] != 0x80 or not 2 <= data[1] <= 5:
        return None
    items: list[tuple[str, int]] = []
    end = len(data)
    try:
        for op, arg, at in pickletools.genops(io.BytesIO(data)):
            at = at or 0
            if isinstance(arg, str) and len(arg) >= 3:
                exact = data.find(arg.encode("utf-8", errors="surrogatepass"), at, at + 16 + 4 * len(arg))
                items.append((arg, exact if exact >= 0 else at))
            elif isinstance(arg, (bytes, bytearray)) and len(arg) >= MIN_RUN:
                items += [(m.group(0).decode("ascii"), at + m.start()) for m in _RUNS.finditer(bytes(arg))]
            if op.name == "STOP":
                end = at + 1
                break
    except Exception:  # noqa: BLE001 - any malformed pickle: fall back to printable runs (the caller does)
        return None
    items += [(m.group(0).decode("ascii"), m.start()) for m in _RUNS.finditer(data, end)]
    pieces: list[str] = []
    mapping: list[tuple[int, int]] = []
    pos = 0
    for i, (text, at) in enumerate(items):
        mapping.append((pos, base + at))
        joiner = ": " if len(text) <= 64 and _NAME.match(text) and is_secret_name(text) else "\n"
        pieces.append(text + (joiner if i + 1 < len(items) else ""))
        pos += len(text) + len(joiner)
    # Each string is exact, so boundaries hold and assignments inside stored config text count: read as CONFIG.
    return Chunk("".join(pieces), Style.CONFIG, where, has_lines=False, byte_map=tuple(mapping), base_byte=base)


def binary_chunk(data: bytes, *, base: int = 0, where: tuple[tuple[str, object], ...] = ()) -> Chunk:
    """A pickle's strings when `data` is a pickle, else the printable runs."""
    return pickle_strings(data, base=base, where=where) or printable_runs(data, base=base, where=where)


def read_file(path: Path, *, limit: int = MAX_SCAN_BYTES) -> FileText:
    """Read `path` (at most `limit` bytes) and cut it into chunks. Raises OSError when it cannot be read."""
    with path.open("rb") as f:
        data = f.read(limit)
        more = bool(f.read(1))
    size = path.stat().st_size
    out = FileText(size=max(size, len(data)), scanned=len(data))
    if more:
        out.notes.append((f"only the first {limit // (1024 * 1024)} MiB of {out.size:,} bytes were scanned",
                          {"scanned_bytes": len(data), "size_bytes": out.size}))
    name = path.name
    if name.lower().endswith(".ipynb") and not is_binary(data):
        _notebook(data, out, truncated=more)
    elif name.lower().endswith(".safetensors") or _looks_like_safetensors(data):
        _safetensors(data, out)
    elif data.startswith(b"PK\x03\x04") and not more:
        _zip(data, out, limit=limit)
    elif is_binary(data):
        out.chunks.append(binary_chunk(data))
    else:
        out.chunks.append(Chunk(decode_text(data), style_for(name)))
    return out


# ---------------------------------------------------------------------------------------------------- notebooks


def _notebook(data: bytes, out: FileText, *, truncated: bool) -> None:
    text = decode_text(data)
    try:
        if truncated:
            raise ValueError("the file is larger than the scan limit")
        nb = json.loads(text)
        chunks = list(notebook_chunks(nb))
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        out.notes.append((f"not a valid notebook ({type(exc).__name__}): scanned as plain text",
                          {"reason": "malformed notebook"}))
        out.chunks.append(Chunk(text, Style.CONFIG))
        return
    out.raw_text = text
    out.chunks.extend(chunks)


def _joined(value: object) -> str:
    """nbformat stores multi-line strings as a list of lines or as one string."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v if isinstance(v, str) else json.dumps(v) for v in value)
    if value is None:
        return ""
    return json.dumps(value, indent=1, ensure_ascii=False)


def notebook_chunks(nb: object) -> Iterator[Chunk]:
    """Each cell's source, each output's text (stream, text/*, JSON, JavaScript, error tracebacks) and the
    metadata, as separate chunks. image/*, audio/*, video/* and PDF outputs and cell attachments (base64) are
    never scanned: their random-looking base64 is the classic false positive. Raises ValueError for JSON that is
    not a notebook."""
    if not isinstance(nb, dict):
        raise ValueError("a notebook is a JSON object")
    cells = nb.get("cells")
    source_key = "source"
    if cells is None and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in ws.get("cells", [])]
        source_key = "input"
    if not isinstance(cells, list):
        raise ValueError("no cells")
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise ValueError(f"cell {i} is not an object")
        cell_type = str(cell.get("cell_type", "code"))
        source = _joined(cell.get(source_key, cell.get("source", "")))
        style = Style.CODE if cell_type == "code" else Style.CONFIG
        if source:
            yield Chunk(source, style, (("cell", i), ("part", "source"), ("cell_type", cell_type)))
        outputs = cell.get("outputs", [])
        if not isinstance(outputs, list):
            raise ValueError(f"cell {i} outputs is not a list")
        for j, output in enumerate(outputs):
            if not isinstance(output, dict):
                raise ValueError(f"cell {i} output {j} is not an object")
            for mime, text in _output_texts(output):
                if text:
                    yield Chunk(text, Style.CONFIG, (("cell", i), ("part", "output"), ("output", j),
                                                     ("mime", mime)))
        meta = cell.get("metadata")
        if isinstance(meta, dict) and meta:
            yield Chunk(json.dumps(meta, indent=1, ensure_ascii=False), Style.CONFIG,
                        (("cell", i), ("part", "metadata")))
    meta = nb.get("metadata")
    if isinstance(meta, dict) and meta:
        yield Chunk(json.dumps(meta, indent=1, ensure_ascii=False), Style.CONFIG, (("part", "notebook metadata"),))


def _output_texts(output: dict[str, object]) -> Iterator[tuple[str, str]]:
    kind = output.get("output_type")
    if kind == "stream" or "text" in output:
        yield "stream", _joined(output.get("text", ""))
    if kind == "error" or "traceback" in output:
        tb = output.get("traceback", [])
        lines = [str(t) for t in tb] if isinstance(tb, list) else [str(tb)]
        yield "error", _ANSI.sub("", "\n".join([f"{output.get('ename', '')}: {output.get('evalue', '')}", *lines]))
    data = output.get("data")
    if isinstance(data, dict):
        for mime, value in data.items():
            mime = str(mime)
            if mime.startswith(_SKIP_MIME):
                continue
            yield mime, _joined(value)


# ---------------------------------------------------------------------------------------------------- model files


def _looks_like_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    n = int.from_bytes(data[:8], "little")
    return 2 <= n <= len(data) - 8 and data[8:9] == b"{"


def _safetensors(data: bytes, out: FileText) -> None:
    """The JSON header's `__metadata__` strings as their own chunks, then the printable runs of the tensors."""
    header_end = 0
    if _looks_like_safetensors(data):
        n = int.from_bytes(data[:8], "little")
        try:
            header = json.loads(data[8:8 + n].decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            header = None
        if isinstance(header, dict):
            header_end = 8 + n
            meta = header.get("__metadata__")
            if isinstance(meta, dict):
                for key, value in meta.items():
                    text = f"{key}: {value}" if isinstance(value, str) else f"{key}: {json.dumps(value)}"
                    out.chunks.append(Chunk(text, Style.CONFIG, (("metadata_key", str(key)[:100]),),
                                            has_lines=False))
    out.chunks.append(printable_runs(data[header_end:], base=header_end))


def _zip(data: bytes, out: FileText, *, limit: int) -> None:
    """Each member, decompressed (at most `limit` bytes in all), read as its own file; a zip that does not open
    is read as a binary file."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        out.chunks.append(printable_runs(data))
        return
    budget = limit
    raw_scanned = False
    if len(members) > MAX_ZIP_MEMBERS:
        out.notes.append((f"only the first {MAX_ZIP_MEMBERS:,} of {len(members):,} zip members were scanned",
                          {"members": len(members)}))
    for info in members[:MAX_ZIP_MEMBERS]:
        if info.is_dir():
            continue
        where: tuple[tuple[str, object], ...] = (("member", info.filename[:300]),)
        if info.flag_bits & 0x1:
            out.notes.append(("an encrypted zip member could not be scanned", dict(where)))
            continue
        if budget <= 0:
            out.notes.append((f"zip members past {limit // (1024 * 1024)} MiB decompressed were not scanned",
                              dict(where)))
            break
        try:
            with archive.open(info) as f:
                body = f.read(budget + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
            out.notes.append((f"a zip member could not be read ({type(exc).__name__}); the archive's raw bytes "
                              "were scanned instead", dict(where)))
            if not raw_scanned:
                raw_scanned = True
                out.chunks.append(printable_runs(data))
            continue
        if len(body) > budget:
            out.notes.append((f"a zip member was only partly scanned (decompression budget of "
                              f"{limit // (1024 * 1024)} MiB)", dict(where)))
            body = body[:budget]
        budget -= len(body)
        if is_binary(body):
            out.chunks.append(binary_chunk(body, where=where))
        else:
            text = decode_text(body)
            out.chunks.append(Chunk(text, style_for(info.filename), where, has_lines=False))

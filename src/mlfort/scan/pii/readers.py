"""Dataset readers for `scan pii`: CSV/TSV, JSONL and Parquet (and .gz CSV/JSONL), yielding column blocks, with
deterministic sampling spread over the whole file and bounded memory however large the file.

Sampling, per format (the method is stated in every finding):

- CSV/TSV and JSONL: a file whose estimated rows fit in 1.5x the sample is read whole. Otherwise the reader seeks to
  `slices` seeded offsets, one in each equal stretch of the file, resynchronises at the next line end and parses
  a run of rows there. A JSONL record never spans lines, so this is always safe. A CSV field in quotes may hold a
  newline, so a slice that starts inside one would misparse: the reader uses seeking only when the first MiB shows
  no multi-line field, and drops back to a full streaming read with a seeded reservoir sample (exact, slower, still
  bounded memory) the moment a slice shows any sign of it (a row of the wrong width, a stray quote, a newline in
  a value). Compressed files cannot seek: they are streamed with the reservoir.
- Parquet: the row count is exact (metadata). Slices of rows are picked at seeded positions spread over every row
  group; only the string-like columns (and integers, which may be phone numbers or ids) are read.

Malformed input never raises out of here as a crash: it becomes a Problem the scanner reports (fail closed).
"""

from __future__ import annotations

import codecs
import contextvars
import csv
import gzip
import io
import json
import math
import random
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

HEAD_BYTES = 1 << 20
"""Bytes read from the start of a text file to find the header, the dialect and the average row size."""
BATCH_ROWS = 20_000
"""Rows per block in a full read: blocks are classified one by one, so memory stays flat."""
MAX_LINE = 16 << 20
"""A longer line (a JSONL record, a CSV row) is a finding, and the file is not read further."""
MAX_COLUMNS = 2_000
"""Columns (JSONL keys after flattening) scanned per file; more is a finding."""
SLICE_ROWS = 10
"""Rows read at each seeded offset in seek sampling (so 10,000 sampled rows come from 1,000 places: any run
of rows longer than a thousandth of the file is sampled)."""
SUFFIXES: dict[str, str] = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
    ".pq": "parquet", ".csv.gz": "csv", ".tsv.gz": "tsv", ".jsonl.gz": "jsonl", ".ndjson.gz": "jsonl",
}
"""File names `scan pii` reads, by ending, and the reader each goes to."""


def kind_of(path: Path) -> str | None:
    """The reader for a file name ('csv', 'tsv', 'jsonl', 'parquet'), or None when the name is not a dataset."""
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return None


@dataclass
class Sampling:
    """How much of a file was read, as every finding states it."""

    rows_scanned: int = 0
    rows_total: int | None = None
    estimated: bool = False
    """rows_total is an estimate (seek sampling: file bytes / average bytes per sampled row)."""
    sampled: bool = False
    method: str = "every row"

    def describe(self) -> str:
        """'10,000 of ~1,234,567 rows (100 seeded slices...)' or 'all 532 rows'."""
        if not self.sampled:
            return f"all {self.rows_scanned:,} rows"
        total = "?" if self.rows_total is None else f"{'~' if self.estimated else ''}{self.rows_total:,}"
        return f"{self.rows_scanned:,} of {total} rows sampled ({self.method})"

    def evidence(self) -> dict[str, Any]:
        """The sampling facts, for a finding's evidence."""
        return {"rows_scanned": self.rows_scanned, "rows_total": self.rows_total,
                "rows_total_estimated": self.estimated, "sampled": self.sampled, "sampling_method": self.method}


@dataclass(frozen=True)
class Problem:
    """Something that kept part of a file from being checked: reported as a 'could not check' finding."""

    kind: str
    """'unreadable', 'encoding', 'ragged', 'bad_record', 'huge_line', 'too_many_columns', 'parse', 'binary'."""
    message: str
    line: int | None = None
    count: int = 1


@dataclass
class Table:
    """A dataset file being read: its columns arrive in blocks; sampling facts and problems fill in as it goes."""

    kind: str
    text: bool
    """A text format (CSV/TSV/JSONL), where findings can point at a line."""
    batches: Iterator[dict[str, Sequence[str]]]
    """Blocks of rows as {column: values}, the values of one block aligned by row."""
    sampling: Sampling = field(default_factory=Sampling)
    problems: list[Problem] = field(default_factory=list)
    header_columns: dict[str, int] = field(default_factory=dict)
    """CSV: 1-based character column of each header field on line 1 (where findings point)."""
    header_line: int | None = None
    skipped_lines: list[int] = field(default_factory=list)
    """JSONL: line numbers that held no record (blank or bad), to turn a row number back into a line."""

    def line_of_row(self, row: int) -> int | None:
        """JSONL, full read: the 1-based line of 0-based record `row`."""
        if self.sampling.sampled or self.kind != "jsonl":
            return None
        line = row + 1
        while True:
            skipped = sum(1 for s in self.skipped_lines if s <= line)
            if row + 1 + skipped == line:
                return line
            line = row + 1 + skipped


# ---------------------------------------------------------------------------------------------------- decoding

_BAD_BYTES: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("mlfort_pii_bad_bytes", default=None)


def _replace_and_count(exc: UnicodeError) -> tuple[str, int]:
    counter = _BAD_BYTES.get()
    if counter is not None:
        counter[0] += 1
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd", exc.end


ERRORS = "mlfort-pii-replace"
codecs.register_error(ERRORS, _replace_and_count)


def _encoding(head: bytes) -> tuple[str, int]:
    """(codec, bytes of BOM): UTF-8 unless a BOM says UTF-16 or UTF-32."""
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if head.startswith(bom):
            return name, 0 if name != "utf-8" else len(bom)
    return "utf-8", 0


def _open(path: Path) -> BinaryIO:
    """Open a regular file (never a FIFO or a device: reading one could block or never end)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"not a regular file ({stat.filemode(st.st_mode)[0]})")
    raw: BinaryIO = path.open("rb")
    if path.name.lower().endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def open_table(path: Path, *, sample_rows: int | None, seed: int, bad_bytes: list[int]) -> Table:
    """Start reading a dataset file. `bad_bytes[0]` counts undecodable byte sequences as the file is read."""
    kind = kind_of(path)
    if kind == "parquet":
        return _parquet(path, sample_rows, seed)
    if kind in ("csv", "tsv"):
        return _csv(path, kind, sample_rows, seed, bad_bytes)
    if kind == "jsonl":
        return _jsonl(path, sample_rows, seed, bad_bytes)
    raise ValueError(f"not a dataset file name: {path.name}")


def _rng(seed: int, path: Path, size: int) -> random.Random:
    # A string seed is hashed with SHA-512 by random.seed: the same file and seed always sample the same rows.
    return random.Random(f"mlfort-pii:{seed}:{path.name}:{size}")  # noqa: S311 - sampling, not secrets


Block = dict[str, Sequence[str]]
"""A block of rows as columns: header -> values."""


def _full_read_batches(items: Iterator[Any], sample_rows: int | None, rng: random.Random, table: Table,
                       to_columns: Callable[[list[Any]], Block]) -> Iterator[Block]:
    """Blocks of columns from a read of every item: all of them (`sample_rows` None), counted as they stream, or a
    seeded reservoir sample of `sample_rows`, with the sampling recorded on `table`."""
    if sample_rows is None:
        batch: list[Any] = []
        for item in items:
            batch.append(item)
            if len(batch) >= BATCH_ROWS:
                table.sampling.rows_scanned += len(batch)
                yield to_columns(batch)
                batch = []
        table.sampling.rows_scanned += len(batch)
        table.sampling.rows_total = table.sampling.rows_scanned
        if batch:
            yield to_columns(batch)
        return
    sample, total = _reservoir(items, sample_rows, rng)
    sampled = total > len(sample)
    table.sampling = Sampling(len(sample), total, False, sampled,
                              "seeded reservoir sample over a full read" if sampled else "every row")
    for i in range(0, len(sample), BATCH_ROWS):
        yield to_columns(sample[i:i + BATCH_ROWS])


def _reservoir(rows: Iterator[Any], k: int, rng: random.Random) -> tuple[list[Any], int]:
    """A uniform sample of k items (Li's Algorithm L: few random numbers per item) and the number of items."""
    sample: list[Any] = []
    for item in rows:
        sample.append(item)
        if len(sample) == k:
            break
    if len(sample) < k:
        return sample, len(sample)
    seen = k
    w = math.exp(math.log(rng.random() or 1e-300) / k)
    skip = math.floor(math.log(rng.random() or 1e-300) / math.log(1 - w)) if w < 1 else 0
    for item in rows:
        seen += 1
        if skip > 0:
            skip -= 1
            continue
        sample[rng.randrange(k)] = item
        w *= math.exp(math.log(rng.random() or 1e-300) / k)
        skip = math.floor(math.log(rng.random() or 1e-300) / math.log(1 - w)) if w < 1 else 0
    return sample, seen


# ---------------------------------------------------------------------------------------------------- CSV / TSV


class _Unsafe(Exception):
    """Seek sampling cannot be trusted for this file (a quoted field may span lines)."""


class _HugeLine(Exception):
    """A line longer than MAX_LINE."""


def _lines(text: io.TextIOBase, nul_lines: list[int]) -> Iterator[str]:
    for line in iter(partial(text.readline, MAX_LINE), ""):
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            raise _HugeLine()
        if "\x00" in line:
            nul_lines[0] += 1
            nul_lines[1] = nul_lines[1] or nul_lines[2]
        nul_lines[2] += 1
        yield line


def _sniff_delimiter(first_line: str, kind: str) -> str:
    if kind == "tsv":
        return "\t"
    counts = {c: first_line.count(c) for c in (",", ";", "\t", "|")}
    best = max(counts, key=lambda c: (counts[c], c == ","))
    return best if counts[best] else ","


def _header(row: list[str]) -> tuple[list[str], bool]:
    """Column names from the first row, and whether that row is really a header (a first row that holds an
    email or mostly numbers is data: columns are then named column_1, column_2...)."""
    data_like = any("@" in f for f in row) or sum(
        1 for f in row if f.strip() and not any(c.isalpha() for c in f)) * 2 > len(row)
    if data_like:
        return [f"column_{i + 1}" for i in range(len(row))], False
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, f in enumerate(row):
        name = f.strip()[:200] or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        else:
            seen[name] = 1
        names.append(name)
    return names, True


def _csv(path: Path, kind: str, sample_rows: int | None, seed: int, bad_bytes: list[int]) -> Table:
    size = path.stat().st_size
    with _open(path) as f:
        head = f.read(HEAD_BYTES)
    encoding, bom = _encoding(head)
    compressed = path.name.lower().endswith(".gz")
    head_text = head[bom:].decode(encoding, errors="replace") if encoding == "utf-8" else ""
    first_line = head_text.split("\n", 1)[0] if encoding == "utf-8" else ""
    delimiter = _sniff_delimiter(first_line, kind)
    table = Table(kind=kind, text=True, batches=iter(()), header_line=1)
    table.batches = _csv_batches(path, table, delimiter, encoding, bom, head, head_text, size, compressed,
                                 sample_rows, seed, bad_bytes)
    return table


def _csv_batches(path: Path, table: Table, delimiter: str, encoding: str, bom: int, head: bytes, head_text: str,
                 size: int, compressed: bool, sample_rows: int | None, seed: int,
                 bad_bytes: list[int]) -> Iterator[dict[str, Sequence[str]]]:
    token = _BAD_BYTES.set(bad_bytes)
    try:
        rng = _rng(seed, path, size)
        plan = "stream"
        head_rows: list[list[str]] = []
        head_complete = len(head) < HEAD_BYTES
        if sample_rows is not None and not compressed and encoding == "utf-8" and not head_complete:
            cut = head_text.rfind("\n")
            try:
                head_rows = list(csv.reader(io.StringIO(head_text[: cut + 1]), delimiter=delimiter))
            except csv.Error:
                head_rows = []
            multiline = any("\n" in f or "\r" in f for r in head_rows for f in r)
            data_rows = max(len(head_rows) - 1, 1)
            est_rows = int((size - bom) / max((cut + 1) / (data_rows + 1), 1))
            if len(head_rows) > 1 and est_rows > sample_rows * 1.5:
                plan = "reservoir" if multiline else "seek"
        elif sample_rows is not None:
            plan = "reservoir"
        if plan == "seek":
            try:
                yield from _csv_seek(path, table, delimiter, head_rows, size, sample_rows or 0, rng)
                return
            except _Unsafe:
                table.sampling = Sampling()
                plan = "reservoir"
        yield from _csv_stream(path, table, delimiter, encoding, sample_rows if plan == "reservoir" else None, rng)
    finally:
        _BAD_BYTES.reset(token)


def _csv_stream(path: Path, table: Table, delimiter: str, encoding: str, sample_rows: int | None,
                rng: random.Random) -> Iterator[dict[str, Sequence[str]]]:
    """Read every row; with sample_rows, keep a seeded reservoir sample of that many."""
    with _open(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig" if encoding == "utf-8" else encoding, errors=ERRORS,
                                newline="")
        nul_lines = [0, 0, 1]  # lines holding NUL, the first of them, the current line
        reader = csv.reader(_lines(text, nul_lines), delimiter=delimiter)
        try:
            first = next(reader, None)
            if first is None:
                return
            columns, is_header = _header(first)
            table.header_columns = _header_offsets(first, delimiter) if is_header else {}
            width = len(columns)
            ragged = [0, 0]  # rows, first line

            def rows() -> Iterator[list[str]]:
                if not is_header:
                    yield first
                for row in reader:
                    if len(row) != width:
                        if not row:
                            continue  # a blank line
                        ragged[0] += 1
                        ragged[1] = ragged[1] or reader.line_num
                        row = _fit(row, width)
                    yield row

            yield from _full_read_batches(rows(), sample_rows, rng, table, lambda batch: _columns(columns, batch))
        except _HugeLine:
            table.problems.append(Problem("huge_line", f"a line is longer than {MAX_LINE >> 20} MiB; the rest of "
                                          "the file was not read", reader.line_num + 1))
        except csv.Error as exc:
            table.problems.append(Problem("parse", f"CSV parse error ({exc}); the rest of the file was not read",
                                          reader.line_num))
        if nul_lines[0]:
            table.problems.append(Problem("binary", f"{nul_lines[0]:,} line(s) hold NUL bytes (first at line "
                                          f"{nul_lines[1]}): a binary file, or UTF-16 without a byte order mark? "
                                          "They were scanned as text", nul_lines[1], nul_lines[0]))
        if ragged[0]:
            table.problems.append(Problem("ragged", f"{ragged[0]:,} row(s) do not have {width} fields (first at line "
                                          f"{ragged[1]}); their fields were scanned by position", ragged[1],
                                          ragged[0]))


def _fit(row: list[str], width: int) -> list[str]:
    if len(row) < width:
        return row + [""] * (width - len(row))
    return [*row[: width - 1], " ".join(row[width - 1:])]


def _columns(columns: list[str], rows: list[list[str]]) -> dict[str, Sequence[str]]:
    return dict(zip(columns, zip(*rows, strict=True), strict=True))


def _header_offsets(row: list[str], delimiter: str) -> dict[str, int]:
    names, _ = _header(row)
    out: dict[str, int] = {}
    col = 1
    for name, raw in zip(names, row, strict=True):
        out[name] = col
        quoted = delimiter in raw or '"' in raw
        col += len(raw) + 1 + (2 + raw.count('"') if quoted else 0)
    return out


def _csv_seek(path: Path, table: Table, delimiter: str, head_rows: list[list[str]], size: int, sample_rows: int,
              rng: random.Random) -> Iterator[dict[str, Sequence[str]]]:
    """Seek sampling for a CSV whose head shows no multi-line field; raise _Unsafe at any sign of one."""
    columns, is_header = _header(head_rows[0])
    table.header_columns = _header_offsets(head_rows[0], delimiter) if is_header else {}
    width = len(columns)
    start_rows = head_rows[1:] if is_header else head_rows
    if any(len(r) != width for r in start_rows):
        raise _Unsafe()
    rows, consumed, parsed, slices = _seek_slices(path, size, sample_rows, rng, partial(
        _parse_csv_slice, delimiter=delimiter, width=width))
    total = int(size / max(consumed / max(parsed, 1), 1)) if parsed else 0
    table.sampling = Sampling(len(rows), max(total, len(rows)), True, True,
                              f"{len(slices)} seeded slices of up to {SLICE_ROWS} rows spread over the file, "
                              "resynchronised at line ends")
    for i in range(0, len(rows), BATCH_ROWS):
        yield _columns(columns, rows[i:i + BATCH_ROWS])


def _parse_csv_slice(text: str, *, delimiter: str, width: int) -> list[list[str]]:
    if "\x00" in text:
        raise _Unsafe()  # the full read reports it
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    rows = [r for r in rows if r]
    if '"' in text and any('"' in f or "\n" in f or "\r" in f for r in rows for f in r):
        raise _Unsafe()
    if any(len(r) != width for r in rows):
        raise _Unsafe()
    return rows


def _seek_slices(path: Path, size: int, sample_rows: int, rng: random.Random,
                 parse: Any) -> tuple[list[Any], int, int, list[int]]:
    """Read SLICE_ROWS rows at k = sample_rows / SLICE_ROWS offsets: the first at the start of the data, the last at
    the end of the file, the others at a seeded place in each of the equal stretches between, so any run of rows
    longer than one stretch is sampled. Returns (rows, bytes consumed, rows parsed, offsets)."""
    with _open(path) as f:
        first = f.readline(MAX_LINE)
        if len(first) >= MAX_LINE:
            raise _HugeLine()
        data_start = len(first)
        span = size - data_start
        k = max(2, math.ceil(sample_rows / SLICE_ROWS))
        stride = span / k
        # Bytes per row from the first 64 KiB; a slice reads twice what SLICE_ROWS rows should take.
        f.seek(data_start)
        probe = f.read(min(span, 1 << 16))
        per_row = max(len(probe) / max(probe.count(b"\n"), 1), 1.0)
        base_window = int(per_row * SLICE_ROWS * 2) + 1024
        rows: list[Any] = []
        consumed = parsed = 0
        offsets: list[int] = []
        for i in range(k):
            if i == 0:
                start = data_start
            elif i == k - 1:
                start = max(data_start, size - base_window)
            else:
                start = data_start + int(i * stride + rng.random() * max(stride - base_window, 0.0))
            window = base_window
            while True:
                f.seek(start)
                chunk = f.read(window)
                if start > data_start:
                    nl = chunk.find(b"\n")
                    chunk = chunk[nl + 1:] if nl >= 0 else b""
                if start + window < size:
                    last = chunk.rfind(b"\n")
                    chunk = chunk[: last + 1] if last >= 0 else b""
                if chunk or start + window >= size:
                    break
                if window >= MAX_LINE:
                    raise _HugeLine()
                window *= 4  # rows longer than the probe said: widen this slice
            if not chunk:
                continue
            offsets.append(start)
            got = parse(chunk.decode("utf-8", errors=ERRORS))
            consumed += len(chunk)
            parsed += len(got)
            rows.extend(got[:SLICE_ROWS])
            if len(rows) >= sample_rows and i < k - 1:
                rows = rows[: sample_rows - SLICE_ROWS]  # keep room for the end of the file
    return rows[-sample_rows:] if len(rows) > sample_rows else rows, consumed, parsed, offsets


# ---------------------------------------------------------------------------------------------------- JSONL


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, str], depth: int = 0) -> None:
    """Nested objects become dotted keys (`address.city`), lists are joined with ' ; ' into one value."""
    for key, value in obj.items():
        name = f"{prefix}{key}"[:200]
        if isinstance(value, dict):
            if depth < 4:
                _flatten(value, name + ".", out, depth + 1)
            else:
                out[name] = json.dumps(value, ensure_ascii=False)[:65536]
        elif isinstance(value, list):
            parts: dict[str, Sequence[str]] = {}
            for item in value[:1000]:
                if isinstance(item, dict) and depth < 4:
                    inner: dict[str, str] = {}
                    _flatten(item, "", inner, depth + 1)
                    for k, v in inner.items():
                        parts.setdefault(f"{name}[].{k}", []).append(v)
                elif (s := _scalar(item)) is not None:
                    parts.setdefault(f"{name}[]", []).append(s)
            for k, vs in parts.items():
                out[k] = " ; ".join(vs)
        elif (s := _scalar(value)) is not None:
            out[name] = s


def _scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else None
    return None


def _jsonl(path: Path, sample_rows: int | None, seed: int, bad_bytes: list[int]) -> Table:
    table = Table(kind="jsonl", text=True, batches=iter(()))
    table.batches = _jsonl_batches(path, table, sample_rows, seed, bad_bytes)
    return table


def _jsonl_batches(path: Path, table: Table, sample_rows: int | None, seed: int,
                   bad_bytes: list[int]) -> Iterator[dict[str, Sequence[str]]]:
    token = _BAD_BYTES.set(bad_bytes)
    try:
        size = path.stat().st_size
        rng = _rng(seed, path, size)
        compressed = path.name.lower().endswith(".gz")
        with _open(path) as f:
            head = f.read(HEAD_BYTES)
        encoding, _ = _encoding(head)
        bad = _BadRecords()
        columns: dict[str, None] = {}
        if sample_rows is not None and not compressed and encoding == "utf-8" and len(head) == HEAD_BYTES:
            cut = head.rfind(b"\n")
            per_row = (cut + 1) / max(head[: cut + 1].count(b"\n"), 1)
            if size / max(per_row, 1) > sample_rows * 1.5:
                records, consumed, parsed, slices = _seek_slices(path, size, sample_rows, rng, partial(
                    _parse_jsonl_slice, bad=bad))
                # the first line is a record too: read it back into the sample
                with _open(path) as f:
                    first = _parse_jsonl_slice(f.readline(MAX_LINE).decode("utf-8", errors=ERRORS), bad=bad)
                records = first + records
                if len(records) > sample_rows:
                    records = records[:1] + records[len(records) - sample_rows + 1:]
                total = int(size / max(consumed / max(parsed, 1), 1)) if parsed else len(records)
                table.sampling = Sampling(len(records), max(total, len(records)), True, True,
                                          f"{len(slices)} seeded slices of up to {SLICE_ROWS} records spread "
                                          "over the file, resynchronised at line ends")
                for i in range(0, len(records), BATCH_ROWS):
                    yield _records_to_columns(records[i:i + BATCH_ROWS], columns, table)
                bad.report(table, sampled=True)
                return
        with _open(path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig" if encoding == "utf-8" else encoding, errors=ERRORS)

            def records() -> Iterator[dict[str, str]]:
                line_no = 0
                for line in iter(partial(text.readline, MAX_LINE), ""):
                    line_no += 1
                    if len(line) >= MAX_LINE and not line.endswith("\n"):
                        table.problems.append(Problem("huge_line", f"line {line_no} is longer than "
                                                      f"{MAX_LINE >> 20} MiB; the rest of the file was not read",
                                                      line_no))
                        return
                    record = _record(line, bad, line_no)
                    if record is None:
                        if len(table.skipped_lines) < 100_000:
                            table.skipped_lines.append(line_no)
                        continue
                    yield record

            yield from _full_read_batches(records(), sample_rows, rng, table,
                                          lambda batch: _records_to_columns(batch, columns, table))
        bad.report(table, sampled=False)
    finally:
        _BAD_BYTES.reset(token)


@dataclass
class _BadRecords:
    not_json: int = 0
    not_object: int = 0
    first_line: int | None = None

    def report(self, table: Table, *, sampled: bool) -> None:
        n = self.not_json + self.not_object
        if not n:
            return
        where = f" (first at line {self.first_line})" if self.first_line else ""
        scope = " in the sampled slices" if sampled else ""
        table.problems.append(Problem(
            "bad_record", f"{n:,} line(s){scope} are not JSON objects ({self.not_json:,} not JSON, "
            f"{self.not_object:,} JSON but not an object){where}; they were not scanned", self.first_line, n))


def _record(line: str, bad: _BadRecords, line_no: int | None) -> dict[str, str] | None:
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        bad.not_json += 1
        bad.first_line = bad.first_line or line_no
        return None
    if not isinstance(obj, dict):
        bad.not_object += 1
        bad.first_line = bad.first_line or line_no
        return None
    out: dict[str, str] = {}
    _flatten(obj, "", out)
    return out


def _parse_jsonl_slice(text: str, *, bad: _BadRecords) -> list[dict[str, str]]:
    out = []
    for line in text.split("\n"):
        record = _record(line, bad, None)
        if record is not None:
            out.append(record)
    return out


def _records_to_columns(records: list[dict[str, str]], columns: dict[str, None],
                        table: Table) -> dict[str, Sequence[str]]:
    block: dict[str, Sequence[str]] = {}
    dropped = 0
    for i, record in enumerate(records):
        for key, value in record.items():
            values = block.get(key)
            if values is None:
                if key not in columns:
                    if len(columns) >= MAX_COLUMNS:
                        dropped += 1
                        continue
                    columns[key] = None
                values = block[key] = [""] * i
            values.append(value)
    n = len(records)
    for values in block.values():
        if len(values) < n:
            values.extend([""] * (n - len(values)))
    if dropped and not any(p.kind == "too_many_columns" for p in table.problems):
        table.problems.append(Problem("too_many_columns", f"records hold more than {MAX_COLUMNS:,} distinct keys; "
                                      "keys beyond those were not scanned"))
    return block


# ---------------------------------------------------------------------------------------------------- Parquet

PARQUET_SLICE = 256
"""Rows per Parquet slice in sampling."""


def _parquet(path: Path, sample_rows: int | None, seed: int) -> Table:
    table = Table(kind="parquet", text=False, batches=iter(()))
    table.batches = _parquet_batches(path, table, sample_rows, seed)
    return table


def _parquet_batches(path: Path, table: Table, sample_rows: int | None,
                     seed: int) -> Iterator[dict[str, Sequence[str]]]:
    import pyarrow.parquet as pq

    with _open(path) as f:
        pf = pq.ParquetFile(f)
        meta = pf.metadata
        total = meta.num_rows
        wanted = [field.name for field in pf.schema_arrow if _parquet_readable(field.type)]
        if not wanted:
            table.sampling = Sampling(0, total, False, False, "no text or integer columns")
            return
        groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        if sample_rows is None or total <= sample_rows * 1.5:
            table.sampling.rows_total = total
            for batch in pf.iter_batches(batch_size=BATCH_ROWS // 2, columns=wanted):
                table.sampling.rows_scanned += batch.num_rows
                yield _arrow_columns(batch)
            return
        rng = _rng(seed, path, total)
        slices = [(g, s) for g, n in enumerate(groups) for s in range(math.ceil(n / PARQUET_SLICE))]
        k = min(len(slices), math.ceil(sample_rows / PARQUET_SLICE))
        stride = len(slices) / k
        picks = {min(int(i * stride + rng.random() * stride), len(slices) - 1) for i in range(1, k - 1)}
        picked = {slices[0], slices[-1], *(slices[p] for p in picks)}  # the first and last rows too
        size = {(g, s): min(PARQUET_SLICE, groups[g] - s * PARQUET_SLICE) for g, s in slices}
        spare = [c for c in slices if c not in picked]
        rng.shuffle(spare)
        have = sum(size[c] for c in picked)
        while have < sample_rows and spare:  # short slices at the ends of row groups: top up
            extra = spare.pop()
            picked.add(extra)
            have += size[extra]
        chosen = sorted(picked)
        by_group: dict[int, set[int]] = {}
        for g, s in chosen:
            by_group.setdefault(g, set()).add(s)
        scanned = 0
        for g, picks in sorted(by_group.items()):
            for s, batch in enumerate(pf.iter_batches(batch_size=PARQUET_SLICE, row_groups=[g], columns=wanted)):
                if s in picks:  # whole slices: the sample may exceed sample_rows by less than one slice
                    scanned += batch.num_rows
                    if batch.num_rows:
                        yield _arrow_columns(batch)
                if s >= max(picks):
                    break
        table.sampling = Sampling(scanned, total, False, True,
                                  f"{len(chosen)} seeded slices of {PARQUET_SLICE} rows spread over "
                                  f"{len(groups)} row group(s)")


def _parquet_readable(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _parquet_readable(t.value_type)
    if pa.types.is_struct(t):
        return any(_parquet_readable(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _parquet_readable(t.value_type)
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
                or pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_date(t)
                or pa.types.is_timestamp(t) or getattr(pa.types, "is_string_view", lambda _t: False)(t))


def _arrow_columns(batch: Any) -> dict[str, Sequence[str]]:
    out: dict[str, Sequence[str]] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        _arrow_column(name, column, out)
    return out


def _arrow_column(name: str, column: Any, out: dict[str, Sequence[str]]) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if pa.types.is_dictionary(t):
        column = column.dictionary_decode()
        t = column.type
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            _arrow_column(f"{name}.{t.field(i).name}", column.field(i), out)
        return
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        out[f"{name}[]"] = [" ; ".join(str(x) for x in v if x is not None) if v else "" for v in column.to_pylist()]
        return
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        out[name] = [v.decode("utf-8", errors="replace") if v else "" for v in column.to_pylist()]
        return
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        column = pc.cast(column, pa.string())
    out[name] = [v or "" for v in column.to_pylist()]

"""`mlfort scan pii`: find the columns of CSV/TSV, JSONL and Parquet datasets that hold personal data, by sampling
each file (seeded, spread over the whole file) and validating every candidate with its entity's check rule; and, with
a policy, flag datasets that hold personal data but are not classified `pii`.

No value is ever reported: findings carry counts, shares and masked shapes (`***@***.com`, `#### #### #### ####`).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from mlfort.errors import InputError
from mlfort.report import Finding, Location, Severity
from mlfort.scan.pii import classify
from mlfort.scan.pii import detectors as d
from mlfort.scan.pii.classify import detect_cells
from mlfort.scan.pii.readers import Sampling, Table, kind_of, open_table
from mlfort.scan.pii.rules import ENTITY_SEVERITY, RULES, column_rule, finding
from mlfort.scan.result import ScanResult

if TYPE_CHECKING:
    from mlfort.policy.schema import Policy

__all__ = ["RULES", "FileResult", "detect_cells", "scan_file", "scan_pii"]

_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".mlfort", ".venv", "venv",
                        ".tox", ".mypy_cache", ".ruff_cache", ".pytest_cache"})


@dataclasses.dataclass
class FileResult:
    """What scanning one file found: the findings, the column decisions and how much was read."""

    target: str
    findings: list[Finding]
    decisions: list[classify.ColumnDecision]
    sampling: Sampling
    columns: int = 0
    readable: bool = True

    @property
    def entities(self) -> set[str]:
        """PII types found in the file (ambiguous columns left out)."""
        return {e.entity for c in self.decisions for e in c.entities if e.kind != "ambiguous"}


def scan_pii(paths: Sequence[Path], *, sample_rows: int | None = 10_000, policy: Policy | None = None,
             policy_dir: Path | None = None, dataset: str | None = None, seed: int = 0,
             progress: Callable[[int], None] | None = None) -> ScanResult:
    """Scan dataset files and folders (folders: *.csv, *.tsv, *.jsonl, *.ndjson, *.parquet and their .gz) for PII.

    `sample_rows=None` reads every row; otherwise up to that many rows per file, spread over the file with
    `seed`. With `policy`, each file belongs to `dataset` (which must exist in the policy) or to the dataset whose
    local location holds it; PII in a dataset not classified `pii` is a HIGH finding (MLF-PII-005). A missing path
    raises InputError; a file that cannot be read is a finding (MLF-PII-006), never a pass.
    """
    if dataset is not None and (policy is None or dataset not in policy.datasets):
        known = ", ".join(sorted(policy.datasets)) if policy is not None and policy.datasets else "none"
        where = "the policy" if policy is not None else "a policy (none was given)"
        raise InputError(f"dataset {dataset!r} is not in {where}; datasets defined: {known}")
    findings: list[Finding] = []
    results: list[FileResult] = []
    for done, (file, given, explicit) in enumerate(_files(paths), start=1):
        if kind_of(file) is None:
            if explicit:
                findings.append(finding("MLF-PII-007", given, f"{given}: not a dataset format `scan pii` reads "
                                        "(CSV/TSV, JSONL/NDJSON, Parquet, optionally .gz); not checked"))
        else:
            result = scan_file(file, given, sample_rows=sample_rows, seed=seed)
            results.append(result)
            findings.extend(result.findings)
        if progress is not None:
            progress(done)
    if policy is not None:
        findings.extend(_policy_findings(results, policy, policy_dir or Path.cwd(), dataset))
    return ScanResult(tuple(findings), _summary(results, sample_rows), _counts(results))


# ---------------------------------------------------------------------------------------------------- files


def _files(paths: Sequence[Path]) -> Iterator[tuple[Path, str, bool]]:
    """(file, as given, named explicitly) for every path; folders walked (sorted) for dataset file names."""
    for path in paths:
        try:
            st = path.lstat()
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(st.st_mode):
            yield path, str(path), True
            continue
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames[:] = sorted(n for n in dirnames if n not in _SKIP_DIRS
                                 and not (Path(dirpath) / n / "pyvenv.cfg").is_file())
            for name in sorted(filenames):
                file = Path(dirpath) / name
                if kind_of(file) is not None:
                    yield file, str(file), False


def scan_file(path: Path, target: str | None = None, *, sample_rows: int | None = 10_000, seed: int = 0,
              workers: int | None = None) -> FileResult:
    """Scan one dataset file: column decisions and findings. Any failure to read it is a finding.

    Blocks of rows are classified in `workers` processes when the file is at least PARALLEL_MIN_BYTES and more
    than one core is free (default: one per core, at most 4); the result is the same as in one process."""
    target = target or str(path)
    bad_bytes = [0]
    try:
        if workers is None:
            big = path.stat().st_size >= PARALLEL_MIN_BYTES and (sample_rows is None or sample_rows > 100_000)
            workers = min(os.cpu_count() or 1, 4) if big else 1
        table = open_table(path, sample_rows=sample_rows, seed=seed, bad_bytes=bad_bytes)
        stats: dict[str, classify.ColumnStats] = {}
        try:
            _classify_blocks(table, stats, workers)
        except BrokenProcessPool:
            # Worker processes could not start or died (no /dev/shm, a sandbox...): one process does it all.
            bad_bytes[0] = 0
            table = open_table(path, sample_rows=sample_rows, seed=seed, bad_bytes=bad_bytes)
            stats = {}
            _classify_blocks(table, stats, 1)
    except Exception as exc:  # noqa: BLE001 - hostile input must become a finding, whatever the parser raised
        why = _reason(exc)
        return FileResult(target, [finding("MLF-PII-006", target, f"could not check {target}: {why}",
                                           problem="unreadable", error=why)], [], Sampling(), readable=False)
    decisions = [classify.decide(s) for s in stats.values()]
    out: list[Finding] = []
    sampling = table.sampling
    for decision in decisions:
        for ent in decision.entities:
            out.append(_column_finding(target, table, decision, ent, sampling))
    for problem in table.problems:
        out.append(_located(finding(
            "MLF-PII-006", target, f"could not check all of {target}: {problem.message}", problem=problem.kind,
            affected=problem.count, line=problem.line), target, problem.line if table.text else None, None))
    if bad_bytes[0]:
        out.append(finding("MLF-PII-006", target, f"could not check all of {target}: {bad_bytes[0]:,} byte "
                           "sequence(s) are not valid UTF-8; they were read as U+FFFD and the rest was scanned",
                           problem="encoding", affected=bad_bytes[0]))
    return FileResult(target, out, decisions, sampling, columns=len(stats))


PARALLEL_MIN_BYTES = 16 << 20
"""Files at least this large are classified in several processes (regular expressions hold the GIL)."""


def _classify_blocks(table: Table, stats: dict[str, classify.ColumnStats], workers: int) -> None:
    """Run the detectors over every block of the table, in this process or in `workers` processes."""

    def add(part: dict[str, classify.ColumnStats]) -> None:
        for name, column in part.items():
            if name in stats:
                stats[name].merge(column)
            else:
                stats[name] = column

    offset = 0
    if workers <= 1:
        for batch in table.batches:
            add(classify.analyze_batch(batch, offset))
            offset += max(map(len, batch.values()), default=0)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[Future[dict[str, classify.ColumnStats]]] = deque()
        for batch in table.batches:
            pending.append(pool.submit(classify.analyze_batch, batch, offset))
            offset += max(map(len, batch.values()), default=0)
            while len(pending) > 2 * workers:  # bounded memory: a few blocks in flight
                add(pending.popleft().result())
        while pending:
            add(pending.popleft().result())


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _column_finding(target: str, table: Table, decision: classify.ColumnDecision, ent: classify.EntityDecision,
                    sampling: Sampling) -> Finding:
    label = d.LABELS[ent.entity]
    sample = sampling.describe()
    col = decision.header
    share = f"{ent.share:.0%}" if ent.share >= 0.01 else f"{ent.share:.2%}"
    if ent.kind == "ambiguous":
        rule_id, severity = "MLF-PII-008", Severity.LOW
        message = (f"{target}: column {col!r}: {share} of {decision.non_empty:,} sampled values validate as "
                   f"{_plural(label)}, but {ent.reason}; {sample}")
    elif ent.kind == "column":
        rule_id, severity = column_rule(ent.entity), ENTITY_SEVERITY[ent.entity]
        message = (f"{target}: column {col!r} holds {_plural(label)}: {ent.rows:,} of {decision.non_empty:,} sampled "
                   f"non-empty values ({share}); {sample}")
    else:
        rule_id, severity = "MLF-PII-004", ENTITY_SEVERITY[ent.entity]
        where = "free-text column" if decision.text_like else "column"
        message = (f"{target}: {where} {col!r}: {ent.rows:,} of {decision.non_empty:,} sampled non-empty values "
                   f"({share}) contain {'an' if label[:1] in 'aeiou' else 'a'} {label}; {sample}")
    full = not sampling.sampled
    f = finding(rule_id, target, message, severity=severity, column=col, entity=ent.entity, entity_label=label,
                rows=ent.rows, whole_cell=ent.whole, non_empty=decision.non_empty, share=round(ent.share, 4),
                kind=ent.kind, free_text=decision.text_like, shape=ent.shape, reason=ent.reason or None,
                first_row=(ent.first_row + 1 if full and ent.first_row is not None else None), **sampling.evidence())
    line: int | None = None
    column: int | None = None
    if table.text:
        if table.kind == "jsonl":
            line = table.line_of_row(ent.first_row) if full and ent.first_row is not None else None
        else:
            line, column = table.header_line, table.header_columns.get(col)
    return _located(f, target, line, column) if table.text else f


def _plural(label: str) -> str:
    """`email address` -> `email addresses`, `phone number` -> `phone numbers`."""
    return label + ("es" if label.endswith(("s", "x", "sh", "ch")) else "s")


def _located(f: Finding, target: str, line: int | None, column: int | None) -> Finding:
    return dataclasses.replace(f, location=Location(target, line, column))


# ---------------------------------------------------------------------------------------------------- policy


def _locations(policy: Policy, base: Path) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for name, ds in policy.datasets.items():
        for loc in ds.locations.values():
            if loc.startswith("s3://"):
                continue
            raw = unquote(loc[len("file://"):]) if loc.startswith("file://") else loc
            path = Path(raw)
            if not path.is_absolute():
                path = base / path
            out.append((Path(os.path.realpath(path)), name))
    out.sort(key=lambda x: len(x[0].parts), reverse=True)  # the most specific location wins
    return out


def _dataset_of(file: Path, locations: list[tuple[Path, str]]) -> str | None:
    real = Path(os.path.realpath(file))
    for loc, name in locations:
        if real == loc or loc in real.parents:
            return name
    return None


def _policy_findings(results: list[FileResult], policy: Policy, base: Path, dataset: str | None) -> list[Finding]:
    out: list[Finding] = []
    locations = _locations(policy, base)
    for result in results:
        found = sorted(result.entities)
        if not found:
            continue
        labels = ", ".join(d.LABELS[e] for e in found)
        name = dataset or _dataset_of(Path(result.target), locations)
        if name is None:
            out.append(finding("MLF-PII-009", result.target, f"{result.target} holds personal data ({labels}) but "
                               "lies under no dataset location in the policy, so its classification cannot be "
                               "checked", entities=found))
            continue
        classification = str(policy.datasets[name].classification.value)
        if classification != "pii":
            out.append(finding("MLF-PII-005", result.target, f"dataset {name!r} is classified {classification!r} "
                               f"but {result.target} holds personal data ({labels})", dataset=name,
                               classification=classification, entities=found))
    return out


# ---------------------------------------------------------------------------------------------------- summary


def _counts(results: list[FileResult]) -> dict[str, int]:
    return {
        "files": len(results),
        "unreadable_files": sum(1 for r in results if not r.readable),
        "columns": sum(r.columns for r in results),
        "rows_scanned": sum(r.sampling.rows_scanned for r in results),
        "rows_total": sum(r.sampling.rows_total or 0 for r in results),
        "sampled_files": sum(1 for r in results if r.sampling.sampled),
        "pii_columns": sum(1 for r in results for c in r.decisions if any(e.kind != "ambiguous" for e in c.entities)),
        "files_with_pii": sum(1 for r in results if r.entities),
    }


def _summary(results: list[FileResult], sample_rows: int | None) -> str:
    counts = _counts(results)
    if sample_rows is None:
        how = "every row read"
    else:
        how = (f"sampled up to {sample_rows:,} rows per file, seeded and spread over each file; "
               f"{counts['sampled_files']} file(s) sampled")
    types: Counter[str] = Counter(e.entity for r in results for c in r.decisions for e in c.entities
                                  if e.kind != "ambiguous")
    found = ", ".join(f"{n} {e}" for e, n in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
    unreadable = f", {counts['unreadable_files']} unreadable" if counts["unreadable_files"] else ""
    return (f"checked {counts['files']} dataset file(s){unreadable}, {counts['columns']} column(s), "
            f"{counts['rows_scanned']:,} row(s) ({how}); PII in {counts['pii_columns']} column(s) of "
            f"{counts['files_with_pii']} file(s): {found}")

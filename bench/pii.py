"""Benchmark: `mlfort scan pii` against Microsoft Presidio's pattern recognizers (no-op NLP engine) on the same
labeled synthetic CSV, in one run: MB/s, and precision and recall cell by cell on the entity types both support.

    .venv/bin/python bench/pii.py                                # 100,000-row CSV for mlfort, 1,000 rows for Presidio
    .venv/bin/python bench/pii.py --rows 200000 --presidio-rows 2000 --rounds 3

Presidio (presidio-analyzer 2.2.366) is installed only for this benchmark, into its own venv under
bench/.data/pii-venv (never a dependency of mlfort), and runs there in a child process: NoOpNlpEngine (no spaCy
model, nothing downloaded), a registry holding only the pattern recognizers of the compared entity types (the
country-specific ones re-registered for English), each cell analyzed as its own text with its column header as
context, as Presidio's BatchAnalyzerEngine does for a dict of columns. Presidio is timed on the first
`--presidio-rows` rows (it runs at about 0.05 MB/s; the whole file would take hours), mlfort on the whole file in
full-file mode (every row, no sampling) and on the same subset. Not a test: numbers depend on the machine. Results go
in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "pii"
VENV = HERE / ".data" / "pii-venv"
PRESIDIO = "presidio-analyzer==2.2.366"

# Presidio entity -> mlfort entity, for every type both detect with patterns and check rules.
ENTITY_MAP = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip_address",
    "US_SSN": "us_ssn",
    "UK_NINO": "uk_nino",
    "ES_NIF": "es_dni",
    "ES_NIE": "es_dni",
    "IT_FISCAL_CODE": "it_fiscal_code",
    "PL_PESEL": "pl_pesel",
    "SE_PERSONNUMMER": "se_personnummer",
    "FI_PERSONAL_IDENTITY_CODE": "fi_hetu",
    "IN_AADHAAR": "in_aadhaar",
    "DE_TAX_ID": "de_tax_id",
}
COMPARED = frozenset(ENTITY_MAP.values())
THRESHOLDS = (0.0, 0.3, 0.5, 0.7)
"""Presidio scores its results; it is scored at each of these minimum scores and the best F1 is compared."""

RUNNER = r'''
import csv, json, sys, time
import tldextract
# EmailRecognizer calls tldextract, whose default extractor tries to download the public suffix list: use the
# snapshot bundled with tldextract instead (no network here, and no network call inside the timing).
tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer, DeTaxIdRecognizer, EmailRecognizer, EsNieRecognizer, EsNifRecognizer,
    FiPersonalIdentityCodeRecognizer, IbanRecognizer, InAadhaarRecognizer, IpRecognizer, ItFiscalCodeRecognizer,
    PhoneRecognizer, PlPeselRecognizer, SePersonnummerRecognizer, UkNinoRecognizer, UsSsnRecognizer)

path, entities = sys.argv[1], json.loads(sys.argv[2])
t0 = time.perf_counter()
nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no-op"}])
registry = RecognizerRegistry(supported_languages=["en"])
for cls in (CreditCardRecognizer, DeTaxIdRecognizer, EmailRecognizer, EsNieRecognizer, EsNifRecognizer,
            FiPersonalIdentityCodeRecognizer, IbanRecognizer, InAadhaarRecognizer, IpRecognizer,
            ItFiscalCodeRecognizer, PlPeselRecognizer, SePersonnummerRecognizer, UkNinoRecognizer, UsSsnRecognizer):
    registry.add_recognizer(cls(supported_language="en"))
# The phone recognizer wraps the phonenumbers library per region: the regions of the synthetic numbers.
registry.add_recognizer(PhoneRecognizer(supported_language="en",
                                        supported_regions=("US", "GB", "DE", "FR", "ES", "IN", "IT")))
analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
analyzer.analyze(text="warm up 4111 1111 1111 1111", language="en")
init = time.perf_counter() - t0
with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]
out = []
t0 = time.perf_counter()
for r, row in enumerate(rows):
    for c, value in enumerate(row):
        if not value:
            continue
        results = analyzer.analyze(text=value, language="en", entities=entities, context=[header[c]])
        if results:
            out.append([r, c, [[x.entity_type, round(x.score, 3)] for x in results]])
seconds = time.perf_counter() - t0
json.dump({"seconds": seconds, "init_seconds": init, "results": out}, sys.stdout)
'''


MLFORT = Path(sys.executable).parent / "mlfort"
ONE_PROCESS = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from mlfort.scan.pii import scan_file\n"
    "t0 = time.perf_counter()\n"
    "result = scan_file(Path(sys.argv[1]), sample_rows=None, workers=int(sys.argv[2]))\n"
    "print(time.perf_counter() - t0, result.sampling.rows_scanned)\n"
)


def _one_process(path: Path, workers: int) -> float:
    """Seconds scan_file takes on `path`, every row, in a fresh interpreter (so this process's memory, which holds
    the labeled table, does not slow it)."""
    out = subprocess.run([sys.executable, "-c", ONE_PROCESS, str(path), str(workers)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.split()[0])


def ensure_presidio() -> Path:
    """The benchmark venv's python, with presidio-analyzer installed (once)."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import presidio_analyzer"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", PRESIDIO], check=True)
    return python


def presidio_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('presidio-analyzer'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def score(truth: list[list[frozenset[str]]], pred: list[list[set[str]]]) -> tuple[float, float, int, int, int]:
    """Cell-level precision and recall over the compared entity types: (P, R, TP, FP, FN)."""
    tp = fp = fn = 0
    for t_col, p_col in zip(truth, pred, strict=True):
        for t, p in zip(t_col, p_col, strict=True):
            t, p = t & COMPARED, p & COMPARED
            tp += len(t & p)
            fp += len(p - t)
            fn += len(t - p)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def _errors(truth: list[list[frozenset[str]]], pred: list[list[set[str]]]) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for t_col, p_col in zip(truth, pred, strict=True):
        for t, p in zip(t_col, p_col, strict=True):
            t, p = t & COMPARED, p & COMPARED
            for e in p - t:
                out.setdefault(e, [0, 0])[0] += 1
            for e in t - p:
                out.setdefault(e, [0, 0])[1] += 1
    return {e: (fp, fn) for e, (fp, fn) in out.items()}


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the CSV mlfort scans (default 100,000)")
    ap.add_argument("--presidio-rows", type=int, default=1_000, help="rows Presidio analyzes (default 1,000)")
    ap.add_argument("--rounds", type=int, default=3, help="mlfort timing rounds; the median is reported")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from mlfort.scan.pii.classify import detect_cells
    from mlfort.scan.pii.synth import make_table

    DATA.mkdir(parents=True, exist_ok=True)
    table = make_table(rows=args.rows, seed=args.seed)
    full = table.write_csv(DATA / f"labeled-{args.rows}-{args.seed}.csv")
    subset_rows = min(args.presidio_rows, args.rows)
    sub = make_table(rows=0, seed=args.seed)
    sub.rows = table.rows[:subset_rows]
    sub.labels = {k: v for k, v in table.labels.items() if k[0] < subset_rows}
    subset = sub.write_csv(DATA / f"labeled-{args.rows}-{args.seed}-first{subset_rows}.csv")
    full_mb, sub_mb = full.stat().st_size / 1e6, subset.stat().st_size / 1e6
    # mlfort's accuracy on the whole table (column by column through detect_cells), then the table is dropped so
    # this process holds little while the timed processes run.
    columns = list(table.columns)
    p_full, r_full, *_ = score([table.cell_labels(c) for c in columns],
                               [detect_cells(table.column_values(c), c) for c in columns])
    del table
    gc.collect()

    # mlfort: the whole file, every row, as a user runs it (`mlfort scan pii --full`, a fresh process each round, the
    # default workers), and in one process (the time of scan_file alone, in a fresh interpreter); median of rounds.
    out_json = DATA / "mlfort-findings.json"
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        proc = subprocess.run([str(MLFORT), "scan", "pii", str(full), "--full", "--format", "json", "-o",
                               str(out_json)], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        assert proc.returncode in (0, 1), proc.stderr
    findings = json.loads(out_json.read_text())["findings"]
    assert findings and all(f["evidence"].get("rows_scanned", args.rows) == args.rows for f in findings)
    mlfort_s = statistics.median(times)
    times1 = [_one_process(full, workers=1) for _ in range(args.rounds)]
    mlfort_1 = statistics.median(times1)
    mlfort_sub_s = _one_process(subset, workers=1)

    # Presidio on the subset, in its own venv.
    python = ensure_presidio()
    version = presidio_version(python)
    runner = DATA / "presidio_runner.py"
    runner.write_text(RUNNER)
    proc = subprocess.run([str(python), str(runner), str(subset), json.dumps(sorted(ENTITY_MAP))],
                          capture_output=True, text=True, check=True, env={**os.environ, "TLDEXTRACT_CACHE": str(DATA)})
    presidio = json.loads(proc.stdout)
    presidio_s = presidio["seconds"]

    # Precision and recall, cell by cell, on the subset: both tools see the same cells.
    truth = [sub.cell_labels(c) for c in columns]
    ours = [detect_cells(sub.column_values(c), c) for c in columns]
    p_ours, r_ours, *counts_ours = score(truth, ours)
    by_threshold = []
    predictions: dict[float, list[list[set[str]]]] = {}
    for threshold in THRESHOLDS:
        pred: list[list[set[str]]] = [[set() for _ in range(subset_rows)] for _ in columns]
        for r, c, found in presidio["results"]:
            for entity, s in found:
                if s >= threshold and entity in ENTITY_MAP:
                    pred[c][r].add(ENTITY_MAP[entity])
        by_threshold.append((threshold, *score(truth, pred)))
        predictions[threshold] = pred
    best = max(by_threshold, key=lambda x: f1(x[1], x[2]))

    cells = sum(1 for row in sub.rows for v in row if v)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"presidio-analyzer {version} (NoOpNlpEngine, {len(ENTITY_MAP)} entity types, pattern recognizers)")
    print(f"labeled CSV: {args.rows:,} rows x {len(columns)} columns = {full_mb:.1f} MB (seed {args.seed}); "
          f"Presidio subset: first {subset_rows:,} rows = {sub_mb:.2f} MB, {cells:,} non-empty cells")
    print(f"compared entity types ({len(COMPARED)}): {', '.join(sorted(COMPARED))}")
    print(f"{'contender':52} {'seconds':>9} {'MB/s':>8}")
    print(f"{'mlfort scan pii --full (CLI, default workers: ' + str(min(os.cpu_count() or 1, 4)) + ')':52} "
          f"{mlfort_s:9.2f} {full_mb / mlfort_s:8.2f}")
    print(f"{'mlfort scan_file, every row, 1 process':52} {mlfort_1:9.2f} {full_mb / mlfort_1:8.2f}")
    print(f"{'mlfort scan_file, subset, 1 process':52} {mlfort_sub_s:9.2f} {sub_mb / mlfort_sub_s:8.2f}")
    print(f"{'Presidio AnalyzerEngine, subset, cell by cell':52} {presidio_s:9.2f} {sub_mb / presidio_s:8.3f}"
          f"   (engine start-up {presidio['init_seconds']:.2f} s, not counted)")
    ratio = (full_mb / mlfort_s) / (sub_mb / presidio_s)
    ratio1 = (full_mb / mlfort_1) / (sub_mb / presidio_s)
    print(f"speed-up (MB/s): {ratio:.0f}x as the CLI runs it, {ratio1:.0f}x in one process (target >= 100x)")
    print("cell-level precision / recall on the subset, compared types only:")
    print(f"  mlfort                          P {p_ours:.4f}  R {r_ours:.4f}  (TP {counts_ours[0]}, "
          f"FP {counts_ours[1]}, FN {counts_ours[2]})")
    for threshold, p, r, tp, fp, fn in by_threshold:
        mark = "  <- best F1" if threshold == best[0] else ""
        print(f"  Presidio, score >= {threshold:.1f}           P {p:.4f}  R {r:.4f}  (TP {tp}, FP {fp}, FN {fn}){mark}")
    print(f"mlfort on the whole {args.rows:,}-row table, compared types: P {p_full:.4f}  R {r_full:.4f}")
    print(f"errors by entity type (false positives / false negatives), Presidio at score >= {best[0]:.1f}:")
    for name, pred in (("mlfort", ours), ("Presidio", predictions[best[0]])):
        errors = _errors(truth, pred)
        print(f"  {name:9} " + ", ".join(f"{e} {fp}/{fn}" for e, (fp, fn) in sorted(errors.items())))
    verdict = p_ours >= best[1] and r_ours >= best[2]
    print(f"equal or better precision and recall than Presidio's best: {'yes' if verdict else 'NO'}")


if __name__ == "__main__":
    main()

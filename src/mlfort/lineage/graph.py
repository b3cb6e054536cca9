"""The provenance graph, built from ledger events: artifacts (by digest) -> runs -> artifacts -> deployments.

Nodes are artifacts named by digest (with every name, kind and location the ledger gave them), runs named by run
id (a `run.finish` event: its environment, actor and times), and deployments (an endpoint in an environment, from
`model.deploy` events). Edges are `read` (artifact -> run), `wrote` (run -> artifact) and `deployed` (artifact ->
deployment), each carrying the ledger entry that shows it, so any edge can be proven with `mlfort ledger prove`.

Two questions, answered transitively (a model fine-tuned from a model trained on the data is downstream too):

- forward, from a dataset: which runs read it, which models they wrote, where those models are deployed (what an
  erasure request under GDPR Art. 17 needs to know);
- backward, from a model: which runs wrote it, which datasets and base models they read, and where it is deployed.

Every step is an indexed lookup (`Ledger.by_ref` for an artifact, a run-id query for a run), never a scan of the
whole log. The walk is bounded in depth and size and says so when it stops early. A run that reads what it writes
would make a cycle; every node is expanded at most once, so the walk ends whatever the ledger holds.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from mlfort.errors import MlfortError
from mlfort.ledger.event import ArtifactRef, Event, EventError, parse_time
from mlfort.ledger.log import Ledger
from mlfort.ledger.store.base import Query

Direction = Literal["forward", "backward", "both"]
Side = Literal["subject", "upstream", "downstream"]

RUN_ACTIONS = frozenset({"run.finish"})
"""Events that are a pipeline step: what they read went into what they wrote."""
DEPLOY_ACTIONS = frozenset({"model.deploy"})
"""Events that put the model they read behind an endpoint."""
SIGN_ACTION = "artifacts.sign"
VERIFY_ACTION = "artifacts.verify"

MAX_DEPTH = 16
"""Default: runs followed from the subject in each direction (a model fine-tuned 16 times over is rare)."""
MAX_NODES = 500
"""Default: nodes in one graph before the walk stops (a dataset read by thousands of runs is summarised)."""
MAX_RUN_EVENTS = 1000
"""Events read for one run id (a run is a handful of steps; more is summarised)."""

_DIGEST = re.compile(r"(sha256|sha384|sha512|blake3|blake2b):[0-9a-f]{32,128}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KIND_RANK = {"dataset": 3, "model": 3, "file": 1, "other": 0}
"""When events disagree on an artifact's kind, the more specific one is kept (first seen among equals)."""


class NotInLedger(MlfortError):
    """The ledger holds nothing that answers the question (exit 1: a lookup that found nothing is not a pass)."""

    exit_code = 1


def run_event(run_id: str, *, actor: str, reads: Sequence[ArtifactRef] = (), writes: Sequence[ArtifactRef] = (),
              environment: str | None = None, job: str | None = None, command: str | None = None,
              started: str | None = None, outcome: str = "success") -> Event:
    """The `run.finish` event of a pipeline step: it read `reads` (datasets, base models) and wrote `writes`."""
    details = {k: v for k, v in (("job", job), ("command", command), ("started", started)) if v}
    return Event(action="run.finish", actor=actor, resource=f"run:{run_id}", outcome=outcome, environment=environment,
                 run_id=run_id, reads=tuple(reads), writes=tuple(writes), details=details)


def deploy_event(model: ArtifactRef, *, endpoint: str, actor: str, environment: str | None = None,
                 url: str | None = None, run_id: str | None = None) -> Event:
    """The `model.deploy` event: `model` now serves behind `endpoint` (at `url`) in `environment`."""
    return Event(action="model.deploy", actor=actor, resource=f"endpoint:{endpoint}", environment=environment,
                 run_id=run_id, reads=(model,), details={"endpoint": url} if url else {})


@dataclass(frozen=True, slots=True)
class ArtifactNode:
    """A model, dataset or file, identified by its digest."""

    digest: str
    """`sha256:<hex>`: the root digest of its manifest."""
    kind: str
    """dataset, model, file or other: the most specific kind any event gave it."""
    names: tuple[str, ...]
    """Every name the ledger recorded for this digest (a name is an alias; its versions are different digests)."""
    uris: tuple[str, ...]
    """Every location recorded for it (paths, file:// or s3:// URLs)."""
    signed: bool
    """An `artifacts.sign` event wrote this digest."""
    verified: str | None
    """Outcome of the latest `artifacts.verify` of this digest (success or failure), None if never verified."""
    side: Side
    """subject (what was asked about), upstream (went into it) or downstream (came out of it)."""
    depth: int
    """Runs between the subject and this node (0 for the subject)."""

    @property
    def id(self) -> str:
        """Node id in the graph: `artifact:<digest>`."""
        return f"artifact:{self.digest}"

    @property
    def label(self) -> str:
        """The first recorded name, or the digest cut short."""
        return self.names[0] if self.names else short_digest(self.digest)


@dataclass(frozen=True, slots=True)
class RunNode:
    """A pipeline step or training run: every `run.finish` event recorded under one run id."""

    run_id: str
    """The run id events were recorded under."""
    job: str | None
    """The job (pipeline step) this run is an instance of, when recorded (`details.job`)."""
    environment: str | None
    """The policy environment it ran in."""
    actor: str
    """Who recorded it (`user:...`, `workload:...`)."""
    started: str | None
    """When it started (`details.started`), RFC 3339 UTC, when recorded."""
    finished: str
    """When its (last) `run.finish` event was recorded."""
    outcome: str
    """success, or failure when any of its events failed."""
    command: str | None
    """What ran (`details.command`), when recorded."""
    reads: tuple[ArtifactRef, ...]
    """Everything the run read (datasets, base models), whether or not the walk followed it."""
    writes: tuple[ArtifactRef, ...]
    """Everything the run wrote."""
    entries: tuple[int, ...]
    """Ledger entries of its events (for `mlfort ledger prove`)."""
    side: Side
    """upstream or downstream of the subject (subject when the run itself was asked about)."""
    depth: int
    """Runs between the subject and this one, itself included (0 when the run itself was asked about)."""

    @property
    def id(self) -> str:
        """Node id in the graph: `run:<run id>`."""
        return f"run:{self.run_id}"

    @property
    def label(self) -> str:
        """The run id."""
        return self.run_id


@dataclass(frozen=True, slots=True)
class DeploymentNode:
    """An endpoint in an environment that a model of the graph was deployed to."""

    endpoint: str
    """The endpoint's name (from the event resource `endpoint:<name>`)."""
    environment: str | None
    """The policy environment of the endpoint."""
    url: str | None
    """Where it serves (`details.endpoint`), when recorded."""
    actor: str
    """Who recorded the latest deployment to it seen by the walk."""
    time: str
    """When the latest deployment to it seen by the walk was recorded."""
    current: str | None
    """Digest of the model the latest successful deployment to this endpoint installed (it may be a model outside
    the graph: the models of the graph were replaced); None when unknown."""
    outcome: str
    """success, or failure when the deployments seen all failed."""
    entries: tuple[int, ...]
    """Ledger entries of the deployments seen."""
    side: Side
    """Always downstream: a deployment serves a model."""
    depth: int
    """Runs between the subject and the deployed model."""

    @property
    def id(self) -> str:
        """Node id in the graph: `deployment:<environment>:<endpoint>` (`-` for no environment)."""
        return f"deployment:{self.environment or '-'}:{self.endpoint}"

    @property
    def label(self) -> str:
        """The endpoint name."""
        return self.endpoint


Node = ArtifactNode | RunNode | DeploymentNode


VERIFY_ACTIONS: tuple[str, ...] = ("artifacts.verify",)
"""Events of which lineage reads only the newest per artifact."""


@dataclass(frozen=True, slots=True)
class Edge:
    """One link of lineage, with the ledger entry that records it."""

    source: str
    """Node id the link starts from."""
    target: str
    """Node id it points to."""
    relation: str
    """read (artifact -> run), wrote (run -> artifact) or deployed (artifact -> deployment)."""
    entry: int
    """The first ledger entry that records it."""
    time: str
    """That entry's time."""


@dataclass(frozen=True, slots=True)
class LineageGraph:
    """What the ledger says about the subjects' lineage, in one or both directions."""

    subjects: tuple[str, ...]
    """The digests asked about (all versions of a name, when a name was asked about)."""
    direction: Direction
    """forward (downstream), backward (upstream) or both."""
    nodes: Mapping[str, Node] = field(hash=False)
    """Node id -> node, subjects first, then in the order the walk found them."""
    edges: tuple[Edge, ...]
    """Every link found, in the order found."""
    known: bool
    """Whether any ledger event mentions a subject at all."""
    truncated: bool = False
    """Something was left out (the walk reached its depth or size limit): more lineage exists than is shown."""
    notes: tuple[str, ...] = ()
    """What was left out and why, for people."""

    def node(self, node_id: str) -> Node:
        """The node with this id (KeyError if absent)."""
        return self.nodes[node_id]

    def artifacts(self, *, kind: str | None = None, side: Side | None = None) -> list[ArtifactNode]:
        """Artifact nodes, optionally only of one kind and one side."""
        return [n for n in self.nodes.values() if isinstance(n, ArtifactNode)
                and (kind is None or n.kind == kind) and (side is None or n.side == side)]

    def runs(self, *, side: Side | None = None) -> list[RunNode]:
        """Run nodes, optionally only of one side."""
        return [n for n in self.nodes.values() if isinstance(n, RunNode) and (side is None or n.side == side)]

    def deployments(self) -> list[DeploymentNode]:
        """Deployment nodes: where the subjects, or models made from them, were deployed."""
        return [n for n in self.nodes.values() if isinstance(n, DeploymentNode)]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: nodes, edges, and the two answers (upstream and downstream) as lists of ids and digests."""
        return {
            "subjects": list(self.subjects),
            "direction": self.direction,
            "known": self.known,
            "upstream": {
                "artifacts": [n.digest for n in self.artifacts(side="upstream")],
                "runs": [n.run_id for n in self.runs(side="upstream")],
            },
            "downstream": {
                "artifacts": [n.digest for n in self.artifacts(side="downstream")],
                "runs": [n.run_id for n in self.runs(side="downstream")],
                "deployments": [n.id for n in self.deployments()],
            },
            "nodes": [node_dict(n) for n in self.nodes.values()],
            "edges": [{"from": e.source, "to": e.target, "relation": e.relation, "entry": e.entry, "time": e.time}
                      for e in self.edges],
            "truncated": self.truncated,
            "notes": list(self.notes),
        }


def node_dict(node: Node) -> dict[str, Any]:
    """JSON form of one node, with its id and type (artifact, run or deployment)."""
    if isinstance(node, ArtifactNode):
        return {"id": node.id, "type": "artifact", "digest": node.digest, "kind": node.kind, "names": list(node.names),
                "uris": list(node.uris), "signed": node.signed, "verified": node.verified, "side": node.side,
                "depth": node.depth}
    if isinstance(node, RunNode):
        return {"id": node.id, "type": "run", "run_id": node.run_id, "job": node.job,
                "environment": node.environment, "actor": node.actor, "started": node.started,
                "finished": node.finished, "outcome": node.outcome, "command": node.command,
                "reads": [r.to_dict() for r in node.reads], "writes": [w.to_dict() for w in node.writes],
                "entries": list(node.entries), "side": node.side, "depth": node.depth}
    return {"id": node.id, "type": "deployment", "endpoint": node.endpoint, "environment": node.environment,
            "url": node.url, "actor": node.actor, "time": node.time, "current": node.current,
            "outcome": node.outcome, "entries": list(node.entries), "side": node.side, "depth": node.depth}


def short_digest(digest: str, hex_chars: int = 12) -> str:
    """`sha256:1a2b3c4d5e6f…`: enough to tell digests apart on screen."""
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:hex_chars]}…" if len(hex_part) > hex_chars else digest


def is_digest(text: str) -> bool:
    """Whether `text` is `<algorithm>:<lowercase hex>` as the ledger stores digests."""
    return bool(_DIGEST.fullmatch(text))


def resolve(ledger: Ledger, ref: str) -> tuple[str, ...]:
    """The digests `ref` stands for: itself if it is a digest (a bare 64-hex string is taken as SHA-256), else every
    digest recorded under that name, oldest first (a name's versions). Empty when the ledger does not know it."""
    text = ref.strip()
    if is_digest(text):
        return (text,)
    if _HEX64.fullmatch(text):
        return (f"sha256:{text}",)
    found: dict[str, None] = {}
    for _, _, event in ledger.by_ref(name=text):
        for r in (*event.reads, *event.writes):
            if r.name == text:
                found.setdefault(r.digest, None)
    return tuple(found)


def endpoint_of(event: Event) -> str:
    """The endpoint name a `model.deploy` event names (`endpoint:<name>` resource)."""
    return event.resource.removeprefix("endpoint:")


class _Walk:
    """Mutable state of one graph build; frozen into a LineageGraph at the end."""

    def __init__(self, ledger: Ledger, max_depth: int, max_nodes: int) -> None:
        self.ledger = ledger
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.order: list[tuple[str, str]] = []  # (type, key) in discovery order
        self.edges: dict[tuple[str, str, str], Edge] = {}
        self.events: dict[str, list[tuple[int, str, Event]]] = {}
        self.notes: list[str] = []
        self.full = False
        self.depth_cut = False

    # -- ledger look-ups (each one indexed; cached, since both directions visit the subjects) ---------------------
    def events_of(self, digest: str) -> list[tuple[int, str, Event]]:
        if digest not in self.events:
            # Verifications can run into the thousands (every start of every server): only the latest one counts.
            found = self.ledger.by_ref(digest=digest, exclude=VERIFY_ACTIONS)
            found += self.ledger.by_ref(digest=digest, actions=VERIFY_ACTIONS, newest=1)
            self.events[digest] = sorted(found, key=lambda row: row[0])
            for idx, role, event in self.events[digest]:
                self._learn(digest, idx, role, event)
        return self.events[digest]

    def run_events(self, run_id: str) -> list[tuple[int, Event]]:
        found: list[tuple[int, Event]] = []
        for action in sorted(RUN_ACTIONS):  # by action too: the run's other events (verifies, deploys) do not count
            batch = self.ledger.query(Query(run_id=run_id, action=action, limit=MAX_RUN_EVENTS))
            if len(batch) >= MAX_RUN_EVENTS:
                self.notes.append(f"run {run_id}: only its first {MAX_RUN_EVENTS} {action} events were read")
            found += batch
        # Query treats a trailing * as a prefix; a run id is matched exactly.
        return sorted((i, e) for i, e in found if e.run_id == run_id)

    # -- nodes ----------------------------------------------------------------------------------------------------
    def _room(self) -> bool:
        if len(self.order) < self.max_nodes:
            return True
        if not self.full:
            self.full = True
            self.notes.append(f"stopped at {self.max_nodes} nodes: more lineage exists than is shown "
                              "(ask about a single digest, or raise the node limit)")
        return False

    def artifact(self, ref: ArtifactRef | str, side: Side, depth: int) -> bool:
        digest = ref if isinstance(ref, str) else ref.digest
        info = self.artifacts.get(digest)
        if info is None:
            if not self._room():
                return False
            info = {"kind": "other", "names": {}, "uris": {}, "signed": False, "verified": None,
                    "side": side, "depth": depth}
            self.artifacts[digest] = info
            self.order.append(("artifact", digest))
        if isinstance(ref, ArtifactRef):
            self._merge(info, ref)
        return True

    @staticmethod
    def _merge(info: dict[str, Any], ref: ArtifactRef) -> None:
        if _KIND_RANK.get(ref.kind, 0) > _KIND_RANK.get(info["kind"], 0):
            info["kind"] = ref.kind
        if ref.name:
            info["names"].setdefault(ref.name, None)
        if ref.uri:
            info["uris"].setdefault(ref.uri, None)

    def _learn(self, digest: str, idx: int, role: str, event: Event) -> None:
        """Names, kinds, locations and sign/verify state of a tracked artifact, from any event that mentions it."""
        info = self.artifacts.get(digest)
        if info is None:
            return
        for ref in event.reads if role == "r" else event.writes:
            if ref.digest == digest:
                self._merge(info, ref)
        if event.action == SIGN_ACTION and role == "w" and event.outcome == "success":
            info["signed"] = True
        if event.action == VERIFY_ACTION and role == "r":
            info["verified"] = event.outcome  # entries come oldest first: the last one seen is the latest

    def run(self, idx: int, event: Event, side: Side, depth: int) -> tuple[str, dict[str, Any]] | None:
        """The run a run.finish event belongs to, with every event recorded under its run id (a run without a run
        id is a run of its own, named after its ledger entry)."""
        run_id = event.run_id or f"entry-{idx}"
        info = self.runs.get(run_id)
        if info is not None:
            return run_id, info
        if not self._room():
            return None
        events = (self.run_events(run_id) if event.run_id else []) or [(idx, event)]
        reads: dict[str, tuple[ArtifactRef, int, str]] = {}
        writes: dict[str, tuple[ArtifactRef, int, str]] = {}
        for i, e in events:
            for ref in e.reads:
                reads.setdefault(ref.digest, (ref, i, e.time))
            for ref in e.writes:
                writes.setdefault(ref.digest, (ref, i, e.time))

        def detail(name: str) -> str | None:
            return next((e.details[name] for _, e in events if isinstance(e.details.get(name), str)), None)

        info = {
            "job": detail("job"),
            "environment": next((e.environment for _, e in events if e.environment), None),
            "actor": events[0][1].actor,
            "started": _normal_time(detail("started")),
            "finished": events[-1][1].time,
            "outcome": "failure" if any(e.outcome == "failure" for _, e in events) else "success",
            "command": detail("command"),
            "reads": reads, "writes": writes, "entries": tuple(i for i, _ in events), "side": side, "depth": depth,
        }
        self.runs[run_id] = info
        self.order.append(("run", run_id))
        return run_id, info

    def deployment(self, idx: int, event: Event, depth: int) -> str | None:
        endpoint = endpoint_of(event)
        key = f"deployment:{event.environment or '-'}:{endpoint}"
        info = self.deployments.get(key)
        if info is None:
            if not self._room():
                return None
            info = {"endpoint": endpoint, "environment": event.environment, "url": None, "actor": event.actor,
                    "time": event.time, "entries": [], "outcomes": set(), "depth": depth}
            self.deployments[key] = info
            self.order.append(("deployment", key))
        url = event.details.get("endpoint")
        if isinstance(url, str) and url:
            info["url"] = url
        if event.time >= info["time"]:
            info["time"], info["actor"] = event.time, event.actor
        if idx not in info["entries"]:
            info["entries"].append(idx)
        info["outcomes"].add(event.outcome)
        info["depth"] = min(info["depth"], depth)
        return key

    def edge(self, source: str, target: str, relation: str, entry: int, time: str) -> None:
        key = (source, target, relation)
        if key not in self.edges or entry < self.edges[key].entry:
            self.edges[key] = Edge(source, target, relation, entry, time)

    # -- the two walks --------------------------------------------------------------------------------------------
    def forward(self, subjects: Sequence[str]) -> None:
        queue = deque((d, 0) for d in subjects)
        expanded = set(subjects)
        while queue and not self.full:
            digest, depth = queue.popleft()
            for idx, role, event in self.events_of(digest):
                if role != "r":
                    continue
                if event.action in DEPLOY_ACTIONS:
                    self._deployed(digest, idx, event, depth)
                    continue
                if event.action not in RUN_ACTIONS:
                    continue
                if depth + 1 > self.max_depth:
                    self._depth_note()
                    continue
                found = self.run(idx, event, "downstream", depth + 1)
                if found is None:
                    continue
                run_id, run = found
                self.edge(f"artifact:{digest}", f"run:{run_id}", "read", idx, event.time)
                for out, w_idx, w_time in run["writes"].values():
                    if not self.artifact(out, "downstream", depth + 1):
                        break
                    self.edge(f"run:{run_id}", f"artifact:{out.digest}", "wrote", w_idx, w_time)
                    if out.digest not in expanded:
                        expanded.add(out.digest)
                        queue.append((out.digest, depth + 1))

    def backward(self, subjects: Sequence[str]) -> None:
        queue = deque((d, 0) for d in subjects)
        expanded = set(subjects)
        while queue and not self.full:
            digest, depth = queue.popleft()
            for idx, role, event in self.events_of(digest):
                if role == "r" and event.action in DEPLOY_ACTIONS and depth == 0:
                    self._deployed(digest, idx, event, depth)  # where the subject itself runs
                    continue
                if role != "w" or event.action not in RUN_ACTIONS:
                    continue
                if depth + 1 > self.max_depth:
                    self._depth_note()
                    continue
                found = self.run(idx, event, "upstream", depth + 1)
                if found is None:
                    continue
                run_id, run = found
                self.edge(f"run:{run_id}", f"artifact:{digest}", "wrote", idx, event.time)
                for src, r_idx, r_time in run["reads"].values():
                    if not self.artifact(src, "upstream", depth + 1):
                        break
                    self.edge(f"artifact:{src.digest}", f"run:{run_id}", "read", r_idx, r_time)
                    if src.digest not in expanded:
                        expanded.add(src.digest)
                        queue.append((src.digest, depth + 1))

    def _deployed(self, digest: str, idx: int, event: Event, depth: int) -> None:
        key = self.deployment(idx, event, depth)
        if key is not None:
            self.edge(f"artifact:{digest}", key, "deployed", idx, event.time)

    def _depth_note(self) -> None:
        if not self.depth_cut:
            self.depth_cut = True
            self.notes.append(f"stopped after {self.max_depth} runs in one direction: more lineage exists "
                              "(raise the depth limit to see it)")

    # -- the result -----------------------------------------------------------------------------------------------
    def current_model(self, info: dict[str, Any]) -> str | None:
        """The model the latest successful deployment to this endpoint (in this environment) installed."""
        q = Query(action="model.deploy", resource=f"endpoint:{info['endpoint']}", newest_first=True,
                  limit=MAX_RUN_EVENTS)
        for _, event in self.ledger.query(q):
            if (endpoint_of(event) == info["endpoint"] and event.environment == info["environment"]
                    and event.outcome == "success" and event.decision != "deny" and event.reads):
                return event.reads[0].digest
        return None

    def graph(self, subjects: Sequence[str], direction: Direction) -> LineageGraph:
        nodes: dict[str, Node] = {}
        for kind, key in self.order:
            node: Node
            if kind == "artifact":
                a = self.artifacts[key]
                node = ArtifactNode(key, a["kind"], tuple(a["names"]), tuple(a["uris"]), a["signed"], a["verified"],
                                    a["side"], a["depth"])
            elif kind == "run":
                r = self.runs[key]
                node = RunNode(key, r["job"], r["environment"], r["actor"], r["started"], r["finished"], r["outcome"],
                               r["command"], tuple(ref for ref, _, _ in r["reads"].values()),
                               tuple(ref for ref, _, _ in r["writes"].values()), tuple(r["entries"]), r["side"],
                               r["depth"])
            else:
                d = self.deployments[key]
                outcome = "success" if "success" in d["outcomes"] else "failure"
                node = DeploymentNode(d["endpoint"], d["environment"], d["url"], d["actor"], d["time"],
                                      self.current_model(d), outcome, tuple(d["entries"]), "downstream", d["depth"])
            nodes[node.id] = node
        known = any(self.events.get(s) for s in subjects)
        return LineageGraph(tuple(subjects), direction, MappingProxyType(nodes), tuple(self.edges.values()), known,
                            bool(self.notes), tuple(self.notes))


def run_node(ledger: Ledger, run_id: str) -> RunNode | None:
    """The run recorded under `run_id` (every run.finish event with that id), or None when there is none."""
    walk = _Walk(ledger, MAX_DEPTH, MAX_NODES)
    events = walk.run_events(run_id)
    if not events:
        return None
    walk.run(*events[0], "subject", 0)
    return walk.graph((), "forward").runs()[0]


def _normal_time(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except EventError:
        return None


def build_lineage(ledger: Ledger, subjects: Iterable[str], *, direction: Direction = "both",
                  max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> LineageGraph:
    """The lineage of the artifacts with these digests: upstream (`backward`), downstream (`forward`) or both.

    Give every version of a name to answer for the name (see `resolve`). `max_depth` bounds the runs followed in
    each direction, `max_nodes` the size of the graph; when either stops the walk, `truncated` is set and `notes`
    says what was left out.
    """
    if direction not in ("forward", "backward", "both"):
        raise ValueError(f"direction must be forward, backward or both, not {direction!r}")
    if max_depth < 0 or max_nodes < 1:
        raise ValueError("max_depth must be >= 0 and max_nodes >= 1")
    ordered = tuple(dict.fromkeys(subjects))
    walk = _Walk(ledger, max_depth, max(max_nodes, len(ordered)))
    for digest in ordered:
        walk.artifact(digest, "subject", 0)
    if direction in ("backward", "both"):
        walk.backward(ordered)
    if direction in ("forward", "both"):
        walk.forward(ordered)
    return walk.graph(ordered, direction)

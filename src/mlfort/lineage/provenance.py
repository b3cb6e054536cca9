"""SLSA provenance v1 for a model: an in-toto Statement v1 saying which run produced it from which data.

The statement is built from the ledger alone: the subject is the model (name and root digest), the build is the
`run.finish` event that wrote that digest, its resolved dependencies are what the run read (datasets and base
models, each with uri and digest). It is unsigned: sign it with your attestation tooling, or prove the ledger
entries it cites (`internalParameters.ledgerEntries`) with `mlfort ledger prove`.

Field mapping (https://slsa.dev/spec/v1.0/provenance):

- `buildDefinition.buildType`: BUILD_TYPE; `externalParameters`: the job, command and environment as recorded
  (never digests: those go in `resolvedDependencies`); `internalParameters`: who recorded the run and where in the
  ledger.
- `runDetails.builder.id`: BUILDER_ID, with the environment appended (each environment is its own trust base);
  `metadata.invocationId`: the run id; `startedOn`: `details.started` when recorded; `finishedOn`: the event time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mlfort import __version__
from mlfort.ledger.event import ArtifactRef
from mlfort.ledger.log import Ledger
from mlfort.lineage.graph import NotInLedger, RunNode, build_lineage, resolve, short_digest

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://mlfort/lineage/run/v1"
"""mlfort's build type: a pipeline step recorded in the ledger as `run.finish`. Like model-signing's predicate type
(`https://model_signing/signature/v1.0`), a type identifier, not a page to fetch."""
BUILDER_ID = "https://mlfort/lineage/builder/v1"
"""The builder: runs recorded by mlfort (`/<environment>` appended when the run names its environment)."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """A SLSA provenance statement for one model digest and the run that wrote it."""

    statement: dict[str, Any] = field(hash=False)
    """The in-toto Statement v1 (a JSON object)."""
    digest: str
    """The model digest the statement is about."""
    run_id: str
    """The run it names as the build."""
    notes: tuple[str, ...] = ()
    """Choices made for the caller (the latest of several versions or runs), for people."""

    def to_json(self) -> str:
        """The statement as indented JSON text."""
        return json.dumps(self.statement, indent=2, ensure_ascii=False) + "\n"


def digest_set(digest: str) -> dict[str, str]:
    """`sha256:<hex>` -> `{"sha256": "<hex>"}` (an in-toto DigestSet)."""
    algorithm, _, hex_part = digest.partition(":")
    return {algorithm: hex_part}


def resource_descriptor(ref: ArtifactRef) -> dict[str, Any]:
    """An in-toto ResourceDescriptor for an artifact the run read: uri, digest, name and its kind."""
    out: dict[str, Any] = {}
    if ref.uri:
        out["uri"] = ref.uri
    out["digest"] = digest_set(ref.digest)
    if ref.name:
        out["name"] = ref.name
    out["annotations"] = {"kind": ref.kind}
    return out


def builder_id(environment: str | None) -> str:
    """BUILDER_ID, with the environment as a last path segment when known."""
    return f"{BUILDER_ID}/{quote(environment, safe='')}" if environment else BUILDER_ID


def statement_for(run: RunNode, digest: str, name: str) -> dict[str, Any]:
    """The SLSA provenance v1 statement saying `run` produced the model `digest` (called `name`)."""
    external: dict[str, Any] = {}
    if run.job:
        external["job"] = run.job
    if run.command:
        external["command"] = run.command
    if run.environment:
        external["environment"] = run.environment
    metadata: dict[str, Any] = {"invocationId": run.run_id}
    if run.started:
        metadata["startedOn"] = run.started
    metadata["finishedOn"] = run.finished
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": digest_set(digest)}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"actor": run.actor, "ledgerEntries": list(run.entries),
                                       "outcome": run.outcome},
                "resolvedDependencies": [resource_descriptor(r) for r in run.reads],
            },
            "runDetails": {
                "builder": {"id": builder_id(run.environment), "version": {"mlfort": __version__}},
                "metadata": metadata,
            },
        },
    }


def slsa_provenance(ledger: Ledger, model: str, *, run_id: str | None = None) -> Provenance:
    """SLSA provenance for a model given by digest or name (a name means its latest version some run wrote).

    When several runs wrote the digest (a deterministic retrain gives the same bytes), the latest is the build
    unless `run_id` picks one. Raises NotInLedger when the ledger knows no such model or no run wrote it.
    """
    notes: list[str] = []
    digests = resolve(ledger, model)
    if not digests:
        raise NotInLedger(f"the ledger knows no model {model!r} (no event read or wrote that name or digest)")
    chosen = None
    for digest in reversed(digests):
        graph = build_lineage(ledger, [digest], direction="backward", max_depth=1)
        runs = [r for r in graph.runs() if any(w.digest == digest for w in r.writes)
                and (run_id is None or r.run_id == run_id)]
        if runs:
            chosen = (digest, graph, runs)
            break
    if chosen is None:
        which = f"run {run_id!r}" if run_id else "run"
        raise NotInLedger(f"no {which} in the ledger wrote {model!r}: record the training run with "
                          "`mlfort lineage record-run` (provenance names the run that produced the model)")
    digest, graph, runs = chosen
    if len(digests) > 1:
        notes.append(f"{model} has {len(digests)} versions; this is {short_digest(digest)}, the latest a run wrote "
                     "(give a digest for another)")
    run = max(runs, key=lambda r: r.finished)
    if len(runs) > 1:
        notes.append(f"{len(runs)} runs wrote {short_digest(digest)}; this names the latest, {run.run_id} "
                     "(--run-id picks another)")
    node = graph.artifacts(side="subject")[0]
    name = next((w.name for w in run.writes if w.digest == digest and w.name), None)
    name = name or (node.names[0] if node.names else model if model != digest else digest)
    return Provenance(statement_for(run, digest, name), digest, run.run_id, tuple(notes))

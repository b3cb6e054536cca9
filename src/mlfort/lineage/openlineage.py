"""OpenLineage RunEvents for a recorded run, so a lineage service (Marquez, DataHub, a data catalog) can take them.

Follows the OpenLineage 2-0-2 spec (https://openlineage.io/spec/2-0-2/OpenLineage.json): one COMPLETE (or FAIL)
event per run, preceded by a START event when the run recorded when it started. OpenLineage wants `run.runId` to
be a UUID: a run id that is not one becomes a UUIDv5 derived from it (the same run id always gives the same UUID),
and the original is kept in the `mlfort_run` run facet.

Datasets are named by the OpenLineage naming conventions from their recorded location (`s3://bucket/key` ->
namespace `s3://bucket`, name `key`; a local path -> namespace `file`, name the path), or, without one, in
namespace `mlfort` by their name or digest. Each carries the standard `version` facet (the digest is the version)
and the `mlfort_artifact` facet (digest, kind, name), whose JSON schema is FACET_SCHEMAS.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from mlfort import __version__
from mlfort.ledger.event import ArtifactRef
from mlfort.ledger.log import Ledger
from mlfort.lineage.graph import NotInLedger, RunNode, run_node

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = f"https://mlfort/lineage/{__version__}"
"""Who produced the events (OpenLineage: a URI naming the producer and its version)."""
VERSION_FACET_URL = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
ENGINE_FACET_URL = "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet"
FACETS_URL = "https://mlfort/spec/openlineage/facets/1-0-0/MlfortFacets.json"
"""Where mlfort's custom facets are defined (the schema is FACET_SCHEMAS)."""
DEFAULT_NAMESPACE = "mlfort"
"""The job namespace, and the dataset namespace of artifacts with no recorded location."""
RUN_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://mlfort/lineage/run-id")
"""The UUIDv5 namespace run ids that are not UUIDs are derived in."""

FACET_SCHEMAS: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": FACETS_URL,
    "$defs": {
        "MlfortArtifactDatasetFacet": {
            "description": "The artifact as mlfort's ledger names it: by digest (the root digest of its manifest).",
            "type": "object",
            "properties": {
                "_producer": {"type": "string", "format": "uri"},
                "_schemaURL": {"type": "string", "format": "uri"},
                "digest": {"type": "string", "pattern": "^(sha256|sha384|sha512|blake3|blake2b):[0-9a-f]{32,128}$"},
                "kind": {"type": "string", "enum": ["dataset", "model", "file", "policy", "endpoint", "key", "run",
                                                   "other"]},
                "name": {"type": "string"},
                "uri": {"type": "string"},
            },
            "required": ["_producer", "_schemaURL", "digest", "kind"],
            "additionalProperties": True,
        },
        "MlfortRunRunFacet": {
            "description": "The run as mlfort's ledger recorded it.",
            "type": "object",
            "properties": {
                "_producer": {"type": "string", "format": "uri"},
                "_schemaURL": {"type": "string", "format": "uri"},
                "runId": {"type": "string", "description": "The run id as recorded (runId is derived from it)."},
                "actor": {"type": "string"},
                "environment": {"type": "string"},
                "ledgerEntries": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            },
            "required": ["_producer", "_schemaURL", "runId", "ledgerEntries"],
            "additionalProperties": True,
        },
    },
}


def run_uuid(run_id: str) -> str:
    """The OpenLineage runId for a run id: itself when it is a UUID (in canonical form), else its UUIDv5."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(RUN_ID_NAMESPACE, run_id))


def dataset_identity(ref: ArtifactRef) -> tuple[str, str]:
    """(namespace, name) of an artifact by the OpenLineage naming conventions, from its recorded location."""
    if not ref.uri:
        return DEFAULT_NAMESPACE, ref.name or ref.digest
    parts = urlsplit(ref.uri)
    if parts.scheme == "file":
        local = not parts.netloc or parts.netloc == "localhost"
        return ("file" if local else f"file://{parts.netloc}"), unquote(parts.path)
    # A one-letter scheme is a Windows drive (C:\\data), not a URL; no scheme is a local path.
    if len(parts.scheme) > 1 and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"
    return "file", ref.uri


def _facet(schema_url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema_url, **fields}


def _dataset(ref: ArtifactRef) -> dict[str, Any]:
    namespace, name = dataset_identity(ref)
    artifact: dict[str, Any] = {"digest": ref.digest, "kind": ref.kind}
    if ref.name:
        artifact["name"] = ref.name
    if ref.uri:
        artifact["uri"] = ref.uri
    return {
        "namespace": namespace,
        "name": name,
        "facets": {
            "version": _facet(VERSION_FACET_URL, datasetVersion=ref.digest),
            "mlfort_artifact": _facet(f"{FACETS_URL}#/$defs/MlfortArtifactDatasetFacet", **artifact),
        },
    }


def events_for(run: RunNode, *, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
    """The RunEvents of one run: START (when its start was recorded), then COMPLETE, or FAIL if it failed."""
    mlfort_run: dict[str, Any] = {"runId": run.run_id, "actor": run.actor, "ledgerEntries": list(run.entries)}
    if run.environment:
        mlfort_run["environment"] = run.environment
    run_obj = {
        "runId": run_uuid(run.run_id),
        "facets": {
            "processing_engine": _facet(ENGINE_FACET_URL, version=__version__, name="mlfort"),
            "mlfort_run": _facet(f"{FACETS_URL}#/$defs/MlfortRunRunFacet", **mlfort_run),
        },
    }
    job = {"namespace": namespace, "name": run.job or run.run_id}
    inputs = [_dataset(r) for r in run.reads]
    events = []
    if run.started:
        events.append({"eventType": "START", "eventTime": run.started, "run": run_obj, "job": job, "inputs": inputs,
                       "outputs": [], "producer": PRODUCER, "schemaURL": SCHEMA_URL})
    events.append({
        "eventType": "COMPLETE" if run.outcome == "success" else "FAIL",
        "eventTime": run.finished,
        "run": run_obj,
        "job": job,
        "inputs": inputs,
        "outputs": [_dataset(w) for w in run.writes],
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    })
    return events


def openlineage_events(ledger: Ledger, run_id: str, *, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
    """OpenLineage RunEvents for the run recorded under `run_id`. Raises NotInLedger when no run has that id."""
    run = run_node(ledger, run_id)
    if run is None:
        raise NotInLedger(f"no run {run_id!r} in the ledger (no run.finish event has that run id)")
    return events_for(run, namespace=namespace)

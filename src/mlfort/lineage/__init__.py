"""Lineage from the ledger: which data trained which model, and where that model runs.

Public face:

- `build_lineage(ledger, digests, direction=...)` -> `LineageGraph` (forward: what was made from the data and where
  it is deployed; backward: what went into a model and where it runs), `resolve(ledger, name_or_digest)` for the
  digests (versions) a name stands for, `run_node(ledger, run_id)` for one run;
- `run_event` and `deploy_event`: the `run.finish` and `model.deploy` events lineage is built from;
- `slsa_provenance(ledger, model)` -> `Provenance` (a SLSA provenance v1 in-toto statement);
- `openlineage_events(ledger, run_id)` -> OpenLineage RunEvents;
- `render(graph, "table" | "json" | "mermaid" | "dot")`.
"""

from __future__ import annotations

from mlfort.lineage.graph import (
    DEPLOY_ACTIONS,
    MAX_DEPTH,
    MAX_NODES,
    RUN_ACTIONS,
    ArtifactNode,
    DeploymentNode,
    Direction,
    Edge,
    LineageGraph,
    Node,
    NotInLedger,
    RunNode,
    build_lineage,
    deploy_event,
    is_digest,
    resolve,
    run_event,
    run_node,
    short_digest,
)
from mlfort.lineage.openlineage import openlineage_events, run_uuid
from mlfort.lineage.provenance import Provenance, slsa_provenance
from mlfort.lineage.render import FORMATS, render

__all__ = [
    "DEPLOY_ACTIONS", "FORMATS", "MAX_DEPTH", "MAX_NODES", "RUN_ACTIONS", "ArtifactNode", "DeploymentNode",
    "Direction", "Edge", "LineageGraph", "Node", "NotInLedger", "Provenance", "RunNode", "build_lineage",
    "deploy_event", "is_digest", "openlineage_events", "render", "resolve", "run_event", "run_node", "run_uuid",
    "short_digest", "slsa_provenance",
]

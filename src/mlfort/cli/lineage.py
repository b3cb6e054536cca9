"""`mlfort lineage ...`: which data trained which model, and where it runs (read from the ledger)."""

from __future__ import annotations

import json
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from mlfort.ledger import Ledger
    from mlfort.ledger.event import ArtifactRef

app = typer.Typer(
    help=(
        "Lineage from the ledger: dataset digests -> run -> model digest -> deployment.\n\n"
        "Example:\n\n"
        "  mlfort lineage show churn-model --format mermaid"
    ),
    no_args_is_help=True,
)

LEDGER_OPTION = typer.Option(
    None, "--ledger", help="Ledger URL (sqlite:///path or postgresql://...). Default: MLFORT_LEDGER_URL, the "
    "deployed policy's ledger, or $MLFORT_HOME/ledger.db."
)
SPEC_HELP = "PATH, NAME=PATH (NAME as in the policy), or NAME@sha256:<hex> for an artifact that is not at hand."

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIGEST_TAIL = re.compile(r"(.*)@((?:sha256|sha384|sha512|blake3|blake2b):[0-9a-f]{32,128})")


class ShowFormat(StrEnum):
    table = "table"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


def artifact_ref(spec: str, kind: str, option: str) -> tuple[ArtifactRef, str]:
    """An ArtifactRef from `PATH`, `NAME=PATH`, `NAME@DIGEST` or `DIGEST`, and how its digest was obtained.

    A path is named by `artifact_digest` (its signature's root digest, or a computed one); its location is recorded
    resolved, as `artifacts sign` records it, so the record means the same whichever directory the next command
    runs in.
    """
    from mlfort.artifacts import artifact_digest
    from mlfort.cli.progress import byte_progress
    from mlfort.ledger.event import ArtifactRef
    from mlfort.lineage import is_digest

    text = spec.strip()
    if is_digest(text):
        return ArtifactRef(text, kind=kind), "given"
    m = _DIGEST_TAIL.fullmatch(text)
    if m:
        name = m.group(1) or None
        if name is not None and not _NAME.fullmatch(name):
            raise typer.BadParameter(f"{spec!r}: {name!r} is not a name (letters, digits, '.', '_', '-')",
                                     param_hint=option)
        return ArtifactRef(m.group(2), name=name, kind=kind), "given"
    name, path_text = None, text
    left, sep, right = text.partition("=")
    if sep and _NAME.fullmatch(left) and right and not Path(text).exists():
        name, path_text = left, right
    path = Path(path_text)
    with byte_progress(f"hashing {path.name}") as (on_plan, advance):
        found = artifact_digest(path, progress=advance, on_plan=on_plan)
    how = f"from its signature {found.signature}" if found.signed else f"computed over {found.files} file(s)"
    return ArtifactRef(found.digest, name=name, kind=kind, uri=str(path.resolve())), how


def _refs(specs: list[str], kind: str, option: str) -> list[tuple[ArtifactRef, str]]:
    return [artifact_ref(s, kind, option) for s in specs]


def _describe(role: str, ref: ArtifactRef, how: str) -> str:
    return f"  {role:<6} {ref.kind:<8} {ref.name or '-'}  {ref.digest}  ({how})"


@app.command("record-run")
def record_run(
    run_id: str = typer.Option(..., "--run-id", help="The run's id (the pipeline's or tracker's run id)."),
    inputs: list[str] = typer.Option([], "--input", "-i", help=f"A dataset the run read (repeatable): {SPEC_HELP}"),
    base_models: list[str] = typer.Option(
        [], "--base-model", help="A model the run read, e.g. the model it fine-tuned (repeatable); same forms."
    ),
    outputs: list[str] = typer.Option([], "--output", help="A model the run wrote (repeatable); same forms."),
    output_datasets: list[str] = typer.Option(
        [], "--output-dataset", help="A dataset the run wrote, e.g. by a preprocessing step (repeatable)."
    ),
    environment: str = typer.Option(None, "--environment", "-e", help="The policy environment it ran in."),
    job: str = typer.Option(None, "--job", help="The pipeline step this run is an instance of (e.g. train-churn)."),
    command: str = typer.Option(None, "--command", help="What ran (kept in the event; never put secrets here)."),
    started: str = typer.Option(None, "--started", help="When it started: RFC 3339, a date, or -2h."),
    ledger: str = LEDGER_OPTION,
) -> None:
    """Record a finished training run or pipeline step: what it read and wrote, by digest.

    Inputs are datasets (--input) and base models (--base-model); outputs are models (--output) and datasets
    (--output-dataset). A signed artifact is named by its signature's root digest (read, not verified: run
    `mlfort artifacts verify` first); an unsigned one by a digest computed as signing would.

    Example: mlfort lineage record-run --run-id 2026-11-23-a --input customers=data/customers --output churn-model=models/churn --environment onprem
    """  # noqa: E501 - an example command reads best on one line
    from mlfort import settings
    from mlfort.ledger import record
    from mlfort.ledger.event import parse_time
    from mlfort.lineage import run_event

    reads = _refs(inputs, "dataset", "--input") + _refs(base_models, "model", "--base-model")
    writes = _refs(outputs, "model", "--output") + _refs(output_datasets, "dataset", "--output-dataset")
    if not reads and not writes:
        raise typer.BadParameter("give what the run read (--input) and wrote (--output)", param_hint="--input")
    event = run_event(run_id, actor=settings.local_actor(), reads=[r for r, _ in reads], writes=[w for w, _ in writes],
                      environment=environment, job=job, command=command,
                      started=parse_time(started) if started else None)
    index = record(event, url=ledger)[0]
    lines = [f"recorded run {run_id} (ledger entry {index})"]
    lines += [_describe("read", r, how) for r, how in reads] + [_describe("wrote", w, how) for w, how in writes]
    typer.echo("\n".join(lines))


@app.command("record-deploy")
def record_deploy(
    model: str = typer.Argument(..., help=f"The deployed model: {SPEC_HELP}"),
    endpoint: str = typer.Option(..., "--endpoint", help="The endpoint's name (e.g. churn-api)."),
    url: str = typer.Option(None, "--url", help="Where the endpoint serves."),
    environment: str = typer.Option(..., "--environment", "-e", help="The policy environment of the endpoint."),
    run_id: str = typer.Option(None, "--run-id", help="The pipeline run that deployed it, if any."),
    ledger: str = LEDGER_OPTION,
) -> None:
    """Record that a model now serves behind an endpoint in an environment.

    Lineage uses it to say where each model, and so each dataset, is in use.

    Example: mlfort lineage record-deploy churn-model=models/churn --endpoint churn-api --url https://ml.example/churn --environment aws
    """  # noqa: E501 - an example command reads best on one line
    from mlfort import settings
    from mlfort.ledger import record
    from mlfort.lineage import deploy_event

    ref, how = artifact_ref(model, "model", "MODEL")
    event = deploy_event(ref, endpoint=endpoint, actor=settings.local_actor(), environment=environment, url=url,
                         run_id=run_id)
    index = record(event, url=ledger)[0]
    typer.echo(f"recorded deployment to {endpoint} in {environment} (ledger entry {index})\n"
               + _describe("model", ref, how))


def _subjects(ledger_obj: Ledger, ref: str) -> tuple[str, ...]:
    """The digests ARG stands for: a digest, every version of a name, or the digest of an existing path."""
    from mlfort.artifacts import artifact_digest
    from mlfort.lineage import resolve

    digests = resolve(ledger_obj, ref)
    if not digests and Path(ref).exists():
        digests = (artifact_digest(Path(ref)).digest,)
    return digests


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="A name (every version of it), a digest sha256:<hex>, or a path."),
    forward: bool = typer.Option(
        None, "--forward/--reverse", help="Only downstream (what was made from it, where it is deployed), or only "
        "upstream (what went into it, where it runs). Default: both."
    ),
    fmt: ShowFormat = typer.Option(ShowFormat.table, "--format", "-f", help="table, json, mermaid or dot."),
    max_depth: int = typer.Option(16, "--max-depth", min=0, help="Runs to follow in each direction."),
    max_nodes: int = typer.Option(500, "--max-nodes", min=1, help="Stop after this many nodes (noted)."),
    output: Path = typer.Option(None, "--output", "-o", dir_okay=False, help="Write to this file instead."),
    ledger: str = LEDGER_OPTION,
) -> None:
    """Show what went into a model and where it runs, or what was made from a dataset and where it is deployed.

    Backward (--reverse): the runs, datasets and base models behind it. Forward (--forward): the runs that read
    it, the models they wrote and where those are deployed (what an erasure request needs). Both by default, and
    transitive: a model fine-tuned from a model trained on the data is included. Exit 1 if the ledger knows
    nothing about it.

    Example: mlfort lineage show customers --forward --format json

    Example: mlfort lineage show churn-model --format mermaid -o lineage.mmd
    """
    from mlfort.ledger import open_ledger
    from mlfort.lineage import NotInLedger, build_lineage, render

    direction = "both" if forward is None else "forward" if forward else "backward"
    with open_ledger(ledger, sign=False) as opened:
        digests = _subjects(opened, ref)
        graph = build_lineage(opened, digests, direction=direction, max_depth=max_depth, max_nodes=max_nodes)
    if not graph.known:
        raise NotInLedger(f"the ledger knows nothing about {ref!r}: no event read or wrote it (sign it, or record a "
                          "run with `mlfort lineage record-run`)")
    versions = f" ({len(digests)} versions)" if len(digests) > 1 else ""
    text = render(graph, fmt.value, title=f"lineage of {ref}{versions}",
                  color=output is None and fmt is ShowFormat.table and sys.stdout.isatty())
    _write(text, output)


def _write(text: str, output: Path | None) -> None:
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@app.command("provenance")
def provenance(
    model: str = typer.Argument(..., help="The model: a name (its latest version) or a digest sha256:<hex>."),
    run_id: str = typer.Option(None, "--run-id", help="The run to name when several wrote the same digest."),
    output: Path = typer.Option(None, "--output", "-o", dir_okay=False, help="Write to this file instead."),
    ledger: str = LEDGER_OPTION,
) -> None:
    """Write SLSA provenance v1 for a model (an unsigned in-toto Statement v1).

    It names the run that produced the model, the datasets and base models that run read (uri and digest), and
    when and where it ran. Exit 1 if no run in the ledger wrote it.

    Example: mlfort lineage provenance churn-model -o churn-model.provenance.json
    """
    from mlfort.ledger import open_ledger
    from mlfort.lineage import slsa_provenance

    with open_ledger(ledger, sign=False) as opened:
        result = slsa_provenance(opened, model, run_id=run_id)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    _write(result.to_json(), output)


@app.command("openlineage")
def openlineage(
    run_id: str = typer.Argument(..., help="The run id it was recorded under."),
    namespace: str = typer.Option("mlfort", "--namespace", help="The OpenLineage job namespace."),
    output: Path = typer.Option(None, "--output", "-o", dir_okay=False, help="Write to this file instead."),
    ledger: str = LEDGER_OPTION,
) -> None:
    """Write the OpenLineage RunEvents of a recorded run, as JSON Lines.

    START (when the run recorded its start), then COMPLETE or FAIL: ready to send to Marquez or any OpenLineage
    endpoint. Exit 1 if no run has that id.

    Example: mlfort lineage openlineage 2026-11-23-a -o run.jsonl
    """
    from mlfort.ledger import open_ledger
    from mlfort.lineage import openlineage_events

    with open_ledger(ledger, sign=False) as opened:
        events = openlineage_events(opened, run_id, namespace=namespace)
    _write("".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events), output)

"""Lineage graphs for people and tools: a table, JSON, a Mermaid flowchart, a Graphviz digraph.

Names, paths and run ids come from the ledger, and the ledger records what callers said: a name may hold quotes,
brackets, newlines, terminal escapes or Mermaid/DOT syntax. Diagram ids are generated (`n0`, `n1`, ...), never
taken from names; every label is escaped for its format and cut to a bounded length, so a hostile name is shown as
text and cannot end a label, add a node or an edge, or inject a directive or a click handler.
"""

from __future__ import annotations

import json
import shutil
from io import StringIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlfort.lineage.graph import ArtifactNode, LineageGraph, Node, RunNode, short_digest
from mlfort.report.render.table import printable, shorten

FORMATS = ("table", "json", "mermaid", "dot")
PLAIN_WIDTH = 120
"""Table width without colour (files, pipes, tests), so the output does not depend on a terminal."""
LABEL_CHARS = 60
"""Longest text of one label line in a diagram before it is cut with an ellipsis."""


def _order(graph: LineageGraph) -> list[Node]:
    """Subjects, then upstream nearest first, then downstream nearest first (the walk's order among equals)."""
    rank = {"subject": 0, "upstream": 1, "downstream": 2}
    nodes = list(graph.nodes.values())
    return sorted(nodes, key=lambda n: (rank[n.side], n.depth))


def _lines(graph: LineageGraph, node: Node) -> list[str]:
    """A node's diagram label as lines of plain text (unescaped): what it is, then how to tell it apart."""
    if isinstance(node, ArtifactNode):
        more = [short_digest(node.digest)] if node.names else []
        if len(node.names) > 1:
            more.append("also " + ", ".join(node.names[1:3]) + (" …" if len(node.names) > 3 else ""))
        return [f"{node.kind}: {node.label}", *more]
    if isinstance(node, RunNode):
        where = " · ".join(x for x in (node.job, node.environment, node.finished[:10]) if x)
        return [f"run: {node.run_id}", *([where] if where else []), *(["FAILED"] if node.outcome != "success" else [])]
    env = node.environment or "no environment"
    if node.current is None:
        return [f"endpoint: {node.endpoint}", env]
    # The endpoint may since have been given a model that did not come from the subjects.
    now = "current" if f"artifact:{node.current}" in graph.nodes else "replaced"
    return [f"endpoint: {node.endpoint}", f"{env} · {now}"]


# -- table ------------------------------------------------------------------------------------------------------------
def _details(graph: LineageGraph, node: Node) -> str:
    if isinstance(node, ArtifactNode):
        parts = list(node.uris[:2])
        if len(node.uris) > 2:
            parts.append(f"(+{len(node.uris) - 2} more locations)")
        if node.signed:
            parts.append("signed")
        if node.verified == "success":
            parts.append("verified")
        elif node.verified == "failure":
            parts.append("VERIFY FAILED")
        if len(node.names) > 1:
            parts.append("also named " + ", ".join(node.names[1:]))
        return "\n".join(parts)
    if isinstance(node, RunNode):
        parts = [" · ".join(x for x in (node.environment, node.actor) if x), f"finished {node.finished}"]
        if node.command:
            parts.append(f"command: {node.command}")
        if node.outcome != "success":
            parts.append("FAILED")
        return "\n".join(parts)
    parts = [node.environment or "no environment"]
    if node.url:
        parts.append(node.url)
    if node.current is not None:
        in_graph = f"artifact:{node.current}" in graph.nodes
        parts.append("serves it now" if in_graph else f"now serves {short_digest(node.current)} (another model)")
    parts.append(f"deployed {node.time}")
    if node.outcome != "success":
        parts.append("deployment FAILED")
    return "\n".join(parts)


def _identity(node: Node) -> str:
    if isinstance(node, ArtifactNode):
        return short_digest(node.digest)
    if isinstance(node, RunNode):
        return f"run {node.run_id}"
    return node.id


def _name(node: Node) -> str:
    if isinstance(node, ArtifactNode):
        return node.names[0] if node.names else "-"
    if isinstance(node, RunNode):
        return node.job or node.run_id
    return node.endpoint


def _kind(node: Node) -> str:
    if isinstance(node, ArtifactNode):
        return node.kind
    return "run" if isinstance(node, RunNode) else "deployment"


def summary(graph: LineageGraph) -> str:
    """One line answering both questions: what went in, what came out, where it runs."""
    up = graph.artifacts(side="upstream")
    down = graph.artifacts(side="downstream")
    deployments = graph.deployments()

    def count(nodes: list[ArtifactNode]) -> str:
        kinds: dict[str, int] = {}
        for n in nodes:
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
        return ", ".join(f"{v} {k}{'s' if v != 1 else ''}" for k, v in kinds.items()) or "nothing"

    parts = []
    if graph.direction in ("backward", "both"):
        parts.append(f"upstream: {count(up)} via {len(graph.runs(side='upstream'))} run(s)")
    if graph.direction in ("forward", "both"):
        parts.append(f"downstream: {count(down)} via {len(graph.runs(side='downstream'))} run(s)")
    parts.append(f"deployed at {len(deployments)} endpoint(s)")
    return "; ".join(parts)


def render_table(graph: LineageGraph, *, title: str = "", color: bool = False, width: int | None = None) -> str:
    """A table of every node, subjects first, then upstream and downstream by distance; notes and a summary below.

    With `color=False` the text is plain (no ANSI escapes), PLAIN_WIDTH wide.
    """
    if width is None:
        width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns if color else PLAIN_WIDTH
    buffer = StringIO()
    console = Console(file=buffer, width=max(width, 60), force_terminal=color, no_color=not color,
                      color_system="auto" if color else None, highlight=False, emoji=False, markup=False,
                      legacy_windows=False)
    table = Table(title=Text(printable(title or "mlfort lineage"), style="bold"), title_justify="left",
                  box=box.ROUNDED if color else box.ASCII, show_lines=True, expand=False)
    table.add_column("Lineage", no_wrap=True)
    table.add_column("Kind", no_wrap=True)
    table.add_column("Name / job", overflow="fold", ratio=2)
    table.add_column("Digest / id", overflow="fold", ratio=2)
    table.add_column("Where, when", overflow="fold", ratio=3)
    for node in _order(graph):
        where = node.side if node.depth == 0 else f"{node.side} {node.depth}"
        # Text objects, never markup strings: a "[bold]" in a name is text, not styling.
        table.add_row(Text(where), Text(_kind(node)), Text(printable(shorten(_name(node), 80))),
                      Text(printable(_identity(node))), Text(printable(_details(graph, node), keep_newlines=True)))
    console.print(table)
    console.print(Text(summary(graph), style="bold"))
    for note in graph.notes:
        console.print(Text(f"note: {printable(note)}", style="yellow"))
    text = buffer.getvalue()
    if not color:
        text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    return text


# -- JSON -------------------------------------------------------------------------------------------------------------
def render_json(graph: LineageGraph) -> str:
    """The graph as indented JSON (`LineageGraph.to_dict`)."""
    return json.dumps(graph.to_dict(), indent=2, ensure_ascii=False) + "\n"


# -- Mermaid ----------------------------------------------------------------------------------------------------------
_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;"}


def mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: entity codes for the characters Mermaid or HTML would read, control
    characters shown as escapes, no line breaks, bounded length."""
    plain = printable(shorten(text.replace("\n", " ").replace("\r", " "), LABEL_CHARS))
    return "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in plain)


_MERMAID_SHAPES = {"dataset": ('[("', '")]'), "run": ('(["', '"])'), "deployment": ('{{"', '"}}')}
_MERMAID_CLASSES = {
    "dataset": "fill:#e8f1fb,stroke:#3b6ea8",
    "model": "fill:#eaf6ea,stroke:#3d8b3d",
    "run": "fill:#f5f5f5,stroke:#777",
    "deployment": "fill:#fff4e0,stroke:#c07a00",
    "subject": "stroke-width:3px",
}


def render_mermaid(graph: LineageGraph) -> str:
    """A Mermaid `flowchart LR`: datasets as cylinders, models as boxes, runs as stadiums, endpoints as hexagons,
    the subjects outlined thick."""
    ids = {node_id: f"n{i}" for i, node_id in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    classes: dict[str, list[str]] = {}
    for node_id, node in graph.nodes.items():
        kind = _kind(node)
        style = kind if kind in _MERMAID_CLASSES else "model"
        shape = _MERMAID_SHAPES.get(kind if kind in ("dataset", "run", "deployment") else "", ('["', '"]'))
        label = "<br/>".join(mermaid_text(line) for line in _lines(graph, node))
        lines.append(f"  {ids[node_id]}{shape[0]}{label}{shape[1]}")
        classes.setdefault(style, []).append(ids[node_id])
        if node.side == "subject":
            classes.setdefault("subject", []).append(ids[node_id])
    for edge in graph.edges:
        if edge.source in ids and edge.target in ids:
            lines.append(f"  {ids[edge.source]} -->|{edge.relation}| {ids[edge.target]}")
    for name, members in classes.items():
        lines.append(f"  classDef {name} {_MERMAID_CLASSES[name]}")
        lines.append(f"  class {','.join(members)} {name}")
    return "\n".join(lines) + "\n"


# -- Graphviz ---------------------------------------------------------------------------------------------------------
def dot_text(text: str) -> str:
    """Text safe inside a double-quoted DOT string: backslashes and quotes escaped (so `\\N`, `\\G` and friends are
    not expanded), no raw line breaks or control characters, bounded length."""
    plain = printable(shorten(text.replace("\n", " ").replace("\r", " "), LABEL_CHARS))
    return plain.replace("\\", "\\\\").replace('"', '\\"')


_DOT_SHAPES = {"dataset": "cylinder", "run": "ellipse", "deployment": "hexagon"}


def render_dot(graph: LineageGraph) -> str:
    """A Graphviz digraph, left to right, shaped like the Mermaid chart."""
    ids = {node_id: f"n{i}" for i, node_id in enumerate(graph.nodes)}
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for node_id, node in graph.nodes.items():
        kind = _kind(node)
        label = "\\n".join(dot_text(line) for line in _lines(graph, node))
        attrs = [f'label="{label}"', f"shape={_DOT_SHAPES.get(kind, 'box')}"]
        if node.side == "subject":
            attrs.append("penwidth=3")
        lines.append(f"  {ids[node_id]} [{', '.join(attrs)}];")
    for edge in graph.edges:
        if edge.source in ids and edge.target in ids:
            lines.append(f'  {ids[edge.source]} -> {ids[edge.target]} [label="{dot_text(edge.relation)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(graph: LineageGraph, fmt: str, *, title: str = "", color: bool = False) -> str:
    """The graph in one of FORMATS."""
    if fmt == "table":
        return render_table(graph, title=title, color=color)
    if fmt == "json":
        return render_json(graph)
    if fmt == "mermaid":
        return render_mermaid(graph)
    if fmt == "dot":
        return render_dot(graph)
    raise ValueError(f"unknown lineage format {fmt!r}; choose one of {', '.join(FORMATS)}")

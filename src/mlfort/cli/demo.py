"""`mlfort demo`: the main job, end to end, in a temp dir on embedded defaults."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def demo(
    workdir: Path = typer.Option(
        None, "--workdir", help="Run in this directory and keep it (default: a temp dir, removed afterwards)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the story's steps as JSON instead of prose."),
) -> None:
    """Run the whole story on embedded defaults: policy, dataset, model, sign, verify, tamper, caught.

    Exit 0 when every step turns out as it must (the tampered model is caught), 1 otherwise.

    Example: mlfort demo --workdir /tmp/mlfort-demo
    """
    from rich.console import Console

    from mlfort.demo import run_demo

    console = Console(file=sys.stderr if as_json else sys.stdout, highlight=False, soft_wrap=True)
    story = run_demo(workdir, console=console)
    if as_json:
        sys.stdout.write(json.dumps({"workdir": str(story.workdir), "steps": story.steps}, indent=2) + "\n")

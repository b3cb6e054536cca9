"""`mlfort sbom`: a CycloneDX 1.6 SBOM of a Python environment or project, or an ML-BOM of a signed model."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from mlfort.ledger import Ledger


def sbom(
    target: Path = typer.Argument(None, help="A venv, a site-packages folder, a requirements or lock file, or a "
                                  "project folder. Default: the running Python environment."),
    model: Path = typer.Option(None, "--model", "-m", help="Write an ML-BOM of this signed model folder instead.",
                               file_okay=False),
    name: str = typer.Option(None, "--name", help="The model's name in the policy (default: the folder name)."),
    policy: Path = typer.Option(None, "--policy", "-p", dir_okay=False,
                                help="Policy file whose datasets (trained_on) the ML-BOM names (default: "
                                "MLFORT_POLICY)."),
    ledger: str = typer.Option(None, "--ledger", help="Ledger URL whose lineage names the datasets that trained "
                               "the model (default: MLFORT_LEDGER_URL, the policy's ledger.url, then "
                               "$MLFORT_HOME/ledger.db when it exists)."),
    output: Path = typer.Option(None, "--output", "-o", dir_okay=False,
                                help="Write the document here instead of standard output."),
) -> None:
    """Write a CycloneDX 1.6 bill of materials (JSON).

    For an environment or project: every Python package with its version, purl, licences, hashes (from lock and
    requirements files) and dependencies. With --model: an ML-BOM whose subject is the machine-learning-model, with
    each file and its digest from the signed manifest, the model card, and the datasets it was trained on (from the
    policy and the ledger's lineage).

    Exit codes: 0 written; 1 the model's signature does not verify as a manifest; 2 bad input (no signature, a path
    that does not exist).

    Examples:

      mlfort sbom .venv -o sbom.cdx.json

      mlfort sbom --model models/churn --policy mlfort.yaml --name churn-model -o churn.mlbom.json
    """
    from mlfort import settings
    from mlfort.errors import InputError
    from mlfort.sbom import build_mlbom, build_sbom

    if model is not None and target is not None:
        raise typer.BadParameter("give TARGET or --model DIR, not both", param_hint="--model")
    if model is None:
        document = build_sbom(target if target is not None else Path(sys.prefix))
    else:
        if not model.is_dir():
            raise InputError(f"{model}: no such model folder")
        chosen = policy or settings.deployed_policy()
        loaded = None
        if chosen is not None:
            from mlfort.policy import load_policy

            loaded = load_policy(chosen)
        with _maybe_ledger(ledger, chosen) as opened:
            document = build_mlbom(model, policy=loaded, policy_dir=chosen.resolve().parent if chosen else None,
                                   name=name, ledger=opened)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
        kind = "ML-BOM" if model is not None else "SBOM"
        typer.echo(f"wrote {kind} {output} ({len(document.get('components', []))} components)", err=True)
    else:
        sys.stdout.write(text)


@contextmanager
def _maybe_ledger(url: str | None, policy: Path | None) -> Iterator[Ledger | None]:
    """The ledger to read lineage from, or None when none has been created yet (an SBOM never creates one)."""
    from mlfort.ledger import open_ledger
    from mlfort.ledger.open import ledger_url

    resolved, base = ledger_url(url, policy=policy)
    if resolved.startswith("sqlite:///"):
        file = Path(resolved.removeprefix("sqlite:///"))
        if not (file if file.is_absolute() else base / file).is_file():
            yield None
            return
    with open_ledger(url, policy=policy, sign=False) as ledger:
        yield ledger

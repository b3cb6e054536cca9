"""`mlfort scan ...`: scanners. `scan models` finds model files that would run code when loaded."""

from __future__ import annotations

from pathlib import Path

import typer

from mlfort.cli.output import FORMAT_OPTION, OUTPUT_OPTION, OutputFormat, emit

app = typer.Typer(
    help=(
        "Scan models (and, later, dependencies, secrets and PII) without loading or running anything.\n\n"
        "Example:\n\n"
        "  mlfort scan models models/ --format sarif -o scan.sarif"
    ),
    no_args_is_help=True,
)


@app.command("models")
def models(
    paths: list[Path] = typer.Argument(..., help="Model files or folders (scanned recursively)."),
    workers: int = typer.Option(None, "--workers", "-j", help="Processes for many files (default: one per core).",
                                min=1),
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = typer.Option(
        "medium", "--fail-on", help="Exit 1 when any finding is at or above this severity: info, low, medium, high, "
        "critical. Default medium: an unrecognised file (low) is reported but does not fail the run."
    ),
) -> None:
    """Find model files that would run code when loaded: pickle, PyTorch (zip and legacy), joblib, NumPy, Keras
    (.keras, .h5), ONNX, safetensors, GGUF; inside zip, tar and compressed files too. Formats are identified by
    content, not by name; nothing is loaded or executed.

    Exit codes: 0 clean; 1 findings at or above --fail-on; 2 a path cannot be read.

    Example: mlfort scan models models/churn --format json
    """
    from mlfort.cli.progress import count_progress
    from mlfort.scan.engine import scan_paths

    with count_progress("scanning", 0) as advance:
        report = scan_paths(paths, workers=workers, progress=advance)
    code = emit(list(report.findings), fmt=fmt, output=output, fail_on=fail_on,
                title=f"mlfort scan models {' '.join(str(p) for p in paths)}", summary=report.summary())
    raise typer.Exit(code)

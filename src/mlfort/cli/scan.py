"""`mlfort scan ...`: scanners. Models that would run code when loaded, vulnerable or unpinned dependencies, secrets
in code and notebooks, PII in datasets; `scan all` runs every one over a folder."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlfort.cli.output import FORMAT_OPTION, OUTPUT_OPTION, OutputFormat, emit, load_policy_option

if TYPE_CHECKING:
    from mlfort.policy.schema import Policy
    from mlfort.report import Finding

app = typer.Typer(
    help=(
        "Scan models, dependencies, secrets and PII without loading or running anything.\n\n"
        "Examples:\n\n"
        "  mlfort scan models models/ --format sarif -o scan.sarif\n\n"
        "  mlfort scan deps requirements.txt --osv-db PyPI-all.zip\n\n"
        "  mlfort scan secrets . --allowlist .mlfort-secrets-allow.yaml\n\n"
        "  mlfort scan pii data/customers --policy mlfort.yaml\n\n"
        "  mlfort scan all . --policy mlfort.yaml --format sarif -o mlfort.sarif"
    ),
    no_args_is_help=True,
)

PATHS = typer.Argument(..., help="Files or folders (folders are searched recursively).")
POLICY_OPTION = typer.Option(
    None, "--policy", "-p", help="The policy file (default: MLFORT_POLICY): its `scan` settings and dataset "
    "classifications apply.", dir_okay=False,
)
OSV_OPTION = typer.Option(
    None, "--osv-db", help="Offline OSV database, the PyPI all.zip from osv-vulnerabilities.storage.googleapis.com "
    "(default: MLFORT_OSV_DB, the policy's scan.osv_db, then $MLFORT_HOME/osv/PyPI-all.zip). With none and no "
    "--online, versions cannot be checked: that is a finding (exit 1), never a pass.", dir_okay=False,
)
ONLINE_OPTION = typer.Option(
    False, "--online", help="Also look versions up live through pip-audit's services (needs mlfort[audit]); an "
    "unreachable service is a 'could not check' finding, never a pass.",
)
ALLOWLIST_OPTION = typer.Option(
    None, "--allowlist", help="YAML file of accepted secret findings, each with a reason (default: the policy's "
    "scan.secrets_allowlist, then .mlfort-secrets-allow.yaml in the scanned folder).", dir_okay=False,
)
SAMPLE_OPTION = typer.Option(
    None, "--sample-rows", min=100, help="Rows sampled per dataset file, spread over the whole file (default: the "
    "policy's scan.pii_sample_rows, else 10,000). The sampling is stated in every finding.",
)
FULL_OPTION = typer.Option(False, "--full", help="Read every row instead of a sample.")
DATASET_OPTION = typer.Option(
    None, "--dataset", help="The dataset name in the policy these files belong to (default: the dataset whose "
    "location holds each file).",
)
RECORD_OPTION = typer.Option(
    False, "--record", help="Record the scan and its outcome in the ledger (fails, exit 2, if it cannot be recorded).",
)
LEDGER_OPTION = typer.Option(None, "--ledger", help="Ledger URL for --record (default: MLFORT_LEDGER_URL, the "
                             "policy's ledger.url, then $MLFORT_HOME/ledger.db).")


def _fail_on(default: str, what: str) -> str:
    return typer.Option(default, "--fail-on", help=f"Exit 1 when any finding is at or above this severity: info, "
                        f"low, medium, high, critical. Default {default}: {what}")


@app.command("models")
def models(
    paths: list[Path] = PATHS,
    workers: int = typer.Option(None, "--workers", "-j", help="Processes for many files (default: one per core).",
                                min=1),
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = _fail_on("medium", "an unrecognised file (low) is reported but does not fail the run."),
    record: bool = RECORD_OPTION,
    ledger: str = LEDGER_OPTION,
) -> None:
    """Find model files that would run code when loaded: pickle, PyTorch (zip and legacy), joblib, NumPy, Keras
    (.keras, .h5), ONNX, safetensors, GGUF; inside zip, tar and compressed files too. Formats are identified by
    content, not by name; nothing is loaded or executed.

    Exit codes: 0 clean; 1 findings at or above --fail-on; 2 a path cannot be read.

    Example: mlfort scan models models/churn --format json
    """
    from mlfort.scan.engine import scan_paths

    with _progress("scanning model files") as advance:
        report = scan_paths(paths, workers=workers, progress=advance)
    _finish("models", paths, list(report.findings), report.summary(), fmt=fmt, output=output, fail_on=fail_on,
            record=record, ledger=ledger, policy=None)


@app.command("deps")
def deps(
    paths: list[Path] = PATHS,
    osv_db: Path = OSV_OPTION,
    online: bool = ONLINE_OPTION,
    policy: Path = POLICY_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = _fail_on("medium", "an unhashed pin (low) is reported but does not fail the run."),
    record: bool = RECORD_OPTION,
    ledger: str = LEDGER_OPTION,
) -> None:
    """Check Python dependencies: known-vulnerable and malicious versions (offline OSV database, optionally
    pip-audit online), unpinned and unhashed requirements, direct URLs. Reads requirements and constraints files,
    pyproject.toml, poetry.lock, uv.lock, Pipfile.lock, pylock.toml, pdm.lock, and installed environments (a venv
    or a site-packages folder).

    No database and no --online means the versions could not be checked: a finding (exit 1), never a silent pass.

    Exit codes: 0 clean; 1 findings at or above --fail-on; 2 a path or the database cannot be read.

    Example: mlfort scan deps requirements.txt .venv --osv-db ~/osv/PyPI-all.zip --format sarif -o deps.sarif
    """
    from mlfort.scan.dependencies import scan_deps

    loaded, base = load_policy_option(policy)
    with _progress("checking dependencies") as advance:
        result = scan_deps(paths, osv_db=_osv_db(osv_db, loaded, base), online=online, progress=advance)
    _finish("deps", paths, list(result.findings), result.summary(), fmt=fmt, output=output, fail_on=fail_on,
            record=record, ledger=ledger, policy=policy)


@app.command("secrets")
def secrets(
    paths: list[Path] = PATHS,
    allowlist: Path = ALLOWLIST_OPTION,
    policy: Path = POLICY_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = _fail_on("medium", "low-confidence hits are reported but do not fail the run."),
    record: bool = RECORD_OPTION,
    ledger: str = LEDGER_OPTION,
) -> None:
    """Find secrets in code, configs, notebooks (cell sources and outputs) and model files: cloud keys, private
    keys, API tokens, passwords in URLs and assignments, high-entropy strings next to secret-ish names. Every
    output shows only a redacted form and a fingerprint (sha256) of each secret, which the allowlist matches.

    Exit codes: 0 clean; 1 findings at or above --fail-on; 2 a path or the allowlist cannot be read.

    Example: mlfort scan secrets . --format sarif -o secrets.sarif
    """
    from mlfort.scan.secrets import scan_secrets

    loaded, base = load_policy_option(policy)
    allowlist = _allowlist(allowlist, loaded, base)
    with _progress("scanning for secrets") as advance:
        result = scan_secrets(paths, allowlist=allowlist, progress=advance)
    _finish("secrets", paths, list(result.findings), result.summary(), fmt=fmt, output=output, fail_on=fail_on,
            record=record, ledger=ledger, policy=policy)


@app.command("pii")
def pii(
    paths: list[Path] = PATHS,
    policy: Path = POLICY_OPTION,
    dataset: str = DATASET_OPTION,
    sample_rows: int = SAMPLE_OPTION,
    full: bool = FULL_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = _fail_on("high", "PII columns are reported (medium) and fail the run only when the policy does "
                            "not classify the dataset as pii (high), or a file could not be checked."),
    record: bool = RECORD_OPTION,
    ledger: str = LEDGER_OPTION,
) -> None:
    """Classify dataset columns that hold personal data: emails, phone numbers, payment cards (Luhn), IBANs
    (mod-97), national ids (with their check digits), IP addresses, names and more. Reads CSV/TSV, JSONL and
    Parquet. With a policy, a dataset holding PII that is not classified `pii` is a finding.

    No value is ever printed: findings carry counts, shares and masked shapes.

    Exit codes: 0 clean; 1 findings at or above --fail-on; 2 a path or the policy cannot be read.

    Example: mlfort scan pii data/customers --policy mlfort.yaml --dataset customers
    """
    from mlfort.scan.pii import scan_pii

    loaded, base = load_policy_option(policy)
    rows = _sample_rows(sample_rows, full, loaded)
    with _progress("scanning datasets for PII") as advance:
        result = scan_pii(paths, sample_rows=rows, policy=loaded, policy_dir=base, dataset=dataset, progress=advance)
    _finish("pii", paths, list(result.findings), result.summary(), fmt=fmt, output=output, fail_on=fail_on,
            record=record, ledger=ledger, policy=policy)


@app.command("all")
def scan_all(
    paths: list[Path] = PATHS,
    policy: Path = POLICY_OPTION,
    osv_db: Path = OSV_OPTION,
    online: bool = ONLINE_OPTION,
    allowlist: Path = ALLOWLIST_OPTION,
    sample_rows: int = SAMPLE_OPTION,
    full: bool = FULL_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
    output: Path = OUTPUT_OPTION,
    fail_on: str = _fail_on("medium", "see each scanner's help."),
    record: bool = RECORD_OPTION,
    ledger: str = LEDGER_OPTION,
) -> None:
    """Run every scanner over the paths and report once: model files (only files in a model format), dependencies,
    secrets and PII in datasets. Each scanner picks the files it reads.

    Exit codes: 0 clean; 1 findings at or above --fail-on; 2 a path, the policy, the database or the allowlist
    cannot be read.

    Example: mlfort scan all . --policy mlfort.yaml --format sarif -o mlfort.sarif
    """
    from mlfort.scan.dependencies import scan_deps
    from mlfort.scan.engine import scan_paths
    from mlfort.scan.pii import scan_pii
    from mlfort.scan.secrets import scan_secrets

    loaded, base = load_policy_option(policy)
    allowlist = _allowlist(allowlist, loaded, base)
    findings: list[Finding] = []
    summaries: list[str] = []
    with _progress("scanning") as advance:
        model_files = _model_files(paths)
        if model_files:
            report = scan_paths(model_files, progress=advance)
            findings += report.findings
            summaries.append(f"models: {report.summary()}")
        else:
            summaries.append("models: no model files")
        # A file named on the command line goes only to the scanners that read its kind (README.md is not a
        # requirements file); folders go to every scanner, which picks its own files.
        from mlfort.scan.dependencies.sources import kind_of as dependency_kind
        from mlfort.scan.pii.readers import kind_of as dataset_kind

        def only(keep: Callable[[Path], object]) -> list[Path]:
            return [p for p in paths if p.is_dir() or keep(p) is not None]

        for name, result in (
            ("deps", scan_deps(only(dependency_kind), osv_db=_osv_db(osv_db, loaded, base), online=online,
                               progress=advance)),
            ("secrets", scan_secrets(paths, allowlist=allowlist, progress=advance)),
            ("pii", scan_pii(only(dataset_kind), sample_rows=_sample_rows(sample_rows, full, loaded), policy=loaded,
                             policy_dir=base, progress=advance)),
        ):
            findings += result.findings
            summaries.append(f"{name}: {result.summary()}")
    _finish("all", paths, findings, "; ".join(summaries), fmt=fmt, output=output, fail_on=fail_on, record=record,
            ledger=ledger, policy=policy)


def _progress(description: str) -> AbstractContextManager[Callable[[int], None]]:
    """update(files done): a spinner with the count on a terminal once the scan has taken a second."""
    from mlfort.cli.progress import open_progress

    return open_progress(description)


def _osv_db(explicit: Path | None, policy: Policy | None, base: Path) -> Path | None:
    """--osv-db, else MLFORT_OSV_DB, else the policy's scan.osv_db, else $MLFORT_HOME/osv/PyPI-all.zip if it exists."""
    from mlfort import settings

    if explicit is not None:
        return explicit
    env = settings.osv_db()
    if env is not None:
        return env
    if policy is not None and policy.scan.osv_db:
        return base / policy.scan.osv_db
    default = settings.default_osv_db()
    return default if default.is_file() else None


def _allowlist(explicit: Path | None, policy: Policy | None, base: Path) -> Path | None:
    """--allowlist, else the policy's scan.secrets_allowlist; None lets the scanner find one in the scanned folder."""
    if explicit is None and policy is not None and policy.scan.secrets_allowlist:
        return base / policy.scan.secrets_allowlist
    return explicit


def _sample_rows(sample_rows: int | None, full: bool, policy: Policy | None) -> int | None:
    if full:
        if sample_rows is not None:
            raise typer.BadParameter("--full reads every row; leave out --sample-rows", param_hint="--full")
        return None
    if sample_rows is not None:
        return sample_rows
    if policy is not None and policy.scan.pii_sample_rows is not None:
        return policy.scan.pii_sample_rows
    return 10_000


MODEL_SUFFIXES = frozenset({".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz", ".h5",
                            ".hdf5", ".keras", ".onnx", ".safetensors", ".gguf", ".ggml", ".pb", ".tflite", ".mar",
                            ".msgpack", ".model"})
"""Names that mark a model file even when its content is not a format the model scanner knows (it says so)."""


def _model_files(paths: list[Path]) -> list[Path]:
    """The files under `paths` that the model scanner should read: content in a model or container format, or a
    model file name. Text, JSON and CSV are left to the other scanners."""
    from mlfort.scan.dispatch import detect

    skip = {".git", "node_modules", "__pycache__", ".mlfort"}
    out: list[Path] = []

    def consider(file: Path) -> None:
        try:
            with file.open("rb") as f:
                head = f.read(4096)
        except OSError:
            out.append(file)  # unreadable: the model scanner reports it (fail closed)
            return
        fmt = detect(head, None)
        if fmt not in {"unknown", "text", "json"} or file.suffix.lower() in MODEL_SUFFIXES:
            out.append(file)

    for path in paths:
        if not path.is_dir():
            if path.exists() or path.is_symlink():
                consider(path)
            continue
        for file in sorted(path.rglob("*")):
            parts = file.relative_to(path).parts
            if any(part in skip for part in parts[:-1]):
                continue
            if any((path.joinpath(*parts[:i]) / "pyvenv.cfg").is_file() for i in range(1, len(parts))):
                continue  # an installed environment is the dependency scanner's, not a model folder
            if file.is_file() and not file.is_symlink():
                consider(file)
    return out


def _finish(kind: str, paths: list[Path], findings: list[Finding], summary: str, *, fmt: OutputFormat,
            output: Path | None, fail_on: str, record: bool, ledger: str | None, policy: Path | None) -> None:
    """Record the scan when asked (before anything is printed, so an unrecorded scan never reports), render, exit."""
    from mlfort.cli.output import parse_fail_on
    from mlfort.report import exceeds

    threshold = parse_fail_on(fail_on)
    failed = exceeds(findings, threshold)
    if record:
        from collections import Counter

        from mlfort.cli import audit

        counts = Counter(f.severity.value for f in findings)
        rules = sorted({f.rule_id for f in findings if f.severity.at_least(threshold)})
        audit.record(audit.event(
            f"scan.{kind}", "scan:" + ",".join(str(p.resolve()) for p in paths)[:480],
            outcome="failure" if failed else "success",
            reason=f"{sum(counts.values())} finding(s) at or above {fail_on}: {', '.join(rules)}"[:500]
            if failed else None,
            details={"findings": dict(counts), "summary": summary[:1000], "fail_on": fail_on},
        ), ledger=ledger, policy=policy)
    code = emit(findings, fmt=fmt, output=output, fail_on=fail_on,
                  title=f"mlfort scan {kind} {' '.join(str(p) for p in paths)}", summary=summary)
    raise typer.Exit(code)

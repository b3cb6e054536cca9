"""SARIF 2.1.0 for CI code scanning, shaped to what GitHub code scanning accepts and ranks.

GitHub constraints obeyed here (docs.github.com, "SARIF support for code scanning"):
- every result has `ruleId`, a non-empty `message.text` and exactly one location with a `physicalLocation`
  (a result with no location, or only a logical one, makes GitHub reject the whole file);
- `artifactLocation.uri` is relative to the repository root with `/` separators, or an absolute `file://` URI;
- each rule has `shortDescription.text`, `fullDescription.text` and `help.text`, a `security` tag and a
  `security-severity` score (0.0-10.0, as a string) so alerts are ranked; at most 10 tags are kept
  (GitHub keeps 10 of at most 20);
- at most 25,000 results per run (GitHub refuses more); past that the worst are kept and the rest counted
  in `run.properties.omittedResults`;
- `partialFingerprints` give each result a stable identity so alerts de-duplicate across runs.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from mlfort import __version__
from mlfort.report.finding import Finding, Rule, Severity, rule
from mlfort.report.render import Renderer, severity_counts, worst_first
from mlfort.report.render.json import dumps

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"

MAX_RESULTS = 25_000
"""GitHub code scanning rejects a run with more results than this."""
MAX_TAGS = 10
"""GitHub shows 10 tags per rule (and rejects more than 20)."""
FINGERPRINT_KEY = "mlfortFinding/v1"
"""The `partialFingerprints` key; bump the version if the hashed fields ever change."""
DEFAULT_ANCHOR = "mlfort.yaml"
"""The file a finding points at when its target is not a file (an ARN, an s3:// URL, a policy key): the policy
that declares the target. GitHub needs a physical location for every result."""

LEVEL: Mapping[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
"""SARIF `level` of each severity."""

SECURITY_SEVERITY: Mapping[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
"""GitHub's `security-severity` of each severity (>= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, else low)."""

# Suffixes that make a bare name (no directory) a file. A bare name with another suffix, or none, is taken
# as a name (a policy key such as `gateway.routes`) and gets a logical location.
_FILE_SUFFIXES = frozenset(
    {
        *("pkl", "pickle", "pt", "pth", "bin", "safetensors", "onnx", "h5", "hdf5", "keras", "joblib"),
        *("npy", "npz", "gguf", "ggml", "ckpt", "pb", "tflite", "msgpack", "mar"),
        *("zip", "tar", "gz", "tgz", "bz2", "xz", "zst"),
        *("json", "jsonl", "yaml", "yml", "toml", "ini", "cfg", "conf", "txt", "md", "env", "lock"),
        *("csv", "tsv", "parquet", "arrow", "feather", "avro", "orc"),
        *("py", "ipynb", "sh", "tf", "tfvars", "hcl", "pem", "crt", "cer", "whl", "dockerfile"),
    }
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")


def artifact_uri(path: str) -> str:
    """A SARIF `artifactLocation.uri` for a file path.

    Relative paths become relative POSIX URI references (`./a\\b c.py` -> `a/b%20c.py`); absolute paths become
    `file://` URIs. Everything outside RFC 3986's unreserved set is percent-encoded as UTF-8 (undecodable
    bytes kept as Python's surrogate escapes are encoded as the original byte).
    """
    p = path.replace("\\", "/")

    def enc(s: str) -> str:
        return quote(s, safe="/", encoding="utf-8", errors="surrogateescape")

    if _WINDOWS_DRIVE.match(p):
        return "file:///" + p[:2] + enc(posixpath.normpath(p[2:]))
    if p.startswith("//"):  # UNC: //server/share/file
        return "file:" + enc("//" + posixpath.normpath(p).lstrip("/"))
    if p.startswith("/"):
        return "file://" + enc(posixpath.normpath(p))
    return enc(posixpath.normpath(p))


def looks_like_path(target: str) -> bool:
    """True when a target is a file path rather than a URL, an ARN or a name.

    A path has a directory separator, starts with `.` or `~`, is a Windows drive path, or is a bare file name
    with a known file suffix (`model.pkl`, `mlfort.yaml`).
    """
    if not target or target != target.strip() or any(ord(c) < 0x20 for c in target):
        return False
    if _WINDOWS_DRIVE.match(target.replace("\\", "/")):
        return True
    if _SCHEME.match(target):  # s3://, https://, arn:, file: (a URI is not a path we can make relative)
        return False
    if "/" in target or "\\" in target or target.startswith((".", "~")):
        return True
    stem, dot, suffix = target.rpartition(".")
    return bool(dot and stem) and suffix.lower() in _FILE_SUFFIXES


def fingerprint(finding: Finding) -> str:
    """A stable hash of what identifies a finding across runs: rule id, target and message (SHA-256, hex).

    The three are hashed as a JSON array, so no choice of characters in one field can mimic another split.
    """
    material = json.dumps([finding.rule_id, finding.target, finding.message], ensure_ascii=True)
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()


def _reference_urls(refs: Sequence[str]) -> list[str]:
    return [r for r in refs if r.startswith(("https://", "http://"))]


def _rule_entry(rule_id: str, known: Rule | None, severities: Sequence[Severity]) -> dict[str, Any]:
    observed = max(severities, key=lambda s: s.rank)
    if known is None:
        title = f"mlfort rule {rule_id}"
        help_text = f"mlfort reported findings under rule id {rule_id}, which has no registered description."
        default = observed
        refs: tuple[str, ...] = ()
    else:
        title = known.title or known.id
        help_text = known.help or title
        default = known.default_severity
        refs = known.references
    # Rank by the worst this run saw, so GitHub never ranks an alert below what mlfort reported.
    ranked = max(default, observed, key=lambda s: s.rank)
    urls = _reference_urls(refs)
    tags = ["security", "mlfort", *(r for r in refs if r not in urls)]
    markdown = help_text
    if refs:
        markdown += "\n\nReferences:\n" + "\n".join(f"- [{r}]({r})" if r in urls else f"- {r}" for r in refs)
    entry: dict[str, Any] = {
        "id": rule_id,
        "shortDescription": {"text": title},
        "fullDescription": {"text": help_text},
        "help": {"text": help_text, "markdown": markdown},
    }
    if urls:
        entry["helpUri"] = urls[0]
    entry["defaultConfiguration"] = {"level": LEVEL[default]}
    entry["properties"] = {
        "tags": list(dict.fromkeys(tags))[:MAX_TAGS],
        "security-severity": SECURITY_SEVERITY[ranked],
    }
    return entry


def _location(finding: Finding, anchor: str) -> dict[str, Any]:
    loc = finding.location
    if loc is not None and loc.path:
        physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(loc.path)}}
        if loc.line is not None and loc.line >= 1:
            region: dict[str, Any] = {"startLine": loc.line}
            if loc.column is not None and loc.column >= 1:
                region["startColumn"] = loc.column
            physical["region"] = region
        return {"physicalLocation": physical}
    if looks_like_path(finding.target):
        return {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(finding.target)}}}
    location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(anchor)}}}
    if finding.target:
        location["logicalLocations"] = [
            {"name": finding.target, "fullyQualifiedName": finding.target, "kind": "resource"}
        ]
    return location


def _result(finding: Finding, rule_index: int, title: str, anchor: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"severity": finding.severity.value, "target": finding.target}
    if finding.evidence:
        properties["evidence"] = dict(finding.evidence)
    if finding.remediation:
        properties["remediation"] = finding.remediation
    if finding.references:
        properties["references"] = list(finding.references)
    return {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": finding.message or title},
        "locations": [_location(finding, anchor)],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding)},
        "properties": properties,
    }


class SarifRenderer(Renderer):
    """One SARIF 2.1.0 log, one run: mlfort as `tool.driver`, a rule per rule id used, a result per finding.

    `anchor` is the repository file that findings about non-file targets point at (see DEFAULT_ANCHOR).
    """

    def __init__(self, *, anchor: str = DEFAULT_ANCHOR) -> None:
        self.anchor = anchor

    def log(self, findings: Sequence[Finding], *, title: str = "", summary: str = "") -> dict[str, Any]:
        """The SARIF log as a dict (what `render` serialises)."""
        ordered = worst_first(findings)
        kept, omitted = ordered[:MAX_RESULTS], len(ordered) - MAX_RESULTS
        seen: dict[str, list[Severity]] = {}
        for f in kept:
            seen.setdefault(f.rule_id, []).append(f.severity)
        rule_ids = sorted(seen)
        index = {rid: i for i, rid in enumerate(rule_ids)}
        rules = [_rule_entry(rid, rule(rid), seen[rid]) for rid in rule_ids]
        results = [
            _result(f, index[f.rule_id], rules[index[f.rule_id]]["shortDescription"]["text"], self.anchor)
            for f in kept
        ]
        run_properties: dict[str, Any] = {
            "title": title,
            "summary": summary,
            "counts": severity_counts(findings),
        }
        if omitted > 0:
            run_properties["omittedResults"] = omitted
        return {
            "$schema": SCHEMA_URI,
            "version": SARIF_VERSION,
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "mlfort",
                            "version": __version__,
                            "semanticVersion": __version__,
                            "rules": rules,
                        }
                    },
                    # Location columns count characters of Python strings, i.e. code points.
                    "columnKind": "unicodeCodePoints",
                    "results": results,
                    "properties": run_properties,
                }
            ],
        }

    def render(self, findings: Sequence[Finding], *, title: str = "", summary: str = "") -> str:
        """The SARIF log as JSON text, ending with a newline."""
        return dumps(self.log(findings, title=title, summary=summary))

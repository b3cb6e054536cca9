"""CycloneDX 1.6 bills of materials: an SBOM of a Python environment or project, an ML-BOM of a signed model.

The packages come from the dependency scanner's readers (`mlfort.scan.dependencies.sources`), so the SBOM lists
exactly what `scan deps` checks. The ML-BOM's subject is the model as its signed manifest describes it: every file
with its digest, the root digest, the model card, and the datasets it was trained on (from the policy and the
ledger's lineage).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlfort import __version__
from mlfort.errors import InputError
from mlfort.scan.dependencies.sources import Package, collect

if TYPE_CHECKING:
    from mlfort.artifacts.manifest import Manifest
    from mlfort.ledger import Ledger
    from mlfort.policy.schema import Policy

SPEC_VERSION = "1.6"
_HASH_ALGS = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512",
              "sha3-256": "SHA3-256", "sha3-512": "SHA3-512", "blake2b-256": "BLAKE2b-256", "blake3": "BLAKE3"}
_HEX_LEN = {"MD5": 32, "SHA-1": 40, "SHA-256": 64, "SHA-384": 96, "SHA-512": 128, "SHA3-256": 64, "SHA3-512": 128,
            "BLAKE2b-256": 64, "BLAKE3": 64}
MAX_CARD_BYTES = 1 << 20


def _document(subject: dict[str, Any], components: list[dict[str, Any]],
              dependencies: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "tools": {"components": [{"type": "application", "name": "mlfort", "version": __version__}]},
            "component": subject,
        },
        "components": components,
        "dependencies": dependencies,
    }


def _hashes(values: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for value in values:
        alg, _, content = value.partition(":")
        name = _HASH_ALGS.get(alg.lower())
        content = content.lower()
        valid = name is not None and len(content) == _HEX_LEN[name] and all(c in "0123456789abcdef" for c in content)
        if valid and (name, content) not in seen:
            seen.add((name, content))
            out.append({"alg": name, "content": content})
    return out


def _license(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    try:
        expression = canonicalize_license_expression(text)
    except (InvalidLicenseExpression, ValueError):
        return [{"license": {"name": text[:200]}}]
    if " " in expression:
        return [{"expression": expression}]
    return [{"license": {"id": expression}}] if not expression.startswith("LicenseRef-") else [
        {"license": {"name": text[:200]}}]


def purl(p: Package) -> str:
    """pkg:pypi/<normalised name>@<version> (version left out when not exact)."""
    base = f"pkg:pypi/{quote(p.key, safe='')}"
    return f"{base}@{quote(p.version, safe='')}" if p.version else base


def build_sbom(target: Path) -> dict[str, Any]:
    """A CycloneDX 1.6 SBOM of an environment (venv, site-packages), a dependency file or a project folder."""
    collected = collect([target])
    components: dict[str, dict[str, Any]] = {}
    refs_by_key: dict[str, str] = {}
    requires: dict[str, set[str]] = {}
    for p in collected.packages:
        ref = purl(p)
        if p.url:
            ref = f"{ref}#{quote(p.source, safe='')}:{p.line or 0}"
        entry = components.get(ref)
        if entry is None:
            entry = {"type": "library", "bom-ref": ref, "name": p.name, "purl": purl(p)}
            if p.version:
                entry["version"] = p.version
            licenses = _license(p.license)
            if licenses:
                entry["licenses"] = licenses
            properties = [{"name": "mlfort:source", "value": p.source}, {"name": "mlfort:origin", "value": p.origin}]
            if not p.version:
                properties.append({"name": "mlfort:unpinned", "value": p.specifier or "(any version)"})
            if p.url:
                entry["externalReferences"] = [{"type": "vcs" if "+" in p.url.split(":", 1)[0] else "distribution",
                                                "url": p.url}]
            entry["properties"] = properties
            components[ref] = entry
        hashes = _hashes(p.hashes)
        if hashes:
            known = entry.setdefault("hashes", [])
            known.extend(h for h in hashes if h not in known)
        refs_by_key.setdefault(p.key, ref)
        requires.setdefault(ref, set()).update(p.requires)
    subject_ref = f"mlfort:subject:{target.resolve().name or 'root'}"
    subject = {"type": "application", "bom-ref": subject_ref, "name": target.resolve().name or str(target)}
    dependencies = [{"ref": subject_ref, "dependsOn": sorted(components)}]
    for ref in sorted(components):
        on = sorted({refs_by_key[k] for k in requires.get(ref, ()) if k in refs_by_key} - {ref})
        dependencies.append({"ref": ref, "dependsOn": on})
    return _document(subject, [components[r] for r in sorted(components)], dependencies)


def build_mlbom(model_dir: Path, *, policy: Policy | None = None, policy_dir: Path | None = None,
                name: str | None = None, ledger: Ledger | None = None) -> dict[str, Any]:
    """A CycloneDX 1.6 ML-BOM of a model folder signed with mlfort (its manifest is read, not re-verified: verify
    with `mlfort artifacts verify` to trust it). No signature: InputError."""
    from mlfort.artifacts.bundle import MissingSignatureError

    try:
        manifest = _signed_manifest(model_dir)
    except MissingSignatureError:
        raise InputError(f"{model_dir} has no signature; sign it first: mlfort artifacts sign {model_dir}") from None
    model_name = name or model_dir.resolve().name
    root = manifest.root_digest()
    algorithm = manifest.serialization.resource_algorithm
    model_ref = f"mlfort:model:{model_name}@sha256:{root}"
    card = _model_card(model_dir / "model-card.json")
    files = []
    for resource in manifest.resources:
        files.append({"type": "file", "bom-ref": f"{model_ref}/{resource.name}", "name": resource.name,
                      "hashes": _hashes([f"{algorithm}:{resource.digest}"])})
    datasets = _datasets(model_name, root, policy, policy_dir, ledger)
    subject: dict[str, Any] = {
        "type": "machine-learning-model", "bom-ref": model_ref, "name": model_name,
        "hashes": [{"alg": "SHA-256", "content": root}],
        "properties": [{"name": "mlfort:root-digest", "value": f"sha256:{root}"},
                       {"name": "mlfort:manifest-algorithm", "value": algorithm},
                       {"name": "mlfort:files", "value": str(len(files))}],
    }
    if policy is not None and model_name in policy.models:
        entry = policy.models[model_name]
        subject["properties"] += [{"name": "mlfort:classification", "value": entry.classification.value},
                                  {"name": "mlfort:residency", "value": ",".join(entry.residency)}]
    model_card = _card(card, [d["bom-ref"] for d in datasets])
    if model_card:
        subject["modelCard"] = model_card
    dependencies = [{"ref": model_ref, "dependsOn": sorted([f["bom-ref"] for f in files]
                                                          + [d["bom-ref"] for d in datasets])}]
    dependencies += [{"ref": c["bom-ref"], "dependsOn": []} for c in files + datasets]
    return _document(subject, files + datasets, dependencies)


def _model_card(path: Path) -> dict[str, Any]:
    """model-card.json when it is a small JSON object; anything else is left out (never an error)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_CARD_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda _c: None)
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _card(card: Mapping[str, Any], dataset_refs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, field in (("task", "task"), ("algorithm", "modelArchitecture"), ("architecture", "modelArchitecture"),
                       ("family", "architectureFamily")):
        value = card.get(key)
        if isinstance(value, str) and value and field not in params:
            params[field] = value[:200]
    if dataset_refs:
        params["datasets"] = [{"ref": r} for r in dataset_refs]
    if params:
        out["modelParameters"] = params
    metrics = []
    for key, value in card.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and (
                key.startswith(("test_", "val_", "eval_")) or key in ("accuracy", "f1", "auc", "loss")):
            metrics.append({"type": str(key)[:100], "value": repr(value)[:50]})
    if metrics:
        out["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    return out


def _datasets(model: str, root: str, policy: Policy | None, policy_dir: Path | None,
              ledger: Ledger | None) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def add(ds_name: str, digest: str | None, source: str) -> dict[str, Any]:
        # One component per dataset name and content: the policy's entry (often without a digest: its location
        # is elsewhere) and the ledger's (with the digest that trained the model) are the same dataset.
        same = [e for e in found.values() if e["name"] == ds_name and e.get("_digest") in (None, digest)]
        entry = same[0] if same else None
        if entry is None:
            entry = {"type": "data", "name": ds_name, "data": [{"type": "dataset", "name": ds_name}],
                     "properties": [], "_digest": None}
            found[f"{ds_name}#{len(found)}"] = entry
        if digest and entry["_digest"] is None:
            entry["_digest"] = digest
            if digest.startswith("sha256:"):
                entry["hashes"] = [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]
        entry["properties"].append({"name": "mlfort:found-in", "value": source})
        return entry

    if policy is not None and model in policy.models:
        for ds_name in policy.models[model].trained_on:
            ds = policy.datasets.get(ds_name)
            digest = _signed_digest(ds.locations.values(), policy_dir) if ds is not None else None
            entry = add(ds_name, digest, "policy")
            if ds is not None:
                entry["properties"] += [{"name": "mlfort:classification", "value": ds.classification.value},
                                        {"name": "mlfort:residency", "value": ",".join(ds.residency)}]
    if ledger is not None:
        from mlfort.lineage import build_lineage

        graph = build_lineage(ledger, [f"sha256:{root}"], direction="backward")
        for artifact in graph.artifacts(kind="dataset", side="upstream"):
            for ds_name in sorted(artifact.names) or [artifact.digest]:
                add(ds_name, artifact.digest, "ledger")
    out = []
    for entry in sorted(found.values(), key=lambda e: (e["name"], e["_digest"] or "")):
        digest = entry.pop("_digest")
        entry["bom-ref"] = f"mlfort:dataset:{entry['name']}" + (f"@{digest}" if digest else "")
        out.append(entry)
    return out


def _signed_digest(locations: Any, base: Path | None) -> str | None:
    """The root digest of the first local dataset location that carries an mlfort signature."""
    from mlfort.errors import MlfortError

    for loc in locations:
        if loc.startswith("s3://"):
            continue
        path = Path(loc.removeprefix("file://"))
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            return "sha256:" + _signed_manifest(path).root_digest()
        except (MlfortError, OSError):
            continue
    return None


def _signed_manifest(path: Path) -> Manifest:
    """The manifest the mlfort signature beside `path` carries, parsed strictly but not verified."""
    from mlfort.artifacts.bundle import read_signature_file, read_unverified_manifest
    from mlfort.artifacts.signing import default_signature_path

    return read_unverified_manifest(read_signature_file(default_signature_path(path)))

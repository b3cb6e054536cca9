"""The offline OSV database: the `all.zip` of an ecosystem (one OSV JSON record per member), matched against exact
versions the way the OSV schema defines it.

Only records that can concern the asked-for packages are parsed: each member's bytes are checked for one of the
wanted names first (a cheap byte search), so a 20,000-record PyPI database costs one pass of decompression.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlfort.errors import InputError
from mlfort.report import Severity

MAX_RECORD_BYTES = 4 << 20
"""An OSV record is a few KB; a member larger than this (declared or actual) is not read."""
MAX_MEMBERS = 2_000_000
_NAME = re.compile(rb'"name"\s*:\s*"([^"\\]{1,200})"')
"""Every `"name": "..."` in a record's bytes: the package names it can concern (and a few others, harmlessly)."""


@dataclass(frozen=True)
class Advisory:
    """One OSV record, reduced to what a finding needs."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: Severity
    fixed: tuple[str, ...]
    malicious: bool
    references: tuple[str, ...] = ()


@dataclass
class Database:
    """Records by normalised package name, for the names asked for."""

    path: Path
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    damaged: int = 0
    """Members that were not valid records (counted, reported as could-not-check)."""
    members: int = 0


def load(path: Path, names: Iterable[str]) -> Database:
    """Read the records for `names` (normalised) from an OSV all.zip. A file that is not such a zip: InputError."""
    wanted = {canonicalize_name(n) for n in names}
    db = Database(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not an OSV database (expected the PyPI all.zip from "
                         f"osv-vulnerabilities.storage.googleapis.com): {exc}") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise InputError(f"{path}: {len(infos)} members, more than an OSV database holds")
        for info in infos:
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            db.members += 1
            if info.file_size > MAX_RECORD_BYTES:
                db.damaged += 1
                continue
            try:
                with archive.open(info) as f:
                    data = f.read(MAX_RECORD_BYTES + 1)
            except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError):
                db.damaged += 1
                continue
            if len(data) > MAX_RECORD_BYTES:
                db.damaged += 1
                continue
            if b"\\u" not in data and not any(canonicalize_name(m.decode("utf-8", "replace")) in wanted
                                               for m in _NAME.findall(data)):
                continue  # names no wanted package (and spells no name with JSON escapes): not parsed
            try:
                record = json.loads(data)
            except (ValueError, RecursionError):
                db.damaged += 1
                continue
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                db.damaged += 1
                continue
            if record.get("withdrawn"):
                continue
            for affected in record.get("affected") or []:
                package = affected.get("package") if isinstance(affected, dict) else None
                if not isinstance(package, dict) or package.get("ecosystem") != "PyPI":
                    continue
                key = canonicalize_name(str(package.get("name", "")))
                if key in wanted:
                    db.records.setdefault(key, []).append(record)
    return db


def _version(text: Any) -> Version | None:
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def _in_range(version: Version, events: list[dict[str, Any]]) -> bool:
    """OSV ECOSYSTEM range semantics: events in version order; introduced opens, fixed and limit close before,
    last_affected closes after."""
    points: list[tuple[Version, int, str]] = []
    for order, event in enumerate(events):
        if not isinstance(event, dict) or len(event) != 1:
            continue
        (kind, value), = event.items()
        if kind == "introduced" and str(value) == "0":
            points.append((Version("0.dev0"), order, kind))
            continue
        parsed = _version(value)
        if parsed is not None and kind in ("introduced", "fixed", "last_affected", "limit"):
            points.append((parsed, order, kind))
    points.sort(key=lambda p: (p[0], p[1]))
    affected = False
    for at, _, kind in points:
        if kind == "introduced" and version >= at:
            affected = True
        elif (kind in ("fixed", "limit") and version >= at) or (kind == "last_affected" and version > at):
            affected = False
    return affected


def affects(record: Mapping[str, Any], key: str, version: str) -> bool:
    """True when the record lists `version` of package `key` as affected (explicit versions or ECOSYSTEM ranges).
    A local version (`2.1.0+cu118`) is affected when its public version is."""
    parsed = _version(version)
    candidates = {version}
    if parsed is not None:
        candidates.add(parsed.public)
    for affected in record.get("affected") or []:
        if not isinstance(affected, dict):
            continue
        package = affected.get("package") or {}
        if package.get("ecosystem") != "PyPI" or canonicalize_name(str(package.get("name", ""))) != key:
            continue
        listed = {str(v) for v in affected.get("versions") or []}
        if candidates & listed:
            return True
        if parsed is not None:
            public = Version(parsed.public)
            if any((v := _version(x)) is not None and v == public for x in listed):
                return True
            for rng in affected.get("ranges") or []:
                if isinstance(rng, dict) and rng.get("type") == "ECOSYSTEM" and _in_range(public,
                                                                                          rng.get("events") or []):
                    return True
    return False


def advisory(record: Mapping[str, Any], key: str) -> Advisory:
    """The parts of a record a finding shows."""
    rid = str(record["id"])
    fixed: list[str] = []
    for affected in record.get("affected") or []:
        if not isinstance(affected, dict):
            continue
        package = affected.get("package") or {}
        if canonicalize_name(str(package.get("name", ""))) != key:
            continue
        for rng in affected.get("ranges") or []:
            for event in (rng or {}).get("events") or []:
                if isinstance(event, dict) and "fixed" in event:
                    fixed.append(str(event["fixed"]))
    malicious = rid.startswith("MAL-")
    refs = tuple(str(r.get("url")) for r in record.get("references") or [] if isinstance(r, dict) and r.get("url"))
    return Advisory(rid, tuple(str(a) for a in record.get("aliases") or []), str(record.get("summary") or
                    record.get("details") or "")[:300].strip(), Severity.CRITICAL if malicious else _severity(record),
                    tuple(sorted(set(fixed), key=lambda v: (_version(v) or Version("0"), v))), malicious, refs[:5])


_GHSA = {"LOW": Severity.LOW, "MODERATE": Severity.MEDIUM, "MEDIUM": Severity.MEDIUM, "HIGH": Severity.HIGH,
         "CRITICAL": Severity.CRITICAL}


def _severity(record: Mapping[str, Any]) -> Severity:
    specific = record.get("database_specific")
    if isinstance(specific, dict) and str(specific.get("severity", "")).upper() in _GHSA:
        return _GHSA[str(specific["severity"]).upper()]
    for entry in record.get("severity") or []:
        if isinstance(entry, dict) and str(entry.get("type")) == "CVSS_V3":
            score = cvss3_base_score(str(entry.get("score", "")))
            if score is not None:
                return from_score(score)
    return Severity.MEDIUM


def from_score(score: float) -> Severity:
    """CVSS qualitative rating: 9.0+ critical, 7.0+ high, 4.0+ medium, 0.1+ low."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW if score > 0 else Severity.INFO


_W = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}, "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62}, "C": {"H": 0.56, "L": 0.22, "N": 0.0},
}


def _roundup(x: float) -> float:
    scaled = round(x * 100000)
    return scaled / 100000.0 if scaled % 10000 == 0 else (math.floor(scaled / 10000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS v3.0/3.1 base score of a vector string (`CVSS:3.1/AV:N/AC:L/...`), or None if it is not one."""
    parts = vector.strip().split("/")
    if not parts or not parts[0].startswith("CVSS:3"):
        return None
    metrics = dict(p.split(":", 1) for p in parts[1:] if ":" in p)
    try:
        scope_changed = metrics["S"] == "C"
        pr = {"N": 0.85, "L": 0.68 if scope_changed else 0.62, "H": 0.5 if scope_changed else 0.27}[metrics["PR"]]
        impact_sub = 1 - (1 - _W["C"][metrics["C"]]) * (1 - _W["C"][metrics["I"]]) * (1 - _W["C"][metrics["A"]])
        exploit = 8.22 * _W["AV"][metrics["AV"]] * _W["AC"][metrics["AC"]] * pr * _W["UI"][metrics["UI"]]
    except KeyError:
        return None
    impact = (7.52 * (impact_sub - 0.029) - 3.25 * (impact_sub - 0.02) ** 15) if scope_changed else 6.42 * impact_sub
    if impact <= 0:
        return 0.0
    total = 1.08 * (impact + exploit) if scope_changed else impact + exploit
    return _roundup(min(total, 10.0))

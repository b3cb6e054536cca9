"""`mlfort scan deps`: known-vulnerable and malicious versions, unpinned and unhashed requirements, direct URLs.

Versions are checked against an offline OSV database (the PyPI `all.zip`) and, with `online=True`, pip-audit's
OSV service. No data means "could not check" (a HIGH finding), never "no known vulnerabilities".
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from mlfort.errors import InputError
from mlfort.report import Finding, Location, Severity
from mlfort.scan.dependencies import osv
from mlfort.scan.dependencies.rules import RULES
from mlfort.scan.dependencies.sources import Collected, Package, collect
from mlfort.scan.result import ScanResult

__all__ = ["RULES", "Collected", "Package", "collect", "scan_deps"]


def scan_deps(paths: Sequence[Path], *, osv_db: Path | None, online: bool = False,
              progress: Callable[[int], None] | None = None) -> ScanResult:
    """Check the dependencies named under `paths` (requirements/constraints files, pyproject.toml, lock files,
    venvs and site-packages folders). `osv_db` is an OSV all.zip (None: none available)."""
    start = time.perf_counter()
    collected = collect(paths)
    findings = list(collected.findings)
    findings += _hygiene(collected.packages)
    exact = [p for p in collected.packages if p.version is not None and p.url is None]
    if progress is not None:
        progress(len(collected.packages))
    sources = ""
    if exact:
        checked_any = False
        if osv_db is not None:
            if not osv_db.is_file():
                raise InputError(f"{osv_db}: no such OSV database file")
            db = osv.load(osv_db, {p.key for p in exact})
            checked_any = True
            sources = f"OSV database {osv_db.name} ({db.members:,} records)"
            findings += _vulnerabilities(exact, lambda p: [osv.advisory(r, p.key) for r in db.records.get(p.key, [])
                                                           if osv.affects(r, p.key, p.version or "")])
            if db.damaged:
                findings.append(_at(RULES["MLF-DEP-006"].finding(
                    str(osv_db), f"{db.damaged:,} record(s) of the OSV database {osv_db} could not be read; "
                    "versions they describe were not checked: download the database again", damaged=db.damaged)))
        if online:
            from mlfort.scan.dependencies.online import lookup

            advisories, failed = lookup(exact)
            checked_any = True
            sources += (" and " if sources else "") + "pip-audit's OSV service"
            findings += _vulnerabilities([p for p in exact if p not in failed], lambda p: advisories.get(p, []))
            for source, pkgs in _by_source(list(failed)).items():
                findings.append(RULES["MLF-DEP-006"].finding(
                    source, f"{len(pkgs)} version(s) in {source} could not be checked online ({failed[pkgs[0]]}); "
                    "not checked is not safe", packages=sorted({p.key for p in pkgs})[:50], reason="service"))
        if not checked_any:
            for source, pkgs in _by_source(exact).items():
                findings.append(RULES["MLF-DEP-006"].finding(
                    source, f"{len(pkgs)} pinned version(s) in {source} could not be checked: no OSV database "
                    "(--osv-db, MLFORT_OSV_DB, the policy's scan.osv_db or $MLFORT_HOME/osv/PyPI-all.zip) and "
                    "--online not given", packages=sorted({p.key for p in pkgs})[:50], reason="no-database"))
    summary = (f"{len(collected.packages)} dependencies ({len(exact)} exact versions) in {len(collected.files)} "
               f"file(s)/environment(s)" + (f", checked against {sources}" if sources else "")
               + f" in {time.perf_counter() - start:.2f} s")
    counts = {"files": len(collected.files), "packages": len(collected.packages), "exact": len(exact)}
    return ScanResult(tuple(findings), summary, counts)


def _by_source(packages: list[Package]) -> dict[str, list[Package]]:
    out: dict[str, list[Package]] = defaultdict(list)
    for p in packages:
        out[p.source].append(p)
    return dict(out)


def _at(f: Finding, line: int | None = None) -> Finding:
    if line is None:
        return f
    return dataclasses.replace(f, location=Location(f.target, line, None))


def _hygiene(packages: list[Package]) -> list[Finding]:
    """Unpinned, unhashed and direct-URL requirements: judged only where a file is meant to fix what is installed
    (requirements, constraints and lock files), never for the ranges of pyproject.toml or *.in inputs."""
    out: list[Finding] = []
    deploy = [p for p in packages if p.origin in ("requirements", "constraints")]
    for p in packages:
        if p.url is not None or p.editable:
            if p.origin == "env":
                severity = Severity.LOW  # installed from a path or URL: a dev install, noted but not failing
            elif p.origin in ("pyproject", "input"):
                severity = Severity.LOW
            else:
                severity = Severity.MEDIUM
            what = "an editable install of" if p.editable else "a direct reference to"
            out.append(_at(RULES["MLF-DEP-005"].finding(
                p.source, f"{p.name} in {p.source} is {what} {p.url or 'a local path'}: no released version to "
                "check against advisories", severity=severity, package=p.key, url=p.url, editable=p.editable or None),
                p.line))
    for p in deploy:
        if p.url is None and not p.editable and p.version is None:
            out.append(_at(RULES["MLF-DEP-003"].finding(
                p.source, f"{p.name}{p.specifier} in {p.source} is not pinned to one version",
                package=p.key, specifier=p.specifier or "(any)"), p.line))
    by_file = _by_source(deploy)
    for source, pkgs in by_file.items():
        hashed = [p for p in pkgs if p.hashes]
        bare = [p for p in pkgs if not p.hashes and p.origin == "requirements"]
        if hashed:
            for p in bare:  # pip's hash-checking mode refuses the whole install: fails at deploy time
                out.append(_at(RULES["MLF-DEP-004"].finding(
                    p.source, f"{p.name} in {p.source} has no --hash while others do: pip refuses the whole file "
                    "in hash-checking mode", severity=Severity.MEDIUM, package=p.key), p.line))
        elif bare:
            out.append(RULES["MLF-DEP-004"].finding(
                source, f"none of the {len(bare)} requirement(s) in {source} has a --hash: pip installs whatever "
                "file the index serves", count=len(bare)))
    return out


def _vulnerabilities(packages: list[Package], advisories_of: Callable[[Package], list[osv.Advisory]]
                     ) -> list[Finding]:
    """One finding per package and group of advisories that name each other (PYSEC, GHSA and CVE ids of one flaw)."""
    out: list[Finding] = []
    seen: set[tuple[str, str, str, str]] = set()
    for p in packages:
        groups: list[tuple[set[str], list[osv.Advisory]]] = []
        for adv in advisories_of(p):
            names = {adv.id, *adv.aliases}
            for ids, members in groups:
                if ids & names:
                    ids |= names
                    members.append(adv)
                    break
            else:
                groups.append((names, [adv]))
        for ids, members in groups:
            lead = sorted(members, key=lambda a: (not a.id.startswith(("GHSA-", "MAL-")), a.id))[0]
            key = (p.source, p.key, p.version or "", lead.id)
            if key in seen:
                continue
            seen.add(key)
            severity = max((a.severity for a in members), key=lambda s: s.rank)
            fixed = sorted({v for a in members for v in a.fixed})
            malicious = any(a.malicious for a in members)
            rule = RULES["MLF-DEP-002" if malicious else "MLF-DEP-001"]
            cves = sorted(i for i in ids if i.startswith("CVE-"))
            message = (f"{p.name}=={p.version} in {p.source} is {'malicious' if malicious else 'vulnerable'}: "
                       f"{lead.id}{' (' + ', '.join(cves) + ')' if cves else ''} {lead.summary[:160]}".rstrip())
            if fixed and not malicious:
                message += f"; fixed in {', '.join(fixed[:5])}"
            out.append(_at(rule.finding(p.source, message, severity=severity, package=p.key, version=p.version,
                                        advisory=lead.id, aliases=sorted(ids - {lead.id}), fixed=fixed or None,
                                        references=list(lead.references) or None), p.line))
    return out

"""Live lookups through pip-audit's OSV service (`scan deps --online`, extra `mlfort[audit]`).

Any failure to get an answer (no network, a proxy refusing, a timeout, an HTTP error, a malformed reply) makes that
version "could not check"; pip-audit itself reports such a run as "No known vulnerabilities found".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlfort import settings
from mlfort.errors import InputError
from mlfort.report import Severity
from mlfort.scan.dependencies.osv import Advisory
from mlfort.scan.dependencies.sources import Package

TIMEOUT_SECONDS = 15


def lookup(packages: Sequence[Package], *, url: str | None = None
           ) -> tuple[dict[Package, list[Advisory]], dict[Package, str]]:
    """(advisories per package, why each package that could not be looked up failed)."""
    try:
        from packaging.version import Version
        from pip_audit._service.interface import ResolvedDependency
        from pip_audit._service.osv import OsvService
    except ImportError:
        raise InputError("--online needs pip-audit: pip install 'mlfort[audit]'") from None
    service = OsvService(cache_dir=Path(settings.home()) / "cache" / "pip-audit", timeout=TIMEOUT_SECONDS)
    if url is not None:
        service.osv_url = url  # type: ignore[attr-defined]
    found: dict[Package, list[Advisory]] = {}
    failed: dict[Package, str] = {}
    first_error: str | None = None
    for p in packages:
        if first_error is not None:  # the service is down: do not wait out a timeout per package
            failed[p] = first_error
            continue
        try:
            _, results = service.query(ResolvedDependency(name=p.name, version=Version(p.version or "")))
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the version was not checked
            first_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no answer'}"
            failed[p] = first_error
            continue
        found[p] = [Advisory(str(r.id), tuple(sorted(str(a) for a in r.aliases)), (r.description or "")[:300],
                             Severity.CRITICAL if str(r.id).startswith("MAL-") else Severity.HIGH,
                             tuple(str(v) for v in r.fix_versions), str(r.id).startswith("MAL-"))
                    for r in results]
    return found, failed

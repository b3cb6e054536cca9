"""Where Python dependencies are written down, turned into one list of Packages.

Requirements and constraints files (pip syntax: includes, hashes, continuations, markers, direct URLs, editables,
index options), `*.in` inputs, pyproject.toml (PEP 621, PEP 735 groups, Poetry), lock files (poetry.lock, uv.lock,
Pipfile.lock, pylock.toml, pdm.lock) and installed environments (a venv or a site-packages folder). Nothing is
installed, imported or executed; a file that cannot be parsed is a finding, never a silent pass.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mlfort.errors import InputError
from mlfort.report import Finding, Location, Severity
from mlfort.scan.dependencies.rules import RULES

MAX_FILE_BYTES = 16 << 20
"""Dependency files larger than this are not read (a finding): real lock files are a few MB."""
MAX_INCLUDE_DEPTH = 16
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".mlfort", ".tox", ".mypy_cache",
                       ".ruff_cache", ".pytest_cache"})
LOCK_NAMES = frozenset({"poetry.lock", "uv.lock", "pipfile.lock", "pylock.toml", "pdm.lock"})
_REQ_NAME = re.compile(r"(?:.*[-_.])?(?:requirements|constraints|reqs)(?:[-_.].*)?\.(?:txt|in)$|.*\.in$", re.I)
_PYLOCK = re.compile(r"pylock\.[^.]+\.toml$|pylock\.toml$", re.I)


@dataclass(frozen=True)
class Package:
    """One dependency as a file or an environment states it."""

    name: str
    """As written."""
    key: str
    """PEP 503 normalised name (`Foo_Bar` -> `foo-bar`)."""
    version: str | None
    """The exact version when pinned (`==`, `===`), locked or installed; None for ranges."""
    specifier: str = ""
    source: str = ""
    """The file (or environment folder) it came from, as given."""
    line: int | None = None
    origin: str = "requirements"
    """requirements | constraints | input | pyproject | lock | env."""
    hashes: tuple[str, ...] = ()
    """`<alg>:<hex>`."""
    url: str | None = None
    """A direct or VCS URL (credentials removed)."""
    editable: bool = False
    license: str | None = None
    requires: tuple[str, ...] = ()
    """Normalised names of what it depends on (installed metadata, lock files)."""
    marker: str = ""


@dataclass
class Collected:
    """Everything `collect` found."""

    packages: list[Package] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    """Dependency files and environments read."""


def collect(paths: Sequence[Path]) -> Collected:
    """Read dependency files and environments under `paths` (a missing path is an InputError)."""
    out = Collected()
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            _walk(path, out)
        else:
            _read_file(path, out, explicit=True)
    return out


def _walk(root: Path, out: Collected) -> None:
    if _is_environment(root):
        _read_env(root, out)
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if d in SKIP_DIRS:
                continue
            if _is_environment(here / d):
                _read_env(here / d, out)
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if kind_of(Path(name)) is not None:
                _read_file(here / name, out, explicit=False)


def _is_environment(path: Path) -> bool:
    if (path / "pyvenv.cfg").is_file():
        return True
    if path.name in ("site-packages", "dist-packages"):
        return True
    try:
        children = list(path.iterdir())
    except OSError:
        return False
    if (path / "pyproject.toml").exists():
        return False
    # Installed distributions: any *.dist-info, or several *.egg-info. One lone `<project>.egg-info` beside the
    # sources is what `pip install -e` leaves in a src/ folder, not an environment.
    dist_infos = sum(1 for p in children if p.suffix == ".dist-info" and (p / "METADATA").is_file())
    egg_infos = sum(1 for p in children if p.suffix == ".egg-info")
    return dist_infos > 0 or egg_infos > 1


def kind_of(path: Path) -> str | None:
    """What kind of dependency file a name is, or None."""
    name = path.name.lower()
    if name == "pyproject.toml":
        return "pyproject"
    if name in LOCK_NAMES or _PYLOCK.fullmatch(name):
        return "lock"
    if _REQ_NAME.fullmatch(name):
        if name.endswith(".in"):
            return "input"
        return "constraints" if "constraint" in name else "requirements"
    return None


def _finding(rule_id: str, target: str, message: str, line: int | None = None, *, severity: Severity | None = None,
             **evidence: object) -> Finding:
    f = RULES[rule_id].finding(target, message, severity=severity, **evidence)
    if line is not None:
        from dataclasses import replace

        f = replace(f, location=Location(target, line, None))
    return f


def _read_text(path: Path, out: Collected) -> str | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            out.findings.append(_finding("MLF-DEP-007", str(path), f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB; "
                                         "not read, so its dependencies were not checked", problem="too-large"))
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out.findings.append(_finding("MLF-DEP-007", str(path), f"{path}: cannot be read ({type(exc).__name__}); its "
                                     "dependencies were not checked", problem="unreadable"))
        return None


def _read_file(path: Path, out: Collected, *, explicit: bool) -> None:
    kind = kind_of(path)
    if kind is None:
        if not explicit:
            return
        if path.suffix.lower() not in ("", ".txt", ".pip"):
            out.findings.append(_finding("MLF-DEP-007", str(path), f"{path}: not a dependency file this scanner "
                                         "reads (requirements, pyproject.toml, lock files, environments); not checked",
                                         severity=Severity.LOW, problem="not-a-dependency-file"))
            return
        kind = "requirements"  # an explicitly named `*.txt` (or suffix-less) file is read as pip requirements
    if path.is_dir() or not path.is_file():
        out.findings.append(_finding("MLF-DEP-007", str(path), f"{path}: not a regular file; not read",
                                     problem="not-a-file"))
        return
    out.files.append(str(path))
    if kind in ("requirements", "constraints", "input"):
        _read_requirements(path, out, kind, depth=0, seen=set())
        return
    text = _read_text(path, out)
    if text is None:
        return
    name = path.name.lower()
    try:
        if name == "pipfile.lock":
            _pipfile_lock(path, json.loads(text), out)
            return
        data = tomllib.loads(text)
        if kind == "pyproject":
            _pyproject(path, data, out)
        elif name == "poetry.lock" or name == "pdm.lock":
            _poetry_like_lock(path, data, out)
        elif name == "uv.lock":
            _uv_lock(path, data, out)
        else:
            _pylock(path, data, out)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        out.findings.append(_finding("MLF-DEP-007", str(path), f"{path}: not a valid {path.name} "
                                     f"({type(exc).__name__}: {str(exc)[:120]}); its dependencies were not checked",
                                     problem="malformed"))


# ------------------------------------------------------------------------------------------- requirements files

_OPTION = re.compile(r"^(-[a-zA-Z]|--[a-z][a-z-]*)(?:[ =]\s*(.*))?$")
_HASH = re.compile(r"--hash[=\s]+([A-Za-z0-9_-]+:[0-9A-Fa-f]+)")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.I)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) with comments stripped and `\\` continuations joined."""
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if not buf:
            start = number
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(part.strip() for part in buf).strip()
        buf = []
        if joined:
            yield start, joined
    if buf:
        joined = " ".join(part.strip() for part in buf).strip()
        if joined:
            yield start, joined


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password or parts.username:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


def _read_requirements(path: Path, out: Collected, kind: str, *, depth: int, seen: set[Path]) -> None:
    real = path.resolve()
    if real in seen:
        return  # an include loop: each file is read once
    seen.add(real)
    text = _read_text(path, out)
    if text is None:
        return
    target = str(path)
    for line_no, line in _logical_lines(text):
        hashes = tuple(h.lower() for h in _HASH.findall(line))
        body = _HASH.sub("", line).strip()
        opt = _OPTION.match(body)
        if opt and not body.startswith(("-e", "--editable")):
            flag, value = opt[1], (opt[2] or "").strip()
            if flag in ("-r", "--requirement", "-c", "--constraint"):
                child = (path.parent / value) if value else None
                if value.startswith(("http://", "https://")):
                    out.findings.append(_finding("MLF-DEP-006", target, f"{target} line {line_no}: includes a remote "
                                                 f"file {_redact_url(value)}, which was not fetched; what it requires "
                                                 "was not checked", line_no, problem="remote-include"))
                elif child is None or not child.is_file():
                    out.findings.append(_finding("MLF-DEP-007", target, f"{target} line {line_no}: includes "
                                                 f"{value or '(nothing)'}, which does not exist; what it requires "
                                                 "was not checked", line_no, problem="missing-include"))
                elif depth >= MAX_INCLUDE_DEPTH:
                    out.findings.append(_finding("MLF-DEP-007", target, f"{target} line {line_no}: includes nest "
                                                 f"deeper than {MAX_INCLUDE_DEPTH}; not followed", line_no,
                                                 problem="include-depth"))
                else:
                    out.files.append(str(child))
                    child_kind = "constraints" if flag in ("-c", "--constraint") else kind
                    _read_requirements(child, out, child_kind, depth=depth + 1, seen=seen)
            elif flag in ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host"):
                parts = urlsplit(value)
                if parts.password:
                    out.findings.append(_finding("MLF-DEP-008", target, f"{target} line {line_no}: {flag} carries a "
                                                 f"password ({_redact_url(value)}); anyone who reads the file or the "
                                                 "build log can use it", line_no, option=flag))
            continue
        editable = False
        if body.startswith(("-e ", "--editable ", "--editable=")):
            editable = True
            body = re.sub(r"^(-e|--editable)[ =]\s*", "", body)
        _requirement(body, out, target=target, line=line_no, origin=kind, hashes=hashes, editable=editable)


def _requirement(text: str, out: Collected, *, target: str, line: int | None, origin: str,
                 hashes: tuple[str, ...] = (), editable: bool = False) -> None:
    url: str | None = None
    if _VCS.match(text) or text.startswith(("http://", "https://", "file:", "./", "../", "/", ".")):
        # a bare URL or path (`-e .`, `git+https://...#egg=name`): a direct reference with no checkable version
        url = text.split(";")[0].strip()
        egg = re.search(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)", url)
        name = egg[1] if egg else url.rstrip("/").rsplit("/", 1)[-1] or url
        out.packages.append(Package(name, canonicalize_name(name), None, "", target, line, origin, hashes,
                                    _redact_url(url), editable))
        return
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        out.findings.append(_finding("MLF-DEP-007", target, f"{target} line {line}: not a valid requirement "
                                     f"({str(exc)[:160]}); not checked", line, problem="invalid-requirement"))
        return
    specs = list(req.specifier)
    version = None
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        version = specs[0].version
    out.packages.append(Package(req.name, canonicalize_name(req.name), version, str(req.specifier), target, line,
                                origin, hashes, _redact_url(req.url) if req.url else None, editable,
                                marker=str(req.marker) if req.marker else ""))


# ---------------------------------------------------------------------------------------------------- pyproject

def _pyproject(path: Path, data: dict[str, Any], out: Collected) -> None:
    target = str(path)
    project = data.get("project") or {}
    lists: list[Any] = [project.get("dependencies") or []]
    lists += list((project.get("optional-dependencies") or {}).values())
    lists += list((data.get("dependency-groups") or {}).values())
    for items in lists:
        if not isinstance(items, list):
            raise TypeError("a dependency list is not a list")
        for item in items:
            if isinstance(item, str):
                _requirement(item, out, target=target, line=None, origin="pyproject")
    poetry = (data.get("tool") or {}).get("poetry") or {}
    groups = [poetry.get("dependencies") or {}, poetry.get("dev-dependencies") or {}]
    groups += [(g or {}).get("dependencies") or {} for g in (poetry.get("group") or {}).values()]
    for deps in groups:
        for name, spec in deps.items():
            if name.lower() == "python":
                continue
            text = spec if isinstance(spec, str) else (spec.get("version", "") if isinstance(spec, dict) else "")
            url = spec.get("git") or spec.get("url") or spec.get("path") if isinstance(spec, dict) else None
            version = text[2:].strip() if text.startswith("==") else (text if re.fullmatch(r"\d[\w.!+]*", text)
                                                                      else None)
            out.packages.append(Package(name, canonicalize_name(name), version, text, target, None, "pyproject",
                                        url=_redact_url(url) if url else None))


# --------------------------------------------------------------------------------------------------- lock files

def _hash_list(files: Any) -> tuple[str, ...]:
    found: list[str] = []
    for f in files or []:
        if isinstance(f, dict):
            h = f.get("hash")
            if isinstance(h, str) and ":" in h:
                found.append(h.lower())
            for alg, value in (f.get("hashes") or {}).items():
                found.append(f"{alg.lower()}:{str(value).lower()}")
    return tuple(found)


def _poetry_like_lock(path: Path, data: dict[str, Any], out: Collected) -> None:
    for pkg in data.get("package") or []:
        deps = pkg.get("dependencies") or {}
        requires = tuple(canonicalize_name(d) for d in deps) if isinstance(deps, dict) else tuple(
            canonicalize_name(Requirement(d).name) for d in deps if isinstance(d, str))
        source = pkg.get("source") or {}
        url = source.get("url") if isinstance(source, dict) and source.get("type") in ("git", "url", "file",
                                                                                        "directory") else None
        out.packages.append(Package(pkg["name"], canonicalize_name(pkg["name"]), str(pkg["version"]), "",
                                    str(path), None, "lock", _hash_list(pkg.get("files")), url, requires=requires))


def _uv_lock(path: Path, data: dict[str, Any], out: Collected) -> None:
    for pkg in data.get("package") or []:
        source = pkg.get("source") or {}
        if source.get("editable") or source.get("virtual"):
            continue  # the project itself
        files = list(pkg.get("wheels") or []) + ([pkg["sdist"]] if pkg.get("sdist") else [])
        url = source.get("git") or source.get("url") or source.get("path") or source.get("directory")
        requires = tuple(canonicalize_name(d["name"]) for d in pkg.get("dependencies") or [] if "name" in d)
        version = pkg.get("version")
        out.packages.append(Package(pkg["name"], canonicalize_name(pkg["name"]), str(version) if version else None,
                                    "", str(path), None, "lock", _hash_list(files),
                                    _redact_url(url) if url and "registry" not in source else None,
                                    requires=requires))


def _pylock(path: Path, data: dict[str, Any], out: Collected) -> None:
    for pkg in data.get("packages") or []:
        files = list(pkg.get("wheels") or []) + ([pkg["sdist"]] if pkg.get("sdist") else [])
        if pkg.get("archive"):
            files.append(pkg["archive"])
        vcs = pkg.get("vcs") or pkg.get("directory") or {}
        url = vcs.get("url") or vcs.get("path") if isinstance(vcs, dict) else None
        requires = tuple(canonicalize_name(d["name"]) for d in pkg.get("dependencies") or [] if "name" in d)
        version = pkg.get("version")
        out.packages.append(Package(pkg["name"], canonicalize_name(pkg["name"]), str(version) if version else None,
                                    "", str(path), None, "lock", _hash_list(files), url, requires=requires,
                                    marker=str(pkg.get("marker") or "")))


def _pipfile_lock(path: Path, data: Any, out: Collected) -> None:
    if not isinstance(data, dict):
        raise TypeError("top level is not an object")
    for section in ("default", "develop"):
        for name, spec in (data.get(section) or {}).items():
            if not isinstance(spec, dict):
                raise TypeError(f"{section}.{name} is not an object")
            text = str(spec.get("version") or "")
            version = text[2:] if text.startswith("==") else None
            url = spec.get("git") or spec.get("file") or spec.get("path")
            out.packages.append(Package(name, canonicalize_name(name), version, text, str(path), None, "lock",
                                        tuple(h.lower() for h in spec.get("hashes") or []),
                                        _redact_url(url) if url else None, bool(spec.get("editable"))))


# ------------------------------------------------------------------------------------------------- environments

def site_packages(env: Path) -> list[Path]:
    """The site-packages folders of a venv (or the folder itself)."""
    if env.name in ("site-packages", "dist-packages") or not (env / "pyvenv.cfg").is_file():
        return [env]
    found = sorted({*env.glob("lib/python*/site-packages"), *env.glob("lib64/python*/site-packages"),
                    *env.glob("Lib/site-packages")})
    return found or [env]


def _read_env(env: Path, out: Collected) -> None:
    out.files.append(str(env))
    seen: set[str] = set()
    for sp in site_packages(env):
        try:
            entries = sorted(sp.iterdir())
        except OSError as exc:
            out.findings.append(_finding("MLF-DEP-007", str(sp), f"{sp}: cannot be listed ({exc.strerror}); the "
                                         "environment was not checked", problem="unreadable"))
            continue
        for meta_dir in entries:
            if meta_dir.suffix == ".dist-info":
                meta = meta_dir / "METADATA"
            elif meta_dir.suffix == ".egg-info":
                meta = meta_dir / "PKG-INFO" if meta_dir.is_dir() else meta_dir
            else:
                continue
            pkg = _installed(meta, meta_dir, str(env), out)
            if pkg is not None and (pkg.key, pkg.version) not in seen:
                seen.add((pkg.key, pkg.version))  # type: ignore[arg-type]
                out.packages.append(pkg)


def _installed(meta: Path, meta_dir: Path, env: str, out: Collected) -> Package | None:
    try:
        if meta.stat().st_size > MAX_FILE_BYTES:
            raise ValueError("METADATA too large")
        headers = HeaderParser().parsestr(meta.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as exc:
        out.findings.append(_finding("MLF-DEP-007", str(meta_dir), f"{meta_dir.name}: metadata cannot be read "
                                     f"({type(exc).__name__}); this package was not checked", problem="metadata"))
        return None
    name, version = (headers.get("Name") or "").strip(), (headers.get("Version") or "").strip()
    if not name or not version or "\n" in name:
        out.findings.append(_finding("MLF-DEP-007", str(meta_dir), f"{meta_dir.name}: metadata has no Name or "
                                     "Version; this package was not checked", problem="metadata"))
        return None
    license_text = (headers.get("License-Expression") or "").strip() or None
    if license_text is None:
        raw = (headers.get("License") or "").strip()
        license_text = raw if raw and len(raw) <= 80 and "\n" not in raw else None
    if license_text is None:
        classifiers = [c.rsplit("::", 1)[-1].strip() for c in headers.get_all("Classifier") or []
                       if c.startswith("License ::")]
        license_text = " OR ".join(classifiers) or None
    requires: list[str] = []
    for spec in headers.get_all("Requires-Dist") or []:
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            continue
        if req.marker is not None and not _marker_holds(req.marker):
            continue
        requires.append(canonicalize_name(req.name))
    url, editable = None, False
    direct = meta_dir / "direct_url.json"
    if direct.is_file():
        try:
            info = json.loads(direct.read_text(encoding="utf-8"))
            url = _redact_url(str(info.get("url") or "")) or None
            editable = bool((info.get("dir_info") or {}).get("editable"))
        except (OSError, ValueError, AttributeError):
            pass
    return Package(name, canonicalize_name(name), version, f"=={version}", env, None, "env", (), url, editable,
                   license_text, tuple(sorted(set(requires))))


def _marker_holds(marker: Marker) -> bool:
    """Whether an environment marker holds here for a plain install (no extras); one this Python cannot evaluate
    counts as holding, so the dependency is kept."""
    try:
        return bool(marker.evaluate({"extra": ""}))
    except Exception:  # noqa: BLE001 - undefined or malformed markers: keep the dependency
        return True

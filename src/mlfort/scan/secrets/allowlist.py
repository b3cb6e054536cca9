"""Accepted secret findings: the allowlist file and the inline pragmas.

The file is YAML, every entry gives a reason, and an entry past its `expires` date stops suppressing (and is
reported) rather than silently living on::

    version: 1
    allow:
      - fingerprint: sha256:3f5a...       # the finding's evidence.fingerprint
        reason: revoked 2024-05-02, kept as a test fixture
        expires: 2026-01-01
      - path: tests/fixtures/**           # glob, relative to this file's folder
        rule: MLF-SEC-006                 # optional: only this rule
        kind: secret-assignment           # optional: only this kind
        reason: fake credentials for the integration tests

An entry needs a `fingerprint` or a `path` (or both); `rule` and `kind` only narrow it. A malformed file is an
InputError (exit 2): an allowlist that cannot be read never means "allow nothing" silently, nor "allow all".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlfort.errors import InputError

DEFAULT_NAME = ".mlfort-secrets-allow.yaml"
"""The allowlist found automatically in the root of a scanned folder."""
MAX_BYTES = 1024 * 1024

PRAGMAS = ("mlfort: allow-secret", "mlfort:allow-secret", "pragma: allowlist secret", "gitleaks:allow")
"""Markers on the secret's line that accept it (mlfort's own, detect-secrets' and gitleaks', for migrations)."""
NEXT_LINE_PRAGMAS = ("pragma: allowlist nextline secret", "mlfort: allow-secret-next-line")
"""Markers on the line before the secret (detect-secrets' form, and mlfort's)."""

_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
_RULE = re.compile(r"^MLF-SEC-\d{3}$")
_KEYS = frozenset({"fingerprint", "path", "rule", "kind", "reason", "expires"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One accepted secret (by fingerprint) or place (by path glob), with why it is accepted."""

    reason: str
    fingerprint: str | None = None
    path: str | None = None
    rule: str | None = None
    kind: str | None = None
    expires: dt.date | None = None
    line: int | None = None
    """Line of the entry in the allowlist file, for the 'expired' finding."""
    base: Path | None = None
    """The allowlist file's folder: `path` globs are relative to it."""

    def expired(self, today: dt.date) -> bool:
        """True once `expires` has passed (an entry is still valid on its expiry date)."""
        return self.expires is not None and self.expires < today


@dataclass(frozen=True)
class Allowlist:
    """The entries of one or more allowlist files."""

    entries: tuple[Entry, ...] = ()
    sources: tuple[Path, ...] = ()
    """The files the entries came from (they are not scanned themselves)."""

    def active(self, today: dt.date) -> tuple[Entry, ...]:
        """Entries that still suppress findings."""
        return tuple(e for e in self.entries if not e.expired(today))

    def expired(self, today: dt.date) -> tuple[Entry, ...]:
        """Entries past their date: reported, not applied."""
        return tuple(e for e in self.entries if e.expired(today))

    def merged(self, other: Allowlist) -> Allowlist:
        return Allowlist(self.entries + other.entries, self.sources + other.sources)


def matches(entry: Entry, *, target: str, fingerprint: str, rule_id: str, kind: str) -> bool:
    """True when the entry accepts this finding: every field it sets agrees."""
    if entry.fingerprint is not None and entry.fingerprint != fingerprint:
        return False
    if entry.rule is not None and entry.rule != rule_id:
        return False
    if entry.kind is not None and entry.kind != kind:
        return False
    return entry.path is None or path_matches(entry.path, target, entry.base)


def find(allowlist: Allowlist, today: dt.date, *, target: str, fingerprint: str, rule_id: str,
         kind: str) -> Entry | None:
    """The first active entry that accepts this finding, or None."""
    for entry in allowlist.active(today):
        if matches(entry, target=target, fingerprint=fingerprint, rule_id=rule_id, kind=kind):
            return entry
    return None


def has_pragma(line: str, previous: str = "") -> bool:
    """True when the secret's line, or the line before it with a next-line marker, accepts it."""
    low = line.lower()
    if any(p in low for p in PRAGMAS):
        return True
    prev = previous.lower()
    return any(p in prev for p in NEXT_LINE_PRAGMAS)


# ---------------------------------------------------------------------------------------------------- globs


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A gitignore-like glob as a regex over POSIX paths: `*` and `?` stay inside one folder, `**` crosses
    folders, a trailing `/` means everything below, and a pattern without `/` matches the name at any depth."""
    pat = pattern.strip().removeprefix("./")
    anywhere = "/" not in pat.rstrip("/")
    out = []
    i = 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif pat[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pat[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pat[i]))
            i += 1
    body = "".join(out)
    if pat.endswith("/"):
        body += ".*"
    prefix = "(?:.*/)?" if anywhere or pat.startswith("**") else ""
    return re.compile(f"^{prefix}{body}(?:/.*)?$" if not pat.endswith("/") else f"^{prefix}{body}$")


def path_matches(pattern: str, target: str, base: Path | None) -> bool:
    """Match a glob against the file, relative to `base` when the file is below it, else as given."""
    rx = glob_regex(pattern)
    candidates = [PurePosixPath(Path(target).as_posix()).as_posix().removeprefix("./")]
    if base is not None:
        with contextlib.suppress(ValueError, OSError):
            candidates.insert(0, Path(target).resolve().relative_to(base.resolve()).as_posix())
    return any(rx.match(c) for c in candidates)


# ---------------------------------------------------------------------------------------------------- loading


def load(path: Path) -> Allowlist:
    """Read and check an allowlist file. Raises InputError naming the file, the entry and the problem."""
    import yaml

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"secrets allowlist {path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise InputError(f"secrets allowlist {path}: larger than {MAX_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"secrets allowlist {path}: not valid YAML ({_first_line(exc)})") from None
    if doc is None:
        return Allowlist((), (path,))
    if not isinstance(doc, dict):
        raise InputError(f"secrets allowlist {path}: expected a mapping with an `allow:` list")
    unknown = set(map(str, doc)) - {"version", "allow"}
    if unknown:
        raise InputError(f"secrets allowlist {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                         "expected `version` and `allow`")
    if doc.get("version", 1) != 1:
        raise InputError(f"secrets allowlist {path}: version {doc.get('version')!r} is not supported (expected 1)")
    items = doc.get("allow") or []
    if not isinstance(items, list):
        raise InputError(f"secrets allowlist {path}: `allow` must be a list of entries")
    lines = _entry_lines(node)
    base = path.resolve().parent
    entries = tuple(_entry(path, i, item, lines[i] if i < len(lines) else None, base)
                    for i, item in enumerate(items))
    return Allowlist(entries, (path,))


def discover(roots: Iterable[Path]) -> Allowlist:
    """The DEFAULT_NAME file in the root of each scanned folder, merged (none found: an empty allowlist)."""
    found = Allowlist()
    for root in roots:
        candidate = root / DEFAULT_NAME
        if root.is_dir() and candidate.is_file():
            found = found.merged(load(candidate))
    return found


def _entry_lines(node: Any) -> list[int | None]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "allow" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _entry(path: Path, index: int, item: object, line: int | None, base: Path) -> Entry:
    where = f"secrets allowlist {path}, entry {index + 1}" + (f" (line {line})" if line else "")
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected a mapping with `reason` and a `fingerprint` or `path`")
    unknown = set(map(str, item)) - _KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected "
                         f"{', '.join(sorted(_KEYS))}")
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InputError(f"{where}: `reason` is required and must be a non-empty string")
    fingerprint = _optional_str(where, item, "fingerprint")
    if fingerprint is not None and not _FINGERPRINT.match(fingerprint):
        raise InputError(f"{where}: `fingerprint` must be `sha256:` and 64 lower-case hex digits, as in a finding's "
                         "evidence")
    glob = _optional_str(where, item, "path")
    if fingerprint is None and glob is None:
        raise InputError(f"{where}: give a `fingerprint` or a `path`; `rule` or `kind` alone would accept every "
                         "such secret everywhere")
    rule = _optional_str(where, item, "rule")
    if rule is not None and not _RULE.match(rule):
        raise InputError(f"{where}: `rule` must be a secrets rule id such as MLF-SEC-006")
    kind = _optional_str(where, item, "kind")
    expires = item.get("expires")
    if expires is not None:
        expires = _date(where, expires)
    return Entry(reason.strip(), fingerprint, glob, rule, kind, expires, line, base)


def _optional_str(where: str, item: dict[Any, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: `{key}` must be a non-empty string")
    return value.strip()


def _date(where: str, value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InputError(f"{where}: `expires` must be a date written YYYY-MM-DD")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__

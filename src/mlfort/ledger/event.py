"""The Event: one thing mlfort did or refused, as it is stored in the ledger (canonical JSON, one entry per event).

Fields follow OCSF API Activity (class 6003) closely enough that `export --format ocsf` is a mapping: actor ->
`actor.user`, action -> `api.operation`, resource -> `resources[]`, outcome -> `status_id`, decision and reason ->
`disposition`/`status_detail`, reads and writes -> digests of the artifacts involved (what lineage is built from).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from mlfort.errors import InputError

FORMAT_VERSION = 1
MAX_ENTRY_BYTES = 64 * 1024
"""An event larger than this is refused at append (details belong in artifacts, not in the audit log)."""

OUTCOMES = ("success", "failure")
DECISIONS = ("allow", "deny")
KINDS = ("dataset", "model", "file", "policy", "endpoint", "key", "run", "other")

_ACTION = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+")
_DIGEST = re.compile(r"(sha256|sha384|sha512|blake3|blake2b):[0-9a-f]{32,128}")
_MAX_TEXT = 2048
_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class EventError(InputError):
    """An event is malformed: refused before it reaches the log, or found so when read back."""


def utc_now() -> str:
    """The current time as RFC 3339 UTC with microseconds: sorts as text, which `query --since` relies on."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> str:
    """Normalise a user-given time (RFC 3339 / ISO 8601, a date, or `-30m`, `-2h`, `-7d`) to the stored form."""
    text = text.strip()
    m = re.fullmatch(r"-(\d+)([smhd])", text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        when = _dt.datetime.now(_dt.UTC) - _dt.timedelta(**{unit: int(m.group(1))})
    else:
        try:
            when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise EventError(f"cannot read time {text!r}: use RFC 3339 (2026-11-23T10:00:00Z), a date, "
                             "or -2h") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.UTC)
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: object, what: str, *, required: bool = False, limit: int = _MAX_TEXT) -> str | None:
    if value is None or value == "":
        if required:
            raise EventError(f"event {what} is required")
        return None
    if not isinstance(value, str):
        raise EventError(f"event {what} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise EventError(f"event {what} is longer than {limit} characters")
    return value


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A dataset, model or file an event read or wrote, named by its digest (how lineage links events)."""

    digest: str
    """`sha256:<hex>`: for a signed artifact, the root digest of its signed manifest."""
    name: str | None = None
    """The dataset or model name in the policy, when known."""
    kind: str = "other"
    """dataset, model, file, policy, endpoint, key, run or other."""
    uri: str | None = None
    """Where it was: a path, file:// or s3:// URL."""

    def __post_init__(self) -> None:
        if not isinstance(self.digest, str) or not _DIGEST.fullmatch(self.digest):
            raise EventError(f"artifact digest {self.digest!r} is not <algorithm>:<lowercase hex>")
        if self.kind not in KINDS:
            raise EventError(f"artifact kind {self.kind!r} is not one of {', '.join(KINDS)}")
        _text(self.name, "artifact name", limit=256)
        _text(self.uri, "artifact uri")

    def to_dict(self) -> dict[str, str]:
        """JSON form, without empty fields."""
        out = {"digest": self.digest, "kind": self.kind}
        if self.name:
            out["name"] = self.name
        if self.uri:
            out["uri"] = self.uri
        return out

    @classmethod
    def from_dict(cls, data: object) -> ArtifactRef:
        """Strict inverse of `to_dict`."""
        if not isinstance(data, Mapping) or set(data) - {"digest", "kind", "name", "uri"}:
            raise EventError(f"artifact reference must be an object with digest, kind, name, uri: {data!r:.80}")
        return cls(digest=data.get("digest"), name=data.get("name"), kind=data.get("kind", "other"),
                   uri=data.get("uri"))  # type: ignore[arg-type]


def _json_safe(value: object, depth: int = 0) -> object:
    if depth > 8:
        raise EventError("event details nest deeper than 8 levels")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise EventError("event details hold a NaN or infinite number")
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise EventError("event details keys must be text")
            out[k] = _json_safe(v, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    raise EventError(f"event details hold a {type(value).__name__}, which JSON cannot carry")


def _freeze(value: object) -> object:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: object) -> object:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """One action or decision, with who did it, to what, where, and which artifacts it read and wrote."""

    action: str
    """What was done, `<group>.<verb>`: `artifacts.sign`, `artifacts.verify`, `policy.validate`, `run.finish`."""
    actor: str
    """Who: `user:<name>`, `workload:<name>` or `service:<name>` (a SPIFFE ID or token subject once identity lands)."""
    resource: str
    """What it was done to: `model:churn-model`, `dataset:customers`, a path or URL."""
    outcome: str = "success"
    """success or failure (a verification that found tampering is a failure)."""
    decision: str | None = None
    """allow or deny, when the event is an authorization decision."""
    reason: str | None = None
    """Why: the rule that allowed or denied, or what failed."""
    environment: str | None = None
    """The policy environment it happened in (onprem, aws, ...)."""
    request_id: str | None = None
    """The request it belongs to (gateway calls)."""
    run_id: str | None = None
    """The pipeline run it belongs to: events sharing a run id are one step of lineage."""
    reads: tuple[ArtifactRef, ...] = ()
    """Artifacts read, by digest."""
    writes: tuple[ArtifactRef, ...] = ()
    """Artifacts written, by digest."""
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Anything else worth keeping (JSON values; never secrets)."""
    time: str = field(default_factory=utc_now)
    """RFC 3339 UTC with microseconds."""

    def __post_init__(self) -> None:
        if not isinstance(self.action, str) or not _ACTION.fullmatch(self.action) or len(self.action) > 128:
            raise EventError(f"event action {self.action!r} must look like group.verb (lowercase)")
        _text(self.actor, "actor", required=True, limit=512)
        _text(self.resource, "resource", required=True)
        if self.outcome not in OUTCOMES:
            raise EventError(f"event outcome {self.outcome!r} must be success or failure")
        if self.decision is not None and self.decision not in DECISIONS:
            raise EventError(f"event decision {self.decision!r} must be allow or deny")
        for name in ("reason", "environment", "request_id", "run_id"):
            _text(getattr(self, name), name)
        if not isinstance(self.time, str) or not _CANONICAL_TIME.fullmatch(self.time):
            try:
                parsed = parse_time(self.time) if isinstance(self.time, str) and self.time.endswith("Z") else None
            except EventError:
                parsed = None
            if parsed is None:
                raise EventError(f"event time {self.time!r} must be RFC 3339 UTC (…Z)")
            object.__setattr__(self, "time", parsed)
        object.__setattr__(self, "reads", tuple(self.reads))
        object.__setattr__(self, "writes", tuple(self.writes))
        for ref in (*self.reads, *self.writes):
            if not isinstance(ref, ArtifactRef):
                raise EventError("event reads and writes must be ArtifactRef values")
        if not isinstance(self.details, Mapping):
            raise EventError("event details must be an object")
        object.__setattr__(self, "details", _freeze(_json_safe(self.details)))

    @property
    def actor_type(self) -> str:
        """user, workload, service, or unknown (from the actor's prefix)."""
        prefix, sep, _ = self.actor.partition(":")
        return prefix if sep and prefix in ("user", "workload", "service") else "unknown"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the log (empty fields left out)."""
        out: dict[str, Any] = {"v": FORMAT_VERSION, "time": self.time, "action": self.action, "actor": self.actor,
                               "resource": self.resource, "outcome": self.outcome}
        if self.decision is not None:
            out["decision"] = self.decision
        if self.reason is not None:
            out["reason"] = self.reason
        if self.environment is not None:
            out["environment"] = self.environment
        if self.request_id is not None:
            out["request_id"] = self.request_id
        if self.run_id is not None:
            out["run_id"] = self.run_id
        if self.reads:
            out["reads"] = [r.to_dict() for r in self.reads]
        if self.writes:
            out["writes"] = [w.to_dict() for w in self.writes]
        if self.details:
            out["details"] = _thaw(self.details)
        return out

    def encode(self) -> bytes:
        """Canonical bytes of the entry: sorted keys, no spaces, UTF-8 (what `json.dumps(sort_keys=True,
        separators=(",", ":"), ensure_ascii=False)` gives, only faster). The leaf hash covers exactly these."""
        try:
            data = orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as exc:  # integers beyond 64 bits
            raise EventError(f"event cannot be encoded: {exc}") from None
        if len(data) > MAX_ENTRY_BYTES:
            raise EventError(f"event is {len(data)} bytes; the limit is {MAX_ENTRY_BYTES}")
        return data

    @classmethod
    def decode(cls, data: bytes) -> Event:
        """Parse stored entry bytes strictly; raise EventError on anything that is not an event of this format."""
        if len(data) > MAX_ENTRY_BYTES:
            raise EventError(f"entry is {len(data)} bytes; the limit is {MAX_ENTRY_BYTES}")
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise EventError(f"entry is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise EventError("entry is not a JSON object")
        if obj.get("v") != FORMAT_VERSION:
            raise EventError(f"entry format version {obj.get('v')!r} is not {FORMAT_VERSION}")
        known = {"v", "time", "action", "actor", "resource", "outcome", "decision", "reason", "environment",
                 "request_id", "run_id", "reads", "writes", "details"}
        extra = set(obj) - known
        if extra:
            raise EventError(f"entry has unknown fields: {', '.join(sorted(extra))}")
        for name in ("reads", "writes"):
            if not isinstance(obj.get(name, []), list):
                raise EventError(f"entry {name} must be a list")
        try:
            return cls(
                action=obj.get("action"), actor=obj.get("actor"), resource=obj.get("resource"),
                outcome=obj.get("outcome"), decision=obj.get("decision"), reason=obj.get("reason"),
                environment=obj.get("environment"), request_id=obj.get("request_id"), run_id=obj.get("run_id"),
                reads=tuple(ArtifactRef.from_dict(r) for r in obj.get("reads", [])),
                writes=tuple(ArtifactRef.from_dict(w) for w in obj.get("writes", [])),
                details=obj.get("details", {}), time=obj.get("time"),
            )  # type: ignore[arg-type]
        except TypeError as exc:
            raise EventError(f"entry fields have the wrong types: {exc}") from None


def refs_of(event: Event) -> Iterable[tuple[str, str | None, str]]:
    """(digest, name, role) for every artifact an event touched; role is `r` (read) or `w` (written)."""
    for ref in event.reads:
        yield ref.digest, ref.name, "r"
    for ref in event.writes:
        yield ref.digest, ref.name, "w"

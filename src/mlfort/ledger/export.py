"""`ledger export`: the log as lines a SIEM ingests (OCSF API Activity, the stored events, or ArcSight CEF).

Every format is one event per line, written as the entries are read (index order, bounded memory), and every entry
is checked against its stored leaf hash on the way out: an export never passes off an edited entry as the logged one.

**ocsf** follows OCSF 1.4.0, class API Activity (`class_uid` 6003, category Application Activity 6). 1.4.0 is the
first version whose base event carries the Security Control profile, which is where `disposition_id` and `action_id`
(an allow or deny decision) live; older versions have no place for a decision on API Activity (ocsf-schema
1.4.0: events/application/api_activity.json, events/base_event.json, profiles/security_control.json). Mapping:

- action `group.verb`: `api.operation` (the whole action), `api.service.name` (`mlfort.<group>`),
  `metadata.event_code`, and `activity_id` (Create, Read, Update, Delete, else Other named by the action);
- actor `user:<login>@<host>`, `workload:<name>`, `service:<name>`: `actor.user` (`uid` the whole actor, `name`,
  `type_id`: 1 User, or 99 Other with `type` Workload/Service), `actor.app_name` for workloads and services, and
  `src_endpoint` (the user's `hostname`, the workload's `svc_name`, else `name` "unknown": it is required);
- resource `<kind>:<name>`: `resources[0]` (`uid`, `name`, `type`);
- reads and writes: `resources[1..]` (`uid` the digest, `name`, `type` the kind, `data.role` read or written) and
  `unmapped.reads` / `unmapped.writes`;
- outcome: `status_id` / `status` (1 Success, 2 Failure); reason: `status_detail`;
- decision: `action_id` / `action` (1 Allowed, 2 Denied) and `disposition_id` / `disposition` (1 Allowed, 2 Blocked);
- environment `aws`, `azure` or `gcp`: `cloud.provider` (other environments, and regions, are not known here);
  every environment also in `unmapped.environment`;
- run id: `metadata.correlation_uid` and `unmapped.run_id`; request id: `api.request.uid`; details: `unmapped.details`;
- time: `time` (epoch milliseconds) and `metadata.original_time` (the stored RFC 3339 text, with microseconds);
- index and log: `metadata.uid` = `<origin>/<index>`, `metadata.sequence` = index, `metadata.log_name` = origin.

JSON lines (ocsf and jsonl) also escape U+0085, U+2028 and U+2029 (`\\u2028`...), which JSON may leave raw but
some line readers split on; a line is always exactly one event.

**jsonl** is the stored event object with `index` and `leaf_hash` (hex) added: dropping those two keys and
re-encoding with sorted keys, no spaces and UTF-8 (non-ASCII left as is) gives back the exact bytes the leaf hash
covers, so a consumer can check every line against `leaf_hash` and an inclusion proof.

**cef** lines are `CEF:0|mlfort|mlfort|<version>|<action>|<name>|<severity>|<extension>` (ArcSight Common Event Format,
version 0). Header fields escape `\\` and `|`; extension values escape `\\`, `=`, and newlines as `\\n`/`\\r`, so no
value can end a line, close a header field or start a key of its own. Other control and line-separator characters
(which some readers split lines on) become U+FFFD. Values are cut to the lengths of the CEF key dictionary.
Keys: `rt` (time, epoch ms), `externalId` (index), `deviceExternalId` (log origin), `cat` (action group), `suser`
(actor), `outcome`, `act` (allow or deny), `reason`, `fileHash`/`fname`/`filePath` or `request` (the first artifact
written, else read), `cs1`..`cs6` with their labels (digestsRead, digestsWritten, resource, runId, environment,
requestId) and `msg` (details as JSON). Severity 1 (success), 3 (other failure), 5 (denied), 8 (failed verification).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import orjson

import mlfort
from mlfort.errors import InputError
from mlfort.ledger import merkle
from mlfort.ledger.event import ArtifactRef, Event, EventError, parse_time
from mlfort.ledger.log import Ledger, LedgerError
from mlfort.ledger.verify import as_bytes

FORMATS = ("ocsf", "jsonl", "cef")

OCSF_VERSION = "1.4.0"
API_ACTIVITY = 6003
APPLICATION_CATEGORY = 6
PRODUCT = {"name": "mlfort", "vendor_name": "mlfort", "version": mlfort.__version__}

CREATE, READ, UPDATE, DELETE, OTHER = 1, 2, 3, 4, 99
ACTIVITY_NAMES = {CREATE: "Create", READ: "Read", UPDATE: "Update", DELETE: "Delete", OTHER: "Other"}

# Exact actions first (what mlfort records today), then the verb of anything else: a new action gets a sensible
# activity without touching this table, and one it cannot place is Other with its own name (as OCSF asks).
ACTIVITY_BY_ACTION = {
    "artifacts.sign": CREATE,
    "artifacts.verify": READ,
    "policy.validate": READ,
    "model.deploy": UPDATE,
    "ledger.checkpoint": CREATE,
    "ledger.archive": CREATE,
    "ledger.export": READ,
    "run.finish": OTHER,
}
ACTIVITY_BY_VERB = {
    **dict.fromkeys(("sign", "create", "add", "register", "put", "write", "upload", "issue", "init", "generate",
                     "import", "archive", "checkpoint"), CREATE),
    **dict.fromkeys(("verify", "validate", "read", "get", "list", "query", "export", "show", "prove", "download",
                     "fetch", "load", "check", "scan", "inspect", "describe", "tail"), READ),
    **dict.fromkeys(("update", "rotate", "set", "modify", "patch", "deploy", "promote", "rollback", "grant",
                     "approve", "rename"), UPDATE),
    **dict.fromkeys(("delete", "remove", "revoke", "destroy", "purge", "expire"), DELETE),
}

INFORMATIONAL, LOW, MEDIUM, HIGH = 1, 2, 3, 4
SEVERITY_NAMES = {INFORMATIONAL: "Informational", LOW: "Low", MEDIUM: "Medium", HIGH: "High"}
CEF_SEVERITY = {INFORMATIONAL: 1, LOW: 3, MEDIUM: 5, HIGH: 8}
"""CEF's 0-10 scale reads 0-3 low, 4-6 medium, 7-8 high, 9-10 very high."""

CLOUD_PROVIDERS = {"aws": "AWS", "azure": "Azure", "gcp": "GCP"}

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_MS = _dt.timedelta(milliseconds=1)
_FLUSH_EVERY = 512


def activity_of(action: str) -> int:
    """The OCSF API Activity `activity_id` of an mlfort action (Create, Read, Update, Delete or Other)."""
    known = ACTIVITY_BY_ACTION.get(action)
    if known is not None:
        return known
    return ACTIVITY_BY_VERB.get(action.rpartition(".")[2], OTHER)


def severity_of(event: Event) -> int:
    """OCSF `severity_id`: a success is informational; a denial is medium; a failed verification (tampering or an
    untrusted signer) is high; any other failure (bad input, a missing file) is low."""
    if event.decision == "deny":
        return MEDIUM
    if event.outcome == "failure":
        return HIGH if event.action.rpartition(".")[2] in ("verify", "prove") else LOW
    return INFORMATIONAL


def epoch_ms(time: str) -> int:
    """Milliseconds since the epoch of a stored RFC 3339 UTC time (integer arithmetic: no float rounding)."""
    return (_dt.datetime.fromisoformat(time) - _EPOCH) // _MS


def _actor_parts(actor: str) -> tuple[str, str, str | None]:
    """(type, name, host) of an actor: `user:alice@build-01` -> ("user", "alice", "build-01")."""
    prefix, sep, rest = actor.partition(":")
    if not sep or prefix not in ("user", "workload", "service"):
        return "unknown", actor, None
    if prefix == "user" and "@" in rest:
        login, _, host = rest.rpartition("@")
        if login and host:
            return prefix, login, host
    return prefix, rest or actor, None


def _resource(resource: str) -> dict[str, Any]:
    kind, sep, name = resource.partition(":")
    if sep and name and re.fullmatch(r"[a-z][a-z0-9_-]*", kind) and not name.startswith("//"):
        return {"uid": resource, "name": name, "type": kind}
    return {"uid": resource, "name": resource}  # a path or URL: no kind to split off


def _artifact(ref: ArtifactRef, role: str) -> dict[str, Any]:
    out: dict[str, Any] = {"uid": ref.digest, "type": ref.kind, "data": {"role": role, "digest": ref.digest}}
    if ref.name:
        out["name"] = ref.name
    if ref.uri:
        out["data"]["uri"] = ref.uri
    return out


def to_ocsf(event: Event, index: int, origin: str) -> dict[str, Any]:
    """One event as an OCSF 1.4.0 API Activity (6003) object."""
    activity = activity_of(event.action)
    severity = severity_of(event)
    group = event.action.rpartition(".")[0]
    actor_type, actor_name, host = _actor_parts(event.actor)
    user: dict[str, Any] = {"uid": event.actor, "name": actor_name}
    if actor_type == "user":
        user["type_id"], user["type"] = 1, "User"
    elif actor_type in ("workload", "service"):
        user["type_id"], user["type"] = 99, actor_type.capitalize()  # non-human: Other, named (OCSF's rule for 99)
    else:
        user["type_id"], user["type"] = 0, "Unknown"
    actor: dict[str, Any] = {"user": user}
    if actor_type in ("workload", "service"):
        actor["app_name"] = actor_name
    # src_endpoint is required in API Activity; the entry says where only through the actor's name.
    if host:
        src: dict[str, Any] = {"hostname": host}
    elif actor_type in ("workload", "service"):
        src = {"svc_name": actor_name}
    else:
        src = {"name": "unknown"}

    api: dict[str, Any] = {"operation": event.action, "service": {"name": f"mlfort.{group}"}}
    if event.request_id:
        api["request"] = {"uid": event.request_id}
    resources = [_resource(event.resource)]
    resources += [_artifact(r, "read") for r in event.reads]
    resources += [_artifact(w, "written") for w in event.writes]

    metadata: dict[str, Any] = {
        "version": OCSF_VERSION, "product": dict(PRODUCT), "uid": f"{origin}/{index}", "sequence": index,
        "log_name": origin, "log_provider": "mlfort ledger", "event_code": event.action,
        "original_time": event.time,
    }
    if event.run_id:
        metadata["correlation_uid"] = event.run_id
    profiles: list[str] = []

    out: dict[str, Any] = {
        "class_uid": API_ACTIVITY, "class_name": "API Activity",
        "category_uid": APPLICATION_CATEGORY, "category_name": "Application Activity",
        "activity_id": activity,
        "activity_name": event.action if activity == OTHER else ACTIVITY_NAMES[activity],
        "type_uid": API_ACTIVITY * 100 + activity,
        "type_name": f"API Activity: {ACTIVITY_NAMES[activity]}",
        "time": epoch_ms(event.time),
        "severity_id": severity, "severity": SEVERITY_NAMES[severity],
        "status_id": 1 if event.outcome == "success" else 2,
        "status": "Success" if event.outcome == "success" else "Failure",
        "message": _message(event),
        "actor": actor, "api": api, "src_endpoint": src, "resources": resources,
        "metadata": metadata,
    }
    if event.reason:
        out["status_detail"] = event.reason
    if event.decision is not None:
        allowed = event.decision == "allow"
        out["action_id"], out["action"] = (1, "Allowed") if allowed else (2, "Denied")
        out["disposition_id"], out["disposition"] = (1, "Allowed") if allowed else (2, "Blocked")
        profiles.append("security_control")
    provider = CLOUD_PROVIDERS.get((event.environment or "").lower())
    if provider:
        out["cloud"] = {"provider": provider}
        profiles.append("cloud")
    if profiles:
        metadata["profiles"] = profiles

    unmapped: dict[str, Any] = {}
    if event.environment:
        unmapped["environment"] = event.environment
    if event.run_id:
        unmapped["run_id"] = event.run_id
    if event.reads:
        unmapped["reads"] = [r.to_dict() for r in event.reads]
    if event.writes:
        unmapped["writes"] = [w.to_dict() for w in event.writes]
    if event.details:
        unmapped["details"] = event.to_dict()["details"]
    if unmapped:
        out["unmapped"] = unmapped
    return out


def _message(event: Event) -> str:
    text = f"{event.actor} {event.action} {event.resource}: {event.outcome}"
    if event.decision:
        text += f" ({'allowed' if event.decision == 'allow' else 'denied'})"
    if event.reason:
        text += f": {event.reason}"
    return text


# -- CEF ---------------------------------------------------------------------------------------------------------

# Characters that are not printable text and that some readers treat as line or record breaks (str.splitlines does
# for \v \f \x1c-\x1e \x85 \u2028 \u2029); CR and LF are escaped instead, so they survive as \r and \n.
_CONTROL = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_REPLACEMENT = "\ufffd"
_VALUE_SPECIAL = re.compile("[\\\\=\x00-\x1f\x7f-\x9f\u2028\u2029]")
_HEADER_SPECIAL = re.compile("[\\\\|\x00-\x1f\x7f-\x9f\u2028\u2029]")

CEF_LIMITS = {
    "act": 63, "outcome": 63, "externalId": 40, "deviceExternalId": 255, "fileHash": 255, "cat": 1023,
    "suser": 1023, "reason": 1023, "request": 1023, "filePath": 1023, "fname": 1023,
    "msg": 1023, **{f"cs{i}": 4000 for i in range(1, 7)}, **{f"cs{i}Label": 1023 for i in range(1, 7)},
}
"""Value lengths of the ArcSight CEF key dictionary (Implementing ArcSight CEF, rev. 25)."""
HEADER_LIMITS = {"signature": 1023, "name": 512}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def cef_header_escape(text: str, limit: int = 1023) -> str:
    """A CEF header field: `\\` and `|` escaped; line breaks and control characters replaced (the header has no
    escape for them)."""
    text = _cut(text, limit)
    if not _HEADER_SPECIAL.search(text):
        return text
    text = _CONTROL.sub(_REPLACEMENT, text).replace("\r", _REPLACEMENT).replace("\n", _REPLACEMENT)
    return text.replace("\\", "\\\\").replace("|", "\\|")


def cef_value_escape(text: str, limit: int = 4000) -> str:
    """A CEF extension value: `\\`, `=` escaped, CR and LF as `\\r` and `\\n`, other controls replaced. Cut to
    `limit` characters before escaping, so an escape is never split."""
    text = _cut(text, limit)
    if not _VALUE_SPECIAL.search(text):  # the common case: nothing to escape
        return text
    text = _CONTROL.sub(_REPLACEMENT, text)
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def to_cef(event: Event, index: int, origin: str) -> str:
    """One event as an ArcSight CEF:0 line (no trailing newline, no syslog prefix)."""
    severity = severity_of(event)
    name = f"{event.action} {event.outcome}" + (" (denied)" if event.decision == "deny" else "")
    header = "|".join((
        "CEF:0", "mlfort", "mlfort", cef_header_escape(mlfort.__version__, 63),
        cef_header_escape(event.action, HEADER_LIMITS["signature"]), cef_header_escape(name, HEADER_LIMITS["name"]),
        str(CEF_SEVERITY[severity]),
    ))
    ext: list[tuple[str, str]] = [
        ("rt", str(epoch_ms(event.time))), ("externalId", str(index)), ("deviceExternalId", origin),
        ("cat", event.action.rpartition(".")[0]), ("suser", event.actor), ("outcome", event.outcome),
    ]
    if event.decision:
        ext.append(("act", event.decision))
    if event.reason:
        ext.append(("reason", event.reason))
    # The first artifact written (else read) in the file keys; all digests in cs1/cs2.
    first = (event.writes or event.reads or (None,))[0]
    if first is not None:
        ext.append(("fileHash", first.digest))
        if first.name:
            ext.append(("fname", first.name))
        if first.uri:
            ext.append(("request" if re.match(r"[a-z][a-z0-9+.-]*://", first.uri) else "filePath", first.uri))
    custom = (
        ("digestsRead", ",".join(r.digest for r in event.reads)),
        ("digestsWritten", ",".join(w.digest for w in event.writes)),
        ("resource", event.resource),
        ("runId", event.run_id or ""),
        ("environment", event.environment or ""),
        ("requestId", event.request_id or ""),
    )
    for n, (label, value) in enumerate(custom, start=1):
        if value:
            ext.append((f"cs{n}Label", label))
            ext.append((f"cs{n}", value))
    if event.details:
        ext.append(("msg", orjson.dumps(event.to_dict()["details"], option=orjson.OPT_SORT_KEYS).decode()))
    body = " ".join(f"{k}={cef_value_escape(v, CEF_LIMITS.get(k, 1023))}" for k, v in ext)
    return f"{header}|{body}"


_JSON_BREAKS = re.compile("[\x85\u2028\u2029]")


def _json_line(data: bytes) -> str:
    """orjson output as one text line: the Unicode line breaks JSON allows raw are escaped too."""
    text = data.decode()
    if _JSON_BREAKS.search(text):
        text = _JSON_BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


# -- the export loop -----------------------------------------------------------------------------------------------

def _jsonl(body: bytes, index: int, leaf: bytes) -> bytes:
    obj = orjson.loads(body)
    return orjson.dumps({"index": index, "leaf_hash": leaf.hex(), **obj})


def _entries(ledger: Ledger, since: str | None, until: str | None) -> Iterator[tuple[int, bytes, bytes, Event]]:
    """(index, leaf, body, event) of the entries present when the export started, in index order and within the
    time window; each checked against its leaf hash."""
    size = ledger.size()
    for idx, stored_leaf, raw in ledger.store.entries(0, size):
        body = as_bytes(raw)
        leaf = as_bytes(stored_leaf)
        if body is None or leaf is None or merkle.leaf_hash(body) != leaf:
            raise LedgerError(f"entry {idx} does not match its leaf hash: it was changed after it was logged; "
                              "nothing after it was exported (run `mlfort ledger verify`)")
        try:
            event = Event.decode(body)
        except EventError as exc:
            raise LedgerError(f"entry {idx} cannot be exported: {exc} (run `mlfort ledger verify`)") from None
        if (since is not None and event.time < since) or (until is not None and event.time >= until):
            continue
        yield idx, leaf, body, event


def export(ledger: Ledger, fmt: str, out: TextIO, *, since: str | None = None, until: str | None = None,
           limit: int | None = None) -> int:
    """Write the entries appended before the call (from `since`, before `until`, at most `limit`) to `out` in
    `fmt` (ocsf, jsonl or cef), one per line, oldest index first; return how many were written."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if limit is not None and limit < 0:
        raise InputError("the export limit must be 0 or more")
    since = parse_time(since) if since else None
    until = parse_time(until) if until else None
    origin = ledger.origin
    line: Callable[[int, bytes, bytes, Event], str]
    if fmt == "ocsf":
        def line(i: int, leaf: bytes, body: bytes, e: Event) -> str:
            return _json_line(orjson.dumps(to_ocsf(e, i, origin)))
    elif fmt == "jsonl":
        def line(i: int, leaf: bytes, body: bytes, e: Event) -> str:
            return _json_line(_jsonl(body, i, leaf))
    else:
        def line(i: int, leaf: bytes, body: bytes, e: Event) -> str:
            return to_cef(e, i, origin)

    count = 0
    pending: list[str] = []
    if limit == 0:
        return 0
    for idx, leaf, body, event in _entries(ledger, since, until):
        pending.append(line(idx, leaf, body, event))
        count += 1
        if len(pending) >= _FLUSH_EVERY:
            out.write("\n".join(pending) + "\n")
            pending.clear()
        if limit is not None and count >= limit:
            break
    if pending:
        out.write("\n".join(pending) + "\n")
    return count

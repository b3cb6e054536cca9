"""Load and validate a policy: YAML safely, then the schema, then cross-references; every error positioned."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mlfort.policy.issues import (
    SCHEMA_BAD_VALUE,
    SCHEMA_MISSING_KEY,
    SCHEMA_UNKNOWN_KEY,
    PolicyError,
    PolicyIssue,
)
from mlfort.policy.references import check_references
from mlfort.policy.schema import Policy
from mlfort.policy.signers import check_signer_keys
from mlfort.policy.source import (
    Path_,
    SourceMap,
    decode_policy_bytes,
    dotted,
    parse_policy_text,
    read_policy_bytes,
)
from mlfort.report.redact import preview


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """The outcome of checking a policy file: the Policy when it is valid, and every issue (errors and warnings)."""

    file: str
    policy: Policy | None
    issues: tuple[PolicyIssue, ...]

    @property
    def errors(self) -> tuple[PolicyIssue, ...]:
        """The issues that make the policy invalid."""
        return tuple(issue for issue in self.issues if issue.is_error)

    @property
    def valid(self) -> bool:
        """True when the policy loaded and no issue is an error (warnings allowed)."""
        return self.policy is not None and not self.errors


def check_policy_file(path: str | Path) -> PolicyReport:
    """Check a policy file. Raises InputError only when it cannot be read at all (missing, too large, not a
    file); everything wrong inside it is returned as issues."""
    path = Path(path)
    data = read_policy_bytes(path)
    text, issues = decode_policy_bytes(data, str(path))
    if text is None:
        return PolicyReport(str(path), None, tuple(issues))
    return check_policy_text(text, str(path), base_dir=path.parent)


def check_policy_text(text: str, filename: str = "<policy>", *, base_dir: Path | None = None) -> PolicyReport:
    """Check policy text (named `filename` in messages), in three stages: YAML, schema, references. A stage runs
    only when the one before found no errors, so every reported error is real rather than a knock-on.

    `base_dir` is where relative signer key paths are read from (the policy file's folder); without it only
    inline PEM signers are checked."""
    parsed = parse_policy_text(text, filename)
    if parsed.issues:
        return PolicyReport(filename, None, tuple(parsed.issues))
    try:
        policy = Policy.model_validate(parsed.data)
    except ValidationError as exc:
        issues = [_schema_issue(error, parsed.positions, filename) for error in exc.errors(include_url=False)]
        return PolicyReport(filename, None, tuple(issues))
    found = []
    for problem in [*check_references(policy), *check_signer_keys(policy, base_dir)]:
        line, column = parsed.positions.locate(problem.path, prefer_key=problem.at_key)
        found.append(
            PolicyIssue(
                problem.rule_id,
                problem.message,
                filename,
                dotted(problem.path),
                line,
                column,
                problem.severity,
            )
        )
    report = PolicyReport(filename, policy, tuple(found))
    return report if report.valid else PolicyReport(filename, None, report.issues)


def load_policy(path: str | Path) -> Policy:
    """Load a valid policy from a file, or raise InputError (unreadable) / PolicyError (invalid, every issue)."""
    return _policy_or_raise(check_policy_file(path))


def load_policy_text(text: str, filename: str = "<policy>") -> Policy:
    """Load a valid policy from text; raise PolicyError listing every error, positioned in `filename`."""
    return _policy_or_raise(check_policy_text(text, filename))


def _policy_or_raise(report: PolicyReport) -> Policy:
    if report.policy is None or report.errors:
        raise PolicyError(report.file, report.errors or report.issues)
    return report.policy


def _schema_issue(error: Mapping[str, Any], positions: SourceMap, filename: str) -> PolicyIssue:
    """Turn one pydantic error into an issue with file position, dotted key and an 'expected ...; got ...'."""
    loc: Path_ = tuple(error["loc"])
    kind = error["type"]
    key_error = bool(loc) and loc[-1] == "[key]"
    if key_error:
        loc = loc[:-1]  # the mapping key itself was invalid (e.g. a bad name)
    if kind == "missing":
        parent, name = loc[:-1], loc[-1]
        line, column = positions.locate(parent)
        where = f" in {dotted(parent)}" if parent else ""
        return PolicyIssue(
            SCHEMA_MISSING_KEY, f"missing required key {name!r}{where}", filename, dotted(loc), line, column
        )
    if kind == "extra_forbidden":
        line, column = positions.locate(loc, prefer_key=True)
        name = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        message = f"unknown key {name!r}"
        if allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message += f"{hint}; expected one of {', '.join(allowed)}"
        return PolicyIssue(SCHEMA_UNKNOWN_KEY, message, filename, dotted(loc), line, column)
    line, column = positions.locate(loc, prefer_key=key_error)
    message = _expected(error)
    if key_error:
        message = f"bad name: {message}"
    return PolicyIssue(SCHEMA_BAD_VALUE, message, filename, dotted(loc), line, column)


_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "bool_type": "expected true or false",
    "dict_type": "expected a mapping (key: value lines)",
    "mapping_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "sequence_type": "expected a list",
    "iterable_type": "expected a list",
}


def _expected(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "value_error":
        # Our validators already write "expected ...; got ..." messages.
        return str(ctx.get("error", error["msg"])).removeprefix("Value error, ")
    if kind in ("enum", "literal_error"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        expected = f"expected one of {', '.join(choices)}" if choices else f"expected {ctx.get('expected')}"
    elif kind == "string_too_long":
        expected = f"expected at most {ctx.get('max_length')} characters"
    else:
        expected = _EXPECTED.get(kind, error["msg"])
    return f"{expected}; got {_describe(error.get('input'))}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null or an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"the number {value}"
    return preview(str(value), 60)


def _allowed_keys(loc: Path_) -> list[str]:
    """Field names of the model found at `loc` in the schema, for 'expected one of ...' on unknown keys."""
    current: Any = Policy
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is tuple and args:
            current = args[0]
        elif origin is not None and isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
            current = args[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `| None` to reach the type that holds the fields."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation

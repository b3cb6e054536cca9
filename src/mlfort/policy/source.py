"""Read a policy file safely: bounded size, UTF-8, YAML without tags or merge keys, aliases on a budget.

The output is plain Python data (dicts, lists, str, int, float, bool, None) plus a SourceMap that remembers the
line and column of every key and value, so later stages can point at the exact spot of an error.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlfort.errors import InputError
from mlfort.policy.issues import (
    YAML_DUPLICATE_KEY,
    YAML_HOSTILE,
    YAML_UNREADABLE,
    YAML_UNSUPPORTED,
    PolicyIssue,
)
from mlfort.report.redact import preview

MAX_FILE_BYTES = 5 * 1024 * 1024
"""A policy is a few kilobytes; 5 MiB leaves room for inline PEM keys and still refuses junk before reading it."""
MAX_NODES = 100_000
"""Budget of YAML nodes after alias expansion; a 'billion laughs' document hits it within milliseconds."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists; real policies stay under 8. Also guards libyaml's recursive composer,
which crashes the interpreter (not just raises) on documents nested tens of thousands deep."""

# The C loader is much faster; both give the same node tree and marks.
_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null")}
# An unquoted date such as 2024-01-01 resolves to a timestamp; no policy field is a date, so keep the text.
_TEXT_TAGS = {f"{_TAG}str", f"{_TAG}timestamp"}
_CONSTRUCTOR = SafeConstructor()

Path_ = tuple[str | int, ...]
"""A position in the data: mapping keys and list indexes from the root, e.g. ('datasets', 'churn', 'owner')."""


@dataclass
class SourceMap:
    """Line and column (1-based) of each value and each mapping key, by data path."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path_, *, prefer_key: bool = False) -> tuple[int | None, int | None]:
        """Position of `path`, or of its nearest recorded ancestor (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefer_key and prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return None, None


@dataclass
class ParsedSource:
    """The result of reading a policy: data and positions, or the issues that stopped us."""

    data: Any = None
    positions: SourceMap = field(default_factory=SourceMap)
    issues: list[PolicyIssue] = field(default_factory=list)


def dotted(path: Path_) -> str:
    """`('principals', 'humans', 0, 'roles')` -> `principals.humans[0].roles`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_policy_bytes(path: Path) -> bytes:
    """Read at most MAX_FILE_BYTES from a regular file; raise InputError (exit 2) when it cannot be read."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"policy file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path} is a directory, not a policy file")
    if not stat.S_ISREG(info.st_mode):
        # FIFOs and devices could block or never end.
        raise InputError(f"{path} is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise InputError(_too_large(str(path), info.st_size))
    try:
        # O_NONBLOCK: if the file was swapped for a FIFO after stat, open does not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            # Bounded read: the file may have grown since stat.
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(_too_large(str(path), len(data)))
    return data


def _too_large(name: str, size: int) -> str:
    return (
        f"refusing to read policy file {name}: {size} bytes is over the {MAX_FILE_BYTES} byte "
        f"({MAX_FILE_BYTES // (1024 * 1024)} MiB) limit"
    )


def decode_policy_bytes(data: bytes, filename: str) -> tuple[str | None, list[PolicyIssue]]:
    """UTF-8 text of a policy file, or an issue pointing at the first byte that is not text."""
    nul = data.find(b"\x00")
    if nul >= 0:
        line, column = _byte_position(data, nul)
        return None, [
            PolicyIssue(
                YAML_UNREADABLE,
                "binary data (NUL byte); a policy file must be UTF-8 text",
                filename,
                line=line,
                column=column,
            )
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _byte_position(data, exc.start)
        return None, [
            PolicyIssue(
                YAML_UNREADABLE,
                f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the policy file as UTF-8",
                filename,
                line=line,
                column=column,
            )
        ]
    return text.removeprefix("\ufeff"), []


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    prefix = data[line_start:offset].decode("utf-8", errors="replace")
    return data.count(b"\n", 0, offset) + 1, len(prefix) + 1


def parse_policy_text(text: str, filename: str) -> ParsedSource:
    """Parse YAML text into plain data and positions; every problem becomes an issue, never an exception."""
    if len(text) > MAX_FILE_BYTES:
        raise InputError(_too_large(filename, len(text.encode("utf-8"))))
    result = ParsedSource()

    def fail(rule_id: str, message: str, line: int | None = None, column: int | None = None) -> ParsedSource:
        result.issues.append(PolicyIssue(rule_id, message, filename, line=line, column=column))
        return result

    def refuse(event: yaml.Event, message: str) -> ParsedSource:
        mark = event.start_mark
        return fail(YAML_HOSTILE, f"{message}; refusing the document", mark.line + 1, mark.column + 1)

    # Pass 1: stream the parser events (an iterative state machine) to refuse deep nesting before composing,
    # because the composer recurses and libyaml's crashes the process on a document like '[' * 100000.
    try:
        depth = 0
        for events, event in enumerate(yaml.parse(text, Loader=_LOADER), start=1):
            if events > 2 * MAX_NODES + 16:
                # Each value is at most two events (start and end); stopping here bounds the memory the
                # composer would spend on a flat document of millions of tiny values.
                return refuse(event, f"more than {MAX_NODES} values")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return refuse(event, f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        return fail(YAML_UNREADABLE, *_describe_yaml_error(exc))
    except yaml.reader.ReaderError as exc:
        line, column = _char_position(text, exc.position)
        return fail(YAML_UNREADABLE, f"YAML reader: {exc.reason}", line, column)
    except yaml.YAMLError as exc:
        return fail(YAML_UNREADABLE, f"YAML error: {exc}")
    except RecursionError:
        # Only reachable with the pure-Python loader, whose recursion limit is below MAX_DEPTH * 10.
        return fail(YAML_HOSTILE, "nested too deeply; refusing the document")

    if root is None or (isinstance(root, ScalarNode) and root.tag == f"{_TAG}null"):
        return fail(YAML_UNREADABLE, "empty policy file; expected a mapping that starts with 'version: 1'", 1, 1)
    if not isinstance(root, MappingNode) or root.tag != f"{_TAG}map":
        mark = root.start_mark
        return fail(
            YAML_UNREADABLE,
            f"the top level of a policy must be a mapping (key: value lines); got {_node_kind(root)}",
            mark.line + 1,
            mark.column + 1,
        )
    converter = _Converter(filename, result)
    try:
        result.data = converter.convert(root, (), 0)
    except _Refused:
        result.data = None
    return result


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> tuple[str, int | None, int | None]:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    problem = exc.problem or "syntax error"
    if isinstance(exc, yaml.composer.ComposerError) and "single document" in (exc.context or ""):
        return "several YAML documents ('---') in one policy file; keep exactly one", line, column
    context = f" ({exc.context})" if exc.context else ""
    return f"YAML syntax error: {problem}{context}", line, column


def _char_position(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _node_kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"the scalar {preview(str(node.value))}"


def _show_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


class _Refused(Exception):
    """Stop converting at once: the document is hostile (budget or depth)."""


class _Converter:
    """Turns a composed node tree into plain data, expanding aliases on a budget and recording positions."""

    def __init__(self, filename: str, result: ParsedSource) -> None:
        self.filename = filename
        self.result = result
        self.nodes = 0

    def issue(self, rule_id: str, message: str, node: Node, path: Path_) -> None:
        mark = node.start_mark
        self.result.issues.append(
            PolicyIssue(rule_id, message, self.filename, dotted(path), mark.line + 1, mark.column + 1)
        )

    def count(self, node: Node, path: Path_) -> None:
        # Aliases point at the same node object, so walking them here is where expansion happens: count it.
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.issue(
                YAML_HOSTILE,
                f"more than {MAX_NODES} values once aliases are expanded (a 'billion laughs' document?); refusing",
                node,
                path,
            )
            raise _Refused

    def convert(self, node: Node, path: Path_, depth: int) -> Any:
        self.count(node, path)
        mark = node.start_mark
        self.result.positions.values.setdefault(path, (mark.line + 1, mark.column + 1))
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if depth >= MAX_DEPTH:
            # Reached through aliases (a self-referencing anchor, or nested alias chains).
            self.issue(YAML_HOSTILE, f"nested deeper than {MAX_DEPTH} levels through aliases; refusing", node, path)
            raise _Refused
        if isinstance(node, SequenceNode):
            if node.tag != f"{_TAG}seq":
                self.issue(YAML_UNSUPPORTED, f"unsupported YAML tag {_show_tag(node.tag)}", node, path)
                return None
            return [self.convert(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        if node.tag != f"{_TAG}map":
            self.issue(YAML_UNSUPPORTED, f"unsupported YAML tag {_show_tag(node.tag)}", node, path)
            return None
        return self.mapping(node, path, depth)

    def mapping(self, node: MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            self.count(key_node, path)
            if key_node.tag == f"{_TAG}merge":
                self.issue(
                    YAML_UNSUPPORTED,
                    "merge keys (<<) are not supported in a policy; write the keys out so each entry can be "
                    "read (and reviewed) on its own",
                    key_node,
                    path,
                )
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != f"{_TAG}str":
                self.issue(YAML_UNSUPPORTED, _bad_key_message(key_node), key_node, path)
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.issue(
                    YAML_DUPLICATE_KEY,
                    f"duplicate key {key!r} on line {line}; first defined on line {first_line[key]} "
                    "(YAML would silently keep only the last one)",
                    key_node,
                    (*path, key),
                )
                continue
            first_line[key] = line
            self.result.positions.keys.setdefault((*path, key), (line, key_node.start_mark.column + 1))
            out[key] = self.convert(value_node, (*path, key), depth + 1)
        return out

    def scalar(self, node: ScalarNode, path: Path_) -> Any:
        if node.tag in _TEXT_TAGS:
            return node.value
        if node.tag not in _SCALAR_TAGS:
            self.issue(
                YAML_UNSUPPORTED,
                f"unsupported YAML tag {_show_tag(node.tag)}; only plain strings, numbers, booleans and null "
                "are allowed",
                node,
                path,
            )
            return None
        try:
            return _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)
        except (ValueError, yaml.YAMLError) as exc:
            # e.g. an integer with more digits than Python converts (a cheap CPU exhaustion attempt).
            self.issue(YAML_UNSUPPORTED, f"cannot read value {preview(str(node.value))}: {exc}", node, path)
            return None


def _bad_key_message(node: Node) -> str:
    if isinstance(node, ScalarNode):
        if node.tag == f"{_TAG}bool":
            return f'key {node.value!r} is read by YAML as a boolean, not a name; quote it ("{node.value}")'
        return f"keys must be strings; {node.value!r} is read as {_show_tag(node.tag)}; quote it"
    return f"keys must be strings; got {_node_kind(node)}"

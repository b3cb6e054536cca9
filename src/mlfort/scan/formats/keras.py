"""Keras model configurations: `config.json` inside a `.keras` (v3) zip, and the `model_config` attribute of a
Keras 2 `.h5` file (which `hdf5.py` hands to `check_config`).

A Keras config is a tree of `{"class_name", "config", "module", "registered_name"}` objects that the loader turns
into live Python: it imports `module`, looks up `class_name` (or, for `"class_name": "function"`, the function named
by `config`) and calls it. Three ways that runs an attacker's code, all reported as MLF-MOD-007:

* Lambda layers carry Python bytecode (base64 `marshal` data: `{"class_name": "__lambda__"}` in Keras 3, a
  `function_type: "lambda"` triple in Keras 2) that `marshal.loads` turns into a function (CVE-2024-3660; Keras 2
  `.h5` files ignore `safe_mode`, CVE-2025-9905). The bytecode is decoded only to report its size, never
  unmarshalled.
* Any object or function reference may name a module outside Keras (`os`, `subprocess`, `builtins`): loaders before
  Keras 3.9 import whatever is named even in safe mode (CVE-2025-1550).
* References inside Keras's own namespace can be just as bad: `keras.utils.get_file` downloads and writes files
  (CVE-2025-8747), `keras.models.load_model` loads a second model with `safe_mode=False` after
  `set_global_attribute` turned safe mode off (CVE-2025-9906), `tensorflow.io` writes files. These are CRITICAL
  wherever they appear; other references outside Keras are HIGH (custom code runs on load).

The walk is iterative (a hostile config can nest thousands of levels) and reads the JSON only.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from mlfort.report import Severity
from mlfort.scan.base import Member, ScanContext
from mlfort.scan.dispatch import handles
from mlfort.scan.rules import finding

MAX_CONFIG = 64 << 20
"""Bytes of a config read; Keras configs are kilobytes to a few megabytes."""
MAX_NODES = 5_000_000
"""JSON values walked in one config."""
MAX_REPORTED = 50

KERAS_ROOTS = frozenset({"keras", "tf_keras", "keras_hub", "keras_nlp", "keras_cv", "keras_rs"})
"""Top-level packages of Keras and its official libraries: references there are Keras's own objects..."""
_KERAS_PREFIXES = ("tensorflow.keras.", "tensorflow.python.keras.", "tf.keras.")

DANGEROUS_ROOTS = frozenset({
    "os", "posix", "nt", "subprocess", "pty", "shutil", "socket", "ctypes", "importlib", "runpy", "code", "codeop",
    "pickle", "_pickle", "marshal", "dill", "cloudpickle", "joblib", "sys", "webbrowser", "urllib", "urllib3",
    "http", "requests", "httpx", "ftplib", "smtplib", "telnetlib", "asyncio", "multiprocessing", "signal",
    "pathlib", "io", "_io", "commands", "platform", "tempfile", "glob", "pdb", "timeit", "imp", "zipimport",
    "_posixsubprocess", "_thread", "threading", "operator", "functools",
})
"""Modules whose functions run commands, load code, reach the network or touch files (or call what is passed)."""
DANGEROUS_BUILTINS = frozenset({"eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr",
                                "globals", "locals", "vars", "breakpoint", "input", "apply", "execfile", "file"})
DANGEROUS_NAMES = frozenset({
    "get_file", "load_model", "load_weights", "save_model", "save_weights", "enable_unsafe_deserialization",
    "set_global_attribute", "func_load", "load_img", "save_img", "register_keras_serializable",
    "get_custom_objects", "deserialize_keras_object", "load_library", "load_op_library", "py_function",
    "numpy_function", "py_func", "write_file", "read_file", "gfile", "fromfile", "tofile", "savez", "savetxt",
    "loadtxt", "genfromtxt", "memmap", "ctypeslib", "DataSource", "system", "popen",
})
"""Names that are dangerous under any module, Keras's and TensorFlow's included (the CVE-2025-8747/9906 gadgets)."""
_DANGEROUS_PATH_PARTS = frozenset({"io", "gfile", "saving", "file_utils", "global_state", "python_utils"})
"""Module path components of TensorFlow/Keras file, saving and global-state helpers."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """How bad a reference to `target` is."""

    target: str
    severity: Severity
    why: str


def classify(module: str, name: str) -> Verdict | None:
    """The verdict for a reference to `module.name` (a class to instantiate or a function to call); None for Keras's
    own harmless objects."""
    module = module.strip()
    target = f"{module}.{name}" if module else name
    parts = [p for p in module.replace("/", ".").split(".") if p]
    root = parts[0] if parts else ""
    last = name.rsplit(".", 1)[-1]
    name_parts = set(name.split("."))
    if root in DANGEROUS_ROOTS or (root in ("builtins", "__builtin__", "__builtins__") and last in DANGEROUS_BUILTINS):
        return Verdict(target, Severity.CRITICAL, "runs commands, loads code or touches files")
    if last in DANGEROUS_NAMES or name_parts & DANGEROUS_NAMES:
        return Verdict(target, Severity.CRITICAL, "downloads, loads or writes files, or turns safe mode off")
    keras_own = root in KERAS_ROOTS or (module + ".").startswith(_KERAS_PREFIXES)
    if (keras_own or root in ("tensorflow", "tf")) and (set(parts[1:]) | name_parts) & _DANGEROUS_PATH_PARTS:
        return Verdict(target, Severity.CRITICAL, "a file, saving or global-state helper (safe-mode bypass gadget)")
    if keras_own:
        return None
    return Verdict(target, Severity.HIGH, "custom code outside Keras: the loader imports and runs it")


def _b64_size(code: Any) -> int | None:
    """Bytes of base64 marshal data (decoded to measure it, never unmarshalled)."""
    if not isinstance(code, str):
        return None
    try:
        return len(base64.b64decode(code.encode("ascii", "ignore"), validate=False))
    except (binascii.Error, ValueError):
        return None


def _layer_name(node: dict[str, Any], fallback: str) -> str:
    cfg = node.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
        return str(cfg["name"])
    return str(node["name"]) if isinstance(node.get("name"), str) else fallback


class _Walk:
    """Collects findings for one config."""

    def __init__(self, member: Member, ctx: ScanContext, source: str) -> None:
        self.member, self.ctx, self.source = member, ctx, source
        self.reported = 0

    def add(self, severity: Severity, message: str, **evidence: object) -> None:
        self.reported += 1
        if self.reported <= MAX_REPORTED:
            self.ctx.add(finding("MLF-MOD-007", self.member.path, f"{self.source}: {message}", severity=severity,
                                 format="keras", **evidence))

    def function(self, fn: Any, fn_type: Any, module: Any, where: str) -> tuple[Severity, str] | None:
        """Judge a Lambda's function (or output_shape): inline bytecode, or a reference to a named function."""
        if isinstance(fn, dict) and fn.get("class_name") == "__lambda__":
            inner = fn.get("config") if isinstance(fn.get("config"), dict) else {}
            size = _b64_size(inner.get("code"))
            return Severity.CRITICAL, f"inline Python bytecode ({size if size is not None else '?'} bytes, marshal)"
        if fn_type == "lambda" or (isinstance(fn, list) and fn and isinstance(fn[0], str)):
            code = fn[0] if isinstance(fn, list) and fn else fn
            size = _b64_size(code)
            return Severity.CRITICAL, f"inline Python bytecode ({size if size is not None else '?'} bytes, marshal)"
        if isinstance(fn, dict) and isinstance(fn.get("module"), str):
            ref = _reference(fn)
            if ref is None:
                return None
            verdict = classify(*ref)
            if verdict is None:
                return Severity.MEDIUM, f"calls {ref[0]}.{ref[1]}"
            return verdict.severity, f"calls {verdict.target} ({verdict.why})"
        if isinstance(fn, str) and fn:
            verdict = classify(module if isinstance(module, str) else "", fn)
            if verdict is None:
                return Severity.MEDIUM, f"calls {fn}"
            return verdict.severity, f"calls {verdict.target} ({verdict.why})"
        return None

    def lambda_layer(self, node: dict[str, Any], where: str, name: str) -> set[str]:
        """Report a Lambda layer; return the keys it judged (`config.function`...: the walk skips them)."""
        cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
        judged: list[tuple[Severity, str]] = []
        for key, type_key, module_key in (("function", "function_type", "module"),
                                          ("output_shape", "output_shape_type", "output_shape_module")):
            if key in cfg:
                got = self.function(cfg[key], cfg.get(type_key), cfg.get(module_key), where)
                if got is not None:
                    judged.append(got)
        severity = max((s for s, _ in judged), key=lambda s: s.rank, default=Severity.HIGH)
        what = "; ".join(m for _, m in judged) or "a function the scanner could not read"
        self.add(severity, f"Lambda layer {name!r} runs Python code when the model is loaded or called: {what}",
                 layer=name, path=where)
        return {"config.function", "config.output_shape"}

    def walk(self, root: Any) -> None:
        stack: list[tuple[Any, str, str]] = [(root, "$", "")]
        nodes = 0
        while stack:
            node, where, layer = stack.pop()
            nodes += 1
            if nodes > MAX_NODES:
                self.ctx.add(finding("MLF-MOD-004", self.member.path, f"{self.source}: more than {MAX_NODES} values; "
                                     "the rest was not checked", limit="values"))
                return
            if isinstance(node, list):
                stack.extend((v, f"{where}[{i}]", layer) for i, v in enumerate(node))
                continue
            if not isinstance(node, dict):
                continue
            skip = self.judge(node, where, layer)
            if "class_name" in node:
                layer = _layer_name(node, layer)
            for key, value in node.items():
                if key in skip:
                    continue
                if isinstance(value, dict) and any(s.startswith(f"{key}.") for s in skip):
                    # e.g. a Lambda's config: walk what the Lambda judgement did not already cover
                    value = {k: v for k, v in value.items() if f"{key}.{k}" not in skip}
                if isinstance(value, (dict, list)):
                    stack.append((value, f"{where}.{key}", layer))
        if self.reported > MAX_REPORTED:
            self.ctx.add(finding("MLF-MOD-007", self.member.path, f"{self.source}: {self.reported - MAX_REPORTED} "
                                 "more custom-code references", format="keras"))

    def judge(self, node: dict[str, Any], where: str, layer: str) -> set[str]:
        """Judge one object; return keys whose values the walk must not revisit."""
        class_name = node.get("class_name")
        registered = node.get("registered_name")
        if class_name in ("Lambda",) or (isinstance(registered, str) and registered.endswith(">Lambda")):
            return self.lambda_layer(node, where, _layer_name(node, layer))
        if class_name in ("TFOpLambda", "SlicingOpLambda"):
            cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
            fn = cfg.get("function")
            if isinstance(fn, str):
                verdict = classify("tensorflow", fn)
                if verdict is not None and verdict.severity is Severity.CRITICAL:
                    self.add(verdict.severity, f"layer {_layer_name(node, layer)!r} calls tf.{fn} ({verdict.why})",
                             layer=_layer_name(node, layer), path=where, reference=verdict.target)
            return set()
        if class_name == "__lambda__":
            cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
            size = _b64_size(cfg.get("code"))
            self.add(Severity.CRITICAL, f"inline Python bytecode ({size if size is not None else '?'} bytes, marshal) "
                     f"inside {layer or 'the model'!r}", layer=layer, path=where)
            return {"config"}
        if node.get("function_type") == "lambda" and "function" in node:
            got = self.function(node["function"], "lambda", None, where)
            if got is not None:
                self.add(got[0], f"{got[1]} inside {layer or 'the model'!r}", layer=layer, path=where)
            return {"function"}
        ref = _reference(node)
        if ref is not None:
            verdict = classify(*ref)
            if verdict is not None:
                kind = "calls" if class_name == "function" else "instantiates"
                self.add(verdict.severity, f"{kind} {verdict.target} ({verdict.why}), in {layer or 'the model'!r}",
                         layer=layer, path=where, reference=verdict.target)
        if isinstance(registered, str) and ">" in registered and not registered.split(">", 1)[0].startswith(
                tuple(KERAS_ROOTS)) and (ref is None or classify(*ref) is None):
            self.add(Severity.MEDIUM, f"custom registered object {registered!r} in {layer or 'the model'!r}: "
                     "loading it runs whatever code registered that name", layer=layer, path=where)
        return set()


def _reference(node: dict[str, Any]) -> tuple[str, str] | None:
    """(module, name) when `node` is a serialized object or function reference."""
    module, class_name = node.get("module"), node.get("class_name")
    if not isinstance(module, str) or not isinstance(class_name, str):
        return None
    if class_name == "function":
        cfg = node.get("config")
        name = cfg if isinstance(cfg, str) else node.get("registered_name")
        return (module, name) if isinstance(name, str) else (module, "<function>")
    return module, class_name


def check_config(config: Any, member: Member, ctx: ScanContext, source: str) -> None:
    """Walk a parsed Keras config (any nesting of models, wrappers and layers) and report custom code."""
    _Walk(member, ctx, source).walk(config)


@handles("keras-config")
def scan_keras_config(member: Member, stream: BinaryIO, ctx: ScanContext) -> None:
    """A `config.json` or `metadata.json` inside an archive (as in a `.keras` zip): parse it as Keras does
    (`json.loads` on the bytes, which also accepts UTF-16/32) and walk it."""
    raw = stream.read(MAX_CONFIG + 1)
    name = member.path.rsplit("!", 1)[-1]
    if len(raw) > MAX_CONFIG:
        ctx.add(finding("MLF-MOD-004", member.path, f"{name} is larger than {MAX_CONFIG} bytes; not checked for "
                        "Keras custom code", limit="size"))
        return
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        ctx.add(finding("MLF-MOD-003", member.path, f"{name} is not JSON ({type(exc).__name__}); a Keras loader "
                        "refuses it, other readers may not", severity=Severity.MEDIUM, format="keras"))
        return
    check_config(config, member, ctx, f"Keras {name}")

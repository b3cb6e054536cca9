"""Formats that are not pickles still carry risk: safetensors and GGUF headers that lie about sizes, Keras configs
that run code (Lambda bytecode, references to `os.system` or to Keras's own file helpers), HDF5 files that open
other files, ONNX models that read `/etc/passwd` as external data or need a native custom-op library.

Every file is built here, per its format's spec, with small writers of our own (and with the `safetensors` and
`h5py` packages where they are installed); nothing scanned is ever loaded by a model framework. Each hostile file
has a benign twin that must scan without findings above info.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlfort.report import Severity
from mlfort.scan.base import Member, ScanContext
from mlfort.scan.engine import scan_file
from mlfort.scan.formats.keras import classify
from mlfort.scan.formats.safetensors import scan_safetensors

try:
    import h5py
except ImportError:  # the HDF5 and Keras tests need it to build their files; the others do not
    h5py = None

needs_h5py = pytest.mark.skipif(h5py is None, reason="h5py builds the HDF5 test files")


def _scan(path: Path) -> ScanContext:
    return scan_file(path, path.parent)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _above_info(ctx: ScanContext) -> list[str]:
    return [f"{f.rule_id} {f.severity} {f.target}: {f.message}" for f in ctx.findings
            if f.severity.rank > Severity.INFO.rank]


def _hits(ctx: ScanContext, rule: str, text: str = "") -> list[str]:
    return [f"{f.severity} {f.message}" for f in ctx.findings if f.rule_id == rule and text in f.message]


def _worst(ctx: ScanContext, rule: str) -> Severity | None:
    return max((f.severity for f in ctx.findings if f.rule_id == rule), key=lambda s: s.rank, default=None)


# -- safetensors ----------------------------------------------------------------------------------------------------


def _st(header: dict | bytes, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _tensor(dtype: str, shape: list[int], begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_safetensors_written_by_the_library_is_clean(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "model.safetensors"
    st.save_file({"w": np.ones((3, 4), np.float32), "b": np.zeros(4, np.float16), "mask": np.array([True, False]),
                  "ids": np.arange(5, dtype=np.int64), "empty": np.zeros((0, 3), np.float32)}, str(path),
                 metadata={"format": "np"})
    ctx = _scan(path)
    assert ctx.formats["safetensors"] == 1
    assert _above_info(ctx) == []


def test_safetensors_written_by_hand_per_spec_is_clean(tmp_path):
    header = {"__metadata__": {"format": "pt"}, "a": _tensor("F32", [2, 2], 0, 16), "b": _tensor("BF16", [3], 16, 22),
              "c": _tensor("F4", [4], 22, 24)}
    ctx = _scan(_write(tmp_path, "m.safetensors", _st(header, bytes(24))))
    assert _above_info(ctx) == []


@pytest.mark.parametrize(("header", "data_len", "says"), [
    ({"a": _tensor("F32", [4], 0, 16), "b": _tensor("F32", [4], 8, 24)}, 24, "overlaps"),
    ({"a": _tensor("F32", [4], 0, 16)}, 8, "ends at byte 16 of a 8-byte data section"),
    ({"a": _tensor("F32", [4], -16, 0)}, 16, "negative data_offsets"),
    ({"a": _tensor("F32", [4], 16, 0)}, 16, "ends before it begins"),
    ({"a": _tensor("F32", [4, 4], 0, 16)}, 16, "64 bytes) but its data_offsets span 16"),
    ({"a": _tensor("F128", [1], 0, 16)}, 16, "unknown dtype 'F128'"),
    ({"a": _tensor("F32", [-4], 0, 16)}, 16, "not a list of non-negative integers"),
    ({"a": _tensor("F32", [4.0], 0, 16)}, 16, "not a list of non-negative integers"),
    ({"a": _tensor("F4", [3], 0, 2)}, 2, "whole number of bytes"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}, 4, "unexpected fields"),
    ({"a": "F32"}, 0, "not an object"),
    ({"__metadata__": {"k": 1}, "a": _tensor("U8", [1], 0, 1)}, 1, "__metadata__ must map strings"),
])
def test_safetensors_impossible_headers_are_reported(tmp_path, header, data_len, says):
    ctx = _scan(_write(tmp_path, "m.safetensors", _st(header, bytes(data_len))))
    assert any(says in m for m in _hits(ctx, "MLF-MOD-009")), _above_info(ctx)


def test_safetensors_gaps_and_trailing_bytes_are_reported_as_uncovered_data(tmp_path):
    header = {"a": _tensor("U8", [4], 0, 4), "b": _tensor("U8", [4], 8, 12)}
    ctx = _scan(_write(tmp_path, "m.safetensors", _st(header, bytes(20))))
    [msg] = _hits(ctx, "MLF-MOD-009", "bytes no tensor covers")
    assert "4 bytes before tensor 'b'" in msg and "8 bytes after the last tensor" in msg
    assert _worst(ctx, "MLF-MOD-009") == Severity.MEDIUM


def test_safetensors_header_length_past_the_end_of_the_file(tmp_path):
    ctx = _scan(_write(tmp_path, "m.safetensors", _st({"a": _tensor("U8", [1], 0, 1)}, b"\0", length=5000)))
    assert _hits(ctx, "MLF-MOD-009", "claims a 5000-byte header")


def test_safetensors_huge_header_length_is_refused_before_reading():
    data = _st(b'{"a":1}', length=1 << 60)
    ctx = ScanContext(root=Path("."))
    scan_safetensors(Member("m.safetensors", lambda: io.BytesIO(data)), io.BytesIO(data), ctx)
    assert _hits(ctx, "MLF-MOD-009", "loaders refuse more than")


def test_safetensors_duplicate_keys_are_a_parser_differential(tmp_path):
    raw = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, ' \
          b'"a": {"dtype": "U8", "shape": [9], "data_offsets": [0, 9]}}'
    ctx = _scan(_write(tmp_path, "m.safetensors", _st(raw, bytes(9))))
    assert _hits(ctx, "MLF-MOD-009", "appears twice")


@pytest.mark.parametrize(("raw", "says"), [(b'{"a": [1, 2', "not JSON"), (b'{"a": NaN}', "not JSON"),
                                           (b'{"\xff": 1}', "not UTF-8"), (b'{' + b'[' * 100_000, "not JSON")])
def test_safetensors_header_that_is_not_json_is_unparseable(tmp_path, raw, says):
    ctx = _scan(_write(tmp_path, "m.safetensors", _st(raw)))
    assert _hits(ctx, "MLF-MOD-003", says), _above_info(ctx)


# -- GGUF -----------------------------------------------------------------------------------------------------------

_U32, _STR, _ARR, _F32, _BOOL, _U64 = 4, 8, 9, 6, 7, 10


def _gstr(s: str | bytes, order: str = "<", width: str = "Q") -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(order + width, len(b)) + b


def _gvalue(vtype: int, value: object, order: str = "<") -> bytes:
    if vtype == _STR:
        return _gstr(value, order)  # type: ignore[arg-type]
    if vtype == _ARR:
        etype, items = value  # type: ignore[misc]
        return struct.pack(order + "IQ", etype, len(items)) + b"".join(_gvalue(etype, v, order) for v in items)
    fmt = {_U32: "I", _F32: "f", _BOOL: "?", _U64: "Q"}[vtype]
    return struct.pack(order + fmt, value)


def _gguf(kvs: list[tuple[str, int, object]], tensors: list[tuple[str, list[int], int, int]], data: bytes = b"",
          *, version: int = 3, order: str = "<", alignment: int = 32, n_kv: int | None = None,
          n_tensors: int | None = None) -> bytes:
    out = b"GGUF" + struct.pack(order + "IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                len(kvs) if n_kv is None else n_kv)
    for key, vtype, value in kvs:
        out += _gstr(key, order) + struct.pack(order + "I", vtype) + _gvalue(vtype, value, order)
    for name, dims, ggml_type, offset in tensors:
        out += _gstr(name, order) + struct.pack(order + "I", len(dims)) + b"".join(
            struct.pack(order + "Q", d) for d in dims) + struct.pack(order + "IQ", ggml_type, offset)
    out += bytes(-len(out) % alignment)
    return out + data


def _gguf_kv(key: str, typed_value: bytes) -> bytes:
    """A GGUF v3 file with one key/value whose type and value bytes are given raw."""
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _gstr(key) + typed_value + bytes(64)


_BENIGN_TEMPLATE = ("{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + "
                    "eos_token }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
_KVS = [("general.architecture", _STR, "llama"), ("general.alignment", _U32, 32),
        ("llama.context_length", _U32, 2048), ("tokenizer.ggml.tokens", _ARR, (_STR, ["<s>", "</s>", "hi"])),
        ("tokenizer.ggml.scores", _ARR, (_F32, [0.0, 0.0, -1.5])), ("general.quantized", _BOOL, True),
        ("tokenizer.chat_template", _STR, _BENIGN_TEMPLATE)]
# an F32 [4, 2] tensor (32 bytes) then a Q8_0 [32] tensor (one 34-byte block) at the next 32-byte boundary
_TENSORS = [("tok_embd.weight", [4, 2], 0, 0), ("output.weight", [32], 8, 32)]
_DATA = bytes(32 + 34)


def test_a_minimal_valid_gguf_is_clean(tmp_path):
    ctx = _scan(_write(tmp_path, "m.gguf", _gguf(_KVS, _TENSORS, _DATA)))
    assert ctx.formats["gguf"] == 1
    assert _above_info(ctx) == []


def test_a_big_endian_gguf_and_a_v2_gguf_are_read(tmp_path):
    assert _above_info(_scan(_write(tmp_path, "be.gguf", _gguf(_KVS, _TENSORS, _DATA, order=">")))) == []
    assert _above_info(_scan(_write(tmp_path, "v2.gguf", _gguf(_KVS, _TENSORS, _DATA, version=2)))) == []


@pytest.mark.parametrize(("data", "says"), [
    (_gguf(_KVS, _TENSORS, _DATA, n_kv=1 << 63), "key/values; the"),
    (_gguf(_KVS, _TENSORS, _DATA, n_tensors=(1 << 64) - 1), "tensors; the"),
    (_gguf_kv("general.name", struct.pack("<IQ", _STR, 1 << 60) + b"x" * 64),
     "claims a 1152921504606846976-byte string"),
    (_gguf_kv("k", struct.pack("<II", 99, 1)), "unknown value type 99"),
    (_gguf([("a", _ARR, (_U32, []))], []).replace(struct.pack("<IQ", _U32, 0), struct.pack("<IQ", _U32, 1 << 40)),
     "claims 1099511627776 uint32 values"),
    (_gguf([("a", _ARR, (_U32, []))], []).replace(struct.pack("<IQ", _U32, 0), struct.pack("<IQ", 77, 1)),
     "array of unknown type 77"),
    (_gguf(_KVS, [("t", [4], 0, 16)], bytes(64)), "not a multiple of the alignment"),
    (_gguf(_KVS, [("t", [4096], 0, 0)], bytes(64)), "runs past the end"),
    (_gguf(_KVS, [("t", [1, 1, 1, 1, 1], 0, 0)], bytes(64)), "5 dimensions"),
    (_gguf(_KVS, [("t", [1 << 62, 1 << 62], 0, 0)], bytes(64)), "overflow"),
    (_gguf(_KVS, [("t", [4], 200, 0)], bytes(64)), "unknown ggml type 200"),
    (_gguf(_KVS, [("t", [4], 0, 0), ("u", [4], 0, 0)], bytes(64)), "overlaps"),
    (_gguf(_KVS, [("t", [4], 0, 0), ("t", [4], 0, 32)], bytes(64)), "appears twice"),
    (_gguf(_KVS, [("t", [33], 8, 0)], bytes(64)), "not a whole number of Q8_0 blocks"),
    (_gguf([("general.alignment", _U32, 24)], [], alignment=8), "power of two"),
    (_gguf([("general.alignment", _U64, 32)], []), "power of two"),
    (_gguf([*_KVS, ("general.architecture", _STR, "x")], _TENSORS, _DATA), "appears twice"),
    (_gguf(_KVS, _TENSORS, _DATA, version=7), "version 7"),
])
def test_impossible_gguf_headers_are_reported(tmp_path, data, says):
    ctx = _scan(_write(tmp_path, "m.gguf", data))
    assert any(says in m for m in _hits(ctx, "MLF-MOD-010")), _above_info(ctx)


def test_a_gguf_cut_off_inside_its_header_is_reported(tmp_path):
    """Cut early, the counts no longer fit the file (MLF-MOD-010); cut inside a value, a read runs off the end."""
    ctx = _scan(_write(tmp_path, "early.gguf", _gguf(_KVS, _TENSORS, _DATA)[:60]))
    assert _hits(ctx, "MLF-MOD-010", "cannot hold them")
    cut = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _gstr("k") + struct.pack("<I", _U32) + b"\x01\x00"
    ctx = _scan(_write(tmp_path, "cut.gguf", cut))
    assert _hits(ctx, "MLF-MOD-003", "ends inside its header")


def test_bytes_after_the_last_gguf_tensor_are_reported_medium(tmp_path):
    ctx = _scan(_write(tmp_path, "m.gguf", _gguf(_KVS, _TENSORS, _DATA + bytes(4096))))
    assert _hits(ctx, "MLF-MOD-010", "follow the last tensor")
    assert _worst(ctx, "MLF-MOD-010") == Severity.MEDIUM


_SSTI = ("{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
         "{{ x()._module.__builtins__['__import__']('os').popen('id').read() }}{% endif %}{% endfor %}")


@pytest.mark.parametrize("key", ["tokenizer.chat_template", "tokenizer.chat_template.tool_use"])
def test_a_chat_template_with_jinja_sandbox_escape_gadgets_is_critical(tmp_path, key):
    """CVE-2024-34359 (llama-cpp-python): chat templates were rendered by an unsandboxed Jinja2 environment."""
    kvs = [kv for kv in _KVS if kv[0] != "tokenizer.chat_template"] + [(key, _STR, _SSTI)]
    ctx = _scan(_write(tmp_path, "m.gguf", _gguf(kvs, _TENSORS, _DATA)))
    [msg] = _hits(ctx, "MLF-MOD-001", "chat template")
    assert "__subclasses__" in msg and "popen" in msg
    assert _worst(ctx, "MLF-MOD-001") == Severity.CRITICAL


def test_a_chat_template_that_hides_dunders_behind_the_attr_filter_is_high(tmp_path):
    hidden = "{{ (lipsum|attr('\\x5f\\x5fglobals\\x5f\\x5f')).get('o'+'s') }}"
    kvs = [kv for kv in _KVS if kv[0] != "tokenizer.chat_template"] + [("tokenizer.chat_template", _STR, hidden)]
    ctx = _scan(_write(tmp_path, "m.gguf", _gguf(kvs, _TENSORS, _DATA)))
    assert _worst(ctx, "MLF-MOD-001") == Severity.HIGH


def test_text_around_the_jinja_code_is_not_judged(tmp_path):
    prompt = ("You write Python: start with `import numpy as np` and never call os.system or eval(). "
              "{{ bos_token }}{% for m in messages %}{{ m['content'] | trim }}{% endfor %}")
    kvs = [kv for kv in _KVS if kv[0] != "tokenizer.chat_template"] + [("tokenizer.chat_template", _STR, prompt)]
    assert _above_info(_scan(_write(tmp_path, "m.gguf", _gguf(kvs, _TENSORS, _DATA)))) == []


def test_chat_templates_in_an_array_are_checked_too(tmp_path):
    kvs = [*_KVS, ("tokenizer.chat_templates", _ARR, (_STR, [_BENIGN_TEMPLATE, _SSTI]))]
    ctx = _scan(_write(tmp_path, "m.gguf", _gguf(kvs, _TENSORS, _DATA)))
    assert _worst(ctx, "MLF-MOD-001") == Severity.CRITICAL


# -- Keras v3 (.keras zip) ------------------------------------------------------------------------------------------

_DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
_CODE = base64.b64encode(marshal.dumps((lambda x: x).__code__)).decode()  # bytes only: never unmarshalled here


def _dense(name: str) -> dict:
    return {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
            "config": {"name": name, "trainable": True, "dtype": _DTYPE, "units": 2, "activation": "relu",
                       "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                              "config": {"seed": None}, "registered_name": None},
                       "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                            "registered_name": None}},
            "build_config": {"input_shape": [None, 4]}}


def _lambda(name: str, function: object) -> dict:
    return {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": name, "trainable": True, "dtype": _DTYPE, "function": function, "arguments": {}}}


_INLINE = {"class_name": "__lambda__", "config": {"code": _CODE, "defaults": None, "closure": None}}


def _sequential(layers: list[dict], name: str = "sequential") -> dict:
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": name, "trainable": True, "dtype": _DTYPE, "layers": [
                {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                 "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "input_layer"}}, *layers]},
            "compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                                             "config": {"learning_rate": 0.001}, "registered_name": None},
                               "loss": "mse", "metrics": None}}


def _weights_h5(*, model_config: str | None = None) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers/dense/vars").create_dataset("0", data=np.zeros((4, 2), np.float32))
        if model_config is not None:
            f.attrs["model_config"] = model_config.encode()
    return buf.getvalue()


def _keras(tmp_path: Path, config: dict | bytes, *, weights: bytes | None = None,
           method: int = zipfile.ZIP_DEFLATED) -> ScanContext:
    raw = config if isinstance(config, bytes) else json.dumps(config).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.10.0", "date_saved": "2025-01-01@00:00:00"}))
        z.writestr("config.json", raw)
        z.writestr("model.weights.h5", weights if weights is not None else _weights_h5())
    return _scan(_write(tmp_path, "model.keras", buf.getvalue()))


@needs_h5py
def test_a_benign_keras_v3_model_is_clean(tmp_path):
    ctx = _keras(tmp_path, _sequential([_dense("dense"), _dense("dense_1")]))
    assert ctx.formats["hdf5"] == 1
    assert _above_info(ctx) == []


@needs_h5py
def test_a_keras_lambda_layer_with_bytecode_is_critical_and_named(tmp_path):
    """CVE-2024-3660: Lambda bytecode is unmarshalled and runs on load."""
    ctx = _keras(tmp_path, _sequential([_lambda("evil_lambda", _INLINE)]))
    [msg] = _hits(ctx, "MLF-MOD-007")
    assert "'evil_lambda'" in msg and f"{len(base64.b64decode(_CODE))} bytes" in msg
    assert _worst(ctx, "MLF-MOD-007") == Severity.CRITICAL
    assert all(f.target.endswith("model.keras!config.json") for f in ctx.findings if f.rule_id == "MLF-MOD-007")


@needs_h5py
def test_a_lambda_nested_in_a_wrapper_in_a_functional_model_in_a_sequential_is_found(tmp_path):
    functional = {"module": "keras", "class_name": "Functional", "registered_name": None,
                  "config": {"name": "inner", "layers": [
                      {"module": "keras.layers", "class_name": "TimeDistributed", "registered_name": None,
                       "config": {"name": "td", "layer": _lambda("deep_lambda", _INLINE)},
                       "inbound_nodes": []}], "input_layers": [], "output_layers": []}}
    ctx = _keras(tmp_path, _sequential([_dense("dense"), functional]))
    [msg] = _hits(ctx, "MLF-MOD-007")
    assert "'deep_lambda'" in msg
    assert _worst(ctx, "MLF-MOD-007") == Severity.CRITICAL


@needs_h5py
@pytest.mark.parametrize(("module", "name"), [("os", "system"), ("subprocess", "Popen"), ("builtins", "eval")])
def test_a_custom_object_from_os_or_subprocess_is_critical(tmp_path, module, name):
    """CVE-2025-1550: Keras < 3.9 imported whatever module the config named, even in safe mode."""
    evil = {"module": module, "class_name": "function", "config": name, "registered_name": "function"}
    layer = _dense("dense")
    layer["config"]["activation"] = evil
    ctx = _keras(tmp_path, _sequential([layer]))
    assert any(f"{module}.{name}" in m for m in _hits(ctx, "MLF-MOD-007"))
    assert _worst(ctx, "MLF-MOD-007") == Severity.CRITICAL


@needs_h5py
def test_a_layer_class_from_os_is_critical(tmp_path):
    ctx = _keras(tmp_path, _sequential([{"module": "os", "class_name": "system", "config": {"command": "id"},
                                         "registered_name": None}]))
    assert _worst(ctx, "MLF-MOD-007") == Severity.CRITICAL


@pytest.mark.parametrize(("module", "name", "cve"), [
    ("keras.models", "load_model", "CVE-2025-9906: a Lambda calling load_model(safe_mode=False)"),
    ("keras.src.backend.common.global_state", "set_global_attribute", "CVE-2025-9906: turns safe mode off"),
    ("keras.utils", "get_file", "CVE-2025-8747: downloads a file"),
    ("tensorflow.io", "write_file", "writes a file"),
])
@needs_h5py
def test_keras_namespace_gadgets_are_critical_even_though_they_are_keras(tmp_path, module, name, cve):
    fn = {"module": module, "class_name": "function", "config": name, "registered_name": "function"}
    ctx = _keras(tmp_path, _sequential([_lambda("gadget", fn)]))
    assert _worst(ctx, "MLF-MOD-007") == Severity.CRITICAL, cve
    assert any(f"{module}.{name}" in m for m in _hits(ctx, "MLF-MOD-007", "'gadget'"))


@needs_h5py
def test_a_custom_module_outside_keras_is_high(tmp_path):
    ctx = _keras(tmp_path, _sequential([{"module": "mypackage.layers", "class_name": "Fancy",
                                         "config": {"name": "fancy"}, "registered_name": "mypackage>Fancy"}]))
    assert _worst(ctx, "MLF-MOD-007") == Severity.HIGH
    assert _hits(ctx, "MLF-MOD-007", "mypackage.layers.Fancy")


@needs_h5py
def test_a_keras_config_encoded_as_utf16_is_still_judged(tmp_path):
    """json.loads (and so Keras) reads UTF-16 bytes; the scanner's own text detection does not call them JSON."""
    ctx = _keras(tmp_path, json.dumps(_sequential([_lambda("l16", _INLINE)])).encode("utf-16"))
    assert _hits(ctx, "MLF-MOD-007", "'l16'")


@needs_h5py
def test_a_stored_keras_zip_is_judged_too(tmp_path):
    ctx = _keras(tmp_path, _sequential([_lambda("stored", _INLINE)]), method=zipfile.ZIP_STORED)
    assert _hits(ctx, "MLF-MOD-007", "'stored'")


@needs_h5py
def test_a_weights_file_in_a_keras_zip_that_carries_a_model_config_is_reported(tmp_path):
    config = json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"name": "hidden", "function": [_CODE, None, None],
                                            "function_type": "lambda"}}]}})
    ctx = _keras(tmp_path, _sequential([_dense("dense")]), weights=_weights_h5(model_config=config))
    assert _hits(ctx, "MLF-MOD-012", "weights-only")
    assert _hits(ctx, "MLF-MOD-007", "'hidden'")


def test_reference_classification():
    assert classify("keras.layers", "Dense") is None
    assert classify("keras_hub.models", "GemmaBackbone") is None
    assert classify("os", "system").severity == Severity.CRITICAL  # type: ignore[union-attr]
    assert classify("posix", "system").severity == Severity.CRITICAL  # type: ignore[union-attr]
    assert classify("builtins", "exec").severity == Severity.CRITICAL  # type: ignore[union-attr]
    assert classify("builtins", "len").severity == Severity.HIGH  # type: ignore[union-attr]
    assert classify("mathutils", "x").severity == Severity.HIGH  # type: ignore[union-attr]  # not "math"-prefixed


# -- Keras 2 (.h5) --------------------------------------------------------------------------------------------------


def _keras2_h5(path: Path, layers: list[dict]) -> Path:
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "dtype": "float32",
                                                "name": "input_1"}}, *layers]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.12.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps({"loss": "mse", "optimizer_config": {
            "class_name": "Adam", "config": {"learning_rate": 0.001}}}).encode()
        g = f.create_group("model_weights/dense/dense")
        g.create_dataset("kernel:0", data=np.zeros((4, 2), np.float32))
    return path


_DENSE2 = {"class_name": "Dense", "config": {"name": "dense", "units": 2, "activation": "relu"}}


@needs_h5py
def test_a_benign_keras2_h5_is_clean(tmp_path):
    ctx = _scan(_keras2_h5(tmp_path / "m.h5", [_DENSE2]))
    assert ctx.formats["hdf5"] == 1
    assert _above_info(ctx) == []


@needs_h5py
def test_a_keras2_h5_lambda_is_critical(tmp_path):
    """CVE-2025-9905: Keras silently ignores safe_mode for .h5 files, so their Lambda bytecode always runs."""
    lam = {"class_name": "Lambda", "config": {"name": "h5_lambda", "function": [_CODE, None, None],
                                              "function_type": "lambda", "module": "__main__",
                                              "output_shape": None, "output_shape_type": "raw",
                                              "output_shape_module": None, "arguments": {}}}
    ctx = _scan(_keras2_h5(tmp_path / "m.h5", [_DENSE2, lam]))
    [msg] = _hits(ctx, "MLF-MOD-007")
    assert "'h5_lambda'" in msg and "bytecode" in msg
    assert _worst(ctx, "MLF-MOD-007") == Severity.CRITICAL


@needs_h5py
def test_a_keras2_h5_lambda_naming_os_system_is_critical(tmp_path):
    lam = {"class_name": "Lambda", "config": {"name": "by_name", "function": "system", "function_type": "function",
                                              "module": "os"}}
    ctx = _scan(_keras2_h5(tmp_path / "m.h5", [lam]))
    assert _hits(ctx, "MLF-MOD-007", "os.system")
    assert _worst(ctx, "MLF-MOD-007") == Severity.CRITICAL


@needs_h5py
def test_without_h5py_an_inline_keras2_config_is_still_found_by_byte_search(tmp_path, monkeypatch):
    lam = {"class_name": "Lambda", "config": {"name": "no_h5py", "function": [_CODE, None, None],
                                              "function_type": "lambda"}}
    path = _keras2_h5(tmp_path / "m.h5", [lam])
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    ctx = _scan(path)
    assert _hits(ctx, "MLF-MOD-007", "'no_h5py'")
    assert _hits(ctx, "MLF-MOD-004", "h5py is not installed")


@needs_h5py
def test_hdf5_links_and_storage_that_reach_other_files_are_reported(tmp_path):
    path = _keras2_h5(tmp_path / "m.h5", [_DENSE2])
    with h5py.File(path, "a") as f:
        f["escape"] = h5py.ExternalLink("/etc/passwd", "/")
        f.create_dataset("ext", shape=(16,), dtype="u1", external=[("/etc/passwd", 0, 16)])
    ctx = _scan(path)
    found = " | ".join(_hits(ctx, "MLF-MOD-012"))
    assert "external link" in found and "external file(s) ['/etc/passwd']" in found


@needs_h5py
def test_a_corrupt_hdf5_is_unparseable(tmp_path):
    data = _keras2_h5(tmp_path / "ok.h5", [_DENSE2]).read_bytes()
    ctx = _scan(_write(tmp_path, "bad.h5", data[:600]))
    assert _hits(ctx, "MLF-MOD-003", "HDF5")


# -- ONNX -----------------------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb(number: int, value: int | bytes | str) -> bytes:
    """One protobuf field: an int as a varint, bytes/str length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _onnx_tensor(name: str, location: str | None = None, raw: bytes = b"") -> bytes:
    t = _pb(1, 4) + _pb(2, 1) + _pb(8, name)
    if location is not None:
        t += _pb(13, _pb(1, "location") + _pb(2, location)) + _pb(13, _pb(1, "offset") + _pb(2, "0"))
        t += _pb(14, 1)
    else:
        t += _pb(9, raw or bytes(16))
    return t


def _onnx_node(op: str, domain: str = "", attributes: bytes = b"") -> bytes:
    return _pb(1, _pb(1, "x") + _pb(2, "y") + _pb(4, op) + (_pb(7, domain) if domain else b"") + attributes)


def _onnx(nodes: list[bytes], initializers: list[bytes], *, functions: bytes = b"", domains: tuple[str, ...] = ()
          ) -> bytes:
    graph = _pb(2, "g") + b"".join(nodes) + b"".join(_pb(5, t) for t in initializers)
    opsets = _pb(8, _pb(1, "") + _pb(2, 17)) + b"".join(_pb(8, _pb(1, d) + _pb(2, 1)) for d in domains)
    return _pb(1, 9) + _pb(2, "pytorch") + opsets + _pb(7, graph) + functions


def test_a_benign_onnx_with_local_external_weights_is_clean(tmp_path):
    (tmp_path / "weights.bin").write_bytes(bytes(16))
    (tmp_path / "sub").mkdir()
    data = _onnx([_onnx_node("MatMul"), _onnx_node("TreeEnsembleRegressor", "ai.onnx.ml"),
                  _onnx_node("FusedMatMul", "com.microsoft")],
                 [_onnx_tensor("w", "weights.bin"), _onnx_tensor("v", "sub/../weights.bin"), _onnx_tensor("b")])
    ctx = _scan(_write(tmp_path, "model.onnx", data))
    assert ctx.formats["onnx"] == 1
    assert _above_info(ctx) == []


@pytest.mark.parametrize(("location", "says"), [
    ("../../etc/passwd", "climbs out"), ("/etc/passwd", "absolute"), ("..\\..\\Windows\\win.ini", "climbs out"),
    ("C:\\Windows\\win.ini", "absolute"), ("file:///etc/passwd", "URL"), ("https://evil.example/w.bin", "URL"),
    ("weights.bin\x00.txt", "NUL"),
])
def test_onnx_external_data_that_escapes_the_model_folder_is_critical(tmp_path, location, says):
    """onnx CVE-2024-27318/27319: external data locations traversed out of the model's folder."""
    ctx = _scan(_write(tmp_path, "model.onnx", _onnx([_onnx_node("Add")], [_onnx_tensor("w", location)])))
    [msg] = _hits(ctx, "MLF-MOD-008")
    assert says in msg and "'w'" in msg
    assert _worst(ctx, "MLF-MOD-008") == Severity.CRITICAL


def test_onnx_external_data_through_a_symlink_out_of_the_folder_is_reported(tmp_path):
    outside = tmp_path / "secret"
    outside.write_bytes(b"key")
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    (model_dir / "weights.bin").symlink_to(outside)
    path = _write(model_dir, "model.onnx", _onnx([_onnx_node("Add")], [_onnx_tensor("w", "weights.bin")]))
    ctx = scan_file(path, model_dir)
    assert _hits(ctx, "MLF-MOD-008", "through a symlink")


def test_onnx_external_data_hidden_in_an_if_subgraph_and_a_constant_is_found(tmp_path):
    inner = _pb(2, "then") + _pb(5, _onnx_tensor("deep", "/etc/shadow"))
    if_node = _onnx_node("If", attributes=_pb(5, _pb(1, "then_branch") + _pb(6, inner) + _pb(20, 5)))
    const = _onnx_node("Constant", attributes=_pb(5, _pb(1, "value") + _pb(5, _onnx_tensor("c", "../../x"))))
    ctx = _scan(_write(tmp_path, "model.onnx", _onnx([if_node, const], [])))
    found = " | ".join(_hits(ctx, "MLF-MOD-008"))
    assert "'deep'" in found and "'c'" in found


def test_an_onnx_custom_operator_domain_is_high(tmp_path):
    ctx = _scan(_write(tmp_path, "model.onnx", _onnx([_onnx_node("Add"), _onnx_node("Pwn", "evil.ops")], [],
                                                     domains=("evil.ops",))))
    [msg] = _hits(ctx, "MLF-MOD-002", "'evil.ops'")
    assert "Pwn" in msg and "custom operator library" in msg
    assert _worst(ctx, "MLF-MOD-002") == Severity.HIGH


def test_an_onnx_op_defined_by_a_model_local_function_is_not_custom(tmp_path):
    function = _pb(25, _pb(1, "MyGelu") + _pb(8, "local.fn") + _pb(5, _pb(4, "Erf")))
    ctx = _scan(_write(tmp_path, "model.onnx", _onnx([_onnx_node("MyGelu", "local.fn")], [], functions=function)))
    assert _above_info(ctx) == []


def test_an_onnx_that_does_not_start_with_ir_version_is_still_identified_by_name(tmp_path):
    graph = _pb(2, "g") + _onnx_node("Add") + _pb(5, _onnx_tensor("w", "/etc/passwd"))
    reordered = _pb(7, graph) + _pb(1, 9)  # protobuf fields may come in any order: the graph first, no 0x08 start
    ctx = _scan(_write(tmp_path, "model.onnx", reordered))
    assert _hits(ctx, "MLF-MOD-008", "absolute")


def test_a_malformed_onnx_is_unparseable(tmp_path):
    data = _onnx([_onnx_node("Add")], [_onnx_tensor("w")])
    ctx = _scan(_write(tmp_path, "model.onnx", data + b"\x3a\xff\xff\x03"))  # a graph claiming 64 KiB more
    assert _hits(ctx, "MLF-MOD-003", "ONNX")


def test_large_raw_data_is_skipped_not_read(tmp_path):
    big = _onnx([_onnx_node("Add")], [_onnx_tensor("w", raw=bytes(8 << 20)), _onnx_tensor("e", "/etc/passwd")])
    ctx = _scan(_write(tmp_path, "model.onnx", big))
    assert _hits(ctx, "MLF-MOD-008", "'e'")


# -- robustness -----------------------------------------------------------------------------------------------------

_VALID = {
    "safetensors": _st({"a": _tensor("F32", [2, 2], 0, 16)}, bytes(16)),
    "gguf": _gguf(_KVS, _TENSORS, _DATA),
    "onnx": _onnx([_onnx_node("If", attributes=_pb(5, _pb(1, "b") + _pb(6, _pb(5, _onnx_tensor("d", "w.bin")))))],
                  [_onnx_tensor("w", "w.bin"), _onnx_tensor("b")]),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(sorted(_VALID)), edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)),
                                                           max_size=8), cut=st.integers(0, 1 << 16))
def test_damaged_files_never_crash_the_scanner(fmt, edits, cut):
    """Whatever bytes a hostile file holds, the handler reports findings; it never raises or hangs."""
    data = bytearray(_VALID[fmt])
    for at, value in edits:
        data[at % len(data)] = value
    blob = bytes(data[: max(9, len(data) - cut % len(data))])
    ctx = ScanContext(root=Path("."))
    ctx.scan(Member(f"fuzz.{fmt}", lambda: io.BytesIO(blob), hint=fmt if fmt == "onnx" else None))

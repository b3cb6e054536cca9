"""The pickle analyzer against hostile pickles: every known class of scanner bypass, built from raw opcodes or from
`pickle.dumps` of objects with `__reduce__`. Nothing here is ever unpickled."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import pytest

from mlfort.scan.base import Limits, Member, ScanContext
from mlfort.scan.pickle_policy import Verdict, judge
from mlfort.scan.pickle_vm import PickleResult, analyze_pickle

# --- building blocks -------------------------------------------------------------------------------------------


def su(s: str) -> bytes:
    """SHORT_BINUNICODE."""
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def glob0(module: str, name: str) -> bytes:
    """Protocol-0 GLOBAL."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call0(module: str, name: str, arg: str = "id") -> bytes:
    """`module.name(arg)` with protocol-0 opcodes."""
    return glob0(module, name) + b"(S'" + arg.encode() + b"'\ntR."


def stack_global(module: str, name: str, proto: int = 4) -> bytes:
    """`module.name("id")` with STACK_GLOBAL."""
    return b"\x80" + bytes([proto]) + su(module) + su(name) + b"\x93" + su("id") + b"\x85R."


def scan(data: bytes, limits: Limits | None = None,
         stream: io.RawIOBase | None = None) -> tuple[PickleResult, ScanContext]:
    ctx = ScanContext(root=Path("."), limits=limits or Limits())
    result = analyze_pickle(stream or io.BytesIO(data), target="m.pkl", ctx=ctx)
    return result, ctx


def rules(ctx: ScanContext) -> set[str]:
    return {f.rule_id for f in ctx.findings}


def critical_names(ctx: ScanContext) -> set[str]:
    return {f"{f.evidence.get('module')}.{f.evidence.get('name')}" for f in ctx.findings if f.rule_id == "MLF-MOD-001"}


class _Reduce:
    """Pickles to `fn(*args)`: what a malicious model does."""

    def __init__(self, fn: object, *args: object) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


# --- direct imports and calls ----------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", range(6))
def test_reduce_to_os_system_is_critical_in_every_protocol(proto):
    _, ctx = scan(pickle.dumps(_Reduce(os.system, "echo pwned"), protocol=proto))
    assert "MLF-MOD-001" in rules(ctx)
    assert any(f.evidence.get("name") == "system" for f in ctx.findings)


def test_protocol0_global_reduce_is_critical_and_the_call_is_recorded():
    result, ctx = scan(call0("os", "system"))
    assert critical_names(ctx) == {"os.system"}
    assert ("os.system", "REDUCE") in result.calls and result.ended_cleanly


def test_inst_opcode_imports_and_calls_its_class():
    result, ctx = scan(b"(S'id'\nios\nsystem\n.")
    assert critical_names(ctx) == {"os.system"} and ("os.system", "INST") in result.calls


def test_obj_opcode_calls_the_class_below_the_mark():
    result, ctx = scan(b"(" + glob0("subprocess", "Popen") + b"S'id'\no.")
    assert critical_names(ctx) == {"subprocess.Popen"} and ("subprocess.Popen", "OBJ") in result.calls


def test_newobj_and_newobj_ex_construct_their_class():
    data = b"\x80\x04" + su("subprocess") + su("Popen") + b"\x93" + su("id") + b"\x85\x81."
    result, ctx = scan(data)
    assert "MLF-MOD-001" in rules(ctx) and ("subprocess.Popen", "NEWOBJ") in result.calls
    data = b"\x80\x04" + su("subprocess") + su("Popen") + b"\x93" + su("id") + b"\x85}\x92."
    result, ctx = scan(data)
    assert "MLF-MOD-001" in rules(ctx) and ("subprocess.Popen", "NEWOBJ_EX") in result.calls


def test_a_global_imported_but_never_called_is_still_reported():
    # importing runs the module's top-level code (`antigravity` opens a browser) and the object may be called later
    _, ctx = scan(glob0("antigravity", "fly") + b".")
    assert "MLF-MOD-001" in rules(ctx)


def test_unknown_globals_are_high_not_silently_allowed():
    for module, name in (("builtins", "print"), ("random", "choice"), ("mypkg.evil", "Thing")):
        _, ctx = scan(stack_global(module, name))
        assert rules(ctx) == {"MLF-MOD-002"}, (module, name)


# --- STACK_GLOBAL operands from memo and string opcodes ---------------------------------------------------------


def test_stack_global_operands_from_the_memo_are_resolved():
    # picklescan issue #22: names stored with BINPUT and fetched with BINGET
    data = b"\x80\x04" + su("os") + b"q\x00" + su("system") + b"q\x01" + b"0" + b"0" + b"h\x00h\x01\x93" + su("id") + \
        b"\x85R."
    _, ctx = scan(data)
    assert critical_names(ctx) == {"os.system"}


def test_memo_confusion_mixing_put_and_memoize_is_modelled_like_the_unpickler():
    # picklescan issue #14: PUT writes explicit keys, MEMOIZE appends at len(memo); a scanner that tracks only one
    # of them believes memo[0] holds a safe name
    data = (b"\x80\x04" + su("os") + b"q\x00" + b"0" + su("system") + b"q\x01" + b"0"
            + su("torch._utils") + b"\x94" + b"0" + su("_rebuild_tensor_v2") + b"\x94" + b"0"
            + b"h\x00h\x01\x93" + su("id") + b"\x85R.")
    _, ctx = scan(data)
    assert critical_names(ctx) == {"os.system"}


def test_long_binget_and_text_get_reach_the_memo_too():
    data = b"\x80\x04" + su("os") + b"r\x05\x00\x00\x000" + su("system") + b"p7\n0" + b"j\x05\x00\x00\x00g7\n\x93."
    _, ctx = scan(data)
    assert critical_names(ctx) == {"os.system"}


@pytest.mark.parametrize("string_op", [
    lambda s: b"U" + bytes([len(s)]) + s.encode(),  # SHORT_BINSTRING
    lambda s: b"T" + struct.pack("<i", len(s)) + s.encode(),  # BINSTRING
    lambda s: b"S'" + s.encode() + b"'\n",  # STRING
    lambda s: b"V" + s.encode() + b"\n",  # UNICODE
    lambda s: b"X" + struct.pack("<I", len(s)) + s.encode(),  # BINUNICODE
    lambda s: b"\x8d" + struct.pack("<Q", len(s)) + s.encode(),  # BINUNICODE8
], ids=["SHORT_BINSTRING", "BINSTRING", "STRING", "UNICODE", "BINUNICODE", "BINUNICODE8"])
def test_stack_global_operands_from_every_string_opcode_are_resolved(string_op):
    # modelscan #311: scanners that only read unicode opcodes miss names pushed as protocol-0/2 strings
    _, ctx = scan(b"\x80\x04" + string_op("os") + string_op("system") + b"\x93.")
    assert critical_names(ctx) == {"os.system"}


def test_escaped_unicode_names_are_decoded_before_matching():
    _, ctx = scan(b"\x80\x04V\\u006fs\nVsystem\n\x93.")
    assert critical_names(ctx) == {"os.system"}


def test_stack_global_with_a_name_the_scanner_could_not_read_is_high():
    data = b"\x80\x04" + su("os") + b"\x8d" + struct.pack("<Q", 64) + b"s" * 64 + b"\x93."
    _, ctx = scan(data, Limits(max_memory_arg=16))
    assert "MLF-MOD-002" in rules(ctx)


# --- names: dotted chains, Python 2 names, aliases, spellings --------------------------------------------------


@pytest.mark.parametrize(("module", "name"), [
    ("torch", "serialization.os.system"),  # find_class walks getattr chains (protocol 4+)
    ("collections", "__builtins__.eval"),
    ("builtins", "getattr"),
    ("__builtin__", "eval"),  # Python 2 spelling, mapped by _compat_pickle
    ("commands", "getoutput"),  # Python 2 module that maps to subprocess
    ("cPickle", "loads"),
    ("posix", "system"),
    ("nt", "system"),
    ("asyncio.unix_events", "_UnixSubprocessTransport._start"),  # CVE-2025-10157: submodule of a denied package
    ("ｏｓ", "system"),  # full-width lookalike (NFKC)
    ("os ", "system"),
    ("OS", "system"),  # case-insensitive file systems (PYTHONCASEOK)
    ("os.", "system"),
    ("o\u200bs", "system"),  # zero-width space
    ("numpy.random._pickle", "__class__.__init__.__globals__"),
])
def test_unusual_spellings_and_chains_do_not_evade_the_denylist(module, name):
    _, ctx = scan(stack_global(module, name))
    assert "MLF-MOD-001" in rules(ctx), (module, name)


def test_the_allowlist_matches_exact_spellings_only():
    assert judge("collections", "OrderedDict").verdict is Verdict.SAFE
    assert judge("collections ", "OrderedDict").verdict is not Verdict.SAFE
    assert judge("Collections", "OrderedDict").verdict is not Verdict.SAFE
    assert judge("sklearn.linear_model", "LogisticRegression.__init__").verdict is not Verdict.SAFE
    assert judge("sklearn.utils", "load_thing").verdict is Verdict.UNKNOWN  # an action name in an allowed package


# --- known gadgets (CVE / GHSA write-ups) -----------------------------------------------------------------------

GADGETS = [
    ("pip", "main"),  # CVE-2025-1716
    ("pkgutil", "resolve_name"),  # GHSA-vvpj-8cmc-gx39
    ("importlib", "import_module"),
    ("importlib.util", "find_spec"),
    ("runpy", "_run_code"),
    ("timeit", "timeit"),
    ("cProfile", "run"),
    ("profile", "run"),
    ("pdb", "run"),
    ("bdb", "Bdb.run"),
    ("code", "InteractiveInterpreter.runcode"),
    ("trace", "Trace.run"),
    ("doctest", "debug_script"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode"),
    ("lib2to3.pgen2.pgen", "ParserGenerator.make_label"),
    ("operator", "attrgetter"),  # GHSA-m273-6v24-x4m4
    ("_operator", "methodcaller"),
    ("operator", "itemgetter"),
    ("functools", "partial"),
    ("functools", "reduce"),
    ("numpy.testing._private.utils", "runstring"),
    ("numpy.f2py.crackfortran", "myeval"),
    ("numpy", "load"),
    ("numpy.lib.npyio", "load"),
    ("torch", "load"),
    ("torch.storage", "_load_from_bytes"),
    ("torch.jit", "load"),
    ("torch.hub", "load"),
    ("torch.utils.cpp_extension", "load_inline"),
    ("torch._dynamo.guards", "GuardBuilder.get"),
    ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression"),
    ("torch.fx.graph_module", "reduce_graph_module"),
    ("torch.utils.bottleneck.__main__", "run_cprofile"),
    ("torch.utils.collect_env", "run"),
    ("torch._inductor.codecache", "compile_file"),
    ("multiprocessing.util", "spawnv_passfds"),
    ("platform", "popen"),
    ("uuid", "_get_command_stdout"),
    ("_osx_support", "_read_output"),
    ("_aix_support", "_read_cmd_output"),
    ("mailcap", "findmatch"),
    ("webbrowser", "open"),
    ("ctypes", "CDLL"),
    ("marshal", "loads"),
    ("types", "FunctionType"),
    ("types", "CodeType"),
    ("dill._dill", "_create_code"),
    ("cloudpickle.cloudpickle", "_make_function"),
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("shutil", "rmtree"),
    ("socket", "create_connection"),
    ("http.client", "HTTPSConnection"),
    ("urllib.request", "urlopen"),
    ("requests", "get"),
    ("ssl", "get_server_certificate"),
    ("distutils.file_util", "write_file"),  # CVE-2025-10155
    ("_io", "FileIO"),
    ("io", "open"),
    ("builtins", "open"),
    ("linecache", "getline"),
    ("ensurepip", "_run_pip"),
    ("venv", "create"),
    ("sys", "modules"),
    ("builtins", "exec"),
    ("builtins", "eval"),
    ("builtins", "compile"),
    ("builtins", "__import__"),
    ("builtins", "setattr"),
    ("builtins", "globals"),
    ("builtins", "breakpoint"),
    ("builtins", "input"),
    ("subprocess", "check_output"),
    ("os", "execv"),
    ("pty", "spawn"),
    ("logging.config", "listen"),
    ("pydoc", "locate"),
    ("pandas.io.pickle", "read_pickle"),
    ("pandas.core.computation.eval", "eval"),
    ("sklearn.utils._testing", "assert_run_python_script_without_output"),
    ("tensorflow.io", "write_file"),
    ("keras.models", "load_model"),
    ("asyncio", "create_subprocess_shell"),
    ("joblib", "load"),
    ("yaml", "unsafe_load"),
    ("sqlite3", "connect"),
]


@pytest.mark.parametrize(("module", "name"), GADGETS, ids=[f"{m}.{n}" for m, n in GADGETS])
def test_known_code_execution_gadgets_are_critical(module, name):
    _, ctx = scan(stack_global(module, name))
    assert "MLF-MOD-001" in rules(ctx)


def test_nested_pickle_argument_is_scanned_too():
    inner = pickle.dumps(_Reduce(os.system, "id"), protocol=2)
    result, ctx = scan(pickle.dumps(_Reduce(pickle.loads, inner), protocol=4))
    assert {"_pickle.loads", "posix.system"} <= critical_names(ctx) | {"_pickle.loads"}
    assert any(f.evidence.get("name") == "system" for f in ctx.findings)
    assert any(m in ("posix", "os", "nt") for m, _n, _h in result.globals)


def test_numpy_ufunc_reconstruct_is_judged_on_the_name_it_resolves():
    evil = b"\x80\x02" + glob0("numpy.core", "_ufunc_reconstruct") + su("os") + su("system") + b"\x86R" + su("id") + \
        b"\x85R."
    result, ctx = scan(evil)
    assert critical_names(ctx) == {"os.system"}
    assert ("os", "system", "REDUCE via numpy.core._ufunc_reconstruct") in result.globals
    benign = b"\x80\x02" + glob0("numpy.core", "_ufunc_reconstruct") + su("numpy") + su("log1p") + b"\x86R."
    assert scan(benign)[1].findings == []


def test_getattr_indirection_to_os_system_is_critical():
    # builtins.getattr(<imported object>, "system"): the scanner resolves the attribute it reaches
    data = b"\x80\x04" + su("builtins") + su("getattr") + b"\x93" + su("posixpath") + su("os") + b"\x93" + \
        su("system") + b"\x86R" + su("id") + b"\x85R."
    _result, ctx = scan(data)
    assert "builtins.getattr" in critical_names(ctx) and "posixpath.os.system" in critical_names(ctx)


def test_calling_the_result_of_a_call_is_flagged_as_indirection():
    # an allowlisted callable's result called again: the only way to reach a callable without a GLOBAL
    data = b"\x80\x04" + su("collections") + su("OrderedDict") + b"\x93)R" + su("id") + b"\x85R."
    _, ctx = scan(data)
    assert any(f.rule_id == "MLF-MOD-002" and "not an imported global" in f.message for f in ctx.findings)


def test_extension_registry_codes_are_unknown_globals():
    for op in (b"\x82\x01", b"\x83\x01\x02", b"\x84\x01\x02\x03\x04"):
        result, ctx = scan(b"\x80\x02" + op + b")R.")
        assert rules(ctx) == {"MLF-MOD-002"} and result.globals[0][2] == "EXT"


# --- BUILD and container-method gadgets ------------------------------------------------------------------------


def test_build_on_an_imported_class_is_flagged_as_a_global_overwrite():
    data = b"\x80\x04" + su("collections") + su("OrderedDict") + b"\x93N}" + su("x") + b"K\x01s\x86b."
    _, ctx = scan(data)
    assert any("sets attributes on collections.OrderedDict" in f.message for f in ctx.findings)


def test_build_state_that_sets_setstate_is_flagged():
    # BUILD #1 stores __setstate__ in the instance dict; BUILD #2 would call it with attacker state
    data = (b"\x80\x04" + su("collections") + su("OrderedDict") + b"\x93)\x81}" + su("__setstate__")
            + su("builtins") + su("len") + b"\x93sb" + su("id") + b"b.")
    _, ctx = scan(data)
    assert any(f.rule_id == "MLF-MOD-002" and "__setstate__" in f.message for f in ctx.findings)


def test_setitem_and_append_on_an_imported_object_call_its_methods():
    data = b"\x80\x04" + su("collections") + su("OrderedDict") + b"\x93" + su("k") + su("v") + b"s."
    _, ctx = scan(data)
    assert any("__setitem__ on an imported object" in f.message for f in ctx.findings)
    data = b"\x80\x04" + su("collections") + su("OrderedDict") + b"\x93" + su("v") + b"a."
    _, ctx = scan(data)
    assert any("append on an imported object" in f.message for f in ctx.findings)


# --- several pickles, broken pickles, limits -------------------------------------------------------------------


def test_a_second_pickle_after_stop_is_reported_and_scanned():
    data = pickle.dumps({"w": [1.0]}, protocol=4) + pickle.dumps(_Reduce(os.system, "id"), protocol=4)
    result, ctx = scan(data)
    assert {"MLF-MOD-011", "MLF-MOD-001"} <= rules(ctx) and result.n_pickles == 2


def test_data_after_stop_is_reported():
    result, ctx = scan(pickle.dumps([1, 2]) + b"\x00\x01garbage")
    assert rules(ctx) == {"MLF-MOD-011"} and not result.ended_cleanly


@pytest.mark.parametrize("breakage", [b"", b"\xff", b"0000000", b"\x80\x09"], ids=[
    "truncated", "unknown-opcode", "stack-underflow", "bad-protocol"])
def test_globals_before_a_parse_error_are_still_reported(breakage):
    # ReversingLabs "nullifAI": the payload runs, then the broken stream makes the loader (and scanners) fail
    payload = b"\x80\x02" + glob0("os", "system") + su("id") + b"\x85R0"
    result, ctx = scan(payload + breakage)
    assert {"MLF-MOD-001", "MLF-MOD-003"} <= rules(ctx) and not result.ended_cleanly


def test_a_truncated_huge_argument_is_a_parse_error_not_a_huge_read():
    _, ctx = scan(b"\x80\x04\x8e" + struct.pack("<Q", 1 << 60) + b"abc")
    assert rules(ctx) == {"MLF-MOD-003"}


def test_a_huge_text_line_is_skipped_in_chunks():
    _, ctx = scan(b"S'" + b"a" * 200_000 + b"'\n.", Limits(max_memory_arg=1024))
    assert rules(ctx) == set()


def test_opcode_limit_is_a_scan_limit_finding():
    _, ctx = scan(b"(" * 1000 + b".", Limits(max_pickle_opcodes=100))
    assert rules(ctx) == {"MLF-MOD-004"}


def test_memo_get_of_a_missing_key_is_a_parse_error():
    _, ctx = scan(b"\x80\x02h\x05.")
    assert rules(ctx) == {"MLF-MOD-003"}


class _NoSeek(io.RawIOBase):
    """A stream that cannot seek and returns short reads (decompressors behave like this)."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._b.read(min(n, 777) if n and n > 0 else 777)


def test_non_seekable_streams_with_short_reads_scan_the_same():
    data = b"\x80\x04\x8e" + struct.pack("<Q", 50_000) + b"\x00" * 50_000 + b"0" + \
        stack_global("os", "system")[2:]
    _, ctx = scan(b"", Limits(max_memory_arg=1024), stream=_NoSeek(data))
    assert critical_names(ctx) == {"os.system"}


def test_persistent_ids_are_modelled_and_calling_their_result_is_flagged():
    result, ctx = scan(b"\x80\x02" + su("x") + b"Q)R.")
    assert any("persistent_load result" in f.message for f in ctx.findings)
    result, ctx = scan(b"Pstorage0\n.")
    assert rules(ctx) == set() and result.ended_cleanly


# --- formats that embed pickles --------------------------------------------------------------------------------


def test_joblib_object_array_payload_is_scanned(tmp_path):
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    arr = np.array([_Reduce(os.system, "id"), 1], dtype=object)
    joblib.dump({"a": np.arange(10.0), "o": arr}, tmp_path / "m.joblib")
    result, ctx = scan((tmp_path / "m.joblib").read_bytes())
    assert "MLF-MOD-001" in rules(ctx) and result.n_pickles == 2


def test_malicious_legacy_torch_file_is_critical():
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3), "x": _Reduce(os.system, "id")}, buf, _use_new_zipfile_serialization=False)
    result, ctx = scan(buf.getvalue())
    assert "MLF-MOD-001" in rules(ctx) and "MLF-MOD-011" not in rules(ctx) and result.n_pickles == 5


def test_legacy_torch_layout_with_an_extra_pickle_after_the_storages_is_reported():
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buf, _use_new_zipfile_serialization=False)
    _, ctx = scan(buf.getvalue() + pickle.dumps(_Reduce(os.system, "id")))
    assert {"MLF-MOD-011", "MLF-MOD-001"} <= rules(ctx)


def test_the_pickle_handler_is_registered_and_finds_text_pickles(tmp_path):
    from mlfort.scan.engine import scan_file

    for name, data in (("a.pkl", call0("os", "system")), ("b.bin", pickle.dumps(_Reduce(os.system, "id"))),
                       ("c.gz", zlib.compress(b"x"))):
        (tmp_path / name).write_bytes(data)
    ctx = scan_file(tmp_path / "a.pkl", tmp_path)
    assert "MLF-MOD-001" in rules(ctx)
    ctx = scan_file(tmp_path / "b.bin", tmp_path)
    assert "MLF-MOD-001" in rules(ctx)
    ctx = ScanContext(root=tmp_path)
    ctx.scan(Member(path="x!data.pkl", open=lambda: io.BytesIO(call0("os", "system")), hint="pickle"))
    assert "MLF-MOD-001" in rules(ctx)

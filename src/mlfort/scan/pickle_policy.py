"""Which globals a pickle may import: an allowlist of what real ML files use, a denylist that grades to CRITICAL.

The allowlist decides: anything not on it is HIGH (MLF-MOD-002), whatever its name. The denylist only raises known
code-execution, file, network and import-by-name gadgets to CRITICAL (MLF-MOD-001), so a gadget nobody has listed
yet is still reported. Allowlist matches are exact on the spelling in the file; denylist matches are made on a
normalized spelling (NFKC, case-folded, stripped of spaces and stray dots, Python 2 names mapped to Python 3) and on
every dotted prefix, because `find_class` resolves `name` through a chain of getattr calls (`os` + `path.os.system`).
"""

from __future__ import annotations

import _compat_pickle
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    """What importing a global means for whoever loads the pickle."""

    SAFE = "safe"
    UNKNOWN = "unknown"
    """Not on the allowlist: HIGH."""
    DANGEROUS = "dangerous"
    """On the denylist: CRITICAL."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict with the reason shown to the user."""

    verdict: Verdict
    reason: str


# --- allowlist ------------------------------------------------------------------------------------------------

_NUMPY_SCALARS = [
    "bool_",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "intc",
    "uintc",
    "intp",
    "uintp",
    "int_",
    "uint",
    "longlong",
    "ulonglong",
    "short",
    "ushort",
    "byte",
    "ubyte",
    "float16",
    "float32",
    "float64",
    "float128",
    "half",
    "single",
    "double",
    "longdouble",
    "float_",
    "complex64",
    "complex128",
    "complex256",
    "csingle",
    "cdouble",
    "clongdouble",
    "complex_",
    "object_",
    "str_",
    "bytes_",
    "unicode_",
    "string_",
    "void",
    "datetime64",
    "timedelta64",
    "generic",
    "number",
    "integer",
    "signedinteger",
    "unsignedinteger",
    "floating",
    "inexact",
    "complexfloating",
]
# ufuncs and reductions that estimators keep as hyper-parameters (FunctionTransformer(func=np.log1p), ...)
_NUMPY_FUNCS = [
    "abs",
    "absolute",
    "add",
    "arccos",
    "arccosh",
    "arcsin",
    "arcsinh",
    "arctan",
    "arctan2",
    "arctanh",
    "cbrt",
    "ceil",
    "clip",
    "cos",
    "cosh",
    "deg2rad",
    "degrees",
    "divide",
    "exp",
    "exp2",
    "expm1",
    "fabs",
    "floor",
    "floor_divide",
    "fmax",
    "fmin",
    "fmod",
    "hypot",
    "isfinite",
    "isinf",
    "isnan",
    "log",
    "log10",
    "log1p",
    "log2",
    "logaddexp",
    "logical_and",
    "logical_not",
    "logical_or",
    "maximum",
    "minimum",
    "mod",
    "multiply",
    "negative",
    "power",
    "rad2deg",
    "radians",
    "reciprocal",
    "rint",
    "sign",
    "sin",
    "sinh",
    "sqrt",
    "square",
    "subtract",
    "tan",
    "tanh",
    "true_divide",
    "trunc",
    "mean",
    "median",
    "sum",
    "prod",
    "max",
    "min",
    "amax",
    "amin",
    "std",
    "var",
    "nanmean",
    "nanmedian",
    "nansum",
    "nanmax",
    "nanmin",
    "nanstd",
    "nanvar",
    "argmax",
    "argmin",
    "average",
]

_EXACT: frozenset[str] = frozenset(
    [
        f"builtins.{n}"
        for n in [
            "set",
            "frozenset",
            "slice",
            "complex",
            "bytearray",
            "range",
            "list",
            "dict",
            "tuple",
            "int",
            "float",
            "str",
            "bytes",
            "bool",
            "object",
            "NoneType",
            "Ellipsis",
            "NotImplemented",
        ]
    ]
    + [f"collections.{n}" for n in ("OrderedDict", "defaultdict", "deque", "Counter")]
    + [f"datetime.{n}" for n in ("datetime", "date", "time", "timedelta", "timezone")]
    + [
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "_codecs.encode",  # _codecs.encode: bytes in protocol 2
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
    ]
    + [f"numpy.{n}" for n in (*_NUMPY_SCALARS, *_NUMPY_FUNCS, "ndarray", "dtype", "matrix", "recarray", "record")]
    + [
        f"{core}.{n}"
        for core in ("numpy.core", "numpy._core")
        for n in (
            "multiarray._reconstruct",
            "multiarray.scalar",
            "numeric._frombuffer",
            "_ufunc_reconstruct",
            "records.recarray",
            "records.record",
            "defmatrix.matrix",
            "umath.log1p",
        )
    ]
    + [f"numpy.ma.{n}" for n in ("core._mareconstruct", "core.MaskedArray", "MaskedArray", "core.mvoid")]
    # pandas 3 with pyarrow installed stores strings as Arrow arrays: a type looked up by alias name, buffers made
    # from bytes, an array rebuilt from (type, length, buffers); no callable of the file's choosing runs.
    + [f"pyarrow.lib.{n}" for n in ("_restore_array", "type_for_alias", "py_buffer")]
    + [
        f"numpy.dtypes.{n}"
        for n in (
            "Float64DType",
            "Float32DType",
            "Int64DType",
            "Int32DType",
            "BoolDType",
            "ObjectDType",
            "StrDType",
            "BytesDType",
            "VoidDType",
            "StringDType",
        )
    ]
    + [
        f"numpy.random.{n}"
        for n in (
            "_pickle.__randomstate_ctor",
            "_pickle.__bit_generator_ctor",
            "_pickle.__generator_ctor",
            "bit_generator.__pyx_unpickle_SeedSequence",
            "bit_generator.SeedSequence",
            "_mt19937.MT19937",
            "_pcg64.PCG64",
            "_pcg64.PCG64DXSM",
            "_philox.Philox",
            "_sfc64.SFC64",
            "mtrand.RandomState",
            "_generator.Generator",
            "__RandomState_ctor",
        )
    ]
    + ["joblib.numpy_pickle.NumpyArrayWrapper"]
    + [
        f"torch._utils.{n}"
        for n in (
            "_rebuild_tensor",
            "_rebuild_tensor_v2",
            "_rebuild_tensor_v3",
            "_rebuild_parameter",
            "_rebuild_parameter_with_state",
            "_rebuild_qtensor",
            "_rebuild_sparse_tensor",
            "_rebuild_nested_tensor",
            "_rebuild_device_tensor_from_numpy",
            "_rebuild_meta_tensor_no_storage",
            "_rebuild_wrapper_subclass",
            "_rebuild_xla_tensor",
            "_rebuild_mtia_tensor",
            "_rebuild_sparse_csr_tensor",
        )
    ]
    + [
        "torch._tensor._rebuild_from_type",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Size",
        "torch.device",
        "torch.Tensor",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.serialization._get_layout",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.UntypedStorage",
        "torch.TypedStorage",
        "torch.strided",
        "torch.sparse_coo",
        "torch.contiguous_format",
        "torch.channels_last",
        "torch.preserve_format",
        "torch.per_tensor_affine",
        "torch.per_channel_affine",
        "torch._C._nn.gelu",
    ]
    + [
        f"torch.{t}Storage"
        for t in (
            "Double",
            "Float",
            "Half",
            "Long",
            "Int",
            "Short",
            "Char",
            "Byte",
            "Bool",
            "BFloat16",
            "ComplexDouble",
            "ComplexFloat",
            "QUInt8",
            "QInt8",
            "QInt32",
            "QUInt4x2",
            "QUInt2x4",
        )
    ]
    + [
        f"torch.{d}"
        for d in [
            "float32",
            "float",
            "float64",
            "double",
            "float16",
            "half",
            "bfloat16",
            "complex64",
            "cfloat",
            "complex128",
            "cdouble",
            "uint8",
            "int8",
            "int16",
            "short",
            "int32",
            "int",
            "int64",
            "long",
            "bool",
            "qint8",
            "quint8",
            "qint32",
            "quint4x2",
            "float8_e4m3fn",
            "float8_e5m2",
            "uint16",
            "uint32",
            "uint64",
        ]
    ]
)

# Packages whose classes real pickles construct; any plain (undotted) name in them is allowed unless it or its module
# hits the denylist, or one of its words names an action (load, open, exec ...): those fall back to HIGH.
_PREFIXES: tuple[str, ...] = (
    "sklearn.",
    "pandas.core.",
    "pandas._libs.",
    "pandas.arrays.",
    "scipy.sparse.",
    "scipy.stats._",
    "torch.nn.modules.",
    "xgboost.",
    "lightgbm.",
    "numpy.random.",
)
_CLASS_MODULES = frozenset(("pandas", "pandas.arrays", "pandas.api.types"))
_ACTION_WORDS = frozenset(
    [
        "load",
        "loads",
        "fetch",
        "download",
        "read",
        "open",
        "exec",
        "eval",
        "system",
        "popen",
        "spawn",
        "run",
        "compile",
        "write",
        "save",
        "dump",
        "dumps",
        "remove",
        "unlink",
        "rmtree",
        "import",
        "getattr",
        "setattr",
        "delattr",
        "call",
        "subprocess",
        "shell",
        "urlopen",
        "request",
        "fork",
        "kill",
        "module",
    ]
)

# --- denylist -------------------------------------------------------------------------------------------------
# Prefix (lower-case, dotted) -> why it is critical. A prefix matches itself and anything below it.
_RUN = "runs shell commands or other programs"
_CODE = "compiles or runs Python code"
_IMPORT = "imports modules or resolves names at load time (reaches any other callable)"
_NESTED = "deserializes another pickle or model file (its content was not vetted)"
_FILES = "reads, writes or deletes files"
_NET = "opens network connections"
_REACH = "reaches callables or attributes indirectly"
_PKG = "installs packages or creates environments"

_DENY: dict[str, str] = {
    **dict.fromkeys(
        (
            "os",
            "posix",
            "nt",
            "subprocess",
            "_posixsubprocess",
            "pty",
            "platform.popen",
            "commands",
            "asyncio",
            "multiprocessing",
            "_winapi",
            "uuid._get_command_stdout",
            "_osx_support",
            "_aix_support",
            "mailcap",
            "webbrowser",
            "antigravity",
            "concurrent",
            "signal",
            "_posixshmem",
        ),
        _RUN,
    ),
    **dict.fromkeys(
        (
            "builtins.eval",
            "builtins.exec",
            "builtins.compile",
            "builtins.breakpoint",
            "builtins.input",
            "code",
            "codeop",
            "timeit",
            "cprofile",
            "profile",
            "pdb",
            "bdb",
            "trace",
            "doctest",
            "idlelib",
            "lib2to3",
            "types",
            "marshal",
            "ctypes",
            "_ctypes",
            "cffi",
            "numpy.testing",
            "numpy.f2py",
            "numpy.distutils",
            "numpy.ctypeslib",
            "torch.jit",
            "torch._inductor",
            "torch._dynamo",
            "torch.fx",
            "torch.utils.cpp_extension",
            "torch.utils.bottleneck",
            "torch.utils.collect_env",
            "torch.testing",
            "torch.package",
            "torch.compile",
            "torch._export",
            "torch.export",
            "pandas.core.computation",
            "pandas.eval",
            "numexpr",
            "sympy",
            "jinja2",
            "logging.config",
            "sklearn.utils._testing",
            "sklearn.utils.estimator_checks",
            "tensorflow.python.eager",
            "keras.layers.lambda",
            "test.support",
            "sqlite3",
            "site",
            "sys",
            "gc",
            "_thread",
            "threading",
            "builtins.exit",
            "builtins.quit",
            "builtins.help",
            "builtins.memoryview",
            "builtins.type",
        ),
        _CODE,
    ),
    **dict.fromkeys(
        (
            "builtins.__import__",
            "builtins.getattr",
            "builtins.setattr",
            "builtins.delattr",
            "builtins.globals",
            "builtins.locals",
            "builtins.vars",
            "builtins.super",
            "importlib",
            "imp",
            "pkgutil",
            "runpy",
            "zipimport",
            "pydoc",
            "inspect",
            "operator.attrgetter",
            "operator.methodcaller",
            "operator.itemgetter",
            "_operator",
            "functools.partial",
            "functools.reduce",
            "functools.partialmethod",
            "_functools",
            "copyreg.add_extension",
            "copy_reg.add_extension",
            "weakref",
            "_weakref",
            "collections.namedtuple",
        ),
        _IMPORT,
    ),
    **dict.fromkeys(
        (
            "pickle",
            "_pickle",
            "cpickle",
            "dill",
            "cloudpickle",
            "joblib.load",
            "joblib.numpy_pickle.load",
            "joblib.numpy_pickle_compat",
            "shelve",
            "jsonpickle",
            "yaml",
            "numpy.load",
            "numpy.lib.npyio",
            "numpy.lib._npyio_impl",
            "numpy.lib.format",
            "torch.load",
            "torch.serialization.load",
            "torch.storage._load_from_bytes",
            "torch.hub",
            "torch.utils.model_zoo",
            "pandas.read_pickle",
            "pandas.io",
            "keras.models.load_model",
            "keras.saving",
            "tensorflow.keras.models.load_model",
            "tensorflow.saved_model",
            "onnx.load",
        ),
        _NESTED,
    ),
    **dict.fromkeys(
        (
            "builtins.open",
            "io",
            "_io",
            "codecs.open",
            "shutil",
            "tempfile",
            "fileinput",
            "linecache",
            "glob",
            "pathlib",
            "zipfile",
            "tarfile",
            "gzip",
            "bz2",
            "lzma",
            "distutils",
            "setuptools",
            "numpy.fromfile",
            "numpy.memmap",
            "numpy.save",
            "numpy.savez",
            "numpy.savez_compressed",
            "numpy.savetxt",
            "numpy.loadtxt",
            "numpy.genfromtxt",
            "numpy.tofile",
            "numpy.ndarray.tofile",
            "numpy.ndarray.dump",
            "torch.save",
            "torch.from_file",
            "tensorflow.io",
            "tensorflow.gfile",
            "tensorflow.python.platform.gfile",
            "tensorflow.python.ops.io_ops",
            "keras.utils.get_file",
            "sklearn.datasets",
            "dbm",
            "mmap",
        ),
        _FILES,
    ),
    **dict.fromkeys(
        (
            "socket",
            "_socket",
            "ssl",
            "_ssl",
            "http",
            "urllib",
            "urllib2",
            "httplib",
            "requests",
            "aiohttp",
            "httpx",
            "ftplib",
            "smtplib",
            "smtpd",
            "telnetlib",
            "poplib",
            "imaplib",
            "nntplib",
            "xmlrpc",
            "socketserver",
            "torch.distributed",
            "asynchat",
            "asyncore",
        ),
        _NET,
    ),
    **dict.fromkeys(("pip", "ensurepip", "venv", "virtualenv", "conda"), _PKG),
}
_DUNDER = re.compile(r"^__\w+__$")
# Dunder attributes that reach interpreter internals (`__builtins__.eval`, `__class__.__subclasses__`,
# `__globals__`); `copyreg.__newobj__` and friends are exact allowlist entries, checked first.
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _words(name: str) -> set[str]:
    return {w.lower() for part in name.split("_") for w in _CAMEL.findall(part)}


def normalize(qualified: str) -> str:
    """The spelling the denylist is matched against: NFKC, lower case, no spaces, no empty dotted parts."""
    text = unicodedata.normalize("NFKC", qualified).casefold()
    text = "".join(c for c in text if not c.isspace() and unicodedata.category(c) not in ("Cf", "Cc"))
    return ".".join(p for p in text.split(".") if p)


def python3_spelling(module: str, name: str) -> tuple[str, str]:
    """What Python 3's `find_class` imports for a Python 2 spelling (`__builtin__`, `commands`, `cPickle`)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _denied(module: str, name: str) -> str | None:
    parts = normalize(f"{module}.{name}").split(".")
    for i in range(len(parts), 0, -1):
        reason = _DENY.get(".".join(parts[:i]))
        if reason:
            return reason
    # a denied module reached through the attribute chain of the name (`torch` + `serialization.os.system`):
    # only the name is a getattr chain, the module path is a real import and is matched by prefix above
    chain = normalize(name).split(".")
    for i in range(len(chain)):
        for j in range(len(chain), i, -1):
            reason = _DENY.get(".".join(chain[i:j]))
            if reason and (j - i > 1 or chain[i] in _SUFFIX_MODULES):
                return reason
    return None


# Module names dangerous enough that reaching them as an attribute (`x.os`, `x.subprocess`) is itself critical.
_SUFFIX_MODULES = frozenset(
    (
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "builtins",
        "__builtins__",
        "importlib",
        "pickle",
        "_pickle",
        "marshal",
        "ctypes",
        "shutil",
        "socket",
        "pty",
        "runpy",
    )
)


# Exceptions inside denied packages, checked first: TorchScript archives pickle their debug info and constants
# with these, and each returns its argument unchanged (torch/jit/_pickle.py).
_TORCHSCRIPT_IDENTITIES: frozenset[str] = frozenset(
    f"torch.jit._pickle.{n}"
    for n in ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "build_tensor_from_id",
              "restore_type_tag")
)


def judge(module: str, name: str) -> Judgement:
    """The verdict on importing `name` from `module` as `find_class` would (dotted names are attribute chains)."""
    if f"{module}.{name}" in _TORCHSCRIPT_IDENTITIES:
        return Judgement(Verdict.SAFE, "allowlisted (a TorchScript identity function)")
    mapped = python3_spelling(module, name)
    candidates = [(module, name)] + ([mapped] if mapped != (module, name) else [])
    for mod, nm in candidates:
        qualified = f"{mod}.{nm}"
        reason = _denied(mod, nm)
        if reason:
            return Judgement(Verdict.DANGEROUS, reason)
        if any(_DUNDER.match(p) for p in nm.split(".")) and qualified not in _EXACT:
            return Judgement(Verdict.DANGEROUS, "reaches interpreter internals through a dunder attribute")
    for mod, nm in candidates:
        qualified = f"{mod}.{nm}"
        if qualified in _EXACT:
            return Judgement(Verdict.SAFE, "allowlisted")
        if (
            "." not in nm
            and nm.isidentifier()
            and nm.isascii()
            and mod.isascii()
            and any(qualified.startswith(p) for p in _PREFIXES)
        ):
            if _words(nm) & _ACTION_WORDS:
                return Judgement(
                    Verdict.UNKNOWN,
                    "in an allowlisted package, but its name says it acts (loads, opens, runs...); review it",
                )
            return Judgement(Verdict.SAFE, "allowlisted package")
        # pandas 2+ pickles its public classes from the top-level package (`pandas.DataFrame`); only class names
        # (capitalised) are allowed there, never its readers and eval
        if mod in _CLASS_MODULES and nm.isidentifier() and nm.isascii() and nm[:1].isupper():
            if _words(nm) & _ACTION_WORDS:
                return Judgement(Verdict.UNKNOWN, "its name says it acts (loads, opens, runs...); review it")
            return Judgement(Verdict.SAFE, "allowlisted package")
    return Judgement(Verdict.UNKNOWN, "not on the allowlist of globals real ML files use")


# Allowlisted functions that take a module and a name and return the attribute: the scanner judges what they
# resolve to (old NumPy pickled ufuncs as `_ufunc_reconstruct('numpy', 'log1p')`).
NAME_RESOLVERS: frozenset[str] = frozenset(("numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"))
# Denied callables whose bytes argument is itself a pickle: the scanner analyses that argument as well.
NESTED_LOADERS: frozenset[str] = frozenset(
    (
        "pickle.loads",
        "_pickle.loads",
        "cPickle.loads",
        "dill.loads",
        "dill._dill.loads",
        "cloudpickle.loads",
        "torch.storage._load_from_bytes",
        "numpy.loads",
        "joblib.loads",
    )
)

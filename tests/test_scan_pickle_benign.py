"""The pickle analyzer on real ML files: no finding above info, array data skipped, constant memory on huge
arguments, and no crash on mutated input."""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import pickle
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlfort.report import Severity
from mlfort.scan.base import Limits, ScanContext
from mlfort.scan.pickle_vm import PickleResult, analyze_pickle
from mlfort.scan.rules import RULES


def scan(data: bytes, limits: Limits | None = None) -> tuple[PickleResult, ScanContext]:
    ctx = ScanContext(root=Path("."), limits=limits or Limits())
    return analyze_pickle(io.BytesIO(data), target="m.pkl", ctx=ctx), ctx


def assert_clean(data: bytes) -> PickleResult:
    result, ctx = scan(data)
    loud = [(f.rule_id, f.message) for f in ctx.findings if f.severity is not Severity.INFO]
    assert loud == [] and result.ended_cleanly
    return result


def _estimators() -> dict[str, object]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    X = rng.random((60, 4))
    y = (X[:, 0] > 0.5).astype(int)
    return {
        "logistic": LogisticRegression().fit(X, y),
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
        "pipeline": Pipeline([("scale", StandardScaler()), ("svc", SVC())]).fit(X, y),
        "boosting": GradientBoostingClassifier(n_estimators=3).fit(X, y),
        "log1p": FunctionTransformer(np.log1p).fit(X),
    }


ARRAYS = {
    "float64": np.arange(12.0).reshape(3, 4),
    "int8": np.arange(5, dtype=np.int8),
    "bool": np.array([True, False]),
    "complex": np.array([1j, 2]),
    "unicode": np.array(["ab", "cde"]),
    "structured": np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,)), ("c", "S3")]),
    "fortran": np.asfortranarray(np.ones((3, 2), dtype=np.float32)),
    "datetime": np.array(["2020-01-01"], dtype="datetime64[D]"),
    "scalar": np.float64(2.5),
    "rng": np.random.default_rng(1),
    "randomstate": np.random.RandomState(2),
    "masked": np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]),
}
PLAIN = {
    "ordereddict": collections.OrderedDict(a=1, b=[1, 2]),
    "defaultdict": collections.defaultdict(list, a=[1]),
    "datetime": [datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.UTC), datetime.date(2024, 1, 1),
                 datetime.timedelta(3)],
    "builtins": [{1, 2}, frozenset([3]), slice(1, 2), 1j, bytearray(b"x"), range(3), b"raw", None, True, 2**80],
    "decimal": decimal.Decimal("1.5"),
}


@pytest.mark.parametrize("proto", [0, 2, 4, 5])
@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_numpy_arrays_of_every_kind_are_clean(name, proto):
    assert_clean(pickle.dumps(ARRAYS[name], protocol=proto))


@pytest.mark.parametrize("proto", [0, 2, 4, 5])
@pytest.mark.parametrize("name", sorted(PLAIN))
def test_standard_library_containers_are_clean(name, proto):
    assert_clean(pickle.dumps(PLAIN[name], protocol=proto))


@pytest.mark.parametrize("proto", [0, 1, 2, 4, 5])
def test_sklearn_estimators_are_clean_in_every_protocol(proto):
    for name, est in _estimators().items():
        result = assert_clean(pickle.dumps(est, protocol=proto))
        assert any(m.startswith("sklearn.") for m, _n, _h in result.globals), name


def test_pandas_frames_and_series_are_clean():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "t": pd.to_datetime(["2020-01-01", "2021-01-01"]),
                          "c": pd.Categorical(["u", "v"]), "f": [1.0, None]}, index=pd.Index(["r1", "r2"]))
    series = pd.Series([1, 2], index=pd.date_range("2020", periods=2, tz="UTC"))
    for obj in (frame, series, pd.Timestamp("2020"), pd.Timedelta(1), pd.Period("2020"), pd.interval_range(0, 3),
                pd.MultiIndex.from_tuples([(1, 2)])):
        for proto in (2, 4, 5):
            assert_clean(pickle.dumps(obj, protocol=proto))


def _joblib_bytes(obj: object, compress: int, tmp_path: Path) -> bytes:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / f"m{compress}.joblib"
    joblib.dump(obj, path, compress=compress)
    raw = path.read_bytes()
    # compression is the container handler's job; here it is unwrapped the way that handler does
    return zlib.decompress(raw) if compress else raw


@pytest.mark.parametrize("compress", [0, 3])
def test_joblib_dumps_skip_array_bytes_without_false_alarms(compress, tmp_path):
    obj = {"models": _estimators(), "arrays": ARRAYS, "big": np.arange(200_000, dtype=np.float64),
           "objects": np.array([{"k": 1}, "s", None], dtype=object)}
    data = _joblib_bytes(obj, compress, tmp_path)
    result = assert_clean(data)
    assert result.bytes_read == len(data)
    # 1.6 MB of float64 skipped, not modelled as opcodes
    assert result.opcodes < 20_000


def test_joblib_array_bytes_are_not_misread_as_opcodes(tmp_path):
    # array data that happens to spell `cos\nsystem\n` must be skipped as data, exactly as joblib reads it
    arr = np.frombuffer(b"cos\nsystem\n(S'id'\ntR." * 4, dtype=np.uint8)
    assert_clean(_joblib_bytes(arr, 0, tmp_path))


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _torch_objects(torch):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.BatchNorm1d(2))
    return {
        "state_dict": model.state_dict(),
        "module": model,
        "mixed": {"half": torch.zeros(2, dtype=torch.float16), "long": torch.arange(3),
                  "bool": torch.ones(2, dtype=torch.bool), "bf16": torch.zeros(2, dtype=torch.bfloat16),
                  "complex": torch.zeros(2, dtype=torch.complex64), "param": torch.nn.Parameter(torch.ones(2)),
                  "device": torch.device("cpu"), "dtype": torch.float32, "size": torch.Size([2]),
                  "view": torch.arange(10.0)[2:5]},
    }


def test_legacy_torch_files_skip_their_storages(torch):
    for name, obj in _torch_objects(torch).items():
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=False)
        result = assert_clean(buf.getvalue())
        assert result.n_pickles == 5 and result.bytes_read == len(buf.getvalue()), name


def test_data_pkl_from_a_torch_zip_is_clean(torch):
    for name, obj in _torch_objects(torch).items():
        buf = io.BytesIO()
        torch.save(obj, buf)
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
            pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
            assert_clean(z.read(pkl))
            assert name


def test_a_200_mb_binbytes8_scans_in_constant_memory(tmp_path):
    size = 200 << 20
    path = tmp_path / "big.pkl"
    with path.open("wb") as f:
        f.write(b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8e" + struct.pack("<Q", size))
        f.seek(size, io.SEEK_CUR)  # a sparse file: nothing to write, and the scanner must not read it either
        f.write(b"0N.")
    tracemalloc.start()
    try:
        with path.open("rb") as f:
            ctx = ScanContext(root=tmp_path)
            result = analyze_pickle(f, target=str(path), ctx=ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ctx.findings == [] and result.ended_cleanly and result.bytes_read == path.stat().st_size
    assert peak < 32 << 20


_SEEDS = [pickle.dumps(PLAIN["builtins"], protocol=p) for p in (0, 2, 5)] + [
    pickle.dumps(ARRAYS["structured"], protocol=4), pickle.dumps(collections.OrderedDict(a=np.arange(3)), protocol=2)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(_SEEDS), edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255),
                                                              st.sampled_from(["set", "insert", "delete"])),
                                                    min_size=1, max_size=6))
def test_mutated_pickles_only_ever_produce_findings(seed, edits):
    data = bytearray(seed)
    for pos, value, kind in edits:
        i = pos % (len(data) + 1)
        if kind == "insert":
            data[i:i] = bytes([value])
        elif data and i < len(data):
            if kind == "set":
                data[i] = value
            else:
                del data[i]
    result, ctx = scan(bytes(data), Limits(max_memory_arg=4096, max_pickle_opcodes=100_000))
    assert all(f.rule_id in RULES for f in ctx.findings)
    assert result.bytes_read <= len(data)

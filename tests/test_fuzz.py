"""Fuzzing the file readers: every damaged or crafted file gives the documented error.

Model files (``xpnet.load``): random byte flips, truncations, crafted headers with the
checksum recomputed (so the header's validation is what is tested, not the checksum),
crafted ``.npy`` member headers. Data files (``xpnet.data.load_file``): random CSV text,
crafted ``.npz`` archives and ``.npy`` files. Each must raise ``ModelFileError`` /
``DataError`` or load correctly (a model identical to what the file holds, a data set
of finite float64 features): never another exception type, never a hang (each load runs
under a 20 s alarm).

The normal suite runs a small, derandomised set of examples (seconds). For a longer,
random run: ``nox -s fuzz`` (or ``XPNET_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis not installed (it is in xpnet[test])")
from crafting import PARAM_ORDER, model_members, npy_bytes, small_model, write_zip  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import xpnet  # noqa: E402
from xpnet.data import DataError, load_file  # noqa: E402
from xpnet.io import ModelFileError  # noqa: E402

_LONG = os.environ.get("XPNET_FUZZ_EXAMPLES")


def fuzz(examples: int) -> Any:
    """``examples`` derandomised examples in the normal suite; ``XPNET_FUZZ_EXAMPLES``
    random ones in the long run."""
    return settings(
        max_examples=int(_LONG) if _LONG else examples,
        derandomize=not _LONG,
        deadline=None,  # the machine is shared: time is checked by the alarm below
        database=None if not _LONG else settings.default.database,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture],
    )


@contextlib.contextmanager
def no_hang(seconds: int = 20) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the body runs longer than ``seconds``."""
    def expire(signum: int, frame: Any) -> None:
        raise AssertionError(f"loading ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def original(workdir: Path) -> tuple[bytes, dict[str, np.ndarray]]:
    path = workdir / "original.npz"
    arrays = small_model(path, feature_names=["a", "b", "c"], target_name="t",
                         standardize=([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]), note={"k": [1, 2]})
    return path.read_bytes(), arrays


def load_model(path: Path) -> Any:
    """The loaded network, or ``None`` when refused with ``ModelFileError``."""
    with no_hang():
        try:
            return xpnet.load(path)
        except ModelFileError:
            return None


def assert_holds(net: Any, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
    """``net`` is exactly the model the file describes."""
    got = [xpnet.to_numpy(p) for pair in net.params for p in pair]
    for name, array in zip(PARAM_ORDER, got, strict=True):
        np.testing.assert_array_equal(array, arrays[name])
        assert array.dtype == arrays[name].dtype
    assert net.metadata["header"] == header


# ----------------------------------------------------------------------------- model files
@fuzz(60)
@given(data=st.data())
def test_model_byte_flips(original, workdir, data):
    raw, arrays = original
    damaged = bytearray(raw)
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)),
                               min_size=1, max_size=4))
    for position, mask in flips:
        damaged[position] ^= mask
    path = workdir / "flipped.npz"
    path.write_bytes(bytes(damaged))
    net = load_model(path)
    if net is not None:  # a flip in a part no reader uses (a zip timestamp, say)
        assert_holds(net, arrays, json.loads(arrays["header"].tobytes()))


@fuzz(30)
@given(cut=st.integers(min_value=1, max_value=10**6))
def test_model_truncations(original, workdir, cut):
    raw, _ = original
    path = workdir / "truncated.npz"
    path.write_bytes(raw[: cut % len(raw)] or b"\0")
    assert load_model(path) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.text(max_size=8)
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
# Fields to tamper with: (path in the header, plausible values besides arbitrary JSON).
FIELDS: list[tuple[str, ...]] = [
    ("format",), ("format_version",), ("xpnet_version",), ("layer_sizes",), ("activations",),
    ("output",), ("loss",), ("dtype",), ("alpha",), ("trained_on",), ("trained_on", "backend"),
    ("metadata",), ("metadata", "standardize"), ("metadata", "standardize", "mean"),
    ("metadata", "classes"), ("metadata", "feature_names"), ("metadata", "target_name"),
    ("metadata", "task"), ("metadata", "dataset"), ("metadata", "split"),
    ("metadata", "split", "seed"), ("metadata", "split", "test_fraction"),
    ("metadata", "extra"), ("metadata", "target_standardize"), ("metadata", "unknown"),
    ("unknown",),
]
plausible = st.sampled_from([
    0, 1, -1, 2, 3, 0.5, 1e308, -0.0, True, "softmax", "sigmoid", "identity", "tanh",
    "float32", "float64", "binary", "multiclass", "xpnet-model", [3, 4, 2], [3, 2], [3, 4, 4, 2],
    ["tanh"], ["a", "b"], ["a", "a"], [0, 1], {"mean": [0, 0, 0], "scale": [1, 1, 1]},
    {"test_fraction": 0.2, "seed": 3}, {"backend": "numpy", "device": "cpu"}, 10**400, [[]],
])
# Raw JSON text no json.dumps writes: non-finite constants, huge numbers, deep nesting.
RAW_VALUES = ["NaN", "-Infinity", "1e999", "-1e400", "1" + "0" * 5000, "[" * 5000 + "]" * 5000,
              '{"a":' * 40 + "1" + "}" * 40, "1.5e-400", '"\\ud800"']


@fuzz(150)
@given(field=st.sampled_from(FIELDS), value=plausible | json_values,
       raw=st.none() | st.sampled_from(RAW_VALUES), delete=st.booleans())
def test_model_crafted_headers(original, workdir, field, value, raw, delete):
    _, arrays = original
    header = json.loads(arrays["header"].tobytes())
    target = header
    for key in field[:-1]:
        if not isinstance(target, dict) or not isinstance(target.get(key), dict):
            target = None
            break
        target = target[key]
    if target is None:
        return
    marker = "@@RAW@@"
    if delete and raw is None:
        target.pop(field[-1], None)
    else:
        target[field[-1]] = marker if raw is not None else value
    text = json.dumps(header)
    if raw is not None:
        text = text.replace(json.dumps(marker), raw)
    path = write_zip(workdir / "crafted.npz", model_members(arrays, text.encode("utf-8")))
    net = load_model(path)
    if net is not None:  # a valid header: the model is exactly what the file says
        assert_holds(net, arrays, json.loads(text))


@fuzz(40)
@given(header=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_model_arbitrary_header_bytes(original, workdir, header):
    _, arrays = original
    path = write_zip(workdir / "bytes.npz", model_members(arrays, header))
    assert load_model(path) is None


descrs = st.sampled_from(["<f8", "<f4", ">f8", "|u1", "<i8", "|b1", "<c16", "<U3", "|S4",
                          "|V8", "|O", "<M8[s]", [("a", "<f8")], ("<f8", (2,))])
shapes = st.lists(st.integers(0, 10**12) | st.integers(0, 6), max_size=3).map(tuple)


def npy_with_header(descr: Any, fortran: bool, shape: tuple[int, ...], payload: bytes) -> bytes:
    """A ``.npy`` file with any header dict numpy would write, then ``payload``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buffer.getvalue() + payload


@fuzz(60)
@given(member=st.sampled_from(["W1", "b2", "header", "checksum"]), descr=descrs,
       fortran=st.booleans(), shape=shapes, payload=st.binary(max_size=300),
       garbage=st.sampled_from(["header", "magic", "raw"]))
def test_model_crafted_member_headers(original, workdir, member, descr, fortran, shape,
                                      payload, garbage):
    _, arrays = original
    members = model_members(arrays)
    if garbage == "raw":  # numpy.load hands a member without the magic back as bytes
        members[f"{member}.npy"] = payload
    elif garbage == "magic":
        members[f"{member}.npy"] = b"\x93NUMPY" + payload
    else:
        members[f"{member}.npy"] = npy_with_header(descr, fortran, shape, payload)
    path = write_zip(workdir / "member.npz", members)
    net = load_model(path)
    if net is not None:  # only if the crafted member equals the original one
        assert_holds(net, arrays, json.loads(arrays["header"].tobytes()))


# ----------------------------------------------------------------------------- data files
def load_data(path: Path, **kwargs: Any) -> Any:
    """The data set, checked for the documented invariants, or ``None`` if refused."""
    with no_hang():
        try:
            data = load_file(path, **kwargs)
        except DataError:
            return None
    assert data.X.dtype == np.float64 and data.X.ndim == 2
    assert data.X.shape[0] >= 1 and data.X.shape[1] >= 1
    assert np.all(np.isfinite(data.X))
    if data.y is not None:
        assert data.y.shape == (data.X.shape[0],)
        assert data.y.dtype.kind in "fU"
        if data.y.dtype.kind == "f":
            assert np.all(np.isfinite(data.y))
    assert len(data.feature_names) == data.X.shape[1]
    return data


csv_text = st.text(alphabet=st.sampled_from(list("0123456789.,-+eE\n\r\" ab_x\tnaif")
                                            + ["\u0663", "\x1b", "\u00a0", "\uff11", "\x00"]),
                   max_size=120)


@fuzz(120)
@given(text=csv_text, target=st.none() | st.sampled_from(["a", "b", "0", "-1", "5", "x"]),
       n_features=st.none() | st.integers(1, 3))
def test_csv_files(workdir, text, target, n_features):
    path = workdir / "fuzz.csv"
    path.write_text(text, encoding="utf-8", newline="")
    if not text:
        return  # an empty file: "is empty" (tested elsewhere)
    load_data(path, target=target, n_features=n_features)


# The number syntax of CSV readers, written independently of xpnet's: optional sign,
# ASCII digits with an optional decimal point, optional exponent.
CSV_NUMBER = re.compile(r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?")
number_pieces = st.sampled_from(["1", "0", "25", ".", "e", "E", "-", "+", "_", "\u0663",
                                 "\uff11", "\u00a0", "nan", "inf", "x", "9" * 400])


@fuzz(120)
@given(pieces=st.lists(number_pieces, min_size=1, max_size=6))
def test_csv_cells_are_numbers_exactly_when_csv_readers_say_so(workdir, pieces):
    cell = "".join(pieces)
    path = workdir / "cell.csv"
    path.write_text(f"a,b,t\n{cell},1,0\n2,3,1\n", encoding="utf-8")
    data = load_data(path)
    number = CSV_NUMBER.fullmatch(cell) is not None and np.isfinite(float(cell))
    assert (data is not None) == number, (cell, data)
    if data is not None:
        assert data.X[0, 0] == float(cell)


@fuzz(40)
@given(raw=st.binary(max_size=200))
def test_csv_arbitrary_bytes(workdir, raw):
    path = workdir / "bytes.csv"
    path.write_bytes(raw or b"\0")
    load_data(path)


dtypes = st.sampled_from(["float64", "float32", "int8", "uint64", "bool", "complex128", "U3",
                          "S3", "datetime64[s]", "float16"])


@st.composite
def arrays_of_any_kind(draw: Any) -> np.ndarray:
    dtype = np.dtype(draw(dtypes))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    size = int(np.prod(shape))
    raw = draw(st.binary(min_size=size * dtype.itemsize, max_size=size * dtype.itemsize))
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


@fuzz(100)
@given(X=arrays_of_any_kind(), y=st.none() | arrays_of_any_kind(),
       crafted=st.none() | st.tuples(st.sampled_from(["X", "y"]), descrs, st.booleans(), shapes,
                                     st.binary(max_size=100)),
       raw_member=st.booleans(), n_features=st.none() | st.integers(1, 4))
def test_npz_files(workdir, X, y, crafted, raw_member, n_features):
    members = {"X.npy": npy_bytes(X)}
    if y is not None:
        members["y.npy"] = npy_bytes(y)
    if crafted is not None:
        name, descr, fortran, shape, payload = crafted
        members[f"{name}.npy"] = npy_with_header(descr, fortran, shape, payload)
    if raw_member:
        members["X"] = members.pop("X.npy")[::-1]
    path = write_zip(workdir / "fuzz.npz", members)
    data = load_data(path, n_features=n_features)
    if data is not None and crafted is None and not raw_member:
        np.testing.assert_array_equal(data.X, X.astype(np.float64))


@fuzz(80)
@given(array=arrays_of_any_kind(), flips=st.lists(st.tuples(st.integers(0, 10**6),
                                                            st.integers(1, 255)), max_size=3),
       cut=st.none() | st.integers(0, 10**6), target=st.none() | st.sampled_from(["0", "-1"]))
def test_npy_files(workdir, array, flips, cut, target):
    raw = bytearray(npy_bytes(array))
    for position, mask in flips:
        raw[position % len(raw)] ^= mask
    if cut is not None:
        raw = raw[: cut % len(raw)] or bytearray(b"\0")
    path = workdir / "fuzz.npy"
    path.write_bytes(bytes(raw))
    data = load_data(path, target=target)
    if data is not None and not flips and cut is None:
        assert data.X.shape[0] == array.shape[0]

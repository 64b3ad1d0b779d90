"""Model files: save/load round trips across backends, metadata, and every kind of bad file."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import xpnet
from xpnet.data import Standardizer
from xpnet.io import ModelFileError, read_header

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_STRICT = importlib.util.find_spec("array_api_strict") is not None


def trained_net(backend="numpy", dtype="float64", output="softmax"):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    if output == "softmax":
        y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
        sizes = [3, 5, 3]
    elif output == "sigmoid":
        y = (X[:, 0] * X[:, 1] > 0).astype(int)
        sizes = [3, 5, 1]
    elif output == "exp":  # Poisson counts
        y = rng.poisson(np.exp(0.5 * X[:, 0])).astype(float)
        sizes = [3, 5, 1]
    else:
        y = X @ np.array([1.0, -2.0, 0.5])
        sizes = [3, 5, 1]
    net = xpnet.MLP(sizes, activation="tanh", output=output, backend=backend, dtype=dtype,
                    seed=1, alpha=0.01)
    net.fit(X, y, epochs=30, lr=0.5)
    return net, X


def test_roundtrip_keeps_architecture_weights_and_metadata(tmp_path):
    net, X = trained_net()
    scaler = Standardizer.fit(X)
    path = tmp_path / "model.npz"
    xpnet.save(net, path, standardize=scaler, classes=["a", "b", "c"],
               feature_names=["f1", "f2", "f3"], target_name="label", task="multiclass",
               note="hello")
    loaded = xpnet.load(path)
    assert loaded.layer_sizes == net.layer_sizes
    assert loaded.activations == net.activations and loaded.output == net.output
    assert loaded.dtype == net.dtype and loaded.alpha == net.alpha
    for (W, b), (W2, b2) in zip(net.params, loaded.params, strict=True):
        np.testing.assert_array_equal(xpnet.to_numpy(W), xpnet.to_numpy(W2))
        np.testing.assert_array_equal(xpnet.to_numpy(b), xpnet.to_numpy(b2))
    meta = loaded.metadata
    assert meta["classes"] == ["a", "b", "c"] and meta["target_name"] == "label"
    assert meta["standardize"]["mean"] == scaler.mean.tolist()  # exact through JSON
    assert meta["extra"] == {"note": "hello"}
    header = read_header(path)
    assert header["xpnet_version"] == xpnet.__version__
    assert header["trained_on"]["backend"] == "numpy"


def assert_same_predictions(tmp_path, source, target, dtype):
    net, X = trained_net(source, dtype)
    path = tmp_path / "m.npz"
    xpnet.save(net, path)
    loaded = xpnet.load(path, backend=target)
    assert loaded.backend == target and loaded.dtype == dtype
    expected = xpnet.to_numpy(net.predict_proba(X))
    got = xpnet.to_numpy(loaded.predict_proba(X))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(xpnet.to_numpy(loaded.predict(X)),
                                  xpnet.to_numpy(net.predict(X)))


@pytest.mark.parametrize("direction", ["trained here, loaded on numpy",
                                       "trained on numpy, loaded here"])
def test_model_moves_between_numpy_and_each_backend(tmp_path, backend, dtype, direction):
    # ``backend`` (conftest): every backend usable here, or those chosen with --backend;
    # on a GPU machine this is "train on CuPy, predict on NumPy" and back.
    source, target = (backend, "numpy") if direction.startswith("trained here") else (
        "numpy", backend)
    assert_same_predictions(tmp_path, source, target, dtype)


@pytest.mark.skipif(not (HAVE_TORCH and HAVE_STRICT), reason="needs torch and array-api-strict")
@pytest.mark.parametrize("source, target", [("torch", "array_api_strict"),
                                            ("array_api_strict", "torch")])
def test_model_moves_between_torch_and_strict(tmp_path, source, target):
    assert_same_predictions(tmp_path, source, target, "float64")


@pytest.mark.parametrize("output", ["sigmoid", "identity", "exp"])
def test_other_outputs_roundtrip(tmp_path, output):
    net, X = trained_net(output=output)
    xpnet.save(net, tmp_path / "m.npz")
    loaded = xpnet.load(tmp_path / "m.npz", dtype="float32")
    assert loaded.output == output and loaded.dtype == "float32"
    np.testing.assert_allclose(xpnet.to_numpy(loaded.forward(X)), xpnet.to_numpy(net.forward(X)),
                               rtol=1e-5, atol=1e-6)


def test_save_refuses_bad_metadata(tmp_path):
    net, _ = trained_net()
    with pytest.raises(ValueError, match="JSON"):
        xpnet.save(net, tmp_path / "m.npz", note=object())
    with pytest.raises(ModelFileError, match="'classes' has 2 labels; expected 3"):
        xpnet.save(net, tmp_path / "m.npz", classes=["a", "b"])
    with pytest.raises(ModelFileError, match="standardize.mean has 2 entries"):
        xpnet.save(net, tmp_path / "m.npz", standardize=([0.0, 0.0], [1.0, 1.0]))
    with pytest.raises(TypeError, match="xpnet.MLP"):
        xpnet.save("not a net", tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()  # nothing half-written


# ----------------------------------------------------------------------------- bad files
@pytest.fixture
def saved(tmp_path):
    net, _ = trained_net()
    path = tmp_path / "good.npz"
    xpnet.save(net, path, classes=[0, 1, 2], task="multiclass")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return path, arrays


def rewrite(tmp_path, arrays, **changes):
    new = {**arrays, **changes}
    new = {k: v for k, v in new.items() if v is not None}
    path = tmp_path / "changed.npz"
    np.savez(path, **new)
    return path


def header_with(arrays, **fields):
    header = json.loads(arrays["header"].tobytes())
    for key, value in fields.items():
        if key.startswith("meta_"):
            header["metadata"][key[5:]] = value
        else:
            header[key] = value
    return np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


def test_missing_empty_and_junk_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        xpnet.load(tmp_path / "nope.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty"):
        xpnet.load(tmp_path / "empty.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="not a readable .npz"):
        xpnet.load(tmp_path / "junk.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="single .npy array"):
        xpnet.load(tmp_path / "array.npy")


def test_truncated_file(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 10):
        short = tmp_path / f"short{cut}.npz"
        short.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="model file"):
            xpnet.load(short)


def test_tampered_weights_fail_the_checksum(saved, tmp_path):
    _, arrays = saved
    W1 = arrays["W1"].copy()
    W1[0, 0] += 1e-9
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        xpnet.load(rewrite(tmp_path, arrays, W1=W1))


def test_tampered_header_fields(saved, tmp_path):
    _, arrays = saved
    cases = [
        (dict(output="tanh"), "field 'output'"),
        (dict(layer_sizes=[3, -5, 3]), "layer_sizes"),
        (dict(activations=["sigmoid", "relu"]), "activations"),
        (dict(dtype="float16"), "dtype"),
        (dict(alpha=-1), "alpha"),
        (dict(format="something-else"), "not an xpnet model"),
        (dict(format_version=99), "upgrade xpnet"),
        (dict(surprise=1), "unknown field"),
        (dict(meta_classes=["a", "a", "b"]), "duplicate"),
        (dict(meta_task="regression"), "does not match output"),
        (dict(meta_standardize={"mean": [0, 0, 0], "scale": [1, 0, 1]}), "positive"),
        (dict(dtype="float32"), "checksum|dtype"),  # valid value, but arrays are float64
        (dict(alpha=0.5), "checksum mismatch"),  # valid value: only the checksum sees it
    ]
    for fields, message in cases:
        path = rewrite(tmp_path, arrays, header=header_with(arrays, **fields))
        with pytest.raises(ModelFileError, match=message):
            xpnet.load(path)
    bad_json = np.frombuffer(b"{not json", dtype=np.uint8)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        xpnet.load(rewrite(tmp_path, arrays, header=bad_json))


def test_wrong_arrays(saved, tmp_path):
    _, arrays = saved
    with pytest.raises(ModelFileError, match="lacks b2"):
        xpnet.load(rewrite(tmp_path, arrays, b2=None))
    with pytest.raises(ModelFileError, match="unexpected arrays extra"):
        xpnet.load(rewrite(tmp_path, arrays, extra=np.zeros(1)))
    with pytest.raises(ModelFileError, match="W1 has shape"):
        xpnet.load(rewrite(tmp_path, arrays, W1=np.zeros((5, 3))))
    with pytest.raises(ModelFileError, match="W1 has dtype"):
        xpnet.load(rewrite(tmp_path, arrays, W1=arrays["W1"].astype(np.float32)))
    W1 = arrays["W1"].copy()
    W1[1, 1] = np.nan
    with pytest.raises(ModelFileError, match="NaN"):
        xpnet.load(rewrite(tmp_path, arrays, W1=W1))
    with pytest.raises(ModelFileError, match="no 'header'"):
        xpnet.load(rewrite(tmp_path, arrays, header=None))
    pickled = np.array([{"a": 1}], dtype=object)
    with pytest.raises(ModelFileError, match="not a readable .npz"):
        xpnet.load(rewrite(tmp_path, arrays, header=pickled))  # never unpickled

"""JAX as a backend: the pitfalls of immutable, asynchronously computed, traceable arrays.

Each test pins one way the JAX backend can go wrong while every other backend is fine:
the module name of its arrays (``jaxlib``), the process-wide 64-bit switch, the missing
device barrier, immutable parameters under ``p -= lr * g``, caches that capture tracers,
and the round trip of arrays through the estimators, model files and the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from helpers import assert_close, make_problem
from test_cli import assert_error, run

import xpnet
from xpnet import _validation as v
from xpnet.backends import BackendUnavailableError, device_name, get_backend

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'xpnet[jax]')")
jnp = jax.numpy

pytestmark = pytest.mark.backend_session("jax")  # run by the jax nox session too



def _xor():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return X, np.array([0, 1, 1, 0])


# ---------------------------------------------------------------------- registry, devices
def test_jax_arrays_are_recognised_as_jax_not_jaxlib():
    """A JAX array's class lives in ``jaxlib``; it must count as the ``jax`` backend's."""
    array = jnp.ones((2, 2), dtype=jnp.float32)
    assert type(array).__module__.split(".")[0] == "jaxlib"
    assert v.array_module(array) == "jax"
    backend = get_backend("jax")
    assert v.to_backend(backend, array, "X") is array  # used as it is, no copy


def test_network_trains_from_jax_arrays():
    X, y = _xor()
    net = xpnet.MLP([2, 4, 1], backend="jax", dtype="float32", seed=3)
    history = net.fit(jnp.asarray(X, dtype=jnp.float32), jnp.asarray(y), epochs=20, lr=1.0)
    assert len(history.loss) == 20
    with pytest.raises(TypeError, match="is a jax array but this network uses backend 'numpy'"):
        xpnet.MLP([2, 4, 1]).fit(jnp.asarray(X), y, epochs=1)


def test_devices_and_names():
    backend = get_backend("jax", "cpu")
    assert backend.device.platform == "cpu"
    assert backend.device_name == "cpu"
    assert device_name(backend.device) == "cpu"  # not "cuda:0" because a jax Device has .id
    assert get_backend("jax").device_name == "cpu"  # default: the CPU, as with torch
    assert get_backend("jax", backend.device).device == backend.device
    if not any(d.platform == "gpu" for d in jax.devices()):
        for device in ("cuda:0", "gpu:0", 0):
            with pytest.raises(BackendUnavailableError, match="no usable GPU"):
                get_backend("jax", device)
    with pytest.raises(ValueError, match="device for backend 'jax'"):
        get_backend("jax", "tpu-ish")


def test_synchronize_blocks_on_the_arrays_it_is_given():
    """JAX dispatches asynchronously and has no device-wide barrier: synchronize(arrays)
    must wait for those arrays (a no-op barrier returns while they are still running)."""
    backend = get_backend("jax")
    key = np.random.default_rng(0).normal(size=(1200, 1200)).astype(np.float32)
    A = backend.asarray(key)
    A.block_until_ready()
    results = []
    for _ in range(3):  # a few seconds of queued work on a 2-core CPU
        B = A
        for _ in range(6):
            B = B @ A
            B = B / jnp.max(jnp.abs(B))
        results.append(B)
    backend.synchronize(results)
    assert all(r.is_ready() for r in results)


def test_fit_leaves_parameters_computed():
    X, y = _xor()
    net = xpnet.MLP([2, 64, 1], backend="jax", dtype="float32")
    net.fit(X, y, epochs=3, lr=0.5)
    assert all(p.is_ready() for p in net.flat_params)


# ---------------------------------------------------------------------- float64
def test_host_arrays_move_to_jax_without_a_device_program():
    """``Backend.asarray`` of a NumPy array casts on the host and transfers once:
    JAX's own ``asarray`` compiles a cast and a copy per new shape and dtype, each paid
    (compiled, or read from the persistent cache) once per process. Same values as
    JAX's cast (NumPy's, on the host), a copy (later writes to the host array do not
    show). Fresh shapes, so nothing is already compiled in this process."""
    import logging

    be = get_backend("jax")
    dtype = be.dtype("float64")
    rng = np.random.default_rng(0)
    # 64-byte aligned: JAX's CPU client keeps such a host array as the device buffer
    # itself (even with device_put(may_alias=False), JAX 0.10), so a later write to it
    # would show through unless xpnet copies it first
    raw = np.empty(37 * 3 * 8 + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    host64 = raw[start:start + 37 * 3 * 8].view(np.float64).reshape(37, 3)
    host64[...] = rng.normal(size=(37, 3)) * np.array([1.0, 1e30, 1e-3])
    host_int = rng.integers(-5, 5, size=(41, 2))
    compiled: list[str] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Compiling" in record.getMessage():
                compiled.append(record.getMessage())

    handler = Seen()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True), warnings.catch_warnings():
            warnings.simplefilter("error")
            a64 = be.asarray(host64, dtype=dtype)
            a32 = be.asarray(host64, dtype=be.xp.float32)
            ai = be.asarray(host_int, dtype=dtype)
            assert compiled == []
            reference = jnp.asarray(host64, dtype=jnp.float32)  # the detector works
            assert compiled
    finally:
        logger.removeHandler(handler)
    assert a64.dtype == jnp.float64 and a32.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(a64), host64)
    np.testing.assert_array_equal(np.asarray(a32), host64.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(a32), np.asarray(reference))
    np.testing.assert_array_equal(np.asarray(ai), host_int.astype(np.float64))
    assert a64.devices() == {be.device}
    before = float(a64[0, 0])
    host64[0, 0] = 123.0  # the device array is a copy
    assert float(a64[0, 0]) == before != 123.0


def test_float64_switch_rule_in_a_fresh_process():
    """xpnet's rule: JAX stays 32-bit until a float64 JAX network is built, which turns
    ``jax_enable_x64`` on (warning-free); float32 networks are float32 either way, and
    labels/predictions use the integer width JAX has at the time."""
    code = textwrap.dedent(
        """
        import warnings, json
        warnings.simplefilter("error")
        import numpy as np, jax, xpnet
        X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([0, 1, 1, 0])
        out = {"x64_at_start": bool(jax.config.jax_enable_x64)}
        net32 = xpnet.MLP([2, 4, 2], output="softmax", backend="jax", dtype="float32")
        net32.fit(X, y, epochs=2, lr=0.5)
        out["x64_after_float32"] = bool(jax.config.jax_enable_x64)
        out["pred32"] = str(net32.predict(X).dtype)
        net64 = xpnet.MLP([2, 4, 1], backend="jax", dtype="float64")
        net64.fit(X, y, epochs=2, lr=0.5)
        out["x64_after_float64"] = bool(jax.config.jax_enable_x64)
        out["params64"] = str(net64.params[0][0].dtype)
        out["pred64"] = str(net64.predict(X).dtype)
        net32.fit(X, y, epochs=2, lr=0.5)
        out["params32_after"] = str(net32.params[0][0].dtype)
        out["loss32_after"] = str(net32.loss(X, y).dtype)
        print(json.dumps(out))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {
        "x64_at_start": False,
        "x64_after_float32": False,
        "pred32": "int32",
        "x64_after_float64": True,
        "params64": "float64",
        "pred64": "int64",
        "params32_after": "float32",
        "loss32_after": "float32",
    }


def test_float32_fits_in_32_bit_jax_warn_nothing():
    """In JAX's default 32-bit mode (a fresh process) a float32 fit, eager or compiled,
    SGD or Adam, warns nothing: the optimiser's step count was an int64 that JAX
    truncated to int32 with a UserWarning on every fit."""
    code = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("error")
        import numpy as np
        import jax
        import xpnet
        X = np.random.default_rng(0).normal(size=(32, 2)); y = (X[:, 0] > 0).astype(int)
        for optimizer in ("sgd", "adam"):
            for compile in (False, True):
                net = xpnet.MLP([2, 4, 1], backend="jax", dtype="float32", seed=0)
                net.fit(X, y, epochs=2, optimizer=optimizer, compile=compile)
        print(jax.config.jax_enable_x64)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]  # still 32-bit: the case the warning came from


def test_float64_network_computes_in_float64():
    """Not silently float32: float64 JAX matches NumPy to float64 rounding."""
    X, Y = make_problem("softmax", m=32, n_in=3, n_out=3, seed=5)
    ref = xpnet.MLP([3, 8, 3], activation="tanh", output="softmax", seed=2)
    net = xpnet.MLP([3, 8, 3], activation="tanh", output="softmax", seed=2, backend="jax")
    for _ in range(10):
        ref.step(X, Y, lr=0.5)
        net.step(X, Y, lr=0.5)
    assert net.flat_params[0].dtype == jnp.float64
    for (W, b), (W_ref, b_ref) in zip(net.params, ref.params):
        assert_close(W, W_ref, 1e-13, "W")  # float32 would be off by ~1e-7
        assert_close(b, b_ref, 1e-13, "b")


# ---------------------------------------------------------------------- immutability, tracing
def test_in_place_updates_rebind_immutable_parameters():
    """``p -= lr * g`` on a JAX array makes a new array: the network must hold the new one
    (and the caller's old references stay what they were)."""
    X, y = _xor()
    net = xpnet.MLP([2, 4, 1], backend="jax", seed=1)
    ref = xpnet.MLP([2, 4, 1], seed=1)
    before = list(net.flat_params)
    before_host = [np.array(p) for p in before]
    for _ in range(5):
        net.step(X, y, lr=0.5)
        ref.step(X, y, lr=0.5)
    for old, host in zip(before, before_host):
        np.testing.assert_array_equal(np.array(old), host)
    assert all(new is not old for new, old in zip(net.flat_params, before))
    for (W, b), (W_ref, b_ref) in zip(net.params, ref.params):
        assert_close(W, W_ref, 1e-12, "W")
        assert_close(b, b_ref, 1e-12, "b")


def test_tracing_leaves_no_tracer_in_the_network():
    """``_row_sum`` once cached its ones vector: built under ``jax.jit`` it was a tracer, and
    the next eager call raised ``UnexpectedTracerError``."""
    X, Y = make_problem("sigmoid", m=8, n_in=3, n_out=2, seed=0)
    net = xpnet.MLP([3, 5, 2], backend="jax", dtype="float32")
    batch = net.prepare(X, Y)

    @jax.jit
    def traced(X_batch, Y_batch):
        return net._loss_and_grads(X_batch, Y_batch)

    loss_jit, grads_jit = traced(batch.X, batch.Y)
    loss, grads = net.loss_and_grads(batch)  # eager, same batch size
    net.step(batch, lr=0.1)
    assert_close(loss, loss_jit, 1e-6, "loss")
    for (dW, db), g_W, g_b in zip(grads, grads_jit[0::2], grads_jit[1::2]):
        assert_close(dW, g_W, 1e-5, "dW")
        assert_close(db, g_b, 1e-5, "db")


# ---------------------------------------------------------------------- estimators, files, CLI
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_jax_in_jax_out():
    pytest.importorskip("sklearn")
    from xpnet.sklearn import MLPClassifier

    X, y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=1)
    X_jax = jnp.asarray(X, dtype=jnp.float32)
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X_jax, y)
    proba = clf.predict_proba(X_jax)
    assert v.array_module(proba) == "jax" and proba.dtype == jnp.float32
    assert v.array_module(clf.predict(X_jax)) == "jax"
    assert v.array_module(clf.coefs_[0]) == "jax"
    host = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(
        X.astype(np.float32), y
    )
    assert_close(proba, host.predict_proba(X.astype(np.float32)), 2e-4, "proba vs NumPy")


def test_model_trained_on_jax_loads_anywhere(tmp_path):
    X, Y = make_problem("softmax", m=30, n_in=3, n_out=3, seed=2)
    net = xpnet.MLP([3, 6, 3], activation="relu", output="softmax", backend="jax")
    net.fit(X, Y, epochs=5, lr=0.3, batch_size=8)
    path = tmp_path / "jax.npz"
    xpnet.save(net, path)
    on_numpy = xpnet.load(path, backend="numpy")
    np.testing.assert_array_equal(on_numpy.params[0][0], xpnet.to_numpy(net.params[0][0]))
    assert_close(on_numpy.predict_proba(X), net.predict_proba(X), 1e-12, "proba")
    back = xpnet.load(path, backend="jax")
    assert back.backend == "jax"
    np.testing.assert_array_equal(xpnet.to_numpy(back.predict(X)), on_numpy.predict(X))


def test_cli_trains_on_jax_and_lists_it(tmp_path):
    model = tmp_path / "m.npz"
    proc = run("train", "--backend", "jax", "--dataset", "xor", "--epochs", "3",
               "--save", model, "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["backend"] == {"name": "jax", "device": "cpu", "dtype": "float64"}
    proc = run("backends", "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)["backends"]}
    assert rows["jax"]["usable"] and rows["jax"]["devices"][0] == "cpu"
    assert_error(run("train", "--backend", "jax", "--device", "cuda:99", timeout=240),
                 "jax device 'cuda:99' requested")

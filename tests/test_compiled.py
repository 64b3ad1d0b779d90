"""``fit(..., compile=True)``: one compiled program per epoch on JAX, the same training as
eager (same shuffles and batches, the last partial batch included), cached per shape,
a no-op on NumPy/array-api-strict and refused on torch/CuPy."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from helpers import assert_close, make_problem
from test_cli import assert_error, run

import xpnet
from xpnet import compiled
from xpnet.optim import SGD, Adam

HAVE_JAX = importlib.util.find_spec("jax") is not None
jax_only = pytest.mark.skipif(not HAVE_JAX, reason="jax is not installed")

pytestmark = pytest.mark.backend_session("jax")  # run by the jax nox session too



def _pair(backend="jax", **kwargs):
    make = dict(activation="tanh", output="softmax", backend=backend, seed=3, **kwargs)
    return xpnet.MLP([3, 8, 3], **make), xpnet.MLP([3, 8, 3], **make)


@jax_only
@pytest.mark.parametrize(
    ("optimizer", "batch_size", "weighted"),
    [
        (None, None, False),  # full batch
        (None, 16, False),  # 50 rows: 3 batches of 16 and a last one of 2
        (SGD(0.1, momentum=0.9, nesterov=True), 16, True),
        (Adam(0.01), 7, False),
        ("sgd", 50, False),
    ],
    ids=["full", "partial-last", "nesterov-weighted", "adam", "one-batch"],
)
def test_compiled_epochs_train_as_eager(optimizer, batch_size, weighted):
    eager, compiled_net = _pair()
    X, Y = make_problem("softmax", m=50, n_in=3, n_out=3, seed=1)
    w = np.linspace(0.2, 1.8, 50) if weighted else None
    opts = [optimizer, optimizer]  # names and None build a fresh optimiser per fit
    if isinstance(optimizer, SGD):
        opts = [SGD(0.1, momentum=0.9, nesterov=True) for _ in range(2)]
    elif isinstance(optimizer, Adam):
        opts = [Adam(0.01) for _ in range(2)]
    h_eager = eager.fit(X, Y, epochs=6, lr=0.2, batch_size=batch_size, optimizer=opts[0],
                        sample_weight=w)
    h_comp = compiled_net.fit(X, Y, epochs=6, lr=0.2, batch_size=batch_size,
                              optimizer=opts[1], sample_weight=w, compile=True)
    np.testing.assert_allclose(h_comp.loss, h_eager.loss, rtol=1e-12)
    for p, q in zip(compiled_net.params, eager.params):
        assert_close(p[0], q[0], 1e-12, "W")
        assert_close(p[1], q[1], 1e-12, "b")
    if isinstance(opts[1], Adam):
        assert opts[1].t == opts[0].t == 6 * 8  # 50 rows / batch 7 = 8 steps per epoch
        assert opts[1].learning_rate == pytest.approx(opts[0].learning_rate, rel=1e-12)


@jax_only
def test_learning_rate_schedule_moves_under_compile():
    eager, compiled_net = _pair()
    X, Y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=2)
    opts = [SGD(0.5, schedule="invscaling") for _ in range(2)]
    eager.fit(X, Y, epochs=4, batch_size=8, optimizer=opts[0])
    compiled_net.fit(X, Y, epochs=4, batch_size=8, optimizer=opts[1], compile=True)
    assert opts[1].learning_rate == opts[0].learning_rate < 0.5
    for p, q in zip(compiled_net.params, eager.params):
        assert_close(p[0], q[0], 1e-12, "W after invscaling epochs")


@jax_only
def test_programs_are_cached_per_shape():
    X, Y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=2)
    net, other = _pair()
    net.fit(X, Y, epochs=1, batch_size=8, compile=True)
    held = compiled.cached_programs()
    other.fit(X, Y, epochs=2, batch_size=8, compile=True)  # same shapes: nothing new
    assert compiled.cached_programs() == held
    other.fit(X, Y, epochs=1, batch_size=10, compile=True)  # a new batch size: one more
    assert compiled.cached_programs() == min(held + 1, compiled._CACHE_SIZE)


@jax_only
def test_parameters_are_not_donated():
    """Donating the parameter buffers would delete arrays the caller (and the loop's
    rollback) still holds."""
    X, Y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=2)
    net, _ = _pair()
    held = list(net._params)
    history = net.fit(X, Y, epochs=3, batch_size=8, compile=True, early_stopping=True,
                      validation_fraction=0.2)
    assert history.best_params is not None
    for array in held + history.best_params + net._params:
        assert not array.is_deleted()
        np.asarray(array)  # readable


@jax_only
def test_compiled_divergence_rolls_back():
    X, Y = make_problem("identity", m=40, n_in=3, n_out=3, seed=2)
    net = xpnet.MLP([3, 8, 3], activation="relu", output="identity", backend="jax")
    start = [np.array(p) for p in net._params]
    with pytest.raises(FloatingPointError, match="diverged at epoch 1"):
        net.fit(X * 1e6, Y * 1e6, epochs=3, lr=10.0, batch_size=8, compile=True)
    for p, p0 in zip(net._params, start):
        np.testing.assert_array_equal(np.array(p), p0)


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_compile_is_a_no_op_on_numpy_and_strict(name):
    if name not in xpnet.available_backends():
        pytest.skip(f"backend {name} is not installed")
    eager, compiled_net = _pair(name)
    X, Y = make_problem("softmax", m=30, n_in=3, n_out=3, seed=2)
    h1 = eager.fit(X, Y, epochs=3, batch_size=8)
    h2 = compiled_net.fit(X, Y, epochs=3, batch_size=8, compile=True)
    assert h1.loss == h2.loss


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_compile_is_refused_on_torch():
    net, _ = _pair("torch")
    X, Y = make_problem("softmax", m=30, n_in=3, n_out=3, seed=2)
    with pytest.raises(ValueError, match="compile=True is not available on backend 'torch'"):
        net.fit(X, Y, epochs=1, compile=True)
    with pytest.raises(TypeError, match="compile must be True or False"):
        net.fit(X, Y, epochs=1, compile="yes")


def test_cli_compile():
    assert_error(run("train", "--dataset", "xor", "--backend", "torch", "--compile")
                 if importlib.util.find_spec("torch") else
                 run("train", "--dataset", "xor", "--backend", "cupy", "--compile"),
                 "backend")
    if HAVE_JAX:
        proc = run("train", "--dataset", "xor", "--backend", "jax", "--compile",
                   "--epochs", "5", "--quiet", timeout=240)
        assert proc.returncode == 0, proc.stderr


@jax_only
def test_estimator_compile():
    pytest.importorskip("sklearn")
    import jax.numpy as jnp

    from xpnet.sklearn import MLPClassifier

    X, y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=1)
    kwargs = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0, batch_size=8)
    with pytest.warns(Warning):
        plain = MLPClassifier(**kwargs).fit(jnp.asarray(X), y)
    with pytest.warns(Warning):
        fast = MLPClassifier(compile=True, **kwargs).fit(jnp.asarray(X), y)
    assert_close(fast.predict_proba(jnp.asarray(X)), plain.predict_proba(jnp.asarray(X)),
                 1e-10, "proba")

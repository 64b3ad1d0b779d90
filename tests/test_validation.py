"""Bad input gets a clear ValueError/TypeError naming the argument, and changes nothing."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import xpnet

rng = np.random.default_rng(0)
X = rng.normal(size=(6, 3))
Y_BINARY = np.array([0, 1, 1, 0, 1, 0])
LABELS = np.array([0, 2, 1, 2, 0, 1])


def net_for(output: str = "sigmoid", n_out: int = 1, backend: str = "numpy") -> xpnet.MLP:
    return xpnet.MLP([3, 4, n_out], output=output, backend=backend, seed=0)


# ---------------------------------------------------------------- constructor
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(activation="swish"), ValueError, r"activation must be one of .*relu.*got 'swish'"),
        (dict(output="softplus"), ValueError, r"output must be one of .*softmax.*'softplus'"),
        (dict(backend="jaxx"), ValueError, r"backend must be one of .*numpy.*'jaxx'"),
        (dict(dtype="float16"), ValueError, r"dtype must be one of float32, float64"),
        (dict(alpha=-1.0), ValueError, r"alpha must be a finite number >= 0; got -1.0"),
        (dict(alpha=float("nan")), ValueError, r"alpha"),
        (dict(seed=-3), ValueError, r"seed must be a non-negative integer"),
        (dict(activation=["tanh", "relu"]), ValueError, r"activation lists 2 names .* 1 hidden"),
        (dict(backend="numpy", device="cuda:0"), ValueError, r"device for backend 'numpy'"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        xpnet.MLP([3, 4, 1], **kwargs)


@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        ([3], r"layer_sizes needs at least an input and an output"),
        ([3, 0, 1], r"layer_sizes must hold positive integers"),
        ([3, 2.5, 1], r"layer_sizes must hold positive integers"),
        ([3, True, 1], r"layer_sizes must hold positive integers"),
    ],
)
def test_bad_layer_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        xpnet.MLP(sizes)


def test_layer_sizes_not_a_sequence():
    with pytest.raises(TypeError, match="layer_sizes must be a sequence"):
        xpnet.MLP(5)


def test_softmax_needs_two_outputs():
    with pytest.raises(ValueError, match="softmax' needs at least 2 output units"):
        xpnet.MLP([3, 4, 1], output="softmax")


def test_missing_backend_is_one_clear_exception():
    """CuPy is not usable on CPU machines: one exception type with an install hint."""
    try:
        xpnet.get_backend("cupy")
    except xpnet.BackendUnavailableError as exc:
        assert "cupy" in str(exc)
        assert "pip install" in str(exc) or "CUDA device" in str(exc)
    else:
        pytest.skip("CuPy with a CUDA device is usable here")
    with pytest.raises(xpnet.BackendUnavailableError):
        xpnet.MLP([3, 4, 1], backend="cupy")


def test_torch_cuda_without_gpu_is_clear():
    torch = pytest.importorskip("torch", reason="torch not installed")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available")
    with pytest.raises(xpnet.BackendUnavailableError, match="no usable CUDA device"):
        xpnet.MLP([3, 4, 1], backend="torch", device="cuda:0")


# ---------------------------------------------------------------- X
@pytest.mark.parametrize(
    ("bad_X", "error", "match"),
    [
        (X[:, 0], ValueError, r"X must be 2-D of shape \(m, 3\); got shape \(6,\)"),
        (X[:, :2], ValueError, r"X has 2 features .* expects 3"),
        (X[None], ValueError, r"X must be 2-D"),
        (np.empty((0, 3)), ValueError, r"X must have at least one row"),
        (np.where(X > 1, np.nan, X), ValueError, r"X contains NaN or infinite"),
        (np.where(X > 1, np.inf, X), ValueError, r"X contains NaN or infinite"),
        (X.astype(str), TypeError, r"X must hold numbers"),
        ([[1.0, 2.0, 3.0], [1.0, 2.0]] * 3, ValueError, r"X must be a rectangular"),
    ],
)
def test_bad_X(bad_X, error, match):
    net = net_for()
    with pytest.raises(error, match=match):
        net.loss_and_grads(bad_X, Y_BINARY)
    with pytest.raises(error, match=match):
        net.predict(bad_X)


# ---------------------------------------------------------------- Y
@pytest.mark.parametrize(
    ("output", "n_out", "bad_Y", "match"),
    [
        ("sigmoid", 1, np.array([0, 1, 2, 0, 1, 0]), r"Y for sigmoid outputs must be binary"),
        ("sigmoid", 1, np.full(6, 0.5), r"must be binary"),
        ("sigmoid", 1, Y_BINARY[:5], r"Y has 5 rows but X has 6"),
        ("sigmoid", 2, Y_BINARY, r"Y has shape \(6,\) but the network has 2 outputs"),
        ("sigmoid", 1, np.ones((6, 2)), r"Y has shape \(6, 2\) .* expected \(m, 1\)"),
        ("sigmoid", 1, np.ones((6, 1, 1)), r"Y must be 1-D or 2-D"),
        ("softmax", 3, np.array([0, 1, 3, 0, 1, 2]), r"class label 3 .* must lie in \[0, 2\]"),
        ("softmax", 3, np.array([0, -1, 2, 0, 1, 2]), r"labels must lie in \[0, 2\]"),
        ("softmax", 3, LABELS + 0.5, r"must be integer class labels"),
        ("softmax", 3, np.ones((6, 3)), r"must be one-hot rows"),
        ("softmax", 3, np.ones((6, 4)) / 4, r"expected \(m, 3\) or \(m,\) class labels"),
        ("identity", 1, np.array([0.0, np.nan, 1, 2, 3, 4]), r"Y contains NaN or infinite"),
        ("identity", 2, np.ones(6), r"Y has shape \(6,\) but the network has 2 outputs"),
    ],
)
def test_bad_Y(output, n_out, bad_Y, match):
    net = net_for(output, n_out)
    with pytest.raises(ValueError, match=match):
        net.loss_and_grads(X, bad_Y)


def test_column_target_is_not_broadcast():
    """(m,) and (m, 1) targets give the same loss: nothing is broadcast to (m, m)."""
    net = net_for("identity")
    y = rng.normal(size=6)
    assert float(net.loss(X, y)) == pytest.approx(float(net.loss(X, y[:, None])), rel=1e-15)


# ---------------------------------------------------------------- training arguments
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lr=0.0), r"lr must be a positive finite number; got 0.0"),
        (dict(lr=-1), r"lr must be a positive"),
        (dict(lr=float("inf")), r"lr must be a positive finite"),
        (dict(epochs=0), r"epochs must be a positive integer; got 0"),
        (dict(epochs=2.5), r"epochs must be a positive integer"),
        (dict(batch_size=0), r"batch_size must be a positive integer; got 0"),
        (dict(batch_size=-4), r"batch_size must be a positive integer"),
    ],
)
def test_bad_training_arguments(kwargs, match):
    net = net_for()
    before = net.params
    with pytest.raises(ValueError, match=match):
        net.fit(X, Y_BINARY, **{"epochs": 2, **kwargs})
    for (W0, b0), (W1, b1) in zip(before, net.params):
        np.testing.assert_array_equal(W0, W1)
        np.testing.assert_array_equal(b0, b1)


def test_batch_size_larger_than_data_warns_and_uses_full_batch():
    net = net_for()
    with pytest.warns(UserWarning, match="batch_size=100 is larger than the 6 rows"):
        history = net.fit(X, Y_BINARY, epochs=2, batch_size=100)
    assert history.epochs == 2


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan")])
def test_failed_step_leaves_parameters_unchanged(lr):
    net = net_for()
    before = net.params
    with pytest.raises(ValueError, match="lr"):
        net.step(X, Y_BINARY, lr=lr)
    with pytest.raises(ValueError, match="binary"):
        net.step(X, Y_BINARY * 2, lr=0.1)
    for (W0, b0), (W1, b1) in zip(before, net.params):
        np.testing.assert_array_equal(W0, W1)
        np.testing.assert_array_equal(b0, b1)


# ---------------------------------------------------------------- other libraries' arrays
def test_array_of_another_backend_is_refused_with_a_hint():
    torch = pytest.importorskip("torch", reason="torch not installed")
    net = net_for()
    with pytest.raises(TypeError, match=r"X is a torch array .* backend 'numpy'.*to_numpy"):
        net.loss_and_grads(torch.tensor(X), Y_BINARY)
    with pytest.raises(TypeError, match=r"Y is a torch array"):
        net.loss_and_grads(X, torch.tensor(Y_BINARY))


def test_strict_array_given_to_torch_network_is_refused():
    pytest.importorskip("torch", reason="torch not installed")
    strict = pytest.importorskip("array_api_strict", reason="array-api-strict not installed")
    net = net_for(backend="torch")
    with pytest.raises(TypeError, match=r"X is a array_api_strict array .* backend 'torch'"):
        net.predict(strict.asarray(X))


# ---------------------------------------------------------------- set_params
def test_set_params_rejects_bad_shapes_atomically():
    net = net_for()
    good = net.params
    bad = [(good[0][0], good[0][1]), (np.zeros((5, 1)), good[1][1])]
    with pytest.raises(ValueError, match=r"params\[1\]\[0\] \(W\) must have shape \(4, 1\)"):
        net.set_params(bad)
    with pytest.raises(ValueError, match=r"params must hold 2 \(W, b\) pairs; got 1"):
        net.set_params(good[:1])
    with pytest.raises(ValueError, match=r"NaN"):
        net.set_params([(good[0][0] * np.nan, good[0][1]), good[1]])
    for (W0, b0), (W1, b1) in zip(good, net.params):
        np.testing.assert_array_equal(W0, W1)
        np.testing.assert_array_equal(b0, b1)


# ---------------------------------------------------------------- host-side checks
@pytest.mark.parametrize("task, n_out, Y", [
    ("binary", 1, Y_BINARY),
    ("multiclass", 3, LABELS),
    ("multiclass", 3, np.eye(3)[LABELS]),
    ("regression", 2, rng.normal(size=(6, 2))),
    ("regression", 1, np.arange(6)),
])
def test_host_data_are_checked_on_the_host_the_same_as_on_the_device(backend, task, n_out, Y):
    """NumPy input to another backend is checked with NumPy, then moved once (JAX would
    compile every check's operation per process): the arrays are those the backend's own
    checks make of the same data, bit for bit, in the network's dtype."""
    from xpnet._validation import check_X, check_Y
    from xpnet.backends import get_backend

    be = get_backend(backend)
    for name in ("float64", "float32"):
        dtype = be.dtype(name)
        with _checked_on_the_device():
            on_device = [check_X(be, be.asarray(X), 3, dtype),
                         check_Y(be, be.asarray(Y), 6, task, n_out, dtype)]
        from_host = [check_X(be, X, 3, dtype), check_Y(be, Y, 6, task, n_out, dtype)]
        for got, expected in zip(from_host, on_device):
            assert got.dtype == expected.dtype == dtype
            assert xpnet.to_numpy(got).tobytes() == xpnet.to_numpy(expected).tobytes()


@pytest.mark.parametrize("task, n_out, Y, match", [
    ("binary", 1, np.array([0, 1, 2, 0, 1, 0]), "must be binary"),
    ("multiclass", 3, np.array([0, 3, 1, 2, 0, 1]), "class label 3"),
    ("multiclass", 3, np.array([0, 1.5, 1, 2, 0, 1]), "non-integer"),
    ("regression", 1, np.array([0, np.nan, 1, 2, 0, 1]), "NaN or infinite"),
    ("regression", 1, np.ones(5), "has 5 rows"),
])
def test_host_checked_errors_are_the_backends_own(backend, task, n_out, Y, match):
    from xpnet._validation import check_Y
    from xpnet.backends import get_backend

    be = get_backend(backend)
    messages = []
    for data, where in ((Y, contextlib.nullcontext()), (be.asarray(Y), _checked_on_the_device()),
                        (be.asarray(Y), contextlib.nullcontext())):
        with where, pytest.raises(ValueError, match=match) as info:
            check_Y(be, data, 6, task, n_out, be.dtype("float64"))
        messages.append(str(info.value))
    assert messages[0] == messages[1] == messages[2]


@contextlib.contextmanager
def _checked_on_the_device():
    """Backend arrays checked by the backend itself, even a JAX array on the CPU (which
    is otherwise checked through its NumPy view): the oracle of the host checks."""
    from xpnet import _validation

    saved = _validation.host_view
    _validation.host_view = lambda backend, obj: None
    try:
        yield
    finally:
        _validation.host_view = saved


def test_a_jax_array_on_the_cpu_is_checked_through_its_numpy_view():
    """No copy and no device program: the view shares the array's memory, and a JAX
    array the checks pass unchanged comes back as itself; tracers, bfloat16 and other
    libraries' arrays are left to the backend."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from xpnet._validation import check_X, check_Y, host_view
    from xpnet.backends import get_backend

    be = get_backend("jax")
    X_dev = jnp.asarray(X.astype(np.float32))
    view = host_view(be, X_dev)
    assert isinstance(view, np.ndarray) and not view.flags.writeable
    assert view.__array_interface__["data"][0] == X_dev.unsafe_buffer_pointer()
    assert check_X(be, X_dev, 3, jnp.float32) is X_dev
    Y_dev = jnp.asarray(rng.normal(size=(6, 2)).astype(np.float32))
    assert check_Y(be, Y_dev, 6, "regression", 2, jnp.float32) is Y_dev
    # what the checks make of it (a cast, an encoding) is moved, in the network's dtype
    X_int = jnp.asarray(np.arange(18).reshape(6, 3), dtype=jnp.int32)
    got = check_X(be, X_int, 3, jnp.float32)
    assert got.dtype == jnp.float32 and np.array_equal(np.asarray(got), np.arange(18).reshape(6, 3))
    one_hot = check_Y(be, jnp.asarray(LABELS, dtype=jnp.int32), 6, "multiclass", 3, jnp.float32)
    assert one_hot.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(one_hot), np.eye(3)[LABELS])
    assert host_view(be, X) is None  # NumPy data have their own host route
    assert host_view(be, jnp.asarray(X, dtype=jnp.bfloat16)) is None
    assert host_view(get_backend("numpy"), X_dev) is None
    seen = []
    jax.jit(lambda t: seen.append(host_view(be, t)) or t)(X_dev)
    assert seen == [None]


def test_set_params_keeps_a_jax_array_and_copies_host_data():
    """A JAX array of the network's dtype is immutable: the network holds it as it is;
    NumPy input is copied (a later write to it must not show), other dtypes cast."""
    pytest.importorskip("jax")
    import jax.numpy as jnp

    net = xpnet.MLP([3, 4, 1], backend="jax", dtype="float32", seed=0)
    W, b = (np.asarray(p) for p in net.params[0])
    W_dev = jnp.asarray(W)
    net.set_params([(W_dev, b.astype(np.float64)), net.params[1]])
    assert net.flat_params[0] is W_dev
    assert net.flat_params[1].dtype == jnp.float32
    host = W.copy()
    net.set_params([(host, b), net.params[1]])
    host[:] = 7.0
    np.testing.assert_array_equal(np.asarray(net.flat_params[0]), W)
    with pytest.raises(ValueError, match=r"params\[0\]\[0\] \(W\) contains NaN"):
        net.set_params([(W_dev * jnp.nan, b), net.params[1]])
    with pytest.raises(ValueError, match=r"must have shape \(3, 4\); got \(4, 3\)"):
        net.set_params([(W_dev.T, b), net.params[1]])


def test_a_jax_arrays_checks_are_remembered_while_it_lives():
    """A JAX array is immutable: checking the same one again gives the very result of
    the first check (the targets' encoding is not redone or moved again); NumPy data are
    checked anew each time, a bad array is refused every time, and an entry goes with
    its array."""
    pytest.importorskip("jax")
    import gc

    import jax.numpy as jnp

    from xpnet import _validation
    from xpnet._validation import check_Y
    from xpnet.backends import get_backend

    be = get_backend("jax")
    labels = jnp.asarray(LABELS, dtype=jnp.int32)
    first = check_Y(be, labels, 6, "multiclass", 3, jnp.float32)
    assert check_Y(be, labels, 6, "multiclass", 3, jnp.float32) is first
    np.testing.assert_array_equal(np.asarray(first), np.eye(3)[LABELS])
    # another array with the same values, another dtype, another task: checked anew
    again = jnp.asarray(LABELS, dtype=jnp.int32)
    assert check_Y(be, again, 6, "multiclass", 3, jnp.float32) is not first
    wide = check_Y(be, labels, 6, "regression", 1, jnp.float32)
    assert wide is not first and wide.shape == (6, 1)
    host = np.asarray(LABELS)
    assert check_Y(be, host, 6, "multiclass", 3, jnp.float32) is not check_Y(
        be, host, 6, "multiclass", 3, jnp.float32)
    bad = jnp.asarray([0.0, np.nan, 1.0, 0.0, 1.0, 2.0])
    for _ in range(2):
        with pytest.raises(ValueError, match="NaN"):
            check_Y(be, bad, 6, "regression", 1, jnp.float32)
    key = id(labels)
    assert any(k[0] == key for k in _validation._MEMO)  # (the private detail on purpose)
    del labels, first
    gc.collect()
    assert not any(k[0] == key for k in _validation._MEMO)


def test_the_same_scalar_is_put_on_the_device_once():
    """backends.scalar on JAX: one immutable 0-d array per value, dtype and device,
    exact (0.0 and -0.0 are different values), a new one after a caller deleted it."""
    pytest.importorskip("jax")
    import jax
    import jax.numpy as jnp

    from xpnet.backends import scalar

    device = jax.devices("cpu")[0]
    a = scalar(jnp, 0.1, jnp.float32, device)
    assert scalar(jnp, 0.1, jnp.float32, device) is a
    assert float(a) == float(np.float32(0.1)) and a.dtype == jnp.float32
    assert scalar(jnp, 0.2, jnp.float32, device) is not a
    assert scalar(jnp, 0, jnp.int32, device).dtype == jnp.int32
    zero, negative = scalar(jnp, 0.0, jnp.float32, device), scalar(jnp, -0.0, jnp.float32, device)
    assert zero is not negative and np.signbit(float(negative)) and not np.signbit(float(zero))
    assert zero.dtype == jnp.float32  # (the int32 0 above has the same bytes)
    a.delete()
    b = scalar(jnp, 0.1, jnp.float32, device)
    assert b is not a and float(b) == float(np.float32(0.1))

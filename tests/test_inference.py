"""Block-wise prediction (xpnet.inference): bit for bit the unblocked pass on every
backend, memory bounded whatever the row count, the input checked once per call; and the
cheaper activations against the forms they replaced."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

import xpnet
from xpnet import _inplace as inplace
from xpnet import activations, core
from xpnet.backends import to_numpy
from xpnet.inference import block_rows_for, folded, prediction_block_rows

# Every hidden activation once, each output, several widths: 5000 rows in blocks of
# 1152 (the smallest the rule gives: 3 blocks and a ragged last one of 1544 rows) and of
# 2304 (one block and a last one of 2696), against one block of all the rows. Smaller
# blocks are not bit-identical on every library: see "Bit for bit" in xpnet.inference
# (OpenBLAS, XLA and PyTorch's row sums change code paths for small blocks).
ROWS = 5000
BLOCKS = (1152, 2304)
OUTPUTS = {"softmax": 4, "sigmoid": 3, "identity": 2, "exp": 1}


def _network(backend: str, dtype: str, output: str) -> xpnet.MLP:
    net = xpnet.MLP([6, 9, 8, 7, 5, OUTPUTS[output]],
                    activation=["sigmoid", "tanh", "relu", "identity"], output=output,
                    backend=backend, dtype=dtype, seed=3)
    rng = np.random.default_rng(5)  # non-zero biases, so the bias add is exercised
    net.set_params([(W, rng.normal(size=b.shape) * 0.5) for W, b in net.params])
    return net


def _inputs(backend: str, dtype: str) -> object:
    X = np.random.default_rng(1).normal(size=(ROWS, 6)) * 3
    return xpnet.get_backend(backend).asarray(X, dtype=getattr(xpnet.get_backend(backend).xp,
                                                                 dtype))


@pytest.mark.parametrize("output", list(OUTPUTS))
def test_blocked_prediction_is_bit_identical_to_unblocked(backend, dtype, output):
    if backend == "jax" and dtype == "float64":
        pytest.importorskip("jax")
    net = _network(backend, dtype, output)
    X = _inputs(backend, dtype)
    # the reference: the forward code on all rows at once, no blocking involved, with
    # the hidden sigmoid's halves folded into the weights as prediction does (>= 1152 rows)
    _, Z = core.hidden_forward(*folded(net.xp, net.hidden_activations, net.flat_params), X,
                               net.xp)
    reference = to_numpy(net.output_loss.activation(net.xp, Z))
    whole = to_numpy(net.predict_proba(X, block_rows=ROWS))
    assert np.array_equal(whole, reference)
    labels = to_numpy(net.predict(X, block_rows=ROWS))
    for rows in BLOCKS:
        blocked = to_numpy(net.predict_proba(X, block_rows=rows))
        assert blocked.dtype == reference.dtype and blocked.shape == reference.shape
        assert np.array_equal(blocked, reference), (rows, np.abs(blocked - reference).max())
        assert np.array_equal(to_numpy(net.predict(X, block_rows=rows)), labels)
    with prediction_block_rows(1152):  # the knob for every entry point
        assert np.array_equal(to_numpy(net.forward(X)), reference)


def test_the_rules_blocks_of_a_narrow_softmax_are_bit_identical(backend, dtype):
    """A 1024-wide hidden layer makes the rule's blocks small, and three softmax outputs
    make them narrow: XLA sums the rows of 1152 x 3 values another way than those of a
    larger block, so the rule gives such a network 1536 rows per block (4096 values)."""
    if backend == "jax" and dtype == "float64":
        pytest.importorskip("jax")
    net = xpnet.MLP([6, 1024, 3], activation="tanh", output="softmax", backend=backend,
                    dtype=dtype, seed=0)
    # 4 MiB / (4 or 8 B x 1024) rows is under the minimum for three outputs
    assert block_rows_for(net.layer_sizes, np.dtype(dtype).itemsize) == 1536
    X = _inputs(backend, dtype)
    whole = to_numpy(net.predict_proba(X, block_rows=ROWS))
    assert np.array_equal(to_numpy(net.predict_proba(X)), whole)
    assert np.array_equal(to_numpy(net.predict(X)), to_numpy(net.predict(X, block_rows=ROWS)))


# The fold computes a hidden sigmoid as 1 / (1 + exp(-z)) where training takes
# 0.5 tanh(z/2) + 0.5: each hidden value differs by a few eps (absolute, both within
# ~2 eps of the logistic function), and the next layer's sum carries that times
# sum |W| over <= 9 inputs (|W| < 1 here); outputs are O(1) probabilities or values,
# so 50 eps absolute covers it with room, and would not cover a wrong fold (the
# sigmoid of z instead of -z: an error of order 0.1).
FOLD_TOLERANCE = {"float32": 50 * 2.0**-23, "float64": 50 * 2.0**-52}


@pytest.mark.parametrize("output", list(OUTPUTS))
def test_folded_sigmoid_agrees_with_the_unfolded_forward(dtype, output):
    net = _network("numpy", dtype, output)
    net_2 = xpnet.MLP([6, 9, 8, OUTPUTS[output]], activation=["sigmoid", "sigmoid"],
                      output=output, dtype=dtype, seed=4)  # two folds in a row
    for model in (net, net_2):
        X = _inputs("numpy", dtype)
        _, Z = core.hidden_forward(model.hidden_activations, model.flat_params, X, model.xp)
        plain = model.output_loss.activation(model.xp, Z)
        predicted = model.predict_proba(X)
        scale = np.maximum(1.0, np.abs(plain))
        assert np.max(np.abs(predicted - plain) / scale) <= FOLD_TOLERANCE[dtype]
        # under 1152 rows the fold does not pay: the plain forward, bit for bit
        few = X[:1151]
        _, Z_few = core.hidden_forward(model.hidden_activations, model.flat_params, few,
                                       model.xp)
        assert np.array_equal(model.predict_proba(few),
                              model.output_loss.activation(model.xp, Z_few))


@pytest.mark.parametrize("backend_name", ["numpy", "torch", "array_api_strict"])
def test_the_folded_sigmoid_is_the_logistic_function(backend_name, dtype):
    """The hidden values themselves: 1 / (1 + exp(-z)) against training's
    0.5 tanh(z/2) + 0.5 within 4 eps absolute (each ~2 eps from the exact logistic),
    over z from -1000 to 1000 (exp overflows below about -88 in float32, -709 in
    float64: the value is 0, and NumPy does not warn)."""
    backend = xpnet.get_backend(backend_name) if backend_name == "numpy" else None
    if backend is None:
        pytest.importorskip(backend_name)
        backend = xpnet.get_backend(backend_name)
    xp = backend.xp
    z = np.concatenate([np.linspace(-1000, 1000, 4001), np.linspace(-20, 20, 4001)])
    W = backend.asarray(np.eye(1), dtype=getattr(xp, dtype))
    b = backend.asarray(np.zeros(1), dtype=getattr(xp, dtype))
    hidden, params = folded(xp, [activations.get_activation("sigmoid")], [W, b, W, b])
    Z = backend.asarray(z[:, None], dtype=getattr(xp, dtype)) @ params[0] + params[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from exp
        fast = to_numpy(hidden[0].forward(xp, Z))[:, 0]
    reference = to_numpy(activations.logistic_tanh(
        xp, backend.asarray(z, dtype=getattr(xp, dtype))))
    assert np.abs(fast - reference).max() <= 4 * np.finfo(dtype).eps
    assert fast.min() == 0 and fast.max() == 1 and np.all(np.diff(fast[:4001]) >= 0)


def test_cast_per_block_equals_cast_of_all_rows():
    """A float64 input to a float32 network is cast one block at a time: same bits."""
    net = _network("numpy", "float32", "softmax")
    X = np.random.default_rng(2).normal(size=(ROWS, 6))
    reference = net.predict_proba(X.astype(np.float32), block_rows=ROWS)
    assert np.array_equal(net.predict_proba(X, block_rows=1152), reference)
    assert net.predict_proba(X, block_rows=13).dtype == np.float32


def test_bad_values_are_found_in_any_block_once_per_call(backend):
    net = _network(backend, "float32", "softmax")
    X = np.random.default_rng(1).normal(size=(ROWS, 6))
    for row, value in ((0, np.nan), (ROWS - 1, np.inf), (500, -np.inf)):
        bad = X.copy()
        bad[row, 2] = value
        with pytest.raises(ValueError, match="X contains NaN or infinite values"):
            net.predict_proba(xpnet.get_backend(backend).asarray(bad), block_rows=64)
    if backend == "numpy":  # float64 beyond float32's range: refused, not predicted as inf
        big = X.copy()
        big[700, 0] = 1e39
        with pytest.raises(ValueError, match="too large for float32"):
            net.predict(big, block_rows=64)


def test_an_overflowing_sum_of_finite_values_is_not_an_error():
    """The witness sum of finite float32 values near the top of the range overflows; the
    entry-by-entry check then finds every value finite and the prediction stands."""
    net = _network("numpy", "float32", "sigmoid")
    X = np.full((300, 6), 1e37, dtype=np.float32)  # products stay finite, the sum does not
    with np.errstate(over="ignore"):
        assert not np.isfinite(X.sum())
    A = net.predict_proba(X, block_rows=64)
    assert A.shape == (300, 3)


def test_input_values_are_checked_once_per_call(monkeypatch):
    """One witness sum per block and one finiteness read per call: no per-block check
    of the whole input, and no host read per block."""
    import xpnet.inference as inference

    reads = []
    real = inference.cast_finite
    monkeypatch.setattr(inference, "cast_finite", lambda *a: reads.append(a) or real(*a))
    net = _network("numpy", "float64", "softmax")
    net.predict_proba(np.ones((ROWS, 6)), block_rows=7)
    assert reads == []  # the entry-by-entry check runs only after a non-finite witness


def test_memory_above_input_and_output_is_bounded():
    """tracemalloc sees NumPy's allocations: the peak above X and the result stays that
    of a few blocks at 20x the rows of one block, and is far below an unblocked pass."""
    net = xpnet.MLP([64, 256, 10], output="softmax", dtype="float32", seed=0)
    rows = block_rows_for(net.layer_sizes, 4)
    X = np.random.default_rng(0).normal(size=(20 * rows + 17, 64)).astype(np.float32)
    out_bytes = X.shape[0] * 10 * 4
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        A = net.predict_proba(X)
        peak = tracemalloc.get_traced_memory()[1] - base - out_bytes
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        unblocked = net.predict_proba(X, block_rows=X.shape[0])
        peak_unblocked = tracemalloc.get_traced_memory()[1] - base - out_bytes
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(A, unblocked, rtol=1e-6)  # bits: see the tests above
    block_bytes = rows * 256 * 4  # one block of the hidden layer
    assert peak <= 8 * block_bytes, (peak, block_bytes)
    assert peak_unblocked > 10 * peak  # what blocking saves


def test_block_rule():
    assert block_rows_for([64, 256, 10], 4) == 4032  # 4 MiB / (4 B * 256), to a multiple of 192
    assert block_rows_for([784, 256, 10], 4) == 4032  # (the input's quarter, 196, is less)
    assert block_rows_for([784, 256, 10], 8) == 1920
    assert block_rows_for([2, 4, 1], 8) == 130944
    assert block_rows_for([4096, 16, 1], 4) == 1152  # 4 MiB / (4 B * 1024) = 1024: at least 1152
    assert block_rows_for([10**6, 1], 8) == 1152
    assert block_rows_for([6, 4096, 3], 4) == 1536  # 4096 output values: 1366 rows, to 192
    assert block_rows_for([6, 4096, 2], 4) == 2112
    assert block_rows_for([6, 4096, 4], 4) == 1152
    with pytest.raises(ValueError, match="block_rows must be a positive integer"):
        xpnet.MLP([2, 3, 1]).predict(np.ones((4, 2)), block_rows=0)



# A multi-threaded BLAS splits a product among its threads where the rows of the call
# fall, and OpenBLAS's float32 kernels then round some rows of a 5000x64 @ 64x64 product
# differently from the same rows in blocks of 1152 (seen on its Haswell kernels: the
# blocks were not the unblocked result before the products ran on one thread each).
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blocks_are_bit_identical_whatever_the_blas_threads(dtype):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    net = xpnet.MLP([64, 64, 64, 3], output="softmax", dtype=dtype, seed=2)
    X = np.random.default_rng(4).normal(size=(ROWS, 64)).astype(dtype)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        whole = net.predict_proba(X, block_rows=ROWS)
        assert whole.dtype == np.dtype(dtype)
        for rows in (None, *BLOCKS):
            blocked = net.predict_proba(X, block_rows=rows)
            assert np.array_equal(blocked, whole), (rows, np.abs(blocked - whole).max())
        A, loss = xpnet.inference.outputs_and_loss(net, X, np.arange(ROWS) % 3,
                                                  block_rows=1152)
        assert np.array_equal(A, whole)


def test_numpy_blocks_run_side_by_side_on_one_blas_thread_each():
    """With a BLAS pool of 2, two blocks are computed at the same time (each waits at a
    barrier for the other: a serial loop would never pass it), the pool is at 1 thread
    while they run and back at 2 afterwards, and the rows land where they belong."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from xpnet.threads import blas_threads

    net = xpnet.MLP([6, 16, 2], output="softmax", seed=0)
    X = np.random.default_rng(0).normal(size=(4 * 1152, 6))
    barrier = threading.Barrier(2, timeout=120)
    seen = []

    def finish(Z):
        seen.append((threading.get_ident(), blas_threads()))
        if len(seen) <= 2:
            barrier.wait()  # BrokenBarrierError after 120 s if the blocks ran one by one
        return net.output_loss.activation(net.xp, Z)

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        A = xpnet.inference.predict_blocks(net, X, finish, block_rows=1152)
        assert blas_threads() == 2
    assert len(seen) == 4 and len({ident for ident, _ in seen}) == 2
    assert {threads for _, threads in seen} == {1}
    assert np.array_equal(A, net.predict_proba(X, block_rows=X.shape[0]))


def test_the_blas_cap_is_held_until_the_last_holder_leaves():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from xpnet.threads import blas_threads, one_blas_thread

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        first, second = one_blas_thread(), one_blas_thread()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert blas_threads() == 1  # the second holder still runs its products
        second.__exit__(None, None, None)
        assert blas_threads() == 2


def test_the_cap_holds_from_any_thread_and_leaves_no_thread_in_control():
    """threadpoolctl's OpenBLAS controller obeys only the first thread that set a count:
    a prediction in a user thread after one in the main thread must still cap its
    products (else its blocks are not the unblocked bits), and a fit's thread limits in
    the main thread must still act after a prediction in a long-lived worker thread."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from concurrent.futures import ThreadPoolExecutor

    from xpnet.threads import blas_threads, thread_limits

    net = xpnet.MLP([100, 128, 5], activation="tanh", output="softmax", dtype="float32",
                    seed=0)
    X = np.random.default_rng(0).normal(size=(9000, 100)).astype(np.float32)
    seen = []

    def finish(Z):
        seen.append(blas_threads())
        return net.output_loss.activation(net.xp, Z)

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        whole = net.predict_proba(X, block_rows=X.shape[0])  # the main thread sets first
        with ThreadPoolExecutor(1) as worker:  # a thread that outlives its predictions
            blocked = worker.submit(xpnet.inference.predict_blocks, net, X, finish).result()
            assert set(seen) == {1} and np.array_equal(blocked, whole)
            assert blas_threads() == 2  # restored by the worker
            with thread_limits(1):
                assert blas_threads() == 1  # the main thread's limit acts
            assert blas_threads() == 2


def test_the_rule_gives_each_blas_thread_as_many_blocks():
    from xpnet.inference import balanced_rows

    assert balanced_rows(4032, 10**4, 1) == 4032  # one thread: the rule as it is
    assert balanced_rows(4032, 10**4, 2) == 2496  # 4 blocks (2496 x 3 + 2512), not 2 + 1
    assert balanced_rows(4032, 10**5, 2) == 3840  # 26 blocks
    assert balanced_rows(4032, 5000, 2) == 2496  # 2 blocks instead of one
    assert balanced_rows(4032, 2000, 2) == 1152  # never under the minimum: one block

def test_estimators_predict_the_same_in_small_blocks():
    sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    del sklearn
    from xpnet import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(301, 4))
    y = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 30 iterations do not converge: not the point
        clf = MLPClassifier(hidden_layer_sizes=(7,), max_iter=30, random_state=0).fit(X, y)
        binary = MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0).fit(X,
                                                                                          y > 0)
        reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=30, random_state=0).fit(X, X[:, 0])
        results = []
        for rows in (None, 1152):
            with prediction_block_rows(rows):
                results.append([clf.predict(X), clf.predict_proba(X), clf.predict_log_proba(X),
                                clf.score(X, y), binary.predict_proba(X),
                                binary.predict_log_proba(X), reg.predict(X), reg.score(X, X[:, 0])])
    for whole, blocked in zip(*results):
        assert np.array_equal(np.asarray(whole), np.asarray(blocked))


def _cli(*args, env_rows=None, cwd=None):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("XPNET_BLOCK_ROWS", None)
    if env_rows is not None:
        env["XPNET_BLOCK_ROWS"] = str(env_rows)
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def test_cli_predict_and_evaluate_in_small_blocks(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    label = np.where(X[:, 0] > 0.3, "hi", np.where(X[:, 1] > 0, "mid", "lo"))
    path = tmp_path / "d.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "c", "kind"])
        writer.writerows([[f"{v:.5f}" for v in row] + [k] for row, k in zip(X, label)])
    model = tmp_path / "m.npz"
    proc = _cli("train", "--data", path, "--layers", "5", "--epochs", "40", "--save", model,
                "--quiet", "--dtype", "float32")
    assert proc.returncode == 0, proc.stderr
    outputs = {}
    for rows in (None, 64):  # 150 rows: blocks of 64 and 86
        predicted = _cli("predict", model, "--data", path, "--json", env_rows=rows)
        evaluated = _cli("evaluate", model, "--data", path, "--json", env_rows=rows)
        assert predicted.returncode == 0 and evaluated.returncode == 0, (predicted.stderr,
                                                                          evaluated.stderr)
        outputs[rows] = json.loads(predicted.stdout), json.loads(evaluated.stdout)
    (p_whole, e_whole), (p_blocked, e_blocked) = outputs[None], outputs[64]
    assert p_whole == p_blocked  # labels and probabilities, every digit
    assert e_whole["accuracy"] == e_blocked["accuracy"]
    # the loss is a mean summed block by block: equal up to float32 rounding of the sum
    assert e_blocked["loss"] == pytest.approx(e_whole["loss"], rel=1e-6)
    bad = _cli("predict", model, "--data", path, env_rows="x")
    assert bad.returncode != 0 and "XPNET_BLOCK_ROWS must be a positive integer" in bad.stderr


# ------------------------------------------------------------------ cheaper activations
def _old_sigmoid(xp, z):
    """activations.sigmoid before issue 18 (the reference)."""
    e = xp.exp(-xp.abs(z))
    r = 1.0 / (1.0 + e)
    e = e * r
    return xp.where(z >= 0, r, e)


def _old_softmax(xp, z):
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def _old_relu(xp, z):
    return (xp.abs(z) + z) * 0.5


OLD_EXACT = {  # new form -> old form, expected bit for bit
    "sigmoid": (activations.sigmoid, _old_sigmoid),
    "softmax": (activations.softmax, _old_softmax),
    "relu": (activations.relu, _old_relu),
    "sigmoid'": (activations.sigmoid_derivative, lambda xp, a: a * (1.0 - a)),
    "tanh'": (activations.tanh_derivative, lambda xp, a: 1.0 - a * a),
}


def _z(backend, dtype):
    be = xpnet.get_backend(backend)
    z = np.concatenate([np.linspace(-100, 100, 4001), np.random.default_rng(0).normal(size=3999)
                        * 8]).reshape(-1, 8)
    return be.xp, be.asarray(z, dtype=be.dtype(dtype))


@pytest.mark.parametrize("name", list(OLD_EXACT))
def test_rewritten_activations_equal_the_old_forms(backend, dtype, name):
    xp, z = _z(backend, dtype)
    if name.endswith("'"):
        z = activations.sigmoid(xp, z)  # derivatives take the activation's output
    new, old = OLD_EXACT[name]
    assert np.array_equal(to_numpy(new(xp, z)), to_numpy(old(xp, z)))


def test_hidden_logistic_agrees_with_the_old_sigmoid(backend, dtype):
    """0.5 tanh(z/2) + 0.5 against the exact form: the *absolute* error is what a next
    layer sees. Bound: 2 ulp of 1 (tanh ~1 ulp relative, the halving and the addition
    round once each, all on values below 1). Observed: 1 ulp in float32 and float64."""
    xp, z = _z(backend, dtype)
    eps = float(np.finfo(dtype).eps)
    fast = to_numpy(activations.logistic_tanh(xp, z))
    exact = to_numpy(_old_sigmoid(xp, z))
    assert np.abs(fast - exact).max() <= 2 * eps
    assert fast.min() >= 0 and fast.max() <= 1


def test_inplace_only_where_safe():
    np_xp = xpnet.get_backend("numpy").xp
    a = np.ones(3)
    assert inplace.add(np_xp, a, 1.0) is a and a[0] == 2
    strict = pytest.importorskip("array_api_strict")
    b = strict.ones(3)
    assert inplace.add(strict, b, 1.0) is not b and float(b[0]) == 1.0  # functional
    torch = pytest.importorskip("torch")
    t_xp = xpnet.get_backend("torch").xp
    t = torch.ones(3)
    assert inplace.apply(t_xp, "tanh", t) is t
    w = torch.ones(3, requires_grad=True)
    h = inplace.apply(t_xp, "tanh", w * 0.5)  # autograd needs tanh's output: not in place
    inplace.multiply(t_xp, h, 0.5).sum().backward()  # would raise if h had been modified
    assert torch.allclose(w.grad, 0.25 * (1 - torch.tanh(torch.tensor(0.5)) ** 2))

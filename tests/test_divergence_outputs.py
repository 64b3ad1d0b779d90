"""Divergence is judged on what the model outputs (issue 16, part 6), and the optimiser
state survives pickling and misuse (part 9, and the review of compiled JAX fits).

The epoch loss is taken before each update, so weights that stay finite (~1e300) but
whose products overflow passed as trained: ``fit(lr=1e300)`` raised nothing and
``xpnet train --lr 1e300 --epochs 1 --activation relu --save d.npz`` reported
``train nan test nan``, exit 0, d.npz written. Now the finished model's loss on the
training rows is checked once per fit, on every engine (eager full and mini-batch, the
compiled JAX epoch and chunk programs, L-BFGS, the scikit-learn estimators): a
non-finite value is divergence, rolled back like any other; and where a diverged
epoch's start already gives non-finite outputs, the rollback goes one epoch further.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.data import make_moons
from xpnet.optim import SGD, Adam
from xpnet.train import DivergenceError

X, Y = make_moons(300, noise=0.2, seed=0)
Y = Y.astype(np.float64)


def host(params) -> list[np.ndarray]:
    return [np.array(xpnet.to_numpy(p), copy=True) for p in params]


def finite_loss(net) -> bool:
    return bool(np.isfinite(float(net.loss(X, Y))))


def _jax_available() -> bool:
    return "jax" in xpnet.available_backends()


jax_only = pytest.mark.skipif(not _jax_available(), reason="JAX is not installed")


# ------------------------------------------------------------------ the library's fit
@pytest.mark.parametrize("batch_size", [None, 32])
@pytest.mark.parametrize("epochs", [1, 3])
def test_finite_weights_with_overflowing_outputs_diverge(backend, batch_size, epochs) -> None:
    """lr 1e300 on a relu network: after epoch 1 every weight is finite (~1e300) and the
    outputs are NaN. Raised, rolled back to the weights before the fit, nothing recorded."""
    net = xpnet.MLP([2, 8, 1], activation="relu", backend=backend, seed=0)
    before = host(net.flat_params)
    opt = SGD(1e300, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(DivergenceError) as info:
            history = xpnet.train.History()
            net.fit(X, Y, epochs=epochs, optimizer=opt, batch_size=batch_size,
                    history=history)
    error = info.value
    assert error.epoch == 1, str(error)
    assert "training diverged at epoch 1" in str(error)
    for a, b in zip(host(net.flat_params), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert opt.velocities is None or all(
        not np.any(v) for v in host(opt.velocities))  # the state of before the fit
    assert history.n_iter == 0 and history.loss == [] and net.steps == 0
    assert finite_loss(net)


@pytest.mark.parametrize("compile", [False, True])
def test_mini_batch_whose_last_update_overflows_diverges(backend, compile) -> None:
    """Mini-batches, unshuffled; only the last batch's rows are huge (1e150): every
    batch loss is finite (taken before its update), the last update leaves finite
    weights whose outputs on those rows are NaN. The epoch loss was finite: it passed."""
    if compile and backend != "jax":
        pytest.skip("compile=True compiles on JAX only")
    Xs = X.copy()
    Xs[-20:] *= 1e150
    net = xpnet.MLP([2, 8, 1], activation="relu", backend=backend, seed=0)
    before = host(net.flat_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(DivergenceError, match="the outputs overflow") as info:
            net.fit(Xs, Y, epochs=1, lr=1e-3, batch_size=20, shuffle=False,
                    compile=compile)
    assert info.value.epoch == 1 and not np.isfinite(info.value.loss)
    for a, b in zip(host(net.flat_params), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_finished_models_check_names_the_outputs() -> None:
    net = xpnet.MLP([2, 8, 1], activation="relu", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(DivergenceError) as info:
            net.fit(X, Y, epochs=1, lr=1e300)
    error = info.value
    assert error.parameters == () and not np.isfinite(error.loss)
    assert "its weights are finite but too large: the outputs overflow" in str(error)
    assert "try a smaller lr (got 1e+300)" in str(error)


def test_rollback_goes_back_to_finite_outputs() -> None:
    """Epoch 2's loss is the first non-finite one, but the weights epoch 1 left (finite)
    already give NaN outputs: epoch 1 diverged, and the network is rolled back to the
    start of epoch 1 (before, it was left at the NaN-output weights of epoch 2's start)."""
    net = xpnet.MLP([2, 8, 1], activation="relu", seed=0)
    before = host(net.flat_params)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(DivergenceError) as info:
            net.fit(X, Y, epochs=5, lr=1e300, callback=lambda e, loss: seen.append(loss))
    assert seen and np.isfinite(seen[0])  # epoch 1 looked fine when it was recorded
    assert info.value.epoch == 1
    for a, b in zip(host(net.flat_params), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_good_fit_is_unchanged_by_the_check() -> None:
    """Same numbers as before the check: it reads the model, it changes nothing."""
    net = xpnet.MLP([2, 8, 1], seed=0)
    history = net.fit(X, Y, epochs=50, lr=0.5, batch_size=64)
    assert history.n_iter == 50 and len(history.loss) == 50
    assert finite_loss(net)


@jax_only
@pytest.mark.parametrize("per_epoch", [False, True])
@pytest.mark.parametrize(("epochs", "batch_size"), [(1, None), (3, None), (300, None),
                                                     (2, 32)])
def test_compiled_fits_judge_the_outputs_as_eager(per_epoch, epochs, batch_size) -> None:
    """The chunk program (several epochs per call) and the epoch program (with a
    callback) raise the eager fit's error and roll back to the same weights, optimiser
    state and shuffle generator."""
    outcomes = []
    for backend, compile in (("numpy", False), ("jax", True)):
        net = xpnet.MLP([2, 8, 1], activation="relu", backend=backend, seed=0)
        opt = Adam(1e300) if epochs == 300 else SGD(1e300, momentum=0.5)
        if epochs == 300:  # diverges late in a long fit: a later chunk, or its end
            opt = SGD(3.0, momentum=0.9)
        callback = (lambda e, loss: None) if per_epoch else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                net.fit(X * 30, Y, epochs=epochs, optimizer=opt, batch_size=batch_size,
                        compile=compile, callback=callback)
                error = None
            except DivergenceError as exc:
                error = exc
        outcomes.append((error, host(net.flat_params), net.shuffle_rng.random()))
    (eager_error, eager_params, eager_rng), (error, params, rng) = outcomes
    assert error is not None and eager_error is not None
    assert error.epoch == eager_error.epoch and error.parameters == eager_error.parameters
    for a, b in zip(params, eager_params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert rng == eager_rng


def test_lbfgs_is_judged_on_its_loss() -> None:
    """L-BFGS's result carries the loss at its weights: a non-finite one rolls back."""
    net = xpnet.MLP([2, 8, 1], activation="relu", output="identity", seed=0)
    before = host(net.flat_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(DivergenceError, match="L-BFGS diverged"):
            net.fit(X * 1e160, Y, epochs=5, optimizer="lbfgs")
    for a, b in zip(host(net.flat_params), before, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ scikit-learn API
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_estimators_refuse_a_model_predicting_nan(method) -> None:
    """scikit-learn's MLPClassifier returns a model predicting NaN here (lr 1e300); the
    xpnet estimator raises ValueError, its network rolled back."""
    from xpnet.sklearn import MLPClassifier

    clf = MLPClassifier((8,), solver="sgd", learning_rate_init=1e300, max_iter=1,
                        batch_size=len(X), random_state=0)  # one update: finite weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="outputs overflow"):
            if method == "fit":
                clf.fit(X, Y.astype(int))
            else:
                clf.partial_fit(X, Y.astype(int), classes=[0, 1])


def test_lbfgs_estimator_refuses_a_nan_loss() -> None:
    """MLPRegressor(solver='lbfgs') on data near 1e160: the weights stay finite, the
    loss is NaN; scikit-learn (and xpnet before) returned it with loss_ = nan."""
    from xpnet.sklearn import MLPRegressor

    reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="loss on the training data is not finite"):
            reg.fit(X * 1e160, Y)
    assert not hasattr(reg, "loss_")


# ------------------------------------------------------------------ the CLI
def run(*args, cwd=None, timeout=120):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("XPNET_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


@pytest.mark.parametrize("extra", [[], ["--batch-size", "50"], ["--compile", "--backend", "jax"]])
def test_cli_outputs_nan_is_divergence_and_writes_nothing(tmp_path: Path, extra) -> None:
    if "jax" in extra and not _jax_available():
        pytest.skip("JAX is not installed")
    proc = run("train", "--lr", "1e300", "--epochs", "1", "--activation", "relu",
               "--save", "d.npz", *extra, cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("xpnet: error: training diverged at epoch 1: "), lines
    assert "nothing was written" in lines[0]
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ optimiser state
_CONTINUE = r"""
import pickle, sys, numpy as np, warnings
warnings.simplefilter("ignore")
X, y = np.load(sys.argv[1])["X"], np.load(sys.argv[1])["y"]
with open(sys.argv[2], "rb") as f:
    est = pickle.load(f)
est.partial_fit(X, y)
est.partial_fit(X, y)
np.savez(sys.argv[3], *[np.asarray(c) for c in est.coefs_ + est.intercepts_])
"""


def _pickle_cases():
    cases = []
    for backend in xpnet.available_backends():
        if backend == "cupy":
            continue
        for compile in ((False, True) if backend == "jax" else (False,)):
            for solver in ("adam", "sgd"):
                cases.append((backend, compile, solver))
    return cases


@pytest.mark.parametrize(("backend_name", "compile", "solver"), _pickle_cases())
def test_pickled_estimator_continues_bit_for_bit(tmp_path, backend_name, compile, solver) -> None:
    """Fitted, pickled, loaded in a fresh process, then two partial_fits: exactly the
    weights of the same partial_fits without pickling. (JAX compile=True failed with
    'scan body function carry input and carry output must have equal types': the
    moments came back float32; compile=False drifted by 1e-10.)"""
    from xpnet.sklearn import MLPClassifier

    rng = np.random.default_rng(0)
    Xc = rng.normal(size=(120, 4))
    yc = (Xc[:, 0] + Xc[:, 1] ** 2 > 0.5).astype(int)
    np.savez(tmp_path / "data.npz", X=Xc, y=yc)
    clf = MLPClassifier((6,), backend=backend_name, compile=compile, solver=solver,
                        momentum=0.9, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(Xc, yc)
        (tmp_path / "clf.pkl").write_bytes(pickle.dumps(clf))
        clf.partial_fit(Xc, yc)
        clf.partial_fit(Xc, yc)
    expected = [np.asarray(c) for c in clf.coefs_ + clf.intercepts_]
    proc = subprocess.run(
        [sys.executable, "-c", _CONTINUE, tmp_path / "data.npz", tmp_path / "clf.pkl",
         tmp_path / "out.npz"], capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as out:
        got = [out[f"arr_{i}"] for i in range(len(expected))]
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_pickled_optimiser_keeps_its_dtypes() -> None:
    net = xpnet.MLP([2, 5, 1], dtype="float32", seed=0)
    opt = Adam(0.01)
    net.fit(X, Y, epochs=2, optimizer=opt)
    copy = pickle.loads(pickle.dumps(opt))
    assert [a.dtype for a in copy.ms] == [np.float32] * 4
    assert copy.t == opt.t


@pytest.mark.parametrize("compile", [False, True])
def test_an_optimiser_of_another_network_is_refused(compile) -> None:
    """Adam's moments made for a 2-8-1 float64 network, passed to a fit of a 2-5-1 one
    or of a float32 one: one clear error, before anything changes (it failed deep in an
    update, the scan TypeError when compiled, or silently made float32 weights float64
    on eager JAX)."""
    backend = "jax" if compile and _jax_available() else "numpy"
    opt = Adam(0.01)
    xpnet.MLP([2, 8, 1], backend=backend, seed=0).fit(X, Y, epochs=2, optimizer=opt,
                                                       compile=compile)
    for other in (xpnet.MLP([2, 5, 1], backend=backend, seed=0),
                  xpnet.MLP([2, 8, 1], backend=backend, dtype="float32", seed=0)):
        before = host(other._params)
        with pytest.raises(ValueError, match="optimiser's state .* was made for other"):
            other.fit(X, Y, epochs=2, optimizer=opt, compile=compile)
        for a, b in zip(host(other._params), before, strict=True):
            np.testing.assert_array_equal(a, b)


@jax_only
def test_compiled_adam_step_count_passes_two_to_the_31() -> None:
    """Adam's step count in the compiled state was int32: at 2**31 steps (batch size 1
    and 10^6 rows: 2,000 epochs) it wrapped, the bias correction became NaN and the
    compiled fit 'diverged' where the eager one trains on."""
    results = []
    for backend, compile in (("numpy", False), ("jax", True)):
        opt = Adam(0.01)
        opt.t = 2**31 - 3
        net = xpnet.MLP([2, 8, 1], backend=backend, seed=0)
        history = net.fit(X, Y, epochs=3, optimizer=opt, batch_size=50, compile=compile)
        results.append((history.loss, opt.t))
    (eager_loss, eager_t), (loss, t) = results
    assert t == eager_t == 2**31 - 3 + 18
    np.testing.assert_allclose(loss, eager_loss, rtol=1e-9)


# ------------------------------------------------------------------ the bound that skips it
def _tight_network(activation: str, output: str, scale: float, rng) -> tuple:
    """Weights and data of one sign, so the products reach their bounds (the identity
    and relu layers make |Z| equal to the bound but for the +1 of each hidden layer)."""
    sizes = [3, 4, 2]
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params += [scale * rng.uniform(0.5, 1.0, (n_in, n_out)), scale * np.full(n_out, 0.25)]
    X_data = np.abs(rng.normal(size=(50, 3)))
    net = xpnet.MLP(sizes, activation=activation, output=output, seed=0)
    return net, params, X_data


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity", "exp"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "identity"])
@pytest.mark.parametrize("scale", [1e-6, 0.3, 2.0])
def test_layer_and_loss_bounds_hold(activation, output, scale) -> None:
    """Every layer's |Z| is within its bound (tiny weights: a sigmoid layer's outputs are
    1/2 whatever its Z, which the +1 covers), and the loss within the loss bound, for
    every hidden activation and output (float64: rounding is ~1e-16 relative)."""
    from xpnet.core import hidden_forward
    from xpnet.training.sources import layer_bounds, loss_bound, training_loss

    rng = np.random.default_rng(0)
    net, params, X_data = _tight_network(activation, output, scale, rng)
    arch = net.architecture
    Y_data = rng.uniform(0, 3, (50, 2)) if output in ("identity", "exp") else np.eye(2)[
        rng.integers(0, 2, 50)]
    cache, Z_out = hidden_forward(arch.hidden, params, X_data, np)
    Zs = [Z for Z in _pre_activations(arch, params, X_data)]
    bounds = layer_bounds(params, np.max(np.abs(X_data)), np)
    assert len(bounds) == len(Zs) == 2
    for Z, bound in zip(Zs, bounds):
        assert np.max(np.abs(Z)) <= bound * (1 + 1e-12)
    np.testing.assert_allclose(Zs[-1], Z_out, rtol=1e-15)
    loss = float(training_loss(arch, np, params, X_data, Y_data, 50))
    assert np.isfinite(loss) and loss <= float(loss_bound(arch, np, params, X_data, Y_data))


def _pre_activations(arch, params, X_data) -> list[np.ndarray]:
    """Z_1, ..., Z_L of the forward pass, written out with NumPy."""
    A, Zs = X_data, []
    for layer in range(len(params) // 2):
        Z = A @ params[2 * layer] + params[2 * layer + 1]
        Zs.append(Z)
        if layer < len(arch.hidden):
            A = arch.hidden[layer].forward(np, Z.copy())
    return Zs


def test_the_poisson_bound_covers_the_exponential() -> None:
    """exp output with outputs near 20: e^Z dominates the loss, and the bound holds it."""
    from xpnet.training.sources import loss_bound, training_loss

    rng = np.random.default_rng(1)
    net, params, X_data = _tight_network("identity", "exp", 1.0, rng)
    params = [p * (20.0 / 8) for p in params[:2]] + params[2:]
    Y_data = rng.uniform(0, 3, (50, 2))
    loss = float(training_loss(net.architecture, np, params, X_data, Y_data, 50))
    assert loss > 1e8
    assert loss <= float(loss_bound(net.architecture, np, params, X_data, Y_data))


@pytest.mark.parametrize("compiled", [False, True])
def test_the_finished_check_is_the_bound_when_finite_and_the_loss_otherwise(compiled) -> None:
    """A sane network's check is its (finite) loss bound, no forward pass; weights whose
    bound overflows get the loss itself, NaN here, as before the bound existed."""
    backend = "jax" if compiled else "numpy"
    if compiled and not _jax_available():
        pytest.skip("JAX is not installed")
    from xpnet.training.api import _training_loss
    from xpnet.training.sources import ArraySource, loss_bound, training_loss

    net = xpnet.MLP([2, 8, 1], activation="relu", backend=backend, seed=0)
    Xc, Yc = net.check_XY(X, Y)
    source = ArraySource(net.architecture, net.array_backend, Xc, Yc)
    check = _training_loss(net, source, compiled, 300)
    params = net.flat_params
    bound = float(loss_bound(net.architecture, net.xp, params, Xc, Yc))
    assert np.isfinite(bound) and check(params) == pytest.approx(bound, rel=1e-6)
    assert bound >= float(training_loss(net.architecture, net.xp, params, Xc, Yc, 300))
    huge = [p * 1e300 if i % 2 == 0 else p for i, p in enumerate(params)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflowing bound says "unknown", silently
        assert not np.isfinite(float(loss_bound(net.architecture, net.xp, huge, Xc, Yc)))
        warnings.simplefilter("ignore", RuntimeWarning)  # (the forward pass overflows)
        assert np.isnan(check(huge))

"""A diverged run is an error that never passes for a trained one, and Ctrl-C keeps what
was trained (issue 8, sections 2 and 7).

- ``fit``: a non-finite epoch loss, or non-finite parameters after an epoch, raises
  ``FloatingPointError`` (``DivergenceError``) on every task and rolls the parameters
  *and the optimiser's state* back to the last finite state; checked by exact equality
  with what a callback captured at the end of the previous epoch.
- ``KeyboardInterrupt``: an epoch cut short is rolled back, one interrupted in the
  callback counts; ``History.interrupted``; nothing but KeyboardInterrupt is caught.
- ``MLP.step`` and ``xpnet.save`` refuse non-finite weights and change nothing.
- The scikit-learn estimators do what scikit-learn's MLPs do, compared side by side.
- ``xpnet train``: exit 1, one line, nothing written on divergence; real SIGINTs sent to
  a real training process for Ctrl-C (exit 130 either way).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import make_problem
from sigint import train_with_sigint

import xpnet
from xpnet.data import make_moons
from xpnet.optim import SGD, Adam, Optimizer
from xpnet.train import DivergenceError, History, validation_score

OPTIMISERS = {
    "sgd": lambda lr: SGD(lr),
    "momentum": lambda lr: SGD(lr, momentum=0.9, nesterov=True),
    "adam": lambda lr: Adam(lr),
}


def host(params) -> list[np.ndarray]:
    """Host copies of a parameter list (any backend)."""
    return [np.array(xpnet.to_numpy(p), copy=True) for p in params]


def host_state(opt: Optimizer) -> dict:
    """The optimiser's state with arrays as host copies (for exact comparison)."""
    state = {}
    for name, value in opt.snapshot().items():
        if isinstance(value, list):
            value = [np.array(xpnet.to_numpy(a), copy=True) for a in value]
        state[name] = value
    return state


def assert_same_state(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, list):
            assert len(actual[name]) == len(value), name
            for a, b in zip(actual[name], value):
                np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert actual[name] == value, name


def assert_params_equal(actual, expected) -> None:
    for a, b in zip(host(actual), expected, strict=True):
        np.testing.assert_array_equal(a, b)  # exact: a copy, not a recomputation


class Recorder:
    """Epoch callback keeping the parameters and optimiser state after each epoch."""

    def __init__(self, net: xpnet.MLP, opt: Optimizer) -> None:
        self.net, self.opt = net, opt
        self.params = [host(net.flat_params)]  # index e: after e complete epochs
        self.states = [host_state(opt)]

    def __call__(self, epoch: int, loss: float) -> None:
        self.params.append(host(self.net.flat_params))
        self.states.append(host_state(self.opt))


# ------------------------------------------------------------------------ fit diverges
# (output, dtype, optimiser, lr): each diverges after a few epochs (or in the first)
DIVERGING = [
    ("sigmoid", "float64", "sgd", 1e3),
    ("softmax", "float64", "momentum", 1e3),
    ("identity", "float64", "sgd", 1e1),
    ("sigmoid", "float32", "adam", 1e20),
    ("softmax", "float32", "sgd", 1e10),
    ("identity", "float32", "momentum", 1e2),
]


@pytest.mark.parametrize(("output", "dtype", "optimiser", "lr"), DIVERGING)
def test_divergence_raises_and_rolls_back_to_the_epoch_start(
    backend: str, output: str, dtype: str, optimiser: str, lr: float
) -> None:
    X, Y = make_problem(output, m=40, n_in=3, n_out=3, seed=1)
    net = xpnet.MLP([3, 5, 3], activation="relu", output=output, backend=backend,
                    dtype=dtype, seed=0)
    opt = OPTIMISERS[optimiser](lr)
    record = Recorder(net, opt)
    history = History()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow warnings
        with pytest.raises(FloatingPointError) as info:
            net.fit(X * 10, Y, epochs=200, batch_size=10, optimizer=opt, callback=record,
                    history=history)
    done = len(record.params) - 1  # complete epochs before the diverged one
    error = info.value
    assert isinstance(error, DivergenceError)
    # the diverged epoch is the one whose loss or parameters are not finite, or the one
    # before it when the weights that one left (finite) already give non-finite outputs
    assert error.epoch in (done, done + 1)
    kept = error.epoch - 1  # complete epochs the network is rolled back to
    assert f"training diverged at epoch {error.epoch}" in str(error)
    assert "smaller lr" in str(error) and f"{lr:g}" in str(error)
    assert_params_equal(net.flat_params, record.params[kept])
    assert_same_state(host_state(opt), record.states[kept])
    assert all(np.all(np.isfinite(p)) for p in host(net.flat_params))
    assert np.isfinite(float(net.loss(X * 10, Y)))
    assert history.n_iter == kept and len(history.loss) == kept
    assert all(np.isfinite(history.loss))


def test_classification_divergence_in_the_parameters_only_is_caught() -> None:
    """The issue's case: float32, lr 1e300. The epoch's loss (taken before the update) is
    finite; only the parameters after it are not. Today fit returns as if trained."""
    X, y = make_moons(300, noise=0.2)
    for activation in ("sigmoid", "relu"):
        net = xpnet.MLP([2, 8, 1], activation=activation, dtype="float32")
        before = host(net.flat_params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(FloatingPointError, match="training diverged at epoch 1") as info:
                net.fit(X, y, epochs=1, lr=1e300)
        assert np.isfinite(info.value.loss)  # the loss alone would not have told
        assert info.value.parameters == ("W1", "b1", "W2", "b2")
        assert_params_equal(net.flat_params, before)


def test_divergence_with_early_stopping_restores_the_best_weights() -> None:
    X, Y = make_problem("identity", m=60, n_in=3, n_out=1, seed=2)
    net = xpnet.MLP([3, 5, 1], activation="relu", output="identity", seed=0)
    opt = SGD(1.0)
    record = Recorder(net, opt)
    history = History()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match="best weights"):
            net.fit(X * 10, Y, epochs=200, optimizer=opt, early_stopping=True,
                    n_iter_no_change=1000, callback=record, history=history)
    scores = history.validation_scores
    assert len(scores) >= 1 and len(record.params) == len(scores) + 1
    best_epoch = int(np.nanargmax(scores)) + 1  # first epoch with the best score
    assert_params_equal(net.flat_params, record.params[best_epoch])
    assert_same_state(host_state(opt), record.states[-1])  # optimiser: the epoch's start


def test_overflowing_parameter_sum_is_not_a_divergence() -> None:
    """The per-epoch check reads the sum of all parameters, which overflows for finite
    weights near the dtype's largest value: that must be confirmed, not reported."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-0.5, 0.5, size=(50, 2))  # |x| < 1: x · 1.7e308 stays finite
    y = (X[:, 0] > 0).astype(int)
    net = xpnet.MLP([2, 3, 1], output="sigmoid", seed=0)
    params = net.params
    W1 = np.zeros((2, 3))
    W1[0] = 1.7e308  # finite; their sum is not. The sigmoid units saturate, no NaN
    params[0] = (W1, params[0][1])
    net.set_params(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy reports the overflow
        history = net.fit(X, y, epochs=3, lr=1e-3)
    assert history.n_iter == 3 and all(np.isfinite(history.loss))
    assert float(xpnet.to_numpy(net.params[0][0])[0, 0]) == 1.7e308


# ------------------------------------------------------------------------ Ctrl-C in fit
def fit_catching_escape(net: xpnet.MLP, *args, **kwargs) -> History:
    """``net.fit``; a KeyboardInterrupt escaping it fails the test (instead of stopping
    the whole pytest session, which is what a KeyboardInterrupt does)."""
    try:
        return net.fit(*args, **kwargs)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped fit")


class InterruptAfter(SGD):
    """SGD with momentum that raises KeyboardInterrupt right after its update number
    ``after`` (the parameters and velocities already changed): an interrupt mid-epoch."""

    def __init__(self, after: int) -> None:
        super().__init__(0.05, momentum=0.9)
        self.after, self.calls = after, 0

    def update(self, params, grads) -> None:
        super().update(params, grads)
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt


class AdamInterruptAfter(Adam):
    def __init__(self, after: int) -> None:
        super().__init__(0.01)
        self.after, self.calls = after, 0

    def update(self, params, grads) -> None:
        super().update(params, grads)
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("kind", [InterruptAfter, AdamInterruptAfter])
def test_interrupt_mid_epoch_rolls_back_to_the_last_complete_epoch(backend: str, kind) -> None:
    X, y = make_moons(100, noise=0.2)
    net = xpnet.MLP([2, 6, 1], backend=backend, seed=0)
    opt = kind(after=4 * 5 + 2)  # 4 batches per epoch: in the middle of epoch 6
    record = Recorder(net, opt)
    with pytest.warns(UserWarning, match=r"training interrupted at epoch 6 of 50, which was "
                      r"cut short and rolled back; the network keeps the weights after epoch 5"):
        history = fit_catching_escape(net, X, y, epochs=50, batch_size=25, optimizer=opt,
                                      callback=record)
    assert history.interrupted and history.n_iter == 5 and len(history.loss) == 5
    assert history.samples_seen == 5 * 100
    assert_params_equal(net.flat_params, record.params[5])
    state = host_state(opt)
    state.pop("calls")
    expected = dict(record.states[5])
    expected.pop("calls")
    assert_same_state(state, expected)  # velocities / moments and Adam's t rolled back


def test_interrupt_in_the_callback_keeps_the_complete_epoch() -> None:
    X, y = make_moons(100, noise=0.2)
    net = xpnet.MLP([2, 6, 1], seed=0)
    seen = []

    def callback(epoch: int, loss: float) -> None:
        seen.append(host(net.flat_params))
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted at epoch 3 of 10; the network keeps "
                      "the weights after epoch 3"):
        history = fit_catching_escape(net, X, y, epochs=10, lr=0.5, callback=callback)
    assert history.interrupted and history.n_iter == 3
    assert_params_equal(net.flat_params, seen[-1])
    # a later call starts afresh
    assert not net.fit(X, y, epochs=1, lr=0.5, history=history).interrupted


def test_interrupt_with_early_stopping_restores_the_best_weights() -> None:
    X, y = make_moons(200, noise=0.3)
    net = xpnet.MLP([2, 6, 1], seed=0)

    def callback(epoch: int, loss: float) -> None:
        if epoch == 30:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="best weights"):
        history = fit_catching_escape(net, X, y, epochs=100, lr=0.5, early_stopping=True,
                                      n_iter_no_change=1000, callback=callback)
    assert history.interrupted and history.n_iter == 31
    assert_params_equal(net.flat_params, host(history.best_params))


def test_only_keyboard_interrupt_is_caught() -> None:
    class Terminated(BaseException):
        pass

    X, y = make_moons(50, noise=0.2)
    net = xpnet.MLP([2, 4, 1], seed=0)

    def callback(epoch: int, loss: float) -> None:
        raise Terminated

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "interrupted" warning either
        with pytest.raises(Terminated):
            net.fit(X, y, epochs=5, lr=0.5, callback=callback)


# ------------------------------------------------------------------------ step and save
def test_step_that_would_diverge_changes_nothing(backend: str) -> None:
    X, y = make_moons(50, noise=0.2)
    net = xpnet.MLP([2, 4, 1], backend=backend, dtype="float32", seed=0)
    before = host(net.flat_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"W1, b1, W2, b2 non-finite.*unchanged"):
            net.step(X, y, lr=1e300)
    assert_params_equal(net.flat_params, before)
    loss = net.step(X, y, lr=0.1)  # a sane step still works and updates
    assert np.isfinite(float(loss))
    assert not np.array_equal(host(net.flat_params)[0], before[0])


def test_step_on_prepared_data_checks_only_when_asked() -> None:
    """Prepared data are the host-sync-free hot path (issue 12): ``step`` checks the
    result there only with ``check_finite=True``."""
    X, y = make_moons(50, noise=0.2)
    net = xpnet.MLP([2, 4, 1], dtype="float32", seed=0)
    batch = net.prepare(X, y)
    before = host(net.flat_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match="unchanged"):
            net.step(batch, lr=1e300, check_finite=True)
        assert_params_equal(net.flat_params, before)
        net.step(batch, lr=1e300)  # unchecked: the caller reads the loss in its loop
    assert net.nonfinite_parameters() == ["W1", "b1", "W2", "b2"]
    with pytest.raises(TypeError, match="check_finite"):
        net.step(batch, lr=0.1, check_finite="yes")


def test_save_refuses_non_finite_weights_and_keeps_the_old_file(tmp_path: Path) -> None:
    good = xpnet.MLP([2, 3, 2, 1], seed=0)
    path = tmp_path / "model.npz"
    xpnet.save(good, path)
    original = path.read_bytes()
    bad = xpnet.MLP([2, 3, 2, 1], seed=1)
    bad._params[2][0, 0] = np.inf  # W2
    bad._params[3][1] = np.nan  # b2
    with pytest.raises(ValueError, match=r"non-finite weights: layer 2 \(W2, b2\)"):
        xpnet.save(bad, path)
    assert path.read_bytes() == original
    with pytest.raises(ValueError, match="layer 2"):
        xpnet.save(bad, tmp_path / "new.npz")
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_validation_score_of_non_finite_predictions_is_nan() -> None:
    X, Y = make_problem("identity", m=10, n_in=2, n_out=1)
    net = xpnet.MLP([2, 3, 1], output="identity", seed=0)
    net.flat_params[2][0, 0] = np.inf
    X_c, Y_c = net.check_XY(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(float(validation_score(net, X_c, Y_c)))


# ------------------------------------------------------------------------ estimators
sk_nn = pytest.importorskip("sklearn.neural_network", reason="scikit-learn not installed")


def _fit_both(kind: str, X, y, **params):
    """(outcome, estimator) for scikit-learn's and xpnet's estimator with ``params``."""
    sk_cls = sk_nn.MLPClassifier if kind == "classifier" else sk_nn.MLPRegressor
    xp_cls = xpnet.MLPClassifier if kind == "classifier" else xpnet.MLPRegressor
    results = []
    for cls in (sk_cls, xp_cls):
        model = cls(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow, convergence
            try:
                model.fit(X, y)
                results.append(("fitted", None, model))
            except ValueError as exc:
                results.append(("ValueError", str(exc), model))
    return results


def _data(kind: str, dtype=np.float64):
    from sklearn.datasets import make_classification, make_regression

    if kind == "classifier":
        X, y = make_classification(200, 5, random_state=0)
    else:
        X, y = make_regression(200, 5, random_state=0)
    return X.astype(dtype), y


COMMON = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, max_iter=30,
              random_state=0, activation="relu")


@pytest.mark.parametrize(("kind", "dtype", "lr"), [
    ("regressor", np.float64, 1e2), ("classifier", np.float32, 1e39),
])
def test_estimators_without_early_stopping_raise_scikit_learns_error(kind, dtype, lr) -> None:
    X, y = _data(kind, dtype)
    (sk_outcome, sk_message, _), (outcome, message, model) = _fit_both(
        kind, X, y, learning_rate_init=lr, **COMMON)
    assert sk_outcome == outcome == "ValueError"
    assert message == sk_message  # word for word
    assert message.startswith("Solver produced non-finite parameter weights")
    assert not hasattr(model, "coefs_")  # no diverged fitted attributes


def test_estimators_with_early_stopping_train_on_and_restore_the_best_weights() -> None:
    """scikit-learn: a NaN validation score never becomes the best (and resets the
    no-improvement count, NaN < x being False); training runs to max_iter; the best
    finite weights come back; no exception."""
    X, y = _data("regressor")
    (sk_outcome, _, sk), (outcome, _, ours) = _fit_both(
        "regressor", X, y, learning_rate_init=1e2, early_stopping=True, **COMMON)
    assert sk_outcome == outcome == "fitted"
    assert ours.n_iter_ == sk.n_iter_ == 30
    sk_scores, scores = np.array(sk.validation_scores_), np.array(ours.validation_scores_)
    assert np.isnan(sk_scores).any()  # it did diverge
    np.testing.assert_array_equal(np.isnan(scores), np.isnan(sk_scores))
    finite = np.isfinite(sk_scores)
    np.testing.assert_allclose(scores[finite], sk_scores[finite], rtol=1e-7)
    np.testing.assert_allclose(ours.best_validation_score_, sk.best_validation_score_,
                               rtol=1e-7)
    for ours_W, sk_W in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        assert np.all(np.isfinite(ours_W))
        np.testing.assert_allclose(ours_W, sk_W, rtol=1e-7, atol=1e-7 * np.abs(sk_W).max())
    assert np.isfinite(ours.predict(X)).all()


def test_early_stopping_with_every_score_nan_ends_on_the_initial_weights() -> None:
    """scikit-learn counts its initial weights as the best before the first epoch: when
    every validation score is NaN (diverged in the first epoch), they come back."""
    X, y = _data("regressor", np.float32)
    (sk_outcome, _, sk), (outcome, _, ours) = _fit_both(
        "regressor", X, y, learning_rate_init=1e39, early_stopping=True, **COMMON)
    assert sk_outcome == outcome == "fitted"
    assert np.isnan(sk.validation_scores_).all() and np.isnan(ours.validation_scores_).all()
    assert ours.n_iter_ == sk.n_iter_ == 30
    for ours_W, sk_W in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(ours_W, sk_W, rtol=1e-6)  # both the initial weights


def test_classifier_early_stopping_with_nan_best_weights_raises_as_scikit_learn() -> None:
    """A NaN network still predicts class labels, so its accuracy is a finite score and
    can become the best: scikit-learn then restores NaN weights and raises at the end."""
    X, y = _data("classifier", np.float32)
    (sk_outcome, sk_message, _), (outcome, message, ours) = _fit_both(
        "classifier", X, y, learning_rate_init=1e39, early_stopping=True, **COMMON)
    assert sk_outcome == outcome == "ValueError" and message == sk_message


# ------------------------------------------------------------------------ CLI
def run(*args, cwd=None, timeout=120):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("XPNET_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


def test_cli_divergence_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    proc = run("train", "--epochs", "20", "--save", good, "--quiet")
    assert proc.returncode == 0, proc.stderr
    original = good.read_bytes()
    for extra in ([], ["--activation", "relu"], ["--json"]):
        proc = run("train", "--lr", "1e300", "--epochs", "1", "--dtype", "float32",
                   "--save", good, "--plot", tmp_path / "p.png", *extra)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr  # no NumPy overflow warnings either
        assert lines[0].startswith("xpnet: error: training diverged at epoch 1: "), lines
        assert "try a smaller --lr (got 1e+300)" in lines[0]
        assert "nothing was written" in lines[0]
        assert good.read_bytes() == original
        assert sorted(os.listdir(tmp_path)) == ["good.npz"]


def test_cli_regression_divergence_says_the_same() -> None:
    proc = run("train", "--dataset", "diabetes", "--lr", "3", "--epochs", "500")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("xpnet: error: training diverged at epoch ")
    assert ("the loss is inf" in proc.stderr or "non-finite" in proc.stderr
            or "the outputs overflow" in proc.stderr)


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_first_ctrl_c_stops_after_the_epoch_and_saves(tmp_path: Path, as_json: bool) -> None:
    args = ["--dataset", "digits", "--epochs", "1000000", "--save", "m.npz"]
    # after 200 full-batch epochs the saved model is a trained one (a press after the first
    # few epochs saved a model that scored 0.32)
    status, out, err = train_with_sigint(
        tmp_path, args + (["--json"] if as_json else []), presses=1, after_epoch=200)
    assert status == 130, (out, err)
    assert err.startswith("xpnet: stopping after epoch "), err
    assert "press Ctrl-C again to abort" in err
    assert len(err.splitlines()) == 1, err  # no warning, no traceback
    if as_json:
        report = json.loads(out)
        assert report["interrupted"] is True
        epochs = report["training"]["epochs"]
        assert 1 <= epochs < 1000000 and len(report["training"]["loss_curve"]) == epochs
    else:
        assert f"(interrupted at epoch {out.split('training  ')[1].split()[0]} of 1000000)" in out
        assert "saved     m.npz" in out
    net = xpnet.load(tmp_path / "m.npz")  # written, and loadable
    assert np.isfinite(xpnet.to_numpy(net.params[0][0])).all()
    proc = run("evaluate", tmp_path / "m.npz", "--dataset", "digits", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accuracy"] > 0.5


def test_cli_second_ctrl_c_aborts_writing_nothing(tmp_path: Path) -> None:
    # The second press must land while the epoch still runs. Full-batch epochs of ~1 s
    # (100000 rows, 256-256) lost that race now and then under load: a SIGINT is handled
    # only between BLAS calls, so the first press's message can come late in the epoch.
    # With batches of one row the handler runs within microseconds of each press, and an
    # epoch (75000 steps, ~3 s idle, longer under load) leaves seconds for the second one.
    args = ["--dataset", "moons", "--n-samples", "100000", "--layers", "16",
            "--batch-size", "1", "--epochs", "1000000", "--save", "m.npz", "--plot", "p.png"]
    status, out, err = train_with_sigint(tmp_path, args, presses=2)
    assert status == 130, (out, err)
    assert out == ""
    assert err.splitlines()[-1] == "xpnet: aborted; nothing was written", err
    assert os.listdir(tmp_path) == []

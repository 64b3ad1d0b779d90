"""Optimisers, schedules, sample weights and the training controls of ``xpnet.train.fit``.

The reference for every update rule is scikit-learn's own implementation
(``sklearn.neural_network._stochastic_optimizers``), driven with the same parameters and
gradients; the weighted loss is checked by finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet.optim import SGD, Adam, get_optimizer
from xpnet.train import History, fit, validation_score

sk_optim = pytest.importorskip(
    "sklearn.neural_network._stochastic_optimizers",
    reason="scikit-learn (the reference implementation) is not installed",
)



def _random_params(rng: np.random.Generator) -> list[np.ndarray]:
    shapes = [(4, 3), (3,), (3, 2), (2,)]
    return [rng.normal(size=shape) for shape in shapes]


OPTIMISERS = {
    "gd": (lambda: SGD(0.1), lambda p: sk_optim.SGDOptimizer(p, 0.1, momentum=0.0)),
    "momentum": (
        lambda: SGD(0.05, momentum=0.9),
        lambda p: sk_optim.SGDOptimizer(p, 0.05, momentum=0.9, nesterov=False),
    ),
    "nesterov": (
        lambda: SGD(0.05, momentum=0.8, nesterov=True),
        lambda p: sk_optim.SGDOptimizer(p, 0.05, momentum=0.8, nesterov=True),
    ),
    "invscaling": (
        lambda: SGD(0.2, momentum=0.5, nesterov=True, schedule="invscaling", power_t=0.3),
        lambda p: sk_optim.SGDOptimizer(
            p, 0.2, lr_schedule="invscaling", momentum=0.5, nesterov=True, power_t=0.3
        ),
    ),
    "adam": (lambda: Adam(0.01), lambda p: sk_optim.AdamOptimizer(p, 0.01)),
    "adam-betas": (
        lambda: Adam(0.003, beta_1=0.5, beta_2=0.9, epsilon=1e-6),
        lambda p: sk_optim.AdamOptimizer(p, 0.003, beta_1=0.5, beta_2=0.9, epsilon=1e-6),
    ),
}


@pytest.mark.parametrize("name", list(OPTIMISERS))
def test_updates_match_scikit_learn(name: str, backend: str) -> None:
    """Six updates (with an epoch boundary between each) from the same weights and the
    same gradients give scikit-learn's parameters, state and learning rate."""
    make_ours, make_theirs = OPTIMISERS[name]
    rng = np.random.default_rng(0)
    start = _random_params(rng)
    be = xpnet.get_backend(backend)
    ours_params = [be.asarray(p, dtype=be.dtype("float64")) for p in start]
    theirs_params = [p.copy() for p in start]
    ours, theirs = make_ours(), make_theirs(theirs_params)
    for step in range(6):
        grads = [rng.normal(size=p.shape) for p in start]
        ours.update(ours_params, [be.asarray(g) for g in grads])
        theirs.update_params(theirs_params, grads)
        ours.iteration_ends(10 * (step + 1))
        theirs.iteration_ends(10 * (step + 1))
        for a, b in zip(ours_params, theirs_params, strict=True):
            # the same operations in the same order: equal to the last bit on NumPy
            rtol = 0 if backend == "numpy" else 1e-13
            np.testing.assert_allclose(xpnet.to_numpy(a), b, rtol=rtol, atol=1e-15)
        assert ours.learning_rate == pytest.approx(theirs.learning_rate, rel=1e-15)
    if isinstance(ours, Adam):
        assert ours.t == theirs.t
        for a, b in zip(ours.ms + ours.vs, theirs.ms + theirs.vs, strict=True):
            np.testing.assert_allclose(xpnet.to_numpy(a), b, rtol=1e-13, atol=1e-15)
    elif ours.velocities is not None:
        for a, b in zip(ours.velocities, theirs.velocities, strict=True):
            np.testing.assert_allclose(xpnet.to_numpy(a), b, rtol=1e-13, atol=1e-15)


def test_optimizer_state_lives_on_the_parameters_backend(backend: str) -> None:
    be = xpnet.get_backend(backend)
    params = [be.asarray(np.ones((3, 2))), be.asarray(np.zeros(2))]
    grads = [be.asarray(np.full((3, 2), 0.5)), be.asarray(np.ones(2))]
    sgd, adam = SGD(0.1, momentum=0.9), Adam(0.1)
    sgd.update(params, grads)
    adam.update(params, grads)
    for state in [*sgd.velocities, *adam.ms, *adam.vs]:
        assert type(state) is type(params[0])
        assert state.dtype == params[0].dtype


def test_step_count_is_64_bit_where_the_namespace_has_int64() -> None:
    """The explicit state's step count: int64 (Adam's bias correction counts steps, which
    pass 2**31 in long fits with batch size 1) on NumPy; int32 only where a namespace has
    no int64 (JAX's 32-bit mode, tests/test_jax.py)."""
    params = [np.ones((3, 2)), np.zeros(2)]
    for optimizer in (SGD(0.1), Adam(0.1)):
        assert optimizer.init(params)["step"].dtype == np.int64
    adam = Adam(0.1)
    adam.t = 2**31 + 5  # as after that many steps: the exported count keeps it
    assert int(adam.export_state(params)["step"]) == 2**31 + 5


def test_plain_sgd_is_unchanged_gradient_descent() -> None:
    p = [np.array([1.0, 2.0]), np.array([[0.5]])]
    SGD(0.25).update(p, [np.array([4.0, -8.0]), np.array([[2.0]])])
    np.testing.assert_array_equal(p[0], [0.0, 4.0])
    np.testing.assert_array_equal(p[1], [[0.0]])
    assert SGD(0.25).lr == 0.25


def test_schedules_follow_scikit_learn() -> None:
    params = [np.zeros(2)]
    ours = SGD(0.1, schedule="adaptive")
    theirs = sk_optim.SGDOptimizer(params, 0.1, lr_schedule="adaptive")
    decisions = []
    while True:
        a, b = ours.trigger_stopping(), theirs.trigger_stopping("", False)
        assert a == b and ours.learning_rate == theirs.learning_rate
        decisions.append(a)
        if a:
            break
    assert decisions.count(False) == 8  # 0.1 / 5**8 = 2.56e-7 <= 1e-6: then it stops
    assert SGD(0.1).trigger_stopping() is True
    assert Adam(0.1).trigger_stopping() is True
    constant = SGD(0.1)
    constant.iteration_ends(1000)
    assert constant.learning_rate == 0.1


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: SGD(0.0), "lr must be a positive"),
        (lambda: SGD(0.1, momentum=1.5), "momentum must be a number in"),
        (lambda: SGD(0.1, schedule="cosine"), "schedule must be one of"),
        (lambda: SGD(0.1, nesterov=1), "nesterov must be True or False"),
        (lambda: Adam(0.1, beta_1=1.0), "beta_1 must be a number in"),
        (lambda: Adam(0.1, epsilon=0.0), "epsilon must be a positive"),
        (lambda: get_optimizer("rmsprop", 0.1), "optimizer must be 'sgd', 'adam'"),
    ],
)
def test_invalid_optimiser_arguments(factory, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        factory()


# ---------------------------------------------------------------------- weighted loss
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_weighted_loss_gradients_by_finite_differences(output: str, alpha: float) -> None:
    rng = np.random.default_rng(1)
    m, k = 7, 3
    net = xpnet.MLP([4, 5, 3, k], activation=["tanh", "sigmoid"], output=output, alpha=alpha)
    X = rng.normal(size=(m, 4))
    if output == "softmax":
        Y = np.eye(k)[rng.integers(0, k, m)]
    elif output == "sigmoid":
        Y = rng.integers(0, 2, (m, k)).astype(float)
    else:
        Y = rng.normal(size=(m, k))
    w = rng.uniform(0.0, 3.0, m)
    w[2] = 0.0  # a zero weight must simply drop the row
    X, Y = net.check_XY(X, Y)
    loss, grads = net._loss_and_grads(X, Y, w)

    def loss_at(flat_index: int, position: tuple[int, ...], delta: float) -> float:
        saved = net.flat_params[flat_index].copy()
        net.flat_params[flat_index][position] += delta
        value, _ = net._loss_and_grads(X, Y, w)
        net.flat_params[flat_index] = saved
        return float(value)

    h = 1e-6
    for index, grad in enumerate(grads):
        for position in np.ndindex(grad.shape):
            numeric = (loss_at(index, position, h) - loss_at(index, position, -h)) / (2 * h)
            assert grad[position] == pytest.approx(numeric, rel=1e-6, abs=1e-8)

    # the weighted loss is the weighted mean of the rows' losses (+ alpha/(2 Σw) Σ‖W‖²)
    rows = [
        float(net._loss_and_grads(X[i : i + 1], Y[i : i + 1], np.ones(1))[0])
        for i in range(m)
    ]
    penalty = sum(float(np.sum(W * W)) for W in net.flat_params[0::2])
    unpenalised = [r - alpha / 2 * penalty for r in rows]
    expected = np.dot(w, unpenalised) / w.sum() + alpha / 2 * penalty / w.sum()
    assert float(loss) == pytest.approx(expected, rel=1e-12)


def test_unit_weights_equal_the_unweighted_loss(backend: str) -> None:
    rng = np.random.default_rng(2)
    net = xpnet.MLP([3, 4, 2], output="softmax", backend=backend, alpha=0.1)
    X, Y = net.check_XY(rng.normal(size=(9, 3)), rng.integers(0, 2, 9))
    ones = net.array_backend.asarray(np.ones(9))
    loss_w, grads_w = net._loss_and_grads(X, Y, ones)
    loss, grads = net._loss_and_grads(X, Y)
    assert float(loss_w) == pytest.approx(float(loss), rel=1e-14)
    for a, b in zip(grads_w, grads, strict=True):
        np.testing.assert_allclose(xpnet.to_numpy(a), xpnet.to_numpy(b), rtol=1e-12, atol=1e-15)


def test_integer_weights_equal_repeated_rows() -> None:
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(6, 2)), rng.integers(0, 2, 6)
    w = np.array([1, 2, 0, 3, 1, 1])
    net = xpnet.MLP([2, 3, 1], alpha=0.05)
    loss_w, grads_w = net._loss_and_grads(*net.check_XY(X, y), w.astype(float))
    loss_r, grads_r = net._loss_and_grads(*net.check_XY(np.repeat(X, w, 0), np.repeat(y, w)))
    assert float(loss_w) == pytest.approx(float(loss_r), rel=1e-13)
    for a, b in zip(grads_w, grads_r, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_all_zero_weight_batch_gives_zero_gradients() -> None:
    net = xpnet.MLP([2, 3, 1])
    X, Y = net.check_XY(np.ones((4, 2)), np.array([0, 1, 1, 0]))
    loss, grads = net._loss_and_grads(X, Y, np.zeros(4))
    assert float(loss) == 0.0
    assert all(np.all(g == 0) for g in grads)


# ---------------------------------------------------------------------- the loop against sklearn
def _sklearn_from_weights(cls, net: xpnet.MLP, X, y, **params):
    """A scikit-learn estimator whose weights are set to ``net``'s (warm start)."""
    est = cls(warm_start=True, max_iter=1, **params)
    with pytest.warns(Warning):  # the one-epoch fit that creates the attributes
        est.fit(X, y)
    est.coefs_ = [xpnet.to_numpy(W).copy() for W, _ in net.params]
    est.intercepts_ = [xpnet.to_numpy(b).copy() for _, b in net.params]
    est.t_ = 0  # samples seen: the invscaling clock starts again, as in xpnet's fresh History
    return est


LOOP_CASES = {
    "sgd-nesterov-invscaling": dict(
        optimizer=lambda: SGD(0.1, momentum=0.9, nesterov=True, schedule="invscaling"),
        sk=dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1, power_t=0.5,
                momentum=0.9, nesterovs_momentum=True),
    ),
    "sgd-momentum": dict(
        optimizer=lambda: SGD(0.05, momentum=0.7),
        sk=dict(solver="sgd", learning_rate_init=0.05, momentum=0.7, nesterovs_momentum=False),
    ),
    "adam": dict(
        optimizer=lambda: Adam(0.01, beta_1=0.8, beta_2=0.99),
        sk=dict(solver="adam", learning_rate_init=0.01, beta_1=0.8, beta_2=0.99),
    ),
}


@pytest.mark.parametrize("case", list(LOOP_CASES))
@pytest.mark.parametrize("weighted", [False, True])
def test_training_loop_matches_scikit_learn(case: str, weighted: bool, backend: str) -> None:
    """``xpnet.train.fit`` from the same weights, with the same batches (no shuffling),
    follows scikit-learn's MLPClassifier epoch by epoch: losses and weights."""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    w = rng.uniform(0.2, 2.0, 40) if weighted else None
    spec = LOOP_CASES[case]
    net = xpnet.MLP([3, 5, 1], activation="tanh", output="sigmoid", alpha=0.01, backend=backend)
    theirs = _sklearn_from_weights(
        MLPClassifier, net, X, y, hidden_layer_sizes=(5,), activation="tanh", alpha=0.01,
        batch_size=16, shuffle=False, tol=0.0, n_iter_no_change=100, **spec["sk"],
    )
    theirs.set_params(max_iter=5)
    with pytest.warns(Warning, match="Maximum iterations"):
        theirs.fit(X, y, sample_weight=w)
    history = fit(
        net, X, y, epochs=5, batch_size=16, shuffle=False, optimizer=spec["optimizer"](),
        sample_weight=w,
    )
    # scikit-learn clips probabilities in its log-loss; the gradients do not differ
    np.testing.assert_allclose(history.loss, theirs.loss_curve_[1:], rtol=1e-9)
    for (W, b), W_sk, b_sk in zip(net.params, theirs.coefs_, theirs.intercepts_, strict=True):
        np.testing.assert_allclose(xpnet.to_numpy(W), W_sk, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(xpnet.to_numpy(b), b_sk, rtol=1e-10, atol=1e-13)


def test_regression_loop_matches_scikit_learn() -> None:
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 2))
    y = X @ [1.0, -2.0] + 0.1 * rng.normal(size=30)
    net = xpnet.MLP([2, 4, 1], activation="relu", output="identity", alpha=0.001)
    theirs = _sklearn_from_weights(
        MLPRegressor, net, X, y, hidden_layer_sizes=(4,), activation="relu", alpha=0.001,
        batch_size=8, shuffle=False, solver="sgd", learning_rate_init=0.01, momentum=0.9,
        tol=0.0, n_iter_no_change=100,
    )
    theirs.set_params(max_iter=4)
    with pytest.warns(Warning, match="Maximum iterations"):
        theirs.fit(X, y)
    history = fit(
        net, X, y, epochs=4, batch_size=8, shuffle=False,
        optimizer=SGD(0.01, momentum=0.9, nesterov=True),
    )
    np.testing.assert_allclose(history.loss, theirs.loss_curve_[1:], rtol=1e-12)
    for (W, _), W_sk in zip(net.params, theirs.coefs_, strict=True):
        np.testing.assert_allclose(W, W_sk, rtol=1e-11, atol=1e-14)


# ---------------------------------------------------------------------- training controls
def _moons(n: int = 200):
    from xpnet.data import make_moons

    return make_moons(n, noise=0.2)


def test_default_fit_is_unchanged_plain_gradient_descent() -> None:
    """No new option given: the loop is full-batch GD with ``lr``, as before."""
    X, y = _moons(100)
    a, b = xpnet.MLP([2, 6, 1], seed=3), xpnet.MLP([2, 6, 1], seed=3)
    history = a.fit(X, y, epochs=5, lr=0.7)
    assert isinstance(history, History) and history.epochs == 5 and history.seconds > 0
    for _ in range(5):
        b.step(X, y, lr=0.7)
    for (Wa, ba), (Wb, bb) in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    assert history.validation_scores == [] and history.converged is False


def test_tol_and_n_iter_no_change_stop_training() -> None:
    X, y = _moons(100)
    net = xpnet.MLP([2, 6, 1])
    history = net.fit(X, y, epochs=500, lr=0.01, tol=1.0, n_iter_no_change=3)
    # the first epoch improves on best_loss = inf; none after it improves by 1.0, and
    # training stops when more than 3 epochs in a row did not improve: after epoch 5
    assert history.n_iter == 5 and history.converged
    assert history.best_loss == min(history.loss)
    longer = xpnet.MLP([2, 6, 1]).fit(X, y, epochs=30, lr=0.01, tol=1.0)
    assert longer.n_iter == 30  # n_iter_no_change=None: no stopping on the training loss


def test_adaptive_schedule_divides_the_rate_instead_of_stopping() -> None:
    X, y = _moons(100)
    net = xpnet.MLP([2, 6, 1])
    opt = SGD(0.01, schedule="adaptive")
    history = net.fit(X, y, epochs=12, optimizer=opt, tol=1.0, n_iter_no_change=2)
    assert history.n_iter == 12 and not history.converged
    # epoch 1 improves on inf; then every third epoch without improvement (4, 7, 10)
    # divides the rate by 5 and resets the count
    assert opt.learning_rate == pytest.approx(0.01 / 5**3)


def test_early_stopping_restores_the_best_weights(backend: str) -> None:
    X, y = _moons(300)
    net = xpnet.MLP([2, 16, 1], activation="relu", backend=backend, seed=1)
    snapshots = []
    history = net.fit(
        X, y, epochs=200, batch_size=32, optimizer=Adam(0.05), early_stopping=True,
        validation_fraction=0.2, n_iter_no_change=5, tol=0.0,
        callback=lambda epoch, loss: snapshots.append(net.params),
    )
    assert history.converged and history.n_iter < 200
    assert len(history.validation_scores) == history.n_iter
    best = int(np.argmax(history.validation_scores))  # first epoch with the best score
    assert history.best_validation_score == max(history.validation_scores)
    for (W, b), (W_best, b_best) in zip(net.params, snapshots[best], strict=True):
        np.testing.assert_array_equal(xpnet.to_numpy(W), xpnet.to_numpy(W_best))
        np.testing.assert_array_equal(xpnet.to_numpy(b), xpnet.to_numpy(b_best))
    assert best < history.n_iter - 1  # it really went back


def test_validation_data_and_scores() -> None:
    X, y = _moons(200)
    net = xpnet.MLP([2, 8, 1])
    history = net.fit(
        X[:150], y[:150], epochs=5, lr=1.0, validation_data=(X[150:], y[150:])
    )
    Xv, Yv = net.check_XY(X[150:], y[150:])
    score = float(validation_score(net, Xv, Yv))
    assert 0.0 <= score <= 1.0 and len(history.validation_scores) == 5
    assert score == pytest.approx(
        np.mean((xpnet.to_numpy(net.predict_proba(X[150:]))[:, 0] > 0.5) == y[150:])
    )


def test_validation_score_r2_matches_scikit_learn() -> None:
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(6)
    net = xpnet.MLP([2, 3, 2], output="identity")
    X, Y = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    Y[:, 1] = 0.7  # a constant output: R² is 0 unless predicted exactly (as sklearn)
    w = rng.uniform(0.5, 2.0, 20)
    Xc, Yc = net.check_XY(X, Y)
    pred = xpnet.to_numpy(net.forward(X))
    assert float(validation_score(net, Xc, Yc)) == pytest.approx(r2_score(Y, pred))
    assert float(validation_score(net, Xc, Yc, w)) == pytest.approx(
        r2_score(Y, pred, sample_weight=w)
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(sample_weight=np.ones(3)), r"sample_weight must have shape \(100,\)"),
        (dict(sample_weight=-np.ones(100)), "sample_weight must be non-negative"),
        (dict(sample_weight=np.full(100, np.nan)), "sample_weight contains NaN"),
        (dict(early_stopping=True, validation_fraction=0.001), "validation_fraction=0.001"),
        (dict(validation_fraction=1.5, early_stopping=True), "validation_fraction must be"),
        (dict(n_iter_no_change=0), "n_iter_no_change must be a positive integer"),
        (dict(tol=-1.0), "tol must be a finite number >= 0"),
        (dict(validation_data=(np.ones((3, 2)),)), "validation_data must be"),
        (dict(optimizer="rmsprop"), "optimizer must be 'sgd', 'adam', 'lbfgs'"),
    ],
)
def test_invalid_training_options(options: dict, message: str) -> None:
    X, y = _moons(100)
    with pytest.raises(ValueError, match=message):
        xpnet.MLP([2, 3, 1]).fit(X, y, epochs=2, **options)


def test_history_continues_across_calls() -> None:
    X, y = _moons(100)
    net = xpnet.MLP([2, 4, 1])
    opt = SGD(0.5, schedule="invscaling")
    history = fit(net, X, y, epochs=3, optimizer=opt)
    fit(net, X, y, epochs=2, optimizer=opt, history=history)
    assert history.epochs == 5 and history.n_iter == 2 and history.samples_seen == 500
    assert opt.learning_rate == pytest.approx(0.5 / 501**0.5)
    assert not math.isinf(history.best_loss)


def test_epoch_schedule_says_whether_iteration_ends_moves_the_rate():
    """A compiled chunk predicts its rates epoch by epoch only when the schedule may
    change them: SGD's invscaling does, constant and adaptive (changed by the stopping
    rule, checked after each epoch) do not, nor Adam; a subclass overriding
    ``iteration_ends`` is assumed to."""
    from xpnet.optim import SGD, Adam

    assert SGD(0.1, schedule="invscaling").epoch_schedule
    assert not SGD(0.1).epoch_schedule and not SGD(0.1, schedule="adaptive").epoch_schedule
    assert not Adam(0.01).epoch_schedule

    class Halving(Adam):
        def iteration_ends(self, time_step: int) -> None:
            self.learning_rate_init /= 2

    assert Halving(0.01).epoch_schedule
    opt = SGD(0.1, schedule="invscaling")
    before = opt.learning_rate
    opt.iteration_ends(100)
    assert opt.learning_rate != before  # (what the flag stands for)

"""The public contract of xpnet.MLP on every backend: shapes, dtypes, copies, determinism,
and numerical stability for large pre-activations."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import OUTPUTS, make_problem

import xpnet


def test_public_names():
    for name in ("MLP", "to_numpy", "available_backends", "BackendUnavailableError",
                 "get_backend", "__version__"):
        assert hasattr(xpnet, name)
    assert "numpy" in xpnet.available_backends()


@pytest.mark.parametrize("output", OUTPUTS)
def test_shapes_and_types(backend, dtype, output):
    X, Y = make_problem(output, m=10, n_in=3, n_out=4)
    net = xpnet.MLP([3, 5, 4], activation="relu", output=output, backend=backend,
                    dtype=dtype)
    xp = net.xp
    assert net.backend == backend and net.dtype == dtype
    for (W, b), (n_in, n_out) in zip(net.params, [(3, 5), (5, 4)]):
        assert W.shape == (n_in, n_out) and b.shape == (n_out,)
        assert W.dtype == getattr(xp, dtype) and b.dtype == getattr(xp, dtype)
    loss, grads = net.loss_and_grads(X, Y)
    assert loss.shape == () and loss.dtype == getattr(xp, dtype)
    assert type(loss).__module__.split(".")[0] == type(net.params[0][0]).__module__.split(".")[0]
    for (dW, db), (W, b) in zip(grads, net.params):
        assert dW.shape == W.shape and db.shape == b.shape and dW.dtype == W.dtype
    proba = net.predict_proba(X)
    assert proba.shape == (10, 4)
    prediction = xpnet.to_numpy(net.predict(X))
    expected_shape = (10,) if output == "softmax" else (10, 4)
    assert prediction.shape == expected_shape
    if output == "softmax":
        np.testing.assert_allclose(xpnet.to_numpy(xp.sum(proba, axis=1)), 1.0, rtol=1e-5)
        assert set(np.unique(prediction)) <= set(range(4))
    if output == "sigmoid":
        assert set(np.unique(prediction)) <= {0, 1}


def test_single_output_predictions_are_1d(backend):
    X, y = make_problem("sigmoid", m=9, n_in=2, n_out=1)
    net = xpnet.MLP([2, 3, 1], backend=backend)
    assert net.predict_proba(X).shape == (9, 1)
    labels = xpnet.to_numpy(net.predict(X))
    assert labels.shape == (9,)
    proba = xpnet.to_numpy(net.predict_proba(X))[:, 0]
    np.testing.assert_array_equal(labels, (proba >= 0.5).astype(int))
    regression = xpnet.MLP([2, 3, 1], output="identity", backend=backend)
    assert xpnet.to_numpy(regression.predict(X)).shape == (9,)


def test_step_returns_loss_before_update_and_descends(backend):
    X, Y = make_problem("softmax", m=20, n_in=3, n_out=3)
    net = xpnet.MLP([3, 6, 3], activation="tanh", output="softmax", backend=backend)
    before = float(net.loss(X, Y))
    returned = float(net.step(X, Y, lr=0.1))
    assert returned == pytest.approx(before, rel=1e-12)
    assert float(net.loss(X, Y)) < before


def test_params_are_copies_and_caller_arrays_are_never_mutated(backend):
    X, Y = make_problem("identity", m=8, n_in=3, n_out=2)
    X_copy, Y_copy = X.copy(), Y.copy()
    net = xpnet.MLP([3, 4, 2], output="identity", backend=backend)
    mine = [(np.array(xpnet.to_numpy(W)), np.array(xpnet.to_numpy(b))) for W, b in net.params]
    given = [(W.copy(), b.copy()) for W, b in mine]
    net.set_params(given)
    snapshot = net.params
    net.fit(X, Y, epochs=3, lr=0.1)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(Y, Y_copy)
    for (W, b), (W0, b0) in zip(given, mine):  # set_params copied its arguments
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)
    for (W, _), (W0, _) in zip(snapshot, mine):  # the snapshot did not follow training
        np.testing.assert_array_equal(xpnet.to_numpy(W), W0)
    assert not np.array_equal(xpnet.to_numpy(net.params[0][0]), mine[0][0])


def test_backend_arrays_are_accepted_as_input(backend):
    X, y = make_problem("sigmoid", m=12, n_in=3, n_out=1)
    net = xpnet.MLP([3, 4, 1], backend=backend)
    xp = net.xp
    X_backend = net.array_backend.asarray(X, dtype=xp.float64)
    y_backend = net.array_backend.asarray(y[:, 0])
    loss_native = float(net.loss(X_backend, y_backend))
    assert loss_native == pytest.approx(float(net.loss(X, y[:, 0])), rel=1e-15)
    assert float(net.loss(X.tolist(), y[:, 0].tolist())) == pytest.approx(loss_native)


def test_same_seed_same_training_other_seed_other_weights(backend):
    X, y = make_problem("softmax", m=40, n_in=3, n_out=3)
    runs = []
    for seed in (7, 7, 8):
        net = xpnet.MLP([3, 5, 3], output="softmax", backend=backend, seed=seed)
        runs.append(net.fit(X, y, epochs=3, lr=0.1, batch_size=8).loss)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_shuffle_changes_minibatch_order_but_not_full_batch():
    X, y = make_problem("softmax", m=40, n_in=3, n_out=3)
    losses = {}
    for shuffle in (True, False):
        for batch_size in (None, 8):
            net = xpnet.MLP([3, 5, 3], output="softmax", seed=3)
            losses[shuffle, batch_size] = net.fit(X, y, epochs=3, lr=0.1,
                                                 batch_size=batch_size, shuffle=shuffle).loss
    assert losses[True, None] == losses[False, None]
    assert losses[True, 8] != losses[False, 8]


def test_history_records_each_epoch_and_calls_back():
    X, y = make_problem("sigmoid", m=30, n_in=3, n_out=1)
    seen = []
    net = xpnet.MLP([3, 4, 1])
    history = net.fit(X, y[:, 0], epochs=4, lr=0.5, batch_size=7,
                      callback=lambda epoch, loss: seen.append((epoch, loss)))
    assert history.epochs == 4 and len(history.loss) == 4
    assert [epoch for epoch, _ in seen] == [0, 1, 2, 3]
    assert [loss for _, loss in seen] == history.loss
    assert history.seconds > 0


# ---------------------------------------------------------------- numerical stability
# Not the exp output: its prediction e^z itself overflows for z ~ 1e3 (the Poisson rate is
# not representable), as it does in scikit-learn; its loss is finite wherever e^z is.
@pytest.mark.parametrize("output", [name for name in OUTPUTS if name != "exp"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_no_nan_or_inf_for_pre_activations_up_to_1e3(backend, dtype, activation, output):
    """Weights chosen so every |Z| reaches 1e3: loss and gradients stay finite and the loss
    matches the float64 value computed by the stable formulas."""
    X = np.array([[1.0, -1.0], [-1.0, 1.0], [0.5, 0.5], [1.0, 1.0]])
    n_out = 1 if output != "softmax" else 2
    W1 = np.array([[1e3, -1e3, 5e2], [-1e3, 1e3, 5e2]])
    W2 = np.array([[1e3, -1e3], [-1e3, 1e3], [1.0, -1.0]])[:, :n_out]
    params = [(W1, np.zeros(3)), (W2, np.zeros(n_out))]
    Y = {"sigmoid": np.array([0, 1, 1, 0]), "softmax": np.array([1, 0, 1, 0]),
         "identity": np.array([1.0, -1.0, 0.0, 2.0])}[output]
    reference = xpnet.MLP([2, 3, n_out], activation=activation, output=output, dtype="float64")
    reference.set_params(params)
    net = xpnet.MLP([2, 3, n_out], activation=activation, output=output, backend=backend,
                    dtype=dtype)
    net.set_params(params)
    loss, grads = net.loss_and_grads(X, Y)
    assert np.isfinite(float(loss))
    for dW, db in grads:
        assert np.all(np.isfinite(xpnet.to_numpy(dW))) and np.all(np.isfinite(xpnet.to_numpy(db)))
    assert np.all(np.isfinite(xpnet.to_numpy(net.predict_proba(X))))
    rtol = 1e-12 if dtype == "float64" else 1e-5  # float32 rounding of values ~1e3..1e6
    assert float(loss) == pytest.approx(float(reference.loss(X, Y)), rel=rtol)


def test_stable_losses_are_exact_where_naive_ones_fail():
    """BCE at z = +-1e3 is |z| for the wrong label and 0 for the right one (the naive
    log(sigmoid) would give inf); softmax CE likewise."""
    net = xpnet.MLP([1, 1], output="sigmoid")
    net.set_params([(np.array([[1e3]]), np.zeros(1))])
    assert float(net.loss(np.array([[1.0]]), np.array([0]))) == pytest.approx(1e3)
    assert float(net.loss(np.array([[1.0]]), np.array([1]))) == pytest.approx(0.0, abs=1e-300)
    softmax = xpnet.MLP([1, 2], output="softmax")
    softmax.set_params([(np.array([[1e3, -1e3]]), np.zeros(2))])
    assert float(softmax.loss(np.array([[1.0]]), np.array([1]))) == pytest.approx(2e3)


def test_repr_mentions_configuration():
    text = repr(xpnet.MLP([2, 4, 1], activation="tanh", alpha=0.5))
    assert "MLP([2, 4, 1]" in text and "'tanh'" in text and "alpha=0.5" in text


def test_to_numpy_handles_each_backend(backend):
    net = xpnet.MLP([2, 3, 1], backend=backend)
    W = net.params[0][0]
    converted = xpnet.to_numpy(W)
    assert isinstance(converted, np.ndarray) and converted.shape == (2, 3)

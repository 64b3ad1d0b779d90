"""Finite-difference checks of the hand-written backpropagation, on every backend.

Central differences in float64 with step h have truncation error O(h^2 |f'''|) and rounding
error O(eps |f| / h); h = 1e-6 balances them near 1e-10 relative, so a relative error
below 1e-6 leaves four orders of margin yet catches any wrong term (a wrong formula gives
errors of order 1).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ACTIVATIONS, OUTPUTS, make_problem

import xpnet

H = 1e-6
MAX_RELATIVE_ERROR = 1e-6


def numeric_gradients(net: xpnet.MLP, X, Y) -> list[np.ndarray]:
    """Central differences of the loss with respect to every parameter entry."""
    base = [xpnet.to_numpy(p).copy() for pair in net.params for p in pair]
    grads = []
    for index, array in enumerate(base):
        grad = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            values = []
            for sign in (1.0, -1.0):
                trial = [p.copy() for p in base]
                trial[index][position] += sign * H
                net.set_params(list(zip(trial[0::2], trial[1::2])))
                values.append(float(net.loss(X, Y)))
            grad[position] = (values[0] - values[1]) / (2 * H)
        grads.append(grad)
    net.set_params(list(zip(base[0::2], base[1::2])))
    return grads


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    denominator = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / max(denominator, 1e-300))


def check_gradients(net: xpnet.MLP, X, Y) -> None:
    _, grads = net.loss_and_grads(X, Y)
    analytic = [xpnet.to_numpy(g) for pair in grads for g in pair]
    numeric = numeric_gradients(net, X, Y)
    names = [f"{kind}{layer + 1}" for layer in range(net.n_layers) for kind in ("dW", "db")]
    for name, a, n in zip(names, analytic, numeric):
        assert np.all(np.isfinite(a)), name
        error = relative_error(a, n)
        assert error < MAX_RELATIVE_ERROR, f"{name}: relative error {error:.2e}"


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_finite_differences_every_pair(backend, activation, output):
    X, Y = make_problem(output, seed=ACTIVATIONS.index(activation))
    net = xpnet.MLP([3, 5, 4, 3], activation=activation, output=output, backend=backend,
                    dtype="float64", seed=1)
    check_gradients(net, X, Y)


@pytest.mark.parametrize("output", OUTPUTS)
def test_finite_differences_with_l2_penalty(backend, output):
    X, Y = make_problem(output, seed=3)
    net = xpnet.MLP([3, 4, 3], activation="tanh", output=output, backend=backend,
                    dtype="float64", seed=2, alpha=0.7)
    check_gradients(net, X, Y)


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_finite_differences_single_output_and_1d_target(backend, output):
    """The lesson's shape: one output unit and a (m,) target."""
    X, Y = make_problem(output, n_in=2, n_out=1, seed=4)
    net = xpnet.MLP([2, 4, 1], activation="sigmoid", output=output, backend=backend,
                    dtype="float64", seed=5)
    check_gradients(net, X, Y[:, 0])


def test_finite_differences_no_hidden_layer(backend):
    """Logistic regression: the output layer alone, including the one-hot target form."""
    X, labels = make_problem("softmax", seed=6)
    one_hot = np.eye(3)[labels]
    net = xpnet.MLP([3, 3], output="softmax", backend=backend, dtype="float64", seed=6)
    check_gradients(net, X, one_hot)


def test_mixed_activations_per_layer(backend):
    X, Y = make_problem("identity", seed=7)
    net = xpnet.MLP([3, 4, 5, 3], activation=["relu", "tanh"], output="identity",
                    backend=backend, dtype="float64", seed=7, alpha=0.1)
    assert net.activations == ("relu", "tanh")
    check_gradients(net, X, Y)

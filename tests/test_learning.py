"""The networks learn: the lesson's network on two moons, a softmax network on digits."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet.data import make_moons, train_test_split


def accuracy(net: xpnet.MLP, X, y) -> float:
    return float(np.mean(xpnet.to_numpy(net.predict(X)) == y))


def test_lesson_network_learns_two_moons(backend):
    """2 inputs, one hidden sigmoid layer, sigmoid output, BCE, full-batch descent."""
    X, y = make_moons(400, noise=0.1, seed=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    net = xpnet.MLP([2, 8, 1], activation="sigmoid", output="sigmoid", backend=backend,
                    dtype="float64", seed=0)
    history = net.fit(X, y, epochs=2000, lr=3.0)
    assert history.loss[-1] < history.loss[0] / 10
    assert accuracy(net, X, y) >= 0.97


def test_float32_learns_two_moons(backend):
    X, y = make_moons(400, noise=0.1, seed=1)
    net = xpnet.MLP([2, 16, 1], activation="tanh", output="sigmoid", backend=backend,
                    dtype="float32", seed=1)
    net.fit(X, y, epochs=100, lr=0.5, batch_size=32)
    assert accuracy(net, X, y) >= 0.97


def test_softmax_network_learns_digits(backend):
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn not installed")
    digits = datasets.load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_fraction=0.25, seed=0
    )
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-8
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    net = xpnet.MLP([64, 32, 10], activation="tanh", output="softmax", backend=backend,
                    dtype="float64", seed=0)
    net.fit(X_train, y_train, epochs=30, lr=0.1, batch_size=32)
    assert accuracy(net, X_test, y_test) >= 0.95


def test_regression_fits_a_smooth_function(backend):
    rng = np.random.default_rng(5)
    X = rng.uniform(-2, 2, size=(256, 1))
    y = np.sin(X[:, 0])
    net = xpnet.MLP([1, 16, 1], activation="tanh", output="identity", backend=backend,
                    dtype="float64", seed=5)
    history = net.fit(X, y, epochs=300, lr=0.1, batch_size=32)
    residual = xpnet.to_numpy(net.predict(X)) - y
    assert history.loss[-1] < 1e-3
    assert float(np.sqrt(np.mean(residual**2))) < 0.05

"""Peer equivalence: full-batch SGD steps of the lesson's sigmoid network match
scikit-learn's MLPClassifier number for number from the same weights.

scikit-learn is configured to do exactly plain gradient descent: solver "sgd",
momentum 0, constant learning rate, batch_size = m, no shuffling, warm start from our
weights. Both run in float64 with the same formulas up to summation order, so 1e-10
relative is generous (measured ~1e-15). scikit-learn clips probabilities to [eps, 1-eps]
in its log loss; the data here keep outputs far from saturation, where that is a no-op.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import assert_close

import xpnet
from xpnet.data import make_moons

sklearn_mlp = pytest.importorskip(
    "sklearn.neural_network", reason="scikit-learn not installed: peer test needs it"
)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

RTOL = 1e-10


def sklearn_after_steps(net: xpnet.MLP, X, y, steps: int, lr: float, alpha: float):
    clf = sklearn_mlp.MLPClassifier(
        hidden_layer_sizes=net.layer_sizes[1:-1], activation="logistic", solver="sgd",
        alpha=alpha, batch_size=X.shape[0], learning_rate="constant",
        learning_rate_init=lr, momentum=0.0, nesterovs_momentum=False, shuffle=False,
        max_iter=1, tol=0.0, n_iter_no_change=10**6, warm_start=True, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)  # initialises sklearn's layers; replaced by our weights below
        clf.coefs_ = [np.array(W) for W, _ in net.params]
        clf.intercepts_ = [np.array(b) for _, b in net.params]
        clf.set_params(max_iter=steps)
        clf.fit(X, y)  # warm start: `steps` epochs of one full batch each
    return clf


@pytest.mark.parametrize("alpha", [0.0, 0.01, 1.0])
@pytest.mark.parametrize("steps", [1, 2])
def test_gradient_descent_steps_match_mlpclassifier(steps, alpha):
    X, y = make_moons(100, noise=0.2, seed=3)
    lr = 0.5
    net = xpnet.MLP([2, 4, 1], activation="sigmoid", output="sigmoid", dtype="float64",
                    seed=4, alpha=alpha)
    clf = sklearn_after_steps(net, X, y, steps, lr, alpha)
    losses = [float(net.step(X, y, lr=lr)) for _ in range(steps)]
    # loss_curve_ starts with the initialising fit's epoch; the last `steps` are ours
    np.testing.assert_allclose(losses, clf.loss_curve_[-steps:], rtol=RTOL)
    for layer, ((W, b), W_sk, b_sk) in enumerate(
        zip(net.params, clf.coefs_, clf.intercepts_), start=1
    ):
        assert_close(W, W_sk, RTOL, f"W{layer}")
        assert_close(b, b_sk, RTOL, f"b{layer}")
    np.testing.assert_array_equal(xpnet.to_numpy(net.predict(X)), clf.predict(X))
    assert_close(net.predict_proba(X)[:, 0], clf.predict_proba(X)[:, 1], RTOL, "proba")

"""The estimators keep their weights on the network's device between calls.

``partial_fit`` and warm starts used to copy every weight to the host and back on each
call, and ``fit`` copied ``coefs_`` out after every call. Here the copies are counted
by wrapping xpnet's own conversion points (``xpnet.sklearn.to_numpy``, used for every
device-to-host copy of the estimators, and ``MLP.set_params``, through which weights are
loaded into the network): instrumentation of our code, the backends run for real.
"""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest

import xpnet

pytest.importorskip("sklearn", reason="scikit-learn (the 'sklearn' extra) not installed")

import xpnet.sklearn as xsk  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None


class Transfers:
    """Counts weight loads into the network and device-to-host copies of the estimators."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loads = 0
        self.to_host = 0
        real_set_params, real_to_numpy = xpnet.MLP.set_params, xsk.to_numpy

        def set_params(net, params):  # type: ignore[no-untyped-def]
            self.loads += 1
            return real_set_params(net, params)

        def to_numpy(array):  # type: ignore[no-untyped-def]
            self.to_host += 1
            return real_to_numpy(array)

        monkeypatch.setattr(xpnet.MLP, "set_params", set_params)
        monkeypatch.setattr(xsk, "to_numpy", to_numpy)

    def reset(self) -> None:
        self.loads = self.to_host = 0


def _data(m: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, m)
    X = rng.normal(size=(m, 4)) + y[:, None]
    return X, y


BACKENDS = ["numpy"] + (["torch"] if HAVE_TORCH else [])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_partial_fit_loop_moves_no_weights(monkeypatch, backend_name):
    X, y = _data()
    est = xsk.MLPClassifier((8,), solver="sgd", random_state=0, backend=backend_name)
    counter = Transfers(monkeypatch)
    est.partial_fit(X, y, classes=[0, 1, 2])
    assert counter.loads == 1  # the initial weights
    counter.reset()
    for _ in range(5):
        est.partial_fit(X, y)
    assert (counter.loads, counter.to_host) == (0, 0), (
        f"5 partial_fit calls loaded the weights {counter.loads} times and copied "
        f"{counter.to_host} arrays to the host"
    )
    # reading coefs_ copies each array out once, and only once per fit
    first = est.coefs_
    assert counter.to_host == 4  # 2 weights + 2 biases
    assert est.coefs_ is first and est.intercepts_[0].shape == (8,)
    assert counter.to_host == 4
    counter.reset()
    est.partial_fit(X, y)  # read but unchanged: nothing to load
    assert (counter.loads, counter.to_host) == (0, 0)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_warm_start_moves_no_weights_unless_the_user_changed_them(monkeypatch, backend_name):
    X, y = _data()
    est = xsk.MLPClassifier((8,), solver="adam", max_iter=3, warm_start=True, random_state=0,
                            backend=backend_name)
    counter = Transfers(monkeypatch)
    with pytest.warns(Warning):  # ConvergenceWarning: 3 iterations
        est.fit(X, y)
    counter.reset()
    with pytest.warns(Warning):
        est.fit(X, y)
    assert (counter.loads, counter.to_host) == (0, 0)


@pytest.mark.parametrize("edit", ["assign list", "assign item", "in place"])
def test_changed_weights_are_loaded_before_the_next_partial_fit(monkeypatch, edit):
    X, y = _data()
    est = xsk.MLPRegressor(
        hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=1e-12, random_state=0
    )
    est.partial_fit(X, y.astype(float))
    zero = [np.zeros_like(W) for W in est.coefs_]
    if edit == "assign list":
        est.coefs_ = zero
    elif edit == "assign item":
        est.coefs_[0] = zero[0]
        est.coefs_[1] = zero[1]
    else:
        for W in est.coefs_:
            W[...] = 0.0
    counter = Transfers(monkeypatch)
    est.partial_fit(X, y.astype(float))
    assert counter.loads == 1
    # with all weights zero and a negligible step, every prediction is the output bias
    predictions = est.predict(X)
    np.testing.assert_allclose(predictions, np.full(len(X), est.intercepts_[-1][0]),
                               atol=1e-9)


def test_pickle_round_trip_keeps_the_trained_weights():
    X, y = _data()
    est = xsk.MLPClassifier((8,), solver="sgd", random_state=0)
    for _ in range(3):
        est.partial_fit(X, y, classes=[0, 1, 2])
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    for mine, theirs in zip(again.coefs_, est.coefs_, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    again.partial_fit(X, y)
    est.partial_fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_device_input_keeps_weights_on_the_device(monkeypatch):
    import torch

    X, y = _data()
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    est = xsk.MLPClassifier((8,), solver="sgd", random_state=0)
    est.partial_fit(Xt, yt, classes=[0, 1, 2])
    counter = Transfers(monkeypatch)
    for _ in range(3):
        est.partial_fit(Xt, yt)
    # y (labels) is encoded on the host: one to_numpy per call; no weight moves at all
    assert counter.loads == 0 and counter.to_host == 3
    assert all(isinstance(W, torch.Tensor) for W in est.coefs_)
    W0 = est.coefs_[0]
    W0.zero_()  # an in-place edit of a device array is seen too
    counter.reset()
    est.partial_fit(Xt, yt)
    assert counter.loads == 1

"""Behaviours that mutation testing found untested (issue 8, section 6).

Each test here fails for one targeted mutant of the core that survived the rest of the
suite (``nox -s mutation`` runs them all; see ``tests/mutation/run_mutants.py``):

- sample weights ignored whenever mini-batches are shuffled;
- the early-stopping validation rows also used for training;
- a test row leaking into training in the non-stratified split;
- the regression target standardised with test-split statistics in the CLI;
- the initial-weight scale (He before relu, Glorot otherwise and at the output);
- the class threshold at an output of exactly 0.5 (scikit-learn's rule: strictly above);
- the integer dtype of class predictions.
"""

from __future__ import annotations

import importlib.util
import json
import math
import pickle

import numpy as np
import pytest
from test_cli import run, write_csv

import xpnet
from xpnet.data import make_moons, split_indices, train_test_split
from xpnet.metrics import predicted_classes
from xpnet.train import fit, validation_rows

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


# ----------------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("shuffle", [True, False])
def test_sample_weights_count_with_shuffled_mini_batches(shuffle):
    """Each row appears twice, once with its label and once with the label flipped; the
    flipped copies weigh 0. Honoured weights learn the moons; ignored weights see pure
    contradiction and stay at chance."""
    X, y = make_moons(200, noise=0.1, seed=0)
    X2 = np.vstack([X, X])
    y2 = np.concatenate([y, 1 - y])
    w = np.concatenate([np.ones(200), np.zeros(200)])
    net = xpnet.MLP([2, 8, 1], activation="tanh", seed=0)
    net.fit(X2, y2, epochs=60, lr=0.5, batch_size=16, shuffle=shuffle, sample_weight=w)
    accuracy = float(np.mean(xpnet.to_numpy(net.predict(X)) == y))
    assert accuracy > 0.8, accuracy


def test_weighted_shuffled_epoch_equals_the_same_batches_by_hand():
    """Exact check: one shuffled mini-batch epoch with weights is the weighted step on each
    batch of the permutation drawn from the same generator."""
    from xpnet.optim import SGD

    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 2, size=30)
    w = rng.uniform(0.0, 3.0, size=30)
    net = xpnet.MLP([3, 4, 1], seed=1)
    by_hand = xpnet.MLP([3, 4, 1], seed=1)
    fit(net, X, y, epochs=1, lr=0.3, batch_size=8, sample_weight=w,
        rng=np.random.default_rng(5))
    order = np.random.default_rng(5).permutation(30)
    Xc, Yc = by_hand.check_XY(X, y)
    for first in range(0, 30, 8):
        rows = order[first:first + 8]
        _, grads = by_hand._loss_and_grads(Xc[rows], Yc[rows], np.asarray(w[rows]))
        SGD(0.3).update(by_hand._params, grads)
    for (W, b), (W_hand, b_hand) in zip(net.params, by_hand.params):
        np.testing.assert_allclose(W, W_hand, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b, b_hand, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- early stopping
def test_early_stopping_validation_rows_are_not_trained_on():
    m = 50
    X = np.arange(m, dtype=np.float64).reshape(-1, 1) * np.ones((1, 2))  # row id in X
    y = np.arange(m) % 2
    net = xpnet.MLP([2, 3, 1])
    Xc, Yc = net.check_XY(X, y)
    train_rows, val_rows = validation_rows(m, 0.2, np.random.default_rng(0))
    X_tr, X_val = Xc[train_rows], Xc[val_rows]
    train_ids = set(xpnet.to_numpy(X_tr)[:, 0].astype(int))
    val_ids = set(xpnet.to_numpy(X_val)[:, 0].astype(int))
    assert len(val_ids) == math.ceil(0.2 * m) == 10
    assert not train_ids & val_ids
    assert train_ids | val_ids == set(range(m))
    # ... and fit trains on the rest only: 40 rows per epoch.
    history = xpnet.MLP([2, 3, 1]).fit(X, y, epochs=3, early_stopping=True,
                                       validation_fraction=0.2, n_iter_no_change=5)
    assert history.samples_seen == 3 * 40


# ----------------------------------------------------------------------------- splits
@pytest.mark.parametrize("m", [2, 3, 10, 101])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_plain_split_is_a_partition(m, fraction):
    train, test = split_indices(m, fraction, seed=3)  # no stratify
    assert len(test) == min(max(round(m * fraction), 1), m - 1)
    assert not set(train) & set(test)
    assert sorted([*train, *test]) == list(range(m))

    X = np.arange(m, dtype=np.float64).reshape(-1, 1)
    X_train, X_test, y_train, y_test = train_test_split(X, np.arange(m), fraction, seed=3)
    assert not set(X_train[:, 0]) & set(X_test[:, 0])
    assert sorted([*X_train[:, 0], *X_test[:, 0]]) == list(range(m))
    np.testing.assert_array_equal(X_train[:, 0], y_train)
    np.testing.assert_array_equal(X_test[:, 0], y_test)


# ----------------------------------------------------------------------------- CLI statistics
def test_cli_standardises_features_and_target_with_training_rows_only(tmp_path):
    rng = np.random.default_rng(4)
    m = 40
    X = rng.normal(size=(m, 2)) * [3.0, 0.5] + [10.0, -2.0]
    y = rng.exponential(50.0, size=m) + 100.0  # skewed: train and test statistics differ
    path = write_csv(tmp_path / "reg.csv", ["u", "v", "price"],
                     np.column_stack([X, y]).tolist())
    model = tmp_path / "r.npz"
    proc = run("train", "--data", path, "--layers", "3", "--epochs", "1", "--seed", "5",
               "--test-fraction", "0.25", "--save", model, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data"]["task"] == "regression"
    train, test = split_indices(m, 0.25, seed=5)  # regression: no stratification
    meta = xpnet.io.read_header(model)["metadata"]
    np.testing.assert_allclose(meta["target_standardize"]["mean"], [y[train].mean()],
                               rtol=1e-12)
    np.testing.assert_allclose(meta["target_standardize"]["scale"], [y[train].std()],
                               rtol=1e-12)
    np.testing.assert_allclose(meta["standardize"]["mean"], X[train].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(meta["standardize"]["scale"], X[train].std(axis=0), rtol=1e-12)
    assert abs(y[test].mean() - y[train].mean()) > 1.0  # the check above can tell them apart


# ----------------------------------------------------------------------------- initial weights
def _weights(net):
    return [xpnet.to_numpy(W) for W, _ in net.params]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "identity"])
def test_initial_weight_scale(activation):
    """He normal (std sqrt(2/fan_in)) before relu, Glorot uniform (limit
    sqrt(6/(fan_in+fan_out))) before the others and always at the output layer."""
    fan_in, hidden, n_out = 400, 300, 200
    W1, W2 = _weights(xpnet.MLP([fan_in, hidden, n_out], activation=activation, seed=11))
    if activation == "relu":
        std = math.sqrt(2.0 / fan_in)
        assert W1.std() == pytest.approx(std, rel=0.02)  # 120,000 draws: 3 sigma is ~0.6%
        assert abs(W1.mean()) < 0.02 * std
        assert np.abs(W1).max() > 3.5 * std  # normal tails, not a uniform's sqrt(3)*std
    else:
        limit = math.sqrt(6.0 / (fan_in + hidden))
        assert np.abs(W1).max() <= limit
        assert np.abs(W1).max() > 0.999 * limit
        assert W1.std() == pytest.approx(limit / math.sqrt(3.0), rel=0.02)
    out_limit = math.sqrt(6.0 / (hidden + n_out))  # the output layer: Glorot whatever g is
    assert out_limit * 0.999 < np.abs(W2).max() <= out_limit
    assert W2.std() == pytest.approx(out_limit / math.sqrt(3.0), rel=0.02)


def test_initial_biases_are_zero_and_weights_follow_the_seed():
    a, b = xpnet.MLP([5, 4, 3], seed=2), xpnet.MLP([5, 4, 3], seed=2)
    for (Wa, ba), (Wb, _) in zip(a.params, b.params):
        np.testing.assert_array_equal(Wa, Wb)
        assert not np.any(ba)
    assert not np.array_equal(_weights(a)[0], _weights(xpnet.MLP([5, 4, 3], seed=3))[0])


# ----------------------------------------------------------------------------- threshold 0.5
def _half_everywhere(backend, outputs=1, dtype="float64"):
    """A network whose sigmoid outputs are exactly 0.5: zero weights and biases give
    ``sigmoid(0) = 0.5`` exactly in every floating-point type."""
    net = xpnet.MLP([2, 3, outputs], backend=backend, dtype=dtype)
    net.set_params([(np.zeros((2, 3)), np.zeros(3)), (np.zeros((3, outputs)), np.zeros(outputs))])
    return net


def test_an_output_of_exactly_one_half_is_class_zero(backend, dtype):
    X = np.array([[1.0, 2.0], [-3.0, 0.5]])
    net = _half_everywhere(backend, dtype=dtype)
    assert np.all(xpnet.to_numpy(net.predict_proba(X)) == 0.5)
    np.testing.assert_array_equal(xpnet.to_numpy(net.predict(X)), [0, 0])
    multi = _half_everywhere(backend, outputs=3, dtype=dtype)
    np.testing.assert_array_equal(xpnet.to_numpy(multi.predict(X)), np.zeros((2, 3)))
    np.testing.assert_array_equal(predicted_classes(np.array([[0.5], [0.5000001]])), [0, 1])


@pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_threshold_is_scikit_learns_in_core_metrics_and_estimators():
    from sklearn.preprocessing import LabelBinarizer

    from xpnet.sklearn import MLPClassifier

    # scikit-learn's own rule, read from the library rather than written down here
    expected = int(LabelBinarizer().fit([0, 1]).inverse_transform(np.array([[0.5]]))[0])
    assert expected == 0
    X = np.array([[1.0, 2.0], [-3.0, 0.5]])
    assert xpnet.to_numpy(_half_everywhere("numpy").predict(X)).tolist() == [expected] * 2
    assert predicted_classes(np.array([[0.5]])).tolist() == [expected]
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(
        np.vstack([X, X]), np.array([0, 1, 0, 1]))
    clf.coefs_ = [np.zeros_like(c) for c in clf.coefs_]
    clf.intercepts_ = [np.zeros_like(c) for c in clf.intercepts_]
    clf = pickle.loads(pickle.dumps(clf))  # without its network: rebuilt from coefs_
    assert np.all(clf.predict_proba(X) == 0.5)
    assert clf.predict(X).tolist() == [clf.classes_[expected]] * 2


# ----------------------------------------------------------------------------- prediction dtype
@pytest.mark.parametrize(("output", "n_out"), [("sigmoid", 1), ("sigmoid", 3), ("softmax", 3)])
def test_class_predictions_are_int64_on_every_backend(backend, output, n_out):
    net = xpnet.MLP([2, 4, n_out], output=output, backend=backend)
    pred = net.predict(np.random.default_rng(0).normal(size=(5, 2)))
    assert xpnet.to_numpy(pred).dtype == np.int64
    assert str(pred.dtype).rsplit(".", 1)[-1] == "int64"  # on the backend itself
    assert predicted_classes(np.full((2, n_out), 0.2)).dtype == np.int64

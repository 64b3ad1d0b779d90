"""The exp output with the half Poisson deviance, in the core and the CLI."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from test_cli import assert_error, run, write_csv

import xpnet


def test_exp_output_loss_is_the_half_poisson_deviance() -> None:
    """L = (1/m) Σ [y log(y/a) - y + a], with 0 log 0 = 0: zero at a = y, and the
    formula's value elsewhere."""
    net = xpnet.MLP([1, 1], output="exp")
    net.set_params([(np.array([[0.0]]), np.log(np.array([2.0])))])  # a = 2 everywhere
    X = np.zeros((3, 1))
    assert float(net.loss(X, np.array([2.0, 2.0, 2.0]))) == pytest.approx(0.0, abs=1e-15)
    y = np.array([0.0, 1.0, 5.0])
    expected = np.mean([0 - 0 + 2, np.log(1 / 2) - 1 + 2, 5 * np.log(5 / 2) - 5 + 2])
    assert float(net.loss(X, y)) == pytest.approx(expected, rel=1e-14)
    assert net.loss_name == "half_poisson_deviance"


def test_exp_output_refuses_negative_targets() -> None:
    net = xpnet.MLP([2, 3, 1], output="exp")
    with pytest.raises(ValueError, match="must be >= 0"):
        net.fit(np.zeros((4, 2)), np.array([1.0, -1.0, 0.0, 2.0]), epochs=1)


def test_poisson_regression_from_csv(tmp_path) -> None:
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, size=(200, 2))
    rate = np.exp(1.0 + 0.8 * X[:, 0] - 0.5 * X[:, 1])
    y = rng.poisson(rate)
    path = write_csv(tmp_path / "counts.csv", ["u", "v", "visits"],
                     np.column_stack([X.round(6), y]).tolist())
    proc = run("train", "--data", path, "--output", "exp", "--layers", "4", "--epochs", "60",
               "--lr", "0.05", "--batch-size", "20", "--standardize", "--json",
               "--save", tmp_path / "p.npz")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["network"]["output"] == "exp"
    assert report["network"]["loss"] == "half_poisson_deviance"
    proc = run("predict", tmp_path / "p.npz", "--data", path)
    assert proc.returncode == 0, proc.stderr
    predicted = np.array([float(r["prediction"]) for r in csv.DictReader(io.StringIO(proc.stdout))])
    assert np.all(predicted > 0)  # rates, in the target's units (not standardised)
    assert np.corrcoef(predicted, rate)[0, 1] > 0.9
    negative = write_csv(tmp_path / "neg.csv", ["u", "y"], [[0.1, 1], [0.2, -1], [0.3, 2]])
    assert_error(run("train", "--data", negative, "--output", "exp"), "target >= 0")


def test_gradcheck_and_explain_know_the_exp_output() -> None:
    proc = run("gradcheck", "--output", "exp", "--layers", "3,4,2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["passed"] is True
    proc = run("explain", "--output", "exp", "--layers", "3,4,2")
    assert proc.returncode == 0, proc.stderr
    assert "half Poisson deviance" in proc.stdout and "exp(Z2)" in proc.stdout

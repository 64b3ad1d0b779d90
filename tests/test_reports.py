"""What the reports say (issue 16, parts 3, 5, 9 and 10): the target ``evaluate`` scores,
numbers of bounded width, strict JSON, non-finite outputs, and the rough edges of the
command line and the pure step. Every test runs the real CLI on real files."""

from __future__ import annotations

import csv
import importlib.util
import json
import re

import numpy as np
import pytest
from test_cli import assert_error, run, write_csv

import xpnet
from xpnet.io import read_header
from xpnet.metrics import r2_score, score

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
# A report line may hold a long name, but never a number of more than 17 digits in a row
LONG_NUMBER = re.compile(r"\d{18,}")
NUMBER = re.compile(r"[-+]?[0-9][0-9,.]*(?:e[-+]?[0-9]+)?")


def strict_loads(text):
    """``json.loads`` that refuses the tokens NaN, Infinity and -Infinity."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def assert_bounded(text):
    assert not LONG_NUMBER.search(text), LONG_NUMBER.search(text).group()[:40] + "..."
    numbers = [token for token in text.split() if NUMBER.fullmatch(token)]
    assert numbers and max(map(len, numbers)) <= 12, max(numbers, key=len)


def write_regression(path, scale, rows=120, seed=0):
    """A CSV ``a,b,c,y`` with ``y`` linear in the features times ``scale``; the target
    cells are written as ``repr`` writes them, with a few spellings a file may have."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    y = (X @ [1.0, 2.0, 3.0] + 5.0) * scale
    cells = [repr(float(v)) for v in y]
    cells[0] = f"{y[0]:.6E}"  # upper-case exponent, kept as it is
    cells[1] = f" {cells[1]} "  # surrounding spaces: stripped
    return write_csv(path, ["a", "b", "c", "y"],
                     [[f"{p:.6f}", f"{q:.6f}", f"{r:.6f}", t]
                      for (p, q, r), t in zip(X, cells, strict=True)]), cells


# ----------------------------------------------------------------- part 3: the target
@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """iris.csv (target ``species``) and the model trained on it."""
    folder = tmp_path_factory.mktemp("iris")
    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    rows = []
    for k, name in enumerate(names):
        for point in rng.normal([5 + k, 3 - k, 1.5 + 2 * k, 0.2 + k], 0.3, size=(40, 4)):
            rows.append([f"{v:.2f}" for v in point] + [name])
    header = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    write_csv(folder / "iris.csv", [*header, "species"], rows)
    write_csv(folder / "renamed.csv", [*header, "label"], rows)
    unseen = [row[:4] + [label] for row, label in zip(rows[:12], ["cat", "dog"] * 6,
                                                       strict=True)] + rows[12:]
    write_csv(folder / "unseen.csv", [*header, "species"], unseen)
    proc = run("train", "--data", folder / "iris.csv", "--epochs", "200", "--save",
               folder / "m.npz", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return folder


def test_evaluate_never_switches_to_another_target_column(iris):
    """The target renamed ``label``: today's code scored the last column, exit 0."""
    assert_error(run("evaluate", iris / "m.npz", "--data", iris / "renamed.csv"),
                 "renamed.csv has no target column 'species' (the model's target)",
                 "its columns besides the model's 4 features are 'label'", "--target")
    proc = run("evaluate", iris / "m.npz", "--data", iris / "renamed.csv",
               "--target", "label", "--json")
    assert proc.returncode == 0, proc.stderr
    assert strict_loads(proc.stdout)["accuracy"] >= 0.9


def test_labels_the_model_never_saw_are_counted_not_scored(iris):
    assert_error(run("evaluate", iris / "m.npz", "--data", iris / "unseen.csv"),
                 "12 rows of unseen.csv have labels the model never saw ('cat', 'dog')",
                 "the model's classes are 'setosa', 'versicolor', 'virginica'")
    # the library's score refuses class indices the network has no output for
    net = xpnet.load(iris / "m.npz")
    with pytest.raises(ValueError, match="labels must lie in"):
        score(net, np.zeros((2, 4)), np.array([0, 3]), "multiclass")


@pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn's data sets")
def test_a_wine_model_on_a_breast_cancer_file_is_refused(tmp_path):
    """The issue's case: f1..f13 picked out of f1..f30 and the last column scored
    (accuracy 0.0703, exit 0)."""
    from sklearn.datasets import load_breast_cancer, load_wine

    for name, bunch, target in (("wine", load_wine(), "cultivar"),
                                ("cancer", load_breast_cancer(), "diagnosis")):
        n = bunch.data.shape[1]
        write_csv(tmp_path / f"{name}.csv", [*(f"f{i + 1}" for i in range(n)), target],
                  [[*map(repr, row.tolist()), int(t)]
                   for row, t in zip(bunch.data, bunch.target, strict=True)])
    proc = run("train", "--data", tmp_path / "wine.csv", "--epochs", "100", "--save",
               tmp_path / "wine.npz", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert_error(run("evaluate", tmp_path / "wine.npz", "--data", tmp_path / "cancer.csv"),
                 "cancer.csv has no target column 'cultivar' (the model's target)",
                 "'f14'", "(18 in all)", "--target")


# ----------------------------------------------------------------- part 5: numbers
def test_a_diverging_loss_is_printed_in_bounded_width():
    """``--lr 1e300``: the loss was printed with 300 digits."""
    proc = run("train", "--lr", "1e300", "--epochs", "3")
    assert proc.returncode == 0, proc.stderr
    loss = next(line for line in proc.stdout.splitlines() if line.startswith("loss"))
    assert re.search(r"loss +\d\.\d+e\+\d{3} \(last epoch\)", loss), loss
    assert_bounded(proc.stdout)


@pytest.mark.parametrize("scale", [1e150, 1e-300])
def test_huge_and_tiny_targets_read_back_as_written(tmp_path, scale):
    data, cells = write_regression(tmp_path / "data.csv", scale)
    proc = run("train", "--data", data, "--epochs", "50", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    assert_bounded(proc.stdout)
    proc = run("evaluate", tmp_path / "m.npz", "--data", data)
    assert proc.returncode == 0, proc.stderr
    assert_bounded(proc.stdout)
    proc = run("predict", tmp_path / "m.npz", "--data", data, "--out", tmp_path / "p.csv")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "true_y", "prediction"]
    assert [row[1] for row in rows[1:]] == [cell.strip() for cell in cells]  # as written
    assert "E" in rows[1][1]  # the file's spelling, 6.782788E+150, not re-typed
    assert max(len(cell) for row in rows for cell in row) <= 25


def test_npz_targets_are_written_by_their_shortest_round_trip_form(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 2))
    y = np.array([3.0, 6.782788445840636e150, 0.1, 2.5e-300, -7.0, 1e16])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    proc = run("train", "--data", tmp_path / "d.npz", "--epochs", "5", "--test-fraction",
               "0", "--save", tmp_path / "m.npz", "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = run("predict", tmp_path / "m.npz", "--data", tmp_path / "d.npz")
    assert proc.returncode == 0, proc.stderr
    true = [line.split(",")[1] for line in proc.stdout.splitlines()[1:]]
    assert true == ["3", "6.782788445840636e+150", "0.1", "2.5e-300", "-7", "1e+16"]
    assert [float(t) for t in true] == y.tolist()


# ----------------------------------------------------------------- part 9: JSON, NaN
def test_json_reports_are_strict_json(tmp_path):
    """A target near 1e200: the MSE overflows to inf, written ``Infinity`` before (and
    R² ``NaN``, now computed in the target's own units)."""
    data, _ = write_regression(tmp_path / "data.csv", 1e200)
    proc = run("train", "--data", data, "--epochs", "50", "--json", "--save",
               tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    report = strict_loads(proc.stdout)
    assert report["train"]["mse"] is None and report["train"]["r2"] > 0.5
    proc = run("evaluate", tmp_path / "m.npz", "--data", data, "--json")
    assert proc.returncode == 0, proc.stderr
    report = strict_loads(proc.stdout)
    assert report["mse"] is None and report["r2"] > 0.5
    proc = run("evaluate", tmp_path / "m.npz", "--data", data)
    assert "MSE       inf" in proc.stdout and "R²        nan" not in proc.stdout
    for command in (("backends", "--json"), ("gradcheck", "--json"),
                    ("train", "--lr", "1e300", "--epochs", "3", "--json")):
        proc = run(*command)
        assert proc.returncode == 0, proc.stderr
        strict_loads(proc.stdout)


def test_strict_json_replaces_every_non_finite_number():
    from xpnet.cli._common import strict_json

    value = {"a": [1.0, float("nan"), (np.float32("inf"), -np.inf)], "b": np.int64(3),
             "c": {"d": np.float64("nan"), "e": "NaN"}}
    text = json.dumps(strict_json(value), allow_nan=False)
    assert strict_loads(text) == {"a": [1.0, None, [None, None]], "b": 3,
                                  "c": {"d": None, "e": "NaN"}}


def test_r2_is_computed_in_the_targets_own_units():
    rng = np.random.default_rng(0)
    true = rng.normal(size=50)
    pred = true + 0.3 * rng.normal(size=50)
    expected = r2_score(true, pred)
    for scale in (1e200, 1e-300):
        assert r2_score(true * scale, pred * scale) == pytest.approx(expected, rel=1e-12)


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    """A model whose weights are finite (~1e300) but whose outputs are NaN."""
    path = tmp_path_factory.mktemp("nan") / "nan.npz"
    net = xpnet.MLP([2, 8, 1], activation="relu", seed=0)
    net.set_params([(W * 1e300, b) for W, b in net.params])
    xpnet.save(net, path, feature_names=["x1", "x2"], classes=[0, 1])
    return path


def test_predict_refuses_non_finite_outputs(nan_model, tmp_path):
    """It labelled every row ``1,0,0,nan,nan``, exit 0."""
    out = tmp_path / "p.csv"
    assert_error(run("predict", nan_model, "--dataset", "moons", "--out", out),
                 "NaN or infinite on 300 of 400 rows", "no predictions were written")
    assert not out.exists()
    assert_error(run("evaluate", nan_model, "--dataset", "moons", "--json"),
                 "NaN or infinite on 300 of 400 rows")
    from xpnet.metrics import NonFiniteOutputError

    net = xpnet.load(nan_model)
    X, y = xpnet.data.make_moons(40)
    with pytest.raises(NonFiniteOutputError, match="on 30 of 40 rows"):
        score(net, X, y, "binary")


# ----------------------------------------------------------------- part 10: rough edges
def test_the_pure_step_checks_the_target_at_the_door():
    net = xpnet.MLP([2, 4, 1])
    params = [p for pair in net.params for p in pair]
    X = np.random.default_rng(0).normal(size=(5, 2))
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"Y must be 2-D \(m, 1\) = \(5, 1\).*got shape "
                       r"\(5,\).*reshape\(-1, 1\)"):
        net.architecture.loss_and_grads(params, X, y)
    with pytest.raises(ValueError, match=r"Y must have X's dtype \(float64\).*float32"):
        net.architecture.loss_and_grads(params, X, y[:, None].astype(np.float32))
    with pytest.raises(ValueError, match=r"X must be 2-D \(m, 2\)"):
        net.architecture.loss_and_grads(params, X[:, :1], y[:, None])
    loss, _ = net.architecture.loss_and_grads(params, X, y[:, None])
    assert float(loss) == pytest.approx(float(net.loss(X, y)))


def test_space_separated_lists_get_the_comma_form():
    assert_error(run("train", "--layers", "16", "16"),
                 "unrecognized arguments: 16", "did you mean --layers 16,16")
    assert_error(run("train", "--layers", "4,4", "--activation", "relu", "tanh"),
                 "did you mean --activation relu,tanh")
    assert_error(run("gradcheck", "--layers", "2", "4", "1"), "like 2,4,1; got '2'")


def test_logistic_is_sigmoid_and_stored_as_sigmoid(tmp_path):
    proc = run("train", "--activation", "logistic", "--epochs", "20", "--save",
               tmp_path / "m.npz", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert read_header(tmp_path / "m.npz")["activations"] == ["sigmoid"]
    assert xpnet.MLP([2, 3, 1], activation=["logistic"]).activations == ("sigmoid",)
    proc = run("explain", "--activation", "logistic")
    assert proc.returncode == 0, proc.stderr
    assert "layer 1 (hidden, sigmoid)" in proc.stdout


def test_layers_help_and_a_full_list_given_to_train(tmp_path):
    assert "HIDDEN layer sizes only" in run("train", "--help").stdout
    for command in ("explain", "gradcheck"):
        assert "EVERY layer size" in " ".join(run(command, "--help").stdout.split())
    proc = run("train", "--layers", "2,8,1", "--epochs", "5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("xpnet: note: --layers 2,8,1 gives the hidden layers only (train "
                           "takes the input and output sizes from the data); the first size "
                           "equals the 2 features: if 2,8,1 was the whole network, use "
                           "--layers 8\n")
    assert "2-2-8-1-1" in proc.stdout
    assert run("train", "--layers", "2", "--epochs", "5").stderr == ""  # one hidden layer


def test_a_csv_given_as_the_model_is_called_not_a_model_file(iris):
    assert_error(run("evaluate", iris / "iris.csv", "--data", iris / "iris.csv"),
                 "is not an xpnet model file: it is text (a CSV or other data file?)")
    with pytest.raises(xpnet.io.ModelFileError, match="not an xpnet model file: not the"):
        (iris / "bin.npz").write_bytes(bytes(range(256)))
        xpnet.load(iris / "bin.npz")


def test_top_level_help_names_every_backend():
    text = " ".join(run("--help").stdout.split())
    for name in ("NumPy", "CuPy", "PyTorch", "JAX", "array-api-strict"):
        assert name in text


def test_explain_counts_stay_bounded():
    assert_error(run("explain", "--rows", "1" + "0" * 40), "up to 1e15", "41 digits")
    assert_error(run("explain", "--layers", "2,10000000000,1"), "at most 1,000,000,000")
    proc = run("explain", "--layers", "1000000000,1000000000,1")
    assert proc.returncode == 0, proc.stderr
    assert "1000001001000000001 parameters" not in proc.stdout
    assert "1e+18 parameters" in proc.stdout

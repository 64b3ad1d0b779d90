"""The real ``xpnet`` command line, run in subprocesses: exit codes, stdout, stderr, JSON.

Every error must be one line on stderr starting ``xpnet: error:``, exit status 2, and
never a traceback. Epochs are kept small so the whole module runs in seconds.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_STRICT = importlib.util.find_spec("array_api_strict") is not None


def run(*args, cwd=None, timeout=120):
    """Run ``python -m xpnet ARGS`` (the same ``main`` as the ``xpnet`` script)."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("XPNET_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "xpnet", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env,
    )


def run_on_terminal(*args, env=None, timeout=120):
    """Run ``python -m xpnet ARGS`` with stdout on a pseudo-terminal (POSIX only).

    Returns ``(exit status, bytes shown on the terminal, stderr bytes)``; fails the test
    if the terminal stays silent for ``timeout`` seconds.
    """
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "xpnet", *map(str, args)], stdout=follower,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"xpnet {' '.join(map(str, args))} on a terminal hung")
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    proc.wait(timeout=timeout)
    stderr = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    return proc.returncode, b"".join(chunks), stderr


def run_many(*commands):
    """Run several independent commands side by side (each is its own process)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda args: run(*args), commands))


def assert_error(proc, *fragments):
    """Exit 2, nothing on stdout, one ``xpnet: error:`` line on stderr naming the problem."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("xpnet: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def blobs_csv(tmp_path_factory):
    """Three labelled classes in 3 features, with the label column in the middle."""
    rng = np.random.default_rng(0)
    centres = {"red": (2, 0, 0), "green": (0, 2, 0), "blue": (0, 0, 2)}
    rows = []
    for label, centre in centres.items():
        for point in rng.normal(centre, 0.4, size=(30, 3)):
            rows.append([f"{point[0]:.5f}", label, f"{point[1]:.5f}", f"{point[2]:.5f}"])
    path = tmp_path_factory.mktemp("data") / "blobs.csv"
    return write_csv(path, ["a", "colour", "b", "c"], rows)


@pytest.fixture(scope="module")
def model(tmp_path_factory, blobs_csv):
    """A model trained by the CLI on blobs.csv (the error tests need one)."""
    path = tmp_path_factory.mktemp("model") / "blobs.npz"
    proc = run("train", "--data", blobs_csv, "--target", "colour", "--layers", "6",
               "--epochs", "150", "--lr", "1", "--save", path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    return path


# ----------------------------------------------------------------------------- train
def test_default_train_is_the_lesson_network_on_moons():
    proc = run("train")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "moons: 400 rows, 2 features, 2 classes" in out
    assert "2-8-1  hidden sigmoid, output sigmoid, binary cross entropy" in out
    assert "numpy on cpu, float64" in out and "full batch" in out
    accuracy = next(line for line in out.splitlines() if line.startswith("accuracy"))
    train_acc, test_acc = (float(word) for word in accuracy.split()[2::2])
    assert train_acc >= 0.97 and test_acc >= 0.95, accuracy
    assert "samples/s" in out and "backend synchronised" in out
    assert "\r" not in out and "\x1b" not in out  # no progress bar when not a terminal


def test_json_is_one_object_and_nothing_else():
    proc = run("train", "--dataset", "xor", "--epochs", "300", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    report = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert report["command"] == "train"
    assert report["network"]["layer_sizes"] == [2, 8, 1]
    assert report["network"]["output"] == "sigmoid"
    assert report["backend"] == {"name": "numpy", "device": "cpu", "dtype": "float64"}
    assert report["data"]["train_rows"] == 300 and report["data"]["test_rows"] == 100
    assert len(report["training"]["loss_curve"]) == 300
    assert report["loss"] == report["training"]["loss_curve"][-1]
    assert report["training"]["seconds"] > 0 and report["training"]["samples_per_second"] > 0
    assert report["test"]["accuracy"] >= 0.95
    assert report["model"] is None and report["plot"] is None


def test_warnings_go_to_stderr_as_one_line_and_json_stays_clean():
    proc = run("train", "--epochs", "3", "--batch-size", "100000", "--json")
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    assert proc.stderr.startswith("xpnet: warning: batch_size=100000 is larger")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_quiet_prints_nothing(tmp_path):
    proc = run("train", "--epochs", "5", "--quiet", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    assert (tmp_path / "m.npz").exists()


def test_options_change_the_network():
    proc = run("train", "--dataset", "spirals", "--layers", "5,4", "--activation", "tanh,relu",
               "--epochs", "20", "--lr", "0.5", "--batch-size", "32", "--alpha", "0.01",
               "--dtype", "float32", "--test-fraction", "0", "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["network"]["layer_sizes"] == [2, 5, 4, 1]
    assert report["network"]["activations"] == ["tanh", "relu"]
    assert report["backend"]["dtype"] == "float32"
    assert report["test"] is None and report["data"]["test_rows"] == 0
    assert report["training"]["batch_size"] == 32 and report["training"]["alpha"] == 0.01


def test_optimiser_options_reach_training():
    plain, adam, nesterov, stopped = run_many(
        ("train", "--epochs", "40", "--json"),
        ("train", "--epochs", "40", "--solver", "adam", "--json"),
        ("train", "--epochs", "40", "--momentum", "0.9", "--nesterov", "--lr", "0.3",
         "--batch-size", "32", "--lr-schedule", "invscaling", "--json"),
        ("train", "--epochs", "400", "--batch-size", "16", "--lr", "0.5", "--early-stopping",
         "--n-iter-no-change", "3", "--json"),
    )
    reports = []
    for proc in (plain, adam, nesterov, stopped):
        assert proc.returncode == 0, proc.stderr
        reports.append(json.loads(proc.stdout))
    plain, adam, nesterov, stopped = reports
    assert adam["training"]["solver"] == "adam" and adam["training"]["lr"] == 0.01
    assert nesterov["training"]["nesterov"] and nesterov["training"]["momentum"] == 0.9
    assert len({plain["loss"], adam["loss"], nesterov["loss"]}) == 3  # different updates
    assert stopped["training"]["early_stopping"]
    assert stopped["training"]["epochs"] < 400  # stopped once validation stopped improving


def test_bad_optimiser_combinations():
    nesterov_alone, adam_momentum, too_much = run_many(
        ("train", "--nesterov"),
        ("train", "--solver", "adam", "--momentum", "0.5"),
        ("train", "--momentum", "1.5"),
    )
    assert_error(nesterov_alone, "--nesterov needs --momentum > 0")
    assert_error(adam_momentum, "apply to --solver sgd only")
    assert_error(too_much, "--momentum must lie in [0, 1]")


def test_regression_from_csv_reports_r2(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(120, 2))
    y = 50 + 30 * X[:, 0] - 20 * X[:, 1] ** 2
    path = write_csv(tmp_path / "reg.csv", ["u", "v", "price"],
                     np.column_stack([X, y]).round(6).tolist())
    proc = run("train", "--data", path, "--layers", "8", "--activation", "tanh",
               "--epochs", "400", "--lr", "0.5", "--json", "--save", tmp_path / "r.npz")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["data"]["task"] == "regression" and report["network"]["output"] == "identity"
    assert report["test"]["r2"] > 0.9 and report["test"]["mse"] > 0
    proc = run("evaluate", tmp_path / "r.npz", "--data", path, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["r2"] > 0.9
    proc = run("predict", tmp_path / "r.npz", "--data", path)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    predicted = np.array([float(r["prediction"]) for r in rows])
    assert np.corrcoef(predicted, y)[0, 1] > 0.95  # predictions are in the target's units


# ----------------------------------------------------------------------------- model commands
def test_train_save_evaluate_predict_on_labelled_csv(tmp_path, blobs_csv, model):
    proc = run("evaluate", model, "--data", blobs_csv, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["rows"] == 90 and report["accuracy"] > 0.9
    proc = run("evaluate", model, "--data", blobs_csv, "--split", "test")
    assert proc.returncode == 0, proc.stderr
    assert "(test)" in proc.stdout and "accuracy" in proc.stdout

    proc = run("predict", model, "--data", blobs_csv)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert list(rows[0]) == ["row", "true_colour", "prediction", "p_blue", "p_green", "p_red"]
    assert len(rows) == 90
    hits = sum(r["prediction"] == r["true_colour"] for r in rows)
    assert hits / len(rows) == pytest.approx(report["accuracy"])
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in ("blue", "green", "red")) == pytest.approx(1,
                                                                                          abs=1e-5)

    # features only (no target column), columns as in training, written with --out
    features = write_csv(tmp_path / "new.csv", ["a", "b", "c"], [[2, 0, 0], [0, 0, 2.1]])
    proc = run("predict", model, "--data", features, "--out", tmp_path / "p.csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote 2 predictions to {tmp_path / 'p.csv'}"
    written = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["prediction"] for r in written] == ["red", "blue"]

    proc = run("predict", model, "--data", features, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["predictions"] == ["red", "blue"] and result["classes"] == ["blue", "green",
                                                                             "red"]


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.skipif(not HAVE_STRICT, reason="array-api-strict (the 'strict' extra) not installed")
def test_predictions_agree_across_backends(tmp_path, blobs_csv):
    path = tmp_path / "torch.npz"
    proc = run("train", "--backend", "torch", "--data", blobs_csv, "--target", "colour",
               "--epochs", "50", "--lr", "1", "--save", path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    outputs = {}
    for backend in ("numpy", "array_api_strict"):
        proc = run("predict", path, "--data", blobs_csv, "--backend", backend, "--json")
        assert proc.returncode == 0, proc.stderr
        outputs[backend] = json.loads(proc.stdout)
    # the reference: the torch network itself, rebuilt in this process from the file
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
    stats = header["metadata"]["standardize"]
    rows = list(csv.reader(open(blobs_csv)))[1:]
    X = np.array([[float(r[0]), float(r[2]), float(r[3])] for r in rows])
    X = (X - np.array(stats["mean"])) / np.array(stats["scale"])
    reference = xpnet.to_numpy(xpnet.load(path, backend="torch").predict_proba(X))
    for result in outputs.values():
        np.testing.assert_allclose(np.array(result["probabilities"]), reference, atol=1e-12)
        labels = [result["classes"][i] for i in reference.argmax(axis=1)]
        assert result["predictions"] == labels


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib (the 'plot' extra) not installed")
def test_plot_writes_png_for_2d_and_for_wider_data(tmp_path, blobs_csv):
    for args, name in ((["--dataset", "moons"], "moons.png"),
                       (["--data", blobs_csv, "--target", "colour"], "blobs.png")):
        proc = run("train", *args, "--epochs", "30", "--plot", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert f"plot      {tmp_path / name}" in proc.stdout


@pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn (the 'sklearn' extra) not installed")
def test_bundled_dataset_trains_and_evaluates(tmp_path):
    proc = run("train", "--dataset", "iris", "--epochs", "100", "--json",
               "--save", tmp_path / "iris.npz")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["data"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert report["network"]["output"] == "softmax" and report["test"]["accuracy"] > 0.8
    proc = run("evaluate", tmp_path / "iris.npz", "--dataset", "iris", "--split", "test",
               "--json")
    assert json.loads(proc.stdout)["accuracy"] == pytest.approx(report["test"]["accuracy"])


# ----------------------------------------------------------------------------- inspection
def test_backends_table_and_json():
    proc = run("backends")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:5] == ["backend", "installed", "version", "usable", "devices"]
    for name in xpnet.BACKEND_NAMES:
        assert any(line.startswith(name + " ") for line in lines), name
    numpy_line = next(line for line in lines if line.startswith("numpy "))
    assert np.__version__ in numpy_line and " cpu " in numpy_line
    report = json.loads(run("backends", "--json").stdout)
    by_name = {b["name"]: b for b in report["backends"]}
    assert set(by_name) == set(xpnet.BACKEND_NAMES)
    assert by_name["numpy"]["usable"] and by_name["numpy"]["devices"] == ["cpu"]
    for info in by_name.values():
        assert info["install"].startswith("pip install")
        if not info["installed"]:
            assert "install: " + info["install"] in proc.stdout


def test_gradcheck_passes_and_fails_by_threshold():
    proc = run("gradcheck", "--layers", "3,5,4,2", "--activation", "tanh,relu",
               "--output", "softmax", "--alpha", "0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout
    for name in ("W1", "b1", "W2", "b2", "W3", "b3"):
        assert any(line.startswith(name + " ") for line in proc.stdout.splitlines())
    proc = run("gradcheck", "--threshold", "1e-30")
    assert proc.returncode == 1 and "FAIL" in proc.stdout
    report = json.loads(run("gradcheck", "--output", "identity", "--json").stdout)
    assert report["passed"] and report["max_rel_error"] < 1e-5
    assert [p["name"] for p in report["parameters"]] == ["W1", "b1", "W2", "b2"]


def test_explain_shows_equations_with_shapes():
    proc = run("explain")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Z1 = A0 @ W1 + b1" in out and "(m, 2) @ (2, 4) + (4,) -> (m, 4)" in out
    assert "dZ2 = (A2 - Y) / m" in out
    assert "dA1 = dZ2 @ W2ᵀ" in out and "dZ1 = dA1 ⊙ A1 ⊙ (1 - A1)" in out
    assert "dW1 = A0ᵀ @ dZ1" in out and "(2, m) @ (m, 4) -> (2, 4)" in out
    proc = run("explain", "--layers", "64,32,10", "--activation", "relu", "--output",
               "softmax", "--rows", "32", "--alpha", "0.1")
    assert "(32, 64) @ (64, 32) + (32,) -> (32, 32)" in proc.stdout
    assert "dZ1 = dA1 ⊙ 1[A1 > 0]" in proc.stdout and "(alpha/m) W2" in proc.stdout


def test_help_has_examples():
    commands = ["train", "evaluate", "predict", "backends", "gradcheck", "explain"]
    procs = run_many(["--help"], *([command, "--help"] for command in commands))
    for command, proc in zip(["", *commands], procs, strict=True):
        assert proc.returncode == 0 and proc.stderr == "", command
        assert proc.stdout.startswith("usage: xpnet"), command
        if command:
            assert "examples:" in proc.stdout, command


def test_target_help_says_where_each_command_finds_the_target():
    """train takes the last column; evaluate and predict first use the column the model
    was trained on (its name is in the model file), which their help must say."""
    import re

    texts = {}
    for command, proc in zip(("train", "evaluate", "predict"),
                             run_many(*([c, "--help"] for c in ("train", "evaluate", "predict"))),
                             strict=True):
        assert proc.returncode == 0, proc.stderr
        # the --target entry, its wrapped lines joined
        entry = proc.stdout.split("--target COLUMN", 2)[-1].split("\n  --", 1)[0]
        texts[command] = re.sub(r"\s+", " ", entry)
    assert "default: the last column)" in texts["train"]
    assert "default: the model's target column if the file has it, else the last column" \
        in texts["evaluate"]
    assert "the model's target column, copied to the output as true_<target>" \
        in texts["predict"]


def test_version_and_console_script():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"xpnet {xpnet.__version__}"
    script = Path(sys.executable).parent / "xpnet"
    if not script.exists():
        pytest.skip(f"no installed 'xpnet' script next to {sys.executable}")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"xpnet {xpnet.__version__}"


# ----------------------------------------------------------------------------- errors
def test_usage_errors_are_one_line():
    proc = run()  # no command: the help, then the error line
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        "choose a command (train, evaluate, predict, export, convert, backends, gradcheck, "
        "explain)")
    cases = [
        (["train", "--epochs", "0"], ["--epochs", "positive integer"]),
        (["train", "--layers", "4,x"], ["hidden layer sizes"]),
        (["train", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["train", "--dataset", "moons", "--data", "x.csv"], ["not allowed with"]),
        (["train", "--dataset", "nope"], ["unknown data set 'nope'"]),
        (["train", "--activation", "swish", "--epochs", "1"], ["activation must be"]),
        (["train", "--activation", "relu,tanh", "--epochs", "1"], ["2 names for 1 hidden"]),
        (["train", "--device", "cuda:0", "--epochs", "1"], ["device"]),
        (["explain", "--layers", "3"], ["at least an input and an output size"]),
        (["train", "--target", "x"], ["--target picks a column of a --data file"]),
        (["train", "--data", "x.csv", "--noise", "0.1"], ["apply to the generated"]),
        (["train", "--plot", "out.unknown"],
         ["cannot write a plot", ".png"] if HAVE_MPL else ["--plot needs matplotlib"]),
    ]
    for (_, fragments), proc in zip(cases, run_many(*(args for args, _ in cases)), strict=True):
        assert_error(proc, *fragments)


def test_unknown_backend():
    assert_error(run("train", "--backend", "tensorflow"), "backend must be one of", "numpy")


def test_cupy_without_gpu_says_what_is_missing():
    proc = run("train", "--backend", "cupy", "--epochs", "1")
    if proc.returncode == 0:
        pytest.skip("CuPy has a usable CUDA device here; the no-GPU message cannot be seen")
    assert_error(proc, "cupy")
    if importlib.util.find_spec("cupy") is None:
        assert "is not installed" in proc.stderr
        assert "pip install 'xpnet[cupy]'" in proc.stderr and "NVIDIA GPU" in proc.stderr
    else:
        assert "no CUDA device" in proc.stderr


def bad_csvs(tmp_path):
    cases = {
        "empty.csv": ("", "is empty"),
        "header_only.csv": ("x1,x2,class\n", "no data rows"),
        "ragged.csv": ("x1,x2,class\n1,2,0\n3,4\n", "line 3: 2 cells but the header has 3"),
        "text.csv": ("x1,x2,class\n1,2,0\n3,abc,1\n", "line 3, column 'x2': non-numeric "
                                                     "value 'abc'"),
        "nan.csv": ("x1,x2,class\n1,2,0\n3,nan,1\n", "NaN or infinite"),
        "inf.csv": ("x1,x2,class\n1,2,0\n-inf,4,1\n", "NaN or infinite"),
        "few.csv": ("x1,x2,class\n" + "".join(f"{i},{i},a\n" for i in range(6))
                    + "9,9,b\n", "class 'b' has only 1 row"),
    }
    for name, (text, _) in cases.items():
        (tmp_path / name).write_text(text)
    return cases


def test_every_bad_data_file(tmp_path):
    cases = [(["train", "--data", tmp_path / name, "--epochs", "1"], [message])
             for name, (_, message) in bad_csvs(tmp_path).items()]
    (tmp_path / "ok.csv").write_text("x1,x2,class\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    np.savez(tmp_path / "nox.npz", features=np.zeros((3, 2)))
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    cases += [
        (["train", "--data", tmp_path / "missing.csv"], ["does not exist"]),
        (["train", "--data", tmp_path / "ok.csv", "--target", "label"],
         ["target column 'label' not found", "x1, x2, class"]),
        (["train", "--data", tmp_path / "nox.npz"], ["named 'X'"]),
        (["train", "--data", tmp_path / "junk.npy"], ["not a readable .npy"]),
    ]
    for (_, fragments), proc in zip(cases, run_many(*(args for args, _ in cases)), strict=True):
        assert_error(proc, *fragments)


def test_feature_count_must_match_the_model(tmp_path, model):
    # columns without names (.npy) count by position; a CSV's are picked by name
    # (tests/test_cli_columns.py)
    np.save(tmp_path / "wrong.npy", np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert_error(run("predict", model, "--data", tmp_path / "wrong.npy"), "has 1 feature "
                 "column besides the target (column 1) but the model expects 3",
                 "feature count does not match the model")
    np.save(tmp_path / "wider.npy", np.array([[1.0, 2.0, 3.0, 4.0, 0.0]]))
    assert_error(run("evaluate", model, "--data", tmp_path / "wider.npy"), "expects 3")
    wrong = write_csv(tmp_path / "wrong.csv", ["a", "b"], [[1, 2], [3, 4]])
    assert_error(run("predict", model, "--data", wrong), "lacks the model's feature column 'c'")
    unknown = write_csv(tmp_path / "unknown.csv", ["a", "colour", "b", "c"], [[1, "pink", 2, 3]])
    assert_error(run("evaluate", model, "--data", unknown),
                 "1 row of unknown.csv has a label the model never saw ('pink')")


def test_bad_model_files(tmp_path, model, blobs_csv):
    assert_error(run("predict", tmp_path / "none.npz", "--data", blobs_csv), "does not exist")
    (tmp_path / "junk.npz").write_bytes(b"definitely not a model")
    assert_error(run("predict", tmp_path / "junk.npz", "--data", blobs_csv),
                 "is not an xpnet model file: it is text")
    data = Path(model).read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    assert_error(run("evaluate", tmp_path / "cut.npz", "--data", blobs_csv), "model file")
    with np.load(model, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["b1"] = arrays["b1"] + 0.5
    np.savez(tmp_path / "tampered.npz", **arrays)
    assert_error(run("predict", tmp_path / "tampered.npz", "--data", blobs_csv),
                 "checksum mismatch")
    assert_error(run("predict", model), "one of the arguments --dataset --data is required")


def test_unwritable_outputs_fail_before_training(tmp_path):
    assert_error(run("train", "--save", tmp_path / "no" / "such" / "m.npz"), "does not exist")
    assert_error(run("train", "--plot", tmp_path), "is a directory")


@pytest.mark.skipif(not sys.platform.startswith("linux") and sys.platform != "darwin",
                    reason="needs a pseudo-terminal (pty), POSIX only")
def test_progress_bar_only_on_a_terminal():
    def on_terminal(*args):
        code, shown, _ = run_on_terminal(*args)
        return code, shown.decode("utf-8", "replace")

    code, shown = on_terminal("train", "--epochs", "400")
    assert code == 0
    assert "epoch" in shown and "/400" in shown and "epochs/s" in shown  # the live bar
    assert "accuracy  train" in shown  # then the report
    code, shown = on_terminal("train", "--epochs", "400", "--quiet")
    assert code == 0 and shown == ""
    code, shown = on_terminal("train", "--epochs", "400", "--json")
    assert code == 0 and "epochs/s" not in shown
    json.loads(shown.replace("\r\n", "\n"))


def test_saved_statistics_come_from_the_training_split_only(model, blobs_csv):
    from xpnet.data import encode_target, load_file, split_indices

    data = load_file(blobs_csv, target="colour")
    target = encode_target(data.y)
    train, test = split_indices(data.n_samples, 0.25, 0, stratify=target.y,
                                labels=target.classes)
    header = xpnet.io.read_header(model)
    stats = header["metadata"]["standardize"]
    np.testing.assert_allclose(stats["mean"], data.X[train].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["scale"], data.X[train].std(axis=0), rtol=1e-12)
    assert not np.allclose(stats["mean"], data.X.mean(axis=0), rtol=1e-6)  # not all rows
    assert header["metadata"]["classes"] == ["blue", "green", "red"]
    assert header["metadata"]["feature_names"] == ["a", "b", "c"]
    assert header["metadata"]["split"] == {"test_fraction": 0.25, "seed": 0}


def test_lbfgs_solver_refuses_what_full_batch_lbfgs_cannot_do():
    for flags, named in ((["--batch-size", "10"], "--batch-size"),
                         (["--early-stopping"], "--early-stopping"),
                         (["--dropout", "0.2"], "--dropout"),
                         (["--momentum", "0.9"], "--momentum")):
        assert_error(run("train", "--solver", "lbfgs", *flags), named)


def test_lbfgs_solver_trains_and_reports(tmp_path):
    proc = run("train", "--dataset", "iris", "--solver", "lbfgs", "--epochs", "15", "--json",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["training"]["solver"] == "lbfgs"
    assert 1 <= report["training"]["epochs"] <= 15
    assert report["training"]["loss_curve"][-1] < report["training"]["loss_curve"][0]
    assert report["train"]["accuracy"] > 0.9

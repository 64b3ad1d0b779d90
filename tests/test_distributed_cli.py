"""``xpnet train/evaluate/predict`` on Dask, end to end (issue 10): real ``xpnet``
subprocesses against a LocalCluster they start (``--dask-workers 2``) and against
separately started ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("distributed", reason='needs dask[distributed]: pip install "xpnet[dask]"')
pytest.importorskip("zarr", reason='needs zarr: pip install "xpnet[dask]"')

from dask_processes import external_cluster  # noqa: E402
from sigint import train_with_sigint  # noqa: E402
from test_cli import assert_error, run, write_csv  # noqa: E402

import xpnet  # noqa: E402
from xpnet.data import Standardizer, load_dataset, split_indices  # noqa: E402
from xpnet.metrics import score  # noqa: E402


def _json(proc):
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``dask scheduler`` + ``dask worker --nworkers 2`` as separate processes; the
    scheduler's address. Killed (process groups) whatever the tests do."""
    with external_cluster(tmp_path_factory.mktemp("cluster"), 2) as (address, _, _):
        yield address


def test_train_local_cluster_reports_cluster_steps_and_true_scores(tmp_path):
    model = tmp_path / "m.npz"
    report = _json(run("train", "--dask-workers", "2", "--dataset", "iris", "--output",
                       "softmax", "--chunk-rows", "40", "--epochs", "20", "--batch-size",
                       "16", "--json", "--save", model, cwd=tmp_path, timeout=300))
    cluster = report["cluster"]
    assert (cluster["workers"], cluster["threads"], cluster["kind"]) == (2, 2, "LocalCluster")
    assert cluster["memory_bytes"] > 0
    training = report["training"]
    assert training["chunks"] == 4
    assert training["steps"] == 20 * 7  # 112 training rows in batches of 16
    assert 0 <= training["compute_seconds_median"] <= training["step_seconds_median"]
    assert training["overhead_seconds_median"] == pytest.approx(
        training["step_seconds_median"] - training["compute_seconds_median"], abs=0.05)
    # The scores summed chunk by chunk equal the saved model's on the same rows (the
    # test split is drawn by row index, unstratified)
    net = xpnet.load(model)
    data = load_dataset("iris")
    train_rows, test_rows = (np.sort(r) for r in split_indices(150, 0.25, 0))
    X = Standardizer.from_dict(net.metadata["standardize"]).transform(data.X)
    y = np.searchsorted(np.array(net.metadata["classes"]), data.y)
    for rows, reported in ((train_rows, report["train"]), (test_rows, report["test"])):
        expected = score(net, X[rows], y[rows], "multiclass")
        assert reported["rows"] == expected["rows"]
        assert reported["loss"] == pytest.approx(expected["loss"], rel=1e-12)
        assert reported["accuracy"] == expected["accuracy"]


def test_text_report_on_a_cluster_names_dropout_and_the_scores(tmp_path):
    """The text report's training line says dropout as the single-process one does, and
    its score lines are the single-process report's (the same helper writes both)."""
    proc = run("train", "--dask-workers", "1", "--dataset", "moons", "--layers", "8",
               "--dropout", "0.2", "--epochs", "3", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = {line[:10].strip(): line[10:] for line in proc.stdout.splitlines()}
    assert lines["training"].startswith("3 epochs, full batch, lr 3, alpha 0, dropout 0.2, ")
    assert lines["accuracy"].startswith("train 0.") and "   test 0." in lines["accuracy"]
    assert lines["cluster"].startswith("local cluster: 1 worker, 1 thread, ")
    report = _json(run("train", "--dask-workers", "1", "--dataset", "moons", "--layers", "8",
                       "--dropout", "0.2", "--epochs", "3", "--json", cwd=tmp_path,
                       timeout=300))
    assert report["training"]["dropout"] == [0.2]


def test_evaluate_and_predict_on_cluster_equal_single_process(tmp_path):
    model = tmp_path / "m.npz"
    assert run("train", "--dataset", "iris", "--output", "softmax", "--epochs", "30",
               "--save", model, "-q", cwd=tmp_path).returncode == 0
    host = _json(run("evaluate", model, "--dataset", "iris", "--json"))
    remote = _json(run("evaluate", model, "--dataset", "iris", "--dask-workers", "2",
                       "--chunk-rows", "40", "--json", timeout=300))
    assert remote["cluster"]["workers"] == 2
    assert remote["rows"] == host["rows"] == 150
    assert remote["loss"] == pytest.approx(host["loss"], rel=1e-12)
    assert remote["accuracy"] == host["accuracy"]
    assert run("predict", model, "--dataset", "iris", "--out", tmp_path / "host.csv",
               "-q").returncode == 0
    proc = run("predict", model, "--dataset", "iris", "--dask-workers", "2", "--chunk-rows",
               "40", "--out", tmp_path / "remote.csv", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 150 predictions" in proc.stdout
    assert (tmp_path / "remote.csv").read_text() == (tmp_path / "host.csv").read_text()


def test_train_against_separate_scheduler_and_workers_on_a_converted_store(
    tmp_path, dask_cluster
):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    label = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    csv_path = write_csv(tmp_path / "d.csv", ["a", "b", "c", "label"],
                         [[*map(float, row), lab] for row, lab in zip(X, label)])
    store = tmp_path / "d.zarr"
    proc = run("convert", csv_path, store, "--chunk-rows", "70", timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = _json(run("train", "--data", store, "--scheduler", dask_cluster, "--epochs",
                       "40", "--lr", "1", "--json", "--save", tmp_path / "m.npz",
                       cwd=tmp_path, timeout=300))
    assert report["cluster"]["kind"] == "scheduler"
    assert report["cluster"]["workers"] == 2
    assert report["cluster"]["scheduler"] == dask_cluster
    assert report["data"]["rows"] == 300 and report["data"]["classes"] == ["down", "up"]
    assert report["training"]["chunks"] >= 2  # the store's chunks of 70 rows, less the test rows
    assert report["test"]["accuracy"] > 0.8
    evaluated = _json(run("evaluate", tmp_path / "m.npz", "--data", store, "--scheduler",
                          dask_cluster, "--json", timeout=300))
    assert evaluated["rows"] == 300 and evaluated["accuracy"] > 0.8


def test_text_report_names_the_cluster_and_the_overhead(tmp_path):
    proc = run("train", "--dask-workers", "2", "--epochs", "3", "--batch-size", "100",
               cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cluster   local cluster: 2 workers, 2 threads," in proc.stdout
    assert "overhead" in proc.stdout and "workers' compute" in proc.stdout


# Full batch on all rows (--test-fraction 0: no split, so both runs train on the same
# rows): the cluster's sums differ from this process's in their order only. sgd: 1e-12
# (float64 rounding); lbfgs: 1e-10 (that rounding grown through 20 line searches).
@pytest.mark.parametrize("flags,rtol", [
    (["--class-weight", "balanced", "--epochs", "30"], 1e-12),
    (["--solver", "lbfgs", "--epochs", "20", "--alpha", "0.1",
      "--class-weight", "class_0=2,class_2=0.5"], 1e-10),
    (["--solver", "lbfgs", "--epochs", "20", "--class-weight", "balanced"], 1e-10),
], ids=["class-weight", "lbfgs-class-weights", "lbfgs-balanced"])
def test_class_weight_and_lbfgs_on_a_cluster_equal_this_process(tmp_path, flags, rtol):
    common = ["train", "--dataset", "wine", "--layers", "5", "--test-fraction", "0",
              "--json", *flags]
    local = _json(run(*common, cwd=tmp_path, timeout=300))
    remote = _json(run(*common, "--dask-workers", "1", "--chunk-rows", "50", cwd=tmp_path,
                       timeout=300))
    assert remote["cluster"]["kind"] == "LocalCluster" and remote["training"]["chunks"] == 4
    for key in ("solver", "class_weight", "epochs"):
        assert remote["training"][key] == local["training"][key]
    np.testing.assert_allclose(remote["training"]["loss_curve"], local["training"]["loss_curve"],
                               rtol=rtol)
    assert remote["train"]["accuracy"] == local["train"]["accuracy"]


def test_cluster_option_errors(tmp_path):
    assert_error(run("train", "--chunk-rows", "10"), "--chunk-rows", "--dask-workers")
    store = tmp_path / "store"
    store.mkdir()
    assert_error(run("train", "--data", store), "--dask-workers N or --scheduler")
    assert_error(run("train", "--dask-workers", "1", "--plot", tmp_path / "p.png",
                     timeout=300), "--plot")
    assert_error(run("train", "--dask-workers", "2", "--scheduler", "tcp://127.0.0.1:1"),
                 "not allowed with")
    assert_error(run("train", "--scheduler", "tcp://127.0.0.1:1", timeout=120),
                 "--scheduler tcp://127.0.0.1:1", "cannot connect")


CLUSTER_RUN = ["--dask-workers", "1", "--dataset", "moons", "--n-samples", "20000",
               "--chunk-rows", "5000", "--epochs", "1000000", "--save", "m.npz"]


def test_first_ctrl_c_on_a_cluster_stops_after_the_epoch_and_says_so(tmp_path):
    # It exited 0 with a report that looked like a finished run: the CLI kept Python's
    # KeyboardInterrupt (the loop rolled back and returned) without telling anyone.
    status, out, err = train_with_sigint(tmp_path, [*CLUSTER_RUN, "--json"], presses=1,
                                         after_epoch=3)
    assert status == 130, (out, err)
    assert err.startswith("xpnet: stopping after epoch "), err
    report = json.loads(out)
    assert report["interrupted"] is True
    epochs = report["training"]["epochs"]
    assert 3 <= epochs < 1000000 and len(report["training"]["loss_curve"]) == epochs
    model = xpnet.load(tmp_path / "m.npz")  # saved: the weights of the last whole epoch
    assert tuple(model.layer_sizes) == (2, 8, 1)


def test_second_ctrl_c_on_a_cluster_aborts_writing_nothing(tmp_path):
    status, out, err = train_with_sigint(tmp_path, CLUSTER_RUN, presses=2, after_epoch=2)
    assert status == 130, (out, err)
    assert err.splitlines()[-1] == "xpnet: aborted; nothing was written", err
    assert os.listdir(tmp_path) == []

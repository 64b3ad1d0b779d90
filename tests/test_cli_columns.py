"""``xpnet evaluate``/``predict`` pick a model's feature columns by name (issue 8, section 7).

The data set makes the column order matter: ``weight`` alone decides the species, while
``height`` and ``tail`` are noise on a similar scale. A model fed the columns in another
order therefore answers wrongly, which these tests would see as a drop in accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import assert_error, run, write_csv

import xpnet

N_ROWS = 120


def _columns() -> dict[str, list]:
    rng = np.random.default_rng(1)
    species = np.where(np.arange(N_ROWS) % 2 == 0, "coyote", "fox")
    weight = np.where(species == "coyote", 15.0, 6.0) + rng.normal(0, 1.5, N_ROWS)
    return {
        "weight": [f"{v:.3f}" for v in weight],
        "height": [f"{v:.3f}" for v in rng.normal(12, 5, N_ROWS)],
        "tail": [f"{v:.3f}" for v in rng.normal(8, 5, N_ROWS)],
        "species": list(species),
        "id": [f"animal-{i}" for i in range(N_ROWS)],  # not a number: must not be read
    }


def write(path, names):
    columns = _columns()
    return write_csv(path, names, [list(row) for row in zip(*(columns[n] for n in names))])


@pytest.fixture(scope="module")
def animals(tmp_path_factory):
    """A folder with train.csv and the model trained on it (m.npz)."""
    folder = tmp_path_factory.mktemp("animals")
    write(folder / "train.csv", ["weight", "height", "tail", "species"])
    proc = run("train", "--data", folder / "train.csv", "--target", "species", "--epochs",
               "300", "--save", folder / "m.npz", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test"]["accuracy"] >= 0.9
    return folder


def accuracy(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["accuracy"]


def predictions(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["predictions"]


def test_permuted_columns_are_matched_by_name(animals, tmp_path):
    reference = run("evaluate", animals / "m.npz", "--data", animals / "train.csv", "--json")
    permuted = write(tmp_path / "permuted.csv", ["tail", "height", "weight", "species"])
    proc = run("evaluate", animals / "m.npz", "--data", permuted, "--json")
    assert accuracy(proc) == accuracy(reference) >= 0.9
    assert proc.stderr == ""  # nothing ignored, nothing by position: nothing to say
    expected = predictions(run("predict", animals / "m.npz", "--data", animals / "train.csv",
                               "--json"))
    assert set(expected) == {"coyote", "fox"}
    got = predictions(run("predict", animals / "m.npz", "--data", permuted, "--json"))
    assert got == expected
    # features only, permuted, no target column: the same predictions
    features = write(tmp_path / "features.csv", ["height", "tail", "weight"])
    proc = run("predict", animals / "m.npz", "--data", features)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "row,prediction,p_coyote,p_fox"
    assert [line.split(",")[1] for line in proc.stdout.splitlines()[1:]] == expected


def test_extra_columns_are_ignored_and_listed(animals, tmp_path):
    expected = predictions(run("predict", animals / "m.npz", "--data", animals / "train.csv",
                               "--json"))
    wider = write(tmp_path / "wider.csv", ["id", "tail", "species", "height", "weight"])
    proc = run("predict", animals / "m.npz", "--data", wider, "--json")
    assert predictions(proc) == expected
    assert proc.stderr == "xpnet: note: wider.csv: ignoring column the model does not use: " \
        "'id'\n"
    proc = run("evaluate", animals / "m.npz", "--data", wider)
    assert proc.returncode == 0, proc.stderr
    assert "ignoring column the model does not use: 'id'" in proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("accuracy  ")
    # --quiet: only errors
    proc = run("evaluate", animals / "m.npz", "--data", wider, "--quiet")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_missing_feature_columns_are_named(animals, tmp_path):
    short = write(tmp_path / "short.csv", ["tail", "species", "height"])
    for command in ("evaluate", "predict"):
        assert_error(run(command, animals / "m.npz", "--data", short),
                     "lacks the model's feature column 'weight'",
                     "its columns are: 'tail', 'species', 'height'")
    shorter = write(tmp_path / "shorter.csv", ["height", "id"])
    assert_error(run("predict", animals / "m.npz", "--data", shorter),
                 "lacks the model's feature columns 'weight', 'tail'")


def test_missing_target_column_is_named(animals, tmp_path):
    features = write(tmp_path / "ok.csv", ["tail", "height", "weight"])
    assert_error(run("evaluate", animals / "m.npz", "--data", features),
                 "ok.csv has no target column 'species' (the model's target)", "--target")
    # never another column in its place (issue 16: it scored the last one, exit 0): the
    # error names the model's target and the columns that could be it
    renamed = write(tmp_path / "renamed.csv", ["tail", "height", "weight", "id"])
    assert_error(run("evaluate", animals / "m.npz", "--data", renamed),
                 "renamed.csv has no target column 'species' (the model's target)",
                 "its columns besides the model's 3 features are 'id'", "--target")
    # the species column renamed: the same error, and --target names it
    label = write(tmp_path / "label.csv", ["tail", "height", "weight", "species"])
    label.write_text(label.read_text().replace("species", "label", 1))
    assert_error(run("evaluate", animals / "m.npz", "--data", label),
                 "label.csv has no target column 'species'", "are 'label'")
    proc = run("evaluate", animals / "m.npz", "--data", label, "--target", "label", "--json")
    assert accuracy(proc) >= 0.9


def test_files_without_column_names_count_by_position_and_say_so(animals, tmp_path):
    columns = _columns()
    X = np.array([[float(v) for v in columns[n]] for n in ("weight", "height", "tail")]).T
    np.savez(tmp_path / "animals.npz", X=X, y=np.array(columns["species"]))
    proc = run("evaluate", animals / "m.npz", "--data", tmp_path / "animals.npz", "--json")
    assert accuracy(proc) >= 0.9
    assert proc.stderr == ("xpnet: warning: animals.npz has no column names: its columns are "
                           "taken by position as the model's 'weight', 'height', 'tail'\n")
    np.save(tmp_path / "animals.npy", X)
    proc = run("predict", animals / "m.npz", "--data", tmp_path / "animals.npy", "--json")
    assert len(predictions(proc)) == N_ROWS
    assert proc.stderr.count("\n") == 1 and "taken by position" in proc.stderr


def test_models_without_feature_names_keep_positions(animals, tmp_path):
    bare = tmp_path / "bare.npz"
    net = xpnet.load(animals / "m.npz")
    xpnet.save(net, bare, classes=net.metadata["classes"],
               standardize=net.metadata["standardize"])
    assert "feature_names" not in xpnet.load(bare).metadata
    in_order = run("evaluate", bare, "--data", animals / "train.csv", "--json")
    assert accuracy(in_order) >= 0.9 and in_order.stderr == ""
    permuted = write(tmp_path / "permuted.csv", ["tail", "height", "weight", "species"])
    assert accuracy(run("evaluate", bare, "--data", permuted, "--json")) < 0.8


def test_models_of_unnamed_columns_take_a_csv_by_position(tmp_path):
    """Trained on a generated set (features x1, x2), scored on a CSV headed a,b,label."""
    X, y = xpnet.data.make_moons(200, noise=0.1, seed=3)
    write_csv(tmp_path / "moons.csv", ["a", "b", "label"],
              [[f"{p:.6f}", f"{q:.6f}", int(t)] for (p, q), t in zip(X, y, strict=True)])
    proc = run("train", "--epochs", "300", "--save", tmp_path / "moons.npz", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert xpnet.load(tmp_path / "moons.npz").metadata["feature_names"] == ["x1", "x2"]
    proc = run("evaluate", tmp_path / "moons.npz", "--data", tmp_path / "moons.csv", "--json")
    assert accuracy(proc) >= 0.9
    assert proc.stderr == ""


def test_builtin_data_sets_still_evaluate(tmp_path):
    proc = run("train", "--dataset", "circles", "--epochs", "200", "--save",
               tmp_path / "c.npz", "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = run("evaluate", tmp_path / "c.npz", "--dataset", "circles", "--json")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_builtin_data_sets_are_matched_by_name_too(tmp_path):
    """A model of moons saved as x2,x1 scores --dataset moons (x1, x2) in its own order;
    one of other names gets the columns by position and a warning."""
    X, y = xpnet.data.make_moons(400, noise=0.1, seed=0)
    rows = [[f"{q:.6f}", f"{p:.6f}", int(t)] for (p, q), t in zip(X, y, strict=True)]
    write_csv(tmp_path / "swapped.csv", ["x2", "x1", "class"], rows)
    write_csv(tmp_path / "named.csv", ["v", "u", "class"], rows)
    for name in ("swapped", "named"):
        proc = run("train", "--data", tmp_path / f"{name}.csv", "--epochs", "500",
                   "--test-fraction", "0", "--save", tmp_path / f"{name}.npz", "--quiet")
        assert proc.returncode == 0, proc.stderr
    proc = run("evaluate", tmp_path / "swapped.npz", "--dataset", "moons", "--json")
    assert accuracy(proc) >= 0.95 and proc.stderr == ""
    proc = run("evaluate", tmp_path / "named.npz", "--dataset", "moons", "--json")
    assert accuracy(proc) < 0.9  # v, u taken as x1, x2: swapped, as the warning says
    assert proc.stderr == ("xpnet: warning: data set 'moons' names its columns 'x1', 'x2', "
                           "not as the model's 'v', 'u'; they are taken by position\n")

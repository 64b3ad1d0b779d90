"""Data sets, user files, splitting and standardisation (NumPy only, real files)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from xpnet.data import (
    DATASETS,
    GENERATED,
    DataError,
    Standardizer,
    encode_labels,
    encode_target,
    load_dataset,
    load_file,
    make_moons,
    split_indices,
    stratified_split,
    train_test_split,
)

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


@pytest.mark.parametrize("name", GENERATED)
def test_generated_sets_are_seeded_balanced_2d(name):
    a = load_dataset(name, n_samples=101, seed=3)
    b = load_dataset(name, n_samples=101, seed=3)
    c = load_dataset(name, n_samples=101, seed=4)
    assert a.X.shape == (101, 2) and a.y.shape == (101,)
    assert a.X.dtype == np.float64 and np.all(np.isfinite(a.X))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    counts = np.bincount(a.y)
    assert counts.size == 2 and abs(int(counts[0]) - int(counts[1])) <= 1


def test_generated_noise_zero_is_exact_geometry():
    circles = load_dataset("circles", n_samples=200, noise=0.0)
    radius = np.hypot(circles.X[:, 0], circles.X[:, 1])
    np.testing.assert_allclose(radius[circles.y == 0], 1.0)
    np.testing.assert_allclose(radius[circles.y == 1], 0.5)
    xor = load_dataset("xor", n_samples=8, noise=0.0)
    np.testing.assert_array_equal(xor.y, (np.sign(xor.X[:, 0]) != np.sign(xor.X[:, 1])))


def test_make_moons_signature_unchanged():
    X, y = make_moons(10, noise=0.0, seed=0)
    assert X.shape == (10, 2) and set(y.tolist()) == {0, 1}
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, 0.3, seed=0)
    assert len(X_tr) + len(X_te) == 10 and len(X_te) == 3


def test_unknown_data_set_lists_the_names():
    with pytest.raises(DataError, match="unknown data set 'nope'.*moons"):
        load_dataset("nope")


@pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn (the 'sklearn' extra) not installed")
@pytest.mark.parametrize(
    "name, shape, n_classes",
    [("digits", (1797, 64), 10), ("breast_cancer", (569, 30), 2), ("iris", (150, 4), 3),
     ("wine", (178, 13), 3)],
)
def test_sklearn_sets(name, shape, n_classes):
    data = load_dataset(name)
    assert data.X.shape == shape
    assert len(data.feature_names) == shape[1]
    target = encode_target(data.y)
    assert len(target.classes) == n_classes
    assert target.output == ("sigmoid" if n_classes == 2 else "softmax")
    assert name in DATASETS


def test_sklearn_missing_gives_install_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DataError, match=r"pip install 'xpnet\[sklearn\]'"):
        load_dataset("iris")


# ----------------------------------------------------------------------------- files
def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_named_target_and_string_labels(tmp_path):
    path = write(tmp_path, "d.csv", "a,label,b\n1,cat,2\n3,dog,4.5\n\n5,cat,6\n")
    data = load_file(path, target="label")
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4.5], [5, 6]])
    assert data.y.tolist() == ["cat", "dog", "cat"]
    assert data.feature_names == ["a", "b"] and data.target_name == "label"
    target = encode_target(data.y)
    assert target.classes == ["cat", "dog"] and target.y.tolist() == [0, 1, 0]


def test_csv_target_by_index_and_default_last(tmp_path):
    path = write(tmp_path, "d.csv", "x,y,t\n1,2,0\n3,4,1\n")
    assert load_file(path).y.tolist() == [0, 1]
    data = load_file(path, target="0")
    assert data.y.tolist() == [1, 3] and data.feature_names == ["y", "t"]
    data = load_file(path, target=-2)
    assert data.y.tolist() == [2, 4]


def test_csv_features_only_for_prediction(tmp_path):
    path = write(tmp_path, "d.csv", "x,y\n1,2\n3,4\n")
    data = load_file(path, target="class", n_features=2)
    assert data.y is None and data.X.shape == (2, 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("a,b,t\n", "no data rows"),
        ("a,b,t\n1,2,0\n3,4\n", "line 3: 2 cells but the header has 3 columns"),
        ("a,b,t\n1,x,0\n", "line 2, column 'b': non-numeric value 'x'"),
        ("a,b,t\n1,,0\n", "empty cell"),
        ("a,b,t\n1,nan,0\n", "NaN or infinite"),
        ("a,b,t\n1,inf,0\n", "NaN or infinite"),
        ("a,b,t\n1,2,nan\n", "target column 't'.*NaN"),
    ],
)
def test_bad_csv_files(tmp_path, text, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError, match=message):
        load_file(path)


def test_missing_file_and_missing_target_column(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_file(tmp_path / "nope.csv")
    path = write(tmp_path, "d.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="target column 'label' not found.*a, b"):
        load_file(path, target="label")
    with pytest.raises(DataError, match="out of range"):
        load_file(path, target="5")
    with pytest.raises(DataError, match="unsupported data file type"):
        load_file(write(tmp_path, "d.xlsx", "x"))


def test_npz_and_npy(tmp_path):
    X = np.arange(12.0).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 0, 1])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    data = load_file(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.X, X)
    np.testing.assert_array_equal(data.y, y)
    np.save(tmp_path / "d.npy", np.column_stack([y, X]))
    data = load_file(tmp_path / "d.npy", target="0")
    np.testing.assert_array_equal(data.X, X)
    np.testing.assert_array_equal(data.y, y)
    np.save(tmp_path / "f.npy", X)
    assert load_file(tmp_path / "f.npy", n_features=2).y is None


def test_bad_npz_and_npy(tmp_path):
    np.savez(tmp_path / "nox.npz", A=np.zeros((2, 2)))
    with pytest.raises(DataError, match="named 'X'"):
        load_file(tmp_path / "nox.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([[1, "a"]], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match="not a readable .npz"):
        load_file(tmp_path / "obj.npz")  # object arrays would need unpickling: refused
    np.savez(tmp_path / "nan.npz", X=np.array([[1.0, np.nan]]), y=np.zeros(1))
    with pytest.raises(DataError, match="NaN"):
        load_file(tmp_path / "nan.npz")
    np.savez(tmp_path / "rows.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="one entry per row"):
        load_file(tmp_path / "rows.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_file(tmp_path / "junk.npz")
    np.save(tmp_path / "array.npy", np.zeros((2, 2)))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    with pytest.raises(DataError, match="single .npy array"):
        load_file(tmp_path / "array.npz")
    (tmp_path / "zipped.npy").write_bytes((tmp_path / "nan.npz").read_bytes())
    with pytest.raises(DataError, match="is an .npz archive"):
        load_file(tmp_path / "zipped.npy")
    np.save(tmp_path / "one.npy", np.zeros(5))
    with pytest.raises(DataError, match="2-D"):
        load_file(tmp_path / "one.npy")


# ----------------------------------------------------------------------------- targets
def test_encode_target_chooses_the_task():
    assert encode_target(np.array([0, 1, 1, 0])).output == "sigmoid"
    assert encode_target(np.array([3, 1, 2, 1, 3, 2])).output == "softmax"
    reg = encode_target(np.linspace(0, 1, 10))
    assert reg.task == "regression" and reg.classes is None
    assert encode_target(np.array([0, 1, 0, 1]), "softmax").task == "multiclass"
    with pytest.raises(DataError, match="single class"):
        encode_target(np.array([1, 1, 1]))
    with pytest.raises(DataError, match="3 classes"):
        encode_target(np.array([0, 1, 2, 0]), "sigmoid")
    with pytest.raises(DataError, match="numeric target"):
        encode_target(np.array(["a", "b"]), "identity")


def test_encode_labels_matches_numbers_by_value():
    np.testing.assert_array_equal(encode_labels(np.array([1.0, 0.0]), [0, 1]), [1, 0])
    np.testing.assert_array_equal(encode_labels(np.array(["b", "a"]), ["a", "b"]), [1, 0])
    with pytest.raises(DataError, match="label 'c' is not one of the model's classes"):
        encode_labels(np.array(["a", "c"]), ["a", "b"])


# ----------------------------------------------------------------------------- split/scale
def test_stratified_split_keeps_every_class_on_both_sides():
    y = np.array([0] * 8 + [1] * 4 + [2] * 2)
    train, test = split_indices(len(y), 0.25, seed=1, stratify=y)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
    assert set(y[train]) == set(y[test]) == {0, 1, 2}
    X = np.arange(len(y) * 2.0).reshape(-1, 2)
    X_tr, X_te, y_tr, y_te = stratified_split(X, y, 0.25, seed=1)
    assert len(X_tr) == len(y_tr) and set(y_te) == {0, 1, 2}


def test_class_with_one_row_cannot_be_split():
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    with pytest.raises(DataError, match="class 'virginica' has only 1 row"):
        split_indices(len(y), 0.3, stratify=y, labels=["setosa", "versicolor", "virginica"])
    train, test = split_indices(len(y), 0.0, stratify=y)  # no split: fine
    assert len(train) == 7 and len(test) == 0


@pytest.mark.parametrize("magnitude", [1e-300, 1e-320, 1e-160, 1.0, 1e150, 1e300])
def test_standardizer_scales_varying_columns_of_any_magnitude(magnitude):
    # A column of values ~1e-300 that differ is a feature (or a target), not a constant:
    # an absolute floor on the std made such a target "constant" and the model a silent
    # zero; the squares of 1e-300 also underflow to a std of 0 without pre-scaling.
    rng = np.random.default_rng(0)
    column = rng.normal(size=200) * magnitude
    scaler = Standardizer.fit(column)
    z = scaler.transform(column[:, None])[:, 0]
    # unit variance to the precision of the data: subnormal 1e-320 keeps ~3 digits only
    tol = 1e-3 if magnitude < 1e-307 else 1e-12
    assert abs(z.std() - 1) < tol and abs(z.mean()) < tol, (scaler.scale, z.std())
    back = scaler.inverse_transform(z[:, None])[:, 0]
    np.testing.assert_allclose(back, column, rtol=tol, atol=0)


@pytest.mark.parametrize("value", [1e-300, 0.1, 1.0, 3e300, 0.0])
def test_standardizer_constant_columns_of_any_magnitude(value):
    # equal values, whose computed std is at most rounding, stay centred and unscaled
    scaler = Standardizer.fit(np.full((1000, 1), value))
    assert scaler.scale.tolist() == [1.0]


def test_standardizer_uses_given_rows_and_handles_constant_columns():
    X_train = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = Standardizer.fit(X_train)
    np.testing.assert_allclose(scaler.mean, [2.0, 5.0])
    np.testing.assert_allclose(scaler.scale, [1.0, 1.0])  # std 1, constant -> 1
    X_new = np.array([[4.0, 6.0]])
    np.testing.assert_allclose(scaler.transform(X_new), [[2.0, 1.0]])
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(X_new)), X_new)
    assert X_new.tolist() == [[4.0, 6.0]]  # caller's array untouched
    again = Standardizer.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.mean, scaler.mean)
    with pytest.raises(DataError, match="features"):
        scaler.transform(np.zeros((1, 3)))

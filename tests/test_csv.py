"""CSV files as people have them (issue 16 §1, §2, §4): read by pyarrow, judged, never
guessed silently. Real files: the CSVs scikit-learn ships in its package, what pandas'
``to_csv`` writes, compressed forms; the CLI run as a subprocess."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from crafting import peak_rss_of_load
from helpers import one_line_error

from xpnet.data import DataError, load_file

pytest.importorskip("pyarrow", reason="the csv extra (pyarrow) is not installed")
sklearn = pytest.importorskip("sklearn", reason="scikit-learn ships the CSV files used here")
SKLEARN_DATA = Path(sklearn.__file__).parent / "datasets" / "data"


def xpnet(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory):
    """scikit-learn's digits.csv.gz, unpacked: 1797 rows, 64 pixels and the digit, no
    header."""
    folder = tmp_path_factory.mktemp("digits")
    with gzip.open(SKLEARN_DATA / "digits.csv.gz", "rb") as packed:
        (folder / "digits.csv").write_bytes(packed.read())
    shutil.copy(SKLEARN_DATA / "digits.csv.gz", folder / "digits.csv.gz")
    return folder / "digits.csv"


def iris_frame():
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.drop(columns="target")
    frame["species"] = bunch.target_names[bunch.target]
    return frame


# ----------------------------------------------------------------------- the first line
def test_a_headerless_file_is_refused_as_having_a_header(digits_csv, tmp_path):
    proc = xpnet("train", "--data", digits_csv, "--save", tmp_path / "d.npz")
    one_line_error(proc, "holds only numbers", "--no-header", "x1..x65")
    assert not (tmp_path / "d.npz").exists()
    with pytest.raises(DataError, match="header=False"):
        load_file(digits_csv)


def test_no_header_reads_every_row_and_evaluate_scores_the_same_file(digits_csv, tmp_path):
    data = load_file(digits_csv, header=False)
    assert data.X.shape == (1797, 64) and data.feature_names[0] == "x1"
    assert data.target_name == "x65" and sorted(set(data.y.tolist())) == list(range(10))
    proc = xpnet("train", "--data", digits_csv, "--no-header", "--epochs", "60",
                 "--save", tmp_path / "d.npz", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    test_accuracy = json.loads(proc.stdout)["test"]["accuracy"]
    proc = xpnet("evaluate", tmp_path / "d.npz", "--data", digits_csv, "--no-header",
                 "--json")
    assert proc.returncode == 0, proc.stderr
    # the whole file (train and test rows): near the test accuracy, not the 0.04 that a
    # mis-read header gave
    assert json.loads(proc.stdout)["accuracy"] > max(0.8, test_accuracy - 0.1)


def test_compressed_forms_read_as_the_plain_file(digits_csv, tmp_path):
    plain = load_file(digits_csv, header=False)
    raw = digits_csv.read_bytes()
    (tmp_path / "d.csv.bz2").write_bytes(bz2.compress(raw))
    (tmp_path / "d.csv.xz").write_bytes(lzma.compress(raw))
    forms = [digits_csv.with_suffix(".csv.gz"), tmp_path / "d.csv.bz2", tmp_path / "d.csv.xz"]
    try:
        import pyarrow as pa

        with pa.output_stream(tmp_path / "d.csv.zst", compression="zstd") as out:
            out.write(raw)
        forms.append(tmp_path / "d.csv.zst")
    except (ImportError, ValueError):  # a pyarrow built without zstd
        pass
    for path in forms:
        data = load_file(path, header=False)
        np.testing.assert_array_equal(data.X, plain.X, err_msg=str(path))
        np.testing.assert_array_equal(data.y, plain.y, err_msg=str(path))


@pytest.mark.parametrize("name, n_features, classes", [
    ("iris.csv", 4, ["setosa", "versicolor", "virginica"]),
    ("breast_cancer.csv", 30, ["benign", "malignant"]),
    ("wine_data.csv", 13, ["class_0", "class_1", "class_2"]),
])
def test_scikit_learns_own_format_is_read_as_what_it_is(name, n_features, classes):
    """First line ``n_samples,n_features,class names``: the class names label the
    integer target (breast_cancer.csv's first line has 4 cells for 31 columns)."""
    data = load_file(SKLEARN_DATA / name)
    reference = {"iris.csv": "load_iris", "breast_cancer.csv": "load_breast_cancer",
                 "wine_data.csv": "load_wine"}[name]
    from sklearn import datasets

    bunch = getattr(datasets, reference)()
    np.testing.assert_array_equal(data.X, bunch.data)
    assert data.X.shape[1] == n_features and data.feature_names[0] == "x1"
    assert sorted(set(data.y.tolist())) == classes
    assert data.y.tolist() == bunch.target_names[bunch.target].tolist()


def test_a_model_trained_on_scikit_learns_iris_csv_predicts_a_named_iris_file(tmp_path):
    proc = xpnet("train", "--data", SKLEARN_DATA / "iris.csv", "--epochs", "100",
                 "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    assert "'150'" not in proc.stdout and "virginica" in proc.stdout
    named = tmp_path / "named.csv"
    iris_frame().drop(columns="species").to_csv(named, index=False)
    proc = xpnet("predict", tmp_path / "m.npz", "--data", named)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 151


def test_scikit_learns_header_must_match_the_row_count(tmp_path):
    lines = (SKLEARN_DATA / "iris.csv").read_text().splitlines()
    (tmp_path / "short.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=r"150 rows, 4 features\) but the file has 149"):
        load_file(tmp_path / "short.csv")


def test_pandas_index_column_is_dropped_with_a_note_never_a_feature(tmp_path):
    """iris is sorted by class: the index alone predicts the label (accuracy 1.0)."""
    path = tmp_path / "iris.csv"
    iris_frame().to_csv(path)  # pandas' default: the index first, its header cell empty
    data = load_file(path)
    assert data.feature_names == ["sepal length (cm)", "sepal width (cm)",
                                  "petal length (cm)", "petal width (cm)"]
    assert data.notes == [f"ignoring column 1 of {path}, an unnamed row index (0, 1, 2, ...)"]
    proc = xpnet("train", "--data", path, "--epochs", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "xpnet: note: ignoring column 1" in proc.stderr and "row index" in proc.stderr
    import json

    assert json.loads(proc.stdout)["data"]["features"] == 4


def test_an_index_that_stops_counting_later_in_the_file_is_an_error(tmp_path):
    """Judged on the first block, checked in every block: 50,000 rows span many."""
    rows = np.arange(50_000)
    index = rows.copy()
    index[40_000] = 7
    path = tmp_path / "ix.csv"
    with open(path, "w") as out:
        out.write(",a,b\n")
        for i, r in zip(index, rows):
            out.write(f"{i},{r % 7},{r % 2}\n")
    with pytest.raises(DataError, match=r"line 40002: column 1 has no name .* holds 7"):
        load_file(path)


def test_an_unnamed_first_column_that_is_no_index_stays_a_feature(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text(",a,t\n5.5,1,0\n2.5,2,1\n9,3,0\n")
    data = load_file(path)
    assert data.feature_names == ["x1", "a"] and data.notes == []
    np.testing.assert_array_equal(data.X[:, 0], [5.5, 2.5, 9])


def test_column_names_are_stripped_and_duplicates_refused(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf a , b ,t\n1,2,0\n3,4,1\n")
    assert load_file(path).feature_names == ["a", "b"]
    path.write_text("a,b,a,t\n1,2,3,0\n4,5,6,1\n")
    with pytest.raises(DataError, match="more than one column named 'a'"):
        load_file(path)


def test_a_header_with_another_cell_count_suggests_no_header(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3,4\n5,6,7,8\n")
    with pytest.raises(DataError, match=r"line 2: 4 cells but the header has 3 .*--no-header"):
        load_file(path)


# ----------------------------------------------------------------------- delimiters
def test_tsv_and_delimiter_and_a_file_split_on_the_wrong_one(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tb\tt\n1\t2\t0\n3\t4\t1\n")
    assert load_file(tmp_path / "t.tsv").X.tolist() == [[1, 2], [3, 4]]
    (tmp_path / "s.csv").write_text("a;b;t\n1,5;2;0\n3;4;1\n")
    with pytest.raises(DataError, match=r"line 2, column 'a': non-numeric value '1,5'"):
        load_file(tmp_path / "s.csv", delimiter=";")
    shutil.copy(SKLEARN_DATA / "linnerud_exercise.csv", tmp_path / "lin.csv")
    proc = xpnet("train", "--data", tmp_path / "lin.csv", "--epochs", "5")
    one_line_error(proc, "single column when split on ','", "--delimiter ' '")
    proc = xpnet("train", "--data", tmp_path / "lin.csv", "--delimiter", "space",
                 "--epochs", "5")
    assert proc.returncode == 0, proc.stderr
    assert load_file(tmp_path / "lin.csv", delimiter=" ").feature_names == ["Chins", "Situps"]


# ----------------------------------------------------------------------- every cell
@pytest.mark.parametrize("cell, message", [
    ("", "empty cell"),
    ("1_000", "non-numeric value '1_000'"),
    ("nan", "'nan' is NaN or infinite"),
    ("-Infinity", "is NaN or infinite"),
    ("1e400", "beyond float64"),
    ("0x10", "non-numeric value '0x10'"),
    ("\uff11", "non-numeric value"),  # a full-width digit
    ("1.5e", "non-numeric value '1.5e'"),
    (".", "non-numeric value '.'"),
])
def test_a_bad_cell_far_into_the_file_is_named_by_line_and_column(tmp_path, cell, message):
    """pyarrow names neither; the line counts blank lines and a quoted line break."""
    path = tmp_path / "bad.csv"
    with open(path, "w") as out:
        out.write('f1,f2,f3,f4,label\n\n"1",2,3,4,"a\nb"\n')
        for i in range(30_000):
            out.write(f"{i},{i},{i},{cell if i == 20_000 else i},x\n")
    with pytest.raises(DataError) as info:
        load_file(path)
    text = str(info.value)
    assert f"line {20_000 + 5}, column 'f4': " in text and message in text, text


@pytest.mark.parametrize("cell", ["1", "+1", "-1.", ".5", "1e5", "1E-05", " 2 ", "\t3", "007"])
def test_what_is_read_as_a_number(tmp_path, cell):
    """Exactly the cells that xpnet's rule (sign, digits, point, exponent) calls numbers,
    with spaces and tabs around them stripped."""
    path = tmp_path / "n.csv"
    path.write_text(f"a,t\n{cell},0\n1,1\n")
    assert load_file(path).X[0, 0] == float(cell.strip())


def test_a_numeric_target_with_a_label_late_in_the_file_is_all_labels(tmp_path):
    """Read as numbers first; the label far into the file starts the reading again with
    the target as text: the same answer as reading it as text throughout."""
    path = tmp_path / "late.csv"
    with open(path, "w") as out:
        out.write("a,t\n")
        for i in range(50_000):
            out.write(f"{i},{'cat' if i == 45_000 else i % 3}\n")
    data = load_file(path)
    assert data.y.dtype.kind == "U" and data.y[45_000] == "cat" and data.y[1] == "1"
    assert data.X.shape == (50_000, 1)


def test_rows_of_empty_cells_are_skipped_like_blank_lines(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("a,b,t\n1,2,0\n,,\n\n3,4,1\n")
    assert load_file(path).X.tolist() == [[1, 2], [3, 4]]


def test_predict_copies_the_true_target_as_written(tmp_path):
    path = tmp_path / "reg.csv"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    with open(path, "w") as out:
        out.write("a,b,y\n")
        for a, b in X:
            out.write(f"{a},{b},{a + b:.3E}\n")
    proc = xpnet("train", "--data", path, "--epochs", "20", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    proc = xpnet("predict", tmp_path / "m.npz", "--data", path)
    assert proc.returncode == 0, proc.stderr
    written = [line.split(",")[-1] for line in path.read_text().splitlines()[1:]]
    header, *rows = proc.stdout.splitlines()
    column = header.split(",").index("true_y")
    assert [row.split(",")[column] for row in rows] == written


# ----------------------------------------------------------------------- memory and speed
def write_numbers(path: Path, rows: int, columns: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((rows, columns))
    with open(path, "w") as out:
        out.write(",".join(f"f{i}" for i in range(columns - 1)) + ",y\n")
        np.savetxt(out, data, delimiter=",", fmt="%.17g")
    return data


def test_the_data_memory_limit_applies_to_csv_files(tmp_path):
    write_numbers(tmp_path / "big.csv", 100_000, 50)  # 40 MB of float64 features
    proc = xpnet("train", "--data", "big.csv", "--epochs", "1", cwd=tmp_path,
                 env={"XPNET_MAX_DATA_BYTES": "8M"})
    line = one_line_error(proc, "data file 'big.csv'", "XPNET_MAX_DATA_BYTES")
    assert re.search(r"would take .* more than the limit of 8.0 MiB", line), line


def test_reading_peaks_within_twice_the_parsed_arrays_and_never_imports_pandas(tmp_path):
    """Measured in a fresh interpreter (pyarrow already imported: its library is a
    fixed cost, not the parse's)."""
    data = write_numbers(tmp_path / "m.csv", 200_000, 21)
    arrays = data.nbytes / 2**20  # 32 MiB: X and the float target
    code = ("import sys, pyarrow.csv\n"
            "from xpnet.data import load_file\n"
            "def attempt():\n"
            f"    d = load_file({str(tmp_path / 'm.csv')!r})\n"
            "    print(d.X.shape, 'pandas' in sys.modules)\n")
    printed, _, grown = peak_rss_of_load(code, timeout=300)
    assert printed.splitlines()[0] == "(200000, 20) False", printed
    assert grown < 2 * arrays, (grown, arrays)
    got = load_file(tmp_path / "m.csv")
    np.testing.assert_array_equal(got.X, data[:, :-1])  # %.17g: every bit kept
    np.testing.assert_array_equal(got.y, data[:, -1])


def test_without_pyarrow_reading_a_csv_is_one_line_naming_the_extra(tmp_path):
    (tmp_path / "a.csv").write_text("a,t\n1,0\n2,1\n")
    script = ("import sys; sys.modules['pyarrow'] = None\n"
              "from xpnet.cli import main\n"
              "sys.exit(main(['train', '--data', sys.argv[1]]))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.csv")],
                          capture_output=True, text=True, timeout=120)
    one_line_error(proc, "needs pyarrow", "pip install 'xpnet[csv]'")


@pytest.mark.parametrize("piece", [7, 64, 1000, 1 << 20])
@pytest.mark.parametrize("final_newline", [True, False])
@pytest.mark.parametrize("workers", [1, 3])
def test_pieces_of_whole_lines_read_every_row_once_in_order(tmp_path, monkeypatch, piece,
                                                            final_newline, workers):
    # The file reaches pyarrow in pieces cut after a line break: a piece smaller than one
    # line (7 bytes), than the header, or the whole file must all give the same rows,
    # with a last line that lacks its line break read too; pieces parsed on several
    # threads at once (3, whatever this machine's cores) come back in the file's order.
    from xpnet import _csv
    from xpnet._csv import CsvReader

    monkeypatch.setattr(_csv, "_workers", lambda: workers)

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    lines = ["long_feature_name_a,b,c,t"] + [
        f"{a!r},{b!r},{c!r},{i % 3}" for i, (a, b, c) in enumerate(X.tolist())]
    path = tmp_path / "p.csv"
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""))
    reader = CsvReader(str(path))
    blocks = list(reader.blocks(piece, target_text=False))
    assert [b.first_row for b in blocks] == list(np.cumsum([0] + [b.X.shape[0]
                                                               for b in blocks])[:-1])
    np.testing.assert_array_equal(np.concatenate([b.X for b in blocks]), X)
    np.testing.assert_array_equal(np.concatenate([b.y for b in blocks]),
                                  np.arange(300) % 3)
    if piece == 7:
        assert len(blocks) == 300  # one line per piece: every cut was a line's end


def multi_piece_file(path: Path, rows: int = 3000) -> np.ndarray:
    X = np.random.default_rng(2).normal(size=(rows, 3))
    path.write_text("a,b,c,t\n" + "".join(f"{a!r},{b!r},{c!r},{i % 2}\n"
                                           for i, (a, b, c) in enumerate(X.tolist())))
    return X


def test_piece_buffers_are_used_again_once_parsed(tmp_path, monkeypatch):
    """Fresh memory for every piece cost a page fault per 4 KiB of text (1.05-1.46 s
    against 0.86-0.96 s on 10^6 x 20 numbers): a buffer whose piece is parsed is read
    into again, so a file of a hundred pieces needs only those in flight."""
    import pyarrow as pa

    from xpnet import _csv

    X = multi_piece_file(tmp_path / "m.csv")
    monkeypatch.setattr(_csv, "_workers", lambda: 2)
    real, made = pa.allocate_buffer, []

    def allocate_buffer(size, *args, **kwargs):
        made.append(size)
        return real(size, *args, **kwargs)

    monkeypatch.setattr(pa, "allocate_buffer", allocate_buffer)
    reader = _csv.CsvReader(str(tmp_path / "m.csv"))
    blocks = list(reader.blocks(1000, target_text=False))
    np.testing.assert_array_equal(np.concatenate([b.X for b in blocks]), X)
    pieces = (tmp_path / "m.csv").stat().st_size // 1000
    assert pieces > 100 and 2 <= len(made) <= 2 + 3, (pieces, len(made))


def test_a_reader_stopped_early_leaves_no_thread_running(tmp_path, monkeypatch):
    import threading

    from xpnet import _csv

    multi_piece_file(tmp_path / "m.csv")
    monkeypatch.setattr(_csv, "_workers", lambda: 3)
    blocks = _csv.CsvReader(str(tmp_path / "m.csv")).blocks(1000, target_text=False)
    first = next(blocks)
    assert first.first_row == 0 and any(t.name.startswith("xpnet-csv")
                                        for t in threading.enumerate())
    blocks.close()  # what a consumer's error or break does to the generator
    assert not [t.name for t in threading.enumerate() if t.name.startswith("xpnet-csv")]


@pytest.mark.parametrize("workers", [1, 3])
def test_the_first_bad_cell_in_the_file_is_the_one_named(tmp_path, monkeypatch, workers):
    # Two bad cells in different pieces parsed at once: the error names the earlier
    # line, whichever thread finished first.
    from xpnet import _csv

    multi_piece_file(tmp_path / "m.csv")
    lines = (tmp_path / "m.csv").read_text().splitlines(keepends=True)
    lines[2400] = "1,,2,0\n"
    lines[1700] = "1,nan,2,0\n"
    (tmp_path / "m.csv").write_text("".join(lines))
    monkeypatch.setattr(_csv, "_workers", lambda: workers)
    with pytest.raises(DataError, match=r"line 1701, column 'b': value 'nan' is NaN"):
        list(_csv.CsvReader(str(tmp_path / "m.csv")).blocks(1000, target_text=False))


def test_the_text_pyarrow_parses_is_memory_pyarrow_owns(tmp_path, monkeypatch):
    """pyarrow's threaded reader can drop its last hold on its input on a worker thread
    after ``read_csv`` returned. A Python ``bytes`` there needs the GIL, and a process
    exiting meanwhile aborted: "terminate called without an active exception", exit -6,
    after ``xpnet predict`` had written its output (3 runs in 180 on two busy cores; CI
    failed on it). So the text is handed over in pyarrow's own memory: at the call, the
    pool pyarrow parses with already holds the whole piece."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from xpnet._csv import CsvReader

    data = write_numbers(tmp_path / "m.csv", 200, 3)  # one piece
    pool = pa.system_memory_pool()
    real, seen = pacsv.read_csv, []

    def read_csv(source, *args, **kwargs):
        seen.append((pool.bytes_allocated() - before, source.size()))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pacsv, "read_csv", read_csv)
    reader = CsvReader(str(tmp_path / "m.csv"))
    before = pool.bytes_allocated()
    blocks = list(reader.blocks(target_text=False))
    np.testing.assert_array_equal(blocks[0].X, data[:, :-1])
    assert len(seen) == 1
    held, size = seen[0]
    assert size > 200 * 3 * 17 and held >= size, seen

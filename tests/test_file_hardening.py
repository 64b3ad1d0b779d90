"""Crafted model and data files are refused with one clear error and bounded memory;
strings from files never reach the terminal as control sequences (issue 8, section 3)."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from crafting import (
    add_zero_member,
    decoded_header,
    model_members,
    npy_bytes,
    peak_rss_of_load,
    small_model,
    with_header,
    write_zip,
)
from test_cli import assert_error, run, run_on_terminal, write_csv

import xpnet
from xpnet.data import DataError, convert_to_zarr, load_file
from xpnet.io import ModelFileError, read_header


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "good.npz"
    return path, small_model(path)


# ----------------------------------------------------------------------------- model files
def test_raw_bytes_members_are_refused_not_attribute_errors(model, tmp_path):
    path, arrays = model
    members = model_members(arrays)
    members["W1.npy"] = b"raw bytes where a .npy array belongs"
    with pytest.raises(ModelFileError, match="member 'W1' is not a .npy array"):
        xpnet.load(write_zip(tmp_path / "raw.npz", members))
    members = model_members(arrays)
    members["header.npy"] = b'{"format": "xpnet-model"}'
    with pytest.raises(ModelFileError, match="member 'header' is not a .npy array"):
        read_header(write_zip(tmp_path / "raw_header.npz", members))
    members = model_members(arrays)
    members["W1"] = members.pop("W1.npy")  # np.load hands such a member back as bytes
    with pytest.raises(ModelFileError, match="'W1' is not a .npy array"):
        xpnet.load(write_zip(tmp_path / "no_suffix.npz", members))


def replace_alpha(arrays, text):
    return json.dumps(decoded_header(arrays)).replace('"alpha": 0.0', f'"alpha": {text}')


def header_with(arrays, field, value):
    header = decoded_header(arrays)
    target = header
    *parents, last = field.split(".")
    for key in parents:
        target = target[key]
    target[last] = value
    return header


def nested(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("case, make, message", [
    ("alpha 10**400", lambda a: replace_alpha(a, "1" + "0" * 400),
     "field 'alpha' must be a finite number; got an integer of 401 digits"),
    ("5000-digit integer", lambda a: replace_alpha(a, "1" + "0" * 5000),
     "field 'alpha' holds an integer of 5001 digits"),
    ("100,000-deep nesting", lambda a: replace_alpha(a, "[" * 100_000 + "]" * 100_000),
     "nested 100001 levels deep; at most 32"),
    ("NaN constant", lambda a: replace_alpha(a, "NaN"), "field 'alpha' holds NaN"),
    ("float overflow", lambda a: replace_alpha(a, "1e999"), "field 'alpha' holds 1e999"),
    ("unhashable activation", lambda a: header_with(a, "activations", [[]]),
     "field 'activations' must name one of"),
    ("unhashable output", lambda a: header_with(a, "output", {}), "field 'output' must be"),
    ("unhashable dtype", lambda a: header_with(a, "dtype", ["float64"]), "field 'dtype'"),
    ("negative split seed", lambda a: header_with(a, "metadata.split.seed", -1),
     "field 'split.seed' must be an integer >= 0"),
    ("boolean split fraction", lambda a: header_with(a, "metadata.split.test_fraction", True),
     "split.test_fraction"),
    ("huge class label", lambda a: header_with(a, "metadata.classes", [1, 10**400]),
     "field 'classes' must be a finite number"),
    ("huge statistics", lambda a: header_with(
        a, "metadata.standardize", {"mean": [0, 0, 10**400], "scale": [1, 1, 1]}),
     "field 'standardize.mean' must be a finite number"),
    ("huge layer size", lambda a: header_with(a, "layer_sizes", [3, 10**30, 2]),
     "field 'layer_sizes' must be 2+ positive integers"),
    ("deep extra", lambda a: header_with(a, "metadata.extra", {"x": nested(40)}),
     "levels deep"),
    ("format version 10**500", lambda a: header_with(a, "format_version", 10**500),
     "format version an integer of 501 digits"),
])
def test_crafted_header_values_are_model_file_errors_naming_the_field(
        model, tmp_path, case, make, message):
    _, arrays = model
    path = with_header(tmp_path / "crafted.npz", arrays, make(arrays))
    with pytest.raises(ModelFileError) as info:
        xpnet.load(path)
    assert message in str(info.value), (case, str(info.value))
    with pytest.raises(ModelFileError):
        read_header(path)


def test_header_size_is_capped_before_decoding(model, tmp_path):
    _, arrays = model
    text = json.dumps(decoded_header(arrays))
    padded = text[:-1] + " " * (17 * 2**20) + "}"  # valid JSON, 17 MiB of spaces
    with pytest.raises(ModelFileError, match="header has 178[0-9]{5} bytes; at most 16777216"):
        xpnet.load(with_header(tmp_path / "big_header.npz", arrays, padded))


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    names = ["[" * 40, '\\"' + "{" * 40, '"]]}' * 10]  # escaped quotes do not end a string
    net = xpnet.MLP([3, 2, 1], seed=0)
    xpnet.save(net, tmp_path / "m.npz", feature_names=names, note="[[[[" * 20)
    assert xpnet.load(tmp_path / "m.npz").metadata["feature_names"] == names


def test_save_refuses_what_load_would_refuse(tmp_path):
    net = xpnet.MLP([2, 3, 1], seed=0)
    deep: list = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ModelFileError, match="levels deep"):
        xpnet.save(net, tmp_path / "m.npz", note=deep)
    with pytest.raises(ModelFileError, match="split.seed"):
        xpnet.save(net, tmp_path / "m.npz", split={"test_fraction": 0.2, "seed": -1})
    assert not (tmp_path / "m.npz").exists()


def write_model_with(tmp_path, arrays, name, build):
    """A model zip of ``arrays`` plus whatever ``build(archive)`` streams into it."""
    path = tmp_path / name
    members = model_members(arrays)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for member, data in members.items():
            if not build(archive, member):
                archive.writestr(member, data)
    return path


@pytest.mark.parametrize("kind", ["undeclared member", "declared shape too large",
                                  "member longer than its .npy header", "1 GiB checksum"])
def test_model_zip_bombs_fail_fast_with_bounded_memory(model, tmp_path, kind):
    """1 GiB of zeros in a ~1 MiB file: refused from the zip directory and the .npy
    header, before decompressing it (it used to be decompressed whole first)."""
    _, arrays = model
    gib = 1 << 27  # float64 entries in 1 GiB

    def build(archive, member):
        if kind == "undeclared member" and member == "checksum.npy":
            add_zero_member(archive, "padding.npy", (gib,))
        if kind == "declared shape too large" and member == "W1.npy":
            add_zero_member(archive, "W1.npy", (3, gib // 3))
            return True
        if kind == "member longer than its .npy header" and member == "W1.npy":
            add_zero_member(archive, "W1.npy", (3, 4), extra=1 << 30)
            return True
        if kind == "1 GiB checksum" and member == "checksum.npy":
            add_zero_member(archive, "checksum.npy", (1 << 30,), descr="|u1")
            return True
        return False

    path = write_model_with(tmp_path, arrays, "bomb.npz", build)
    assert path.stat().st_size < 8 * 2**20
    message, seconds, grown = peak_rss_of_load(f"def attempt(): xpnet.load({str(path)!r})")
    assert message.startswith("ModelFileError: "), message
    expected = {"undeclared member": "unexpected arrays padding",
                "declared shape too large": "W1 has shape (3, 44739242)",
                "member longer than its .npy header": "holds 1073741920 bytes of data",
                "1 GiB checksum": "checksum mismatch"}[kind]
    assert expected in message
    assert seconds < 3, seconds
    assert grown < 64, f"peak RSS grew by {grown:.0f} MiB"


def test_read_header_decompresses_only_the_header(model, tmp_path):
    _, arrays = model

    def build(archive, member):
        if member == "W1.npy":  # a well-formed 1 GiB W1 that does not match the header
            add_zero_member(archive, "W1.npy", (1 << 15, 1 << 12))
            return True
        return False

    path = write_model_with(tmp_path, arrays, "bomb.npz", build)
    message, seconds, grown = peak_rss_of_load(
        f"def attempt(): print(xpnet.io.read_header({str(path)!r})['layer_sizes'])")
    assert message.splitlines() == ["[3, 4, 2]", "LOADED"]
    assert seconds < 3 and grown < 64, (seconds, grown)


def test_checked_model_still_loads_identically(model):
    path, arrays = model
    net = xpnet.load(path)
    for (W, b), name in zip(net.params, ("1", "2"), strict=True):
        np.testing.assert_array_equal(xpnet.to_numpy(W), arrays["W" + name])
        np.testing.assert_array_equal(xpnet.to_numpy(b), arrays["b" + name])


# ----------------------------------------------------------------------------- data files
def test_object_arrays_are_never_read(tmp_path):
    header = {"descr": "|O", "fortran_order": False, "shape": (2, 2)}
    with open(tmp_path / "obj.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(32))
    with pytest.raises(DataError, match="Python objects"):
        load_file(tmp_path / "obj.npy")
    members = {"X.npy": (tmp_path / "obj.npy").read_bytes(), "y.npy": npy_bytes(np.zeros(2))}
    with pytest.raises(DataError, match="Python objects"):
        load_file(write_zip(tmp_path / "obj.npz", members))


def test_npz_raw_bytes_member_is_a_data_error(tmp_path):
    members = {"X.npy": b"not an array", "y.npy": npy_bytes(np.zeros(2))}
    with pytest.raises(DataError, match="member 'X' is not a .npy array"):
        load_file(write_zip(tmp_path / "raw.npz", members))
    members = {"X": npy_bytes(np.zeros((2, 2))), "y.npy": npy_bytes(np.zeros(2))}
    with pytest.raises(DataError, match="member 'X' is not a .npy array"):
        load_file(write_zip(tmp_path / "nosuffix.npz", members))
    pytest.importorskip("zarr")
    with pytest.raises(DataError, match="member 'X' is not a .npy array"):  # the same check
        convert_to_zarr(tmp_path / "nosuffix.npz", tmp_path / "d.zarr")


def test_data_npz_bomb_is_refused_before_decompressing(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        add_zero_member(archive, "X.npy", (1 << 26, 2))  # 1 GiB
        add_zero_member(archive, "y.npy", (1 << 26,))
    assert path.stat().st_size < 8 * 2**20
    message, seconds, grown = peak_rss_of_load(
        f"def attempt(): xpnet.data.load_file({str(path)!r})",
        env={"XPNET_MAX_DATA_BYTES": "256M"})
    assert message.startswith("DataError: "), message
    assert ("'X' and 'y' would take 3.0 GiB (3221225472 bytes) in memory, more than the "
            "limit of 256.0 MiB (268435456 bytes)") in message
    assert "XPNET_MAX_DATA_BYTES" in message
    assert seconds < 3 and grown < 64, (seconds, grown)


def test_data_size_limit_applies_to_npy_and_can_be_raised(tmp_path, monkeypatch):
    X = np.arange(200.0).reshape(20, 10)
    np.save(tmp_path / "d.npy", X)
    np.savez(tmp_path / "d.npz", X=X, y=np.zeros(20))
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", "1K")
    for name in ("d.npy", "d.npz"):
        with pytest.raises(DataError, match=r"more than the limit of 1\.0 KiB \(1024 bytes\) "
                           r"\(set by XPNET_MAX_DATA_BYTES\); to raise it"):
            load_file(tmp_path / name)
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", "100K")
    np.testing.assert_array_equal(load_file(tmp_path / "d.npy").X, X[:, :-1])
    np.testing.assert_array_equal(load_file(tmp_path / "d.npz").X, X)
    # The array and its float64 copy: 2 x 1600 bytes, exactly at the limit, then one over.
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", "3200")
    assert load_file(tmp_path / "d.npy").X.shape == (20, 9)
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", "3199")
    with pytest.raises(DataError, match=r"would take 3\.1 KiB \(3200 bytes\) in memory, more "
                       r"than the limit of 3\.1 KiB \(3199 bytes\)"):
        load_file(tmp_path / "d.npy")
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", "lots")
    with pytest.raises(DataError, match="XPNET_MAX_DATA_BYTES='lots' is not a size"):
        load_file(tmp_path / "d.npy")


def test_truncated_and_crafted_npy(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((50, 3)))
    data = (tmp_path / "d.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[:-8])
    with pytest.raises(DataError, match="truncated"):
        load_file(tmp_path / "short.npy")
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)}
    with open(tmp_path / "huge.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(64))
    with pytest.raises(DataError, match="more than the limit"):
        load_file(tmp_path / "huge.npy")


def test_npy_header_that_breaks_numpys_tokenizer(tmp_path):
    """Found by the fuzz suite: numpy parses the header with tokenize, whose TokenError
    escaped as an unexpected error; the same header in a model member too."""
    raw = bytearray(npy_bytes(np.zeros(0)))
    raw[63] ^= 1  # the header's closing newline becomes a vertical tab
    (tmp_path / "bad.npy").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="malformed .npy header"):
        load_file(tmp_path / "bad.npy")
    path = tmp_path / "good.npz"
    members = model_members(small_model(path))
    members["b1.npy"] = bytes(raw)
    with pytest.raises(ModelFileError, match="malformed .npy header"):
        xpnet.load(write_zip(tmp_path / "bad.npz", members))


@pytest.mark.parametrize("cell", ["1_000", "\u0663", "\uff11", "1\u00a0", "0x10", "1e", "--1",
                                  "١٫٥"])
def test_csv_numbers_are_what_a_csv_reader_accepts(tmp_path, cell):
    path = write_csv(tmp_path / "d.csv", ["a", "b", "t"], [[cell, "2", "x"], ["3", "4", "y"]])
    with pytest.raises(DataError, match="non-numeric value"):
        load_file(path)


def test_csv_number_forms_still_accepted_and_labels_kept(tmp_path):
    rows = [["1.", "-.5e3", "1_000"], ["+3", "4E+2", "2"], [" 7 ", "-0", "2"]]
    data = load_file(write_csv(tmp_path / "d.csv", ["a", "b", "t"], rows))
    np.testing.assert_array_equal(data.X, [[1.0, -500.0], [3.0, 400.0], [7.0, -0.0]])
    assert data.y.tolist() == ["1_000", "2", "2"]  # "1_000" is a label, not a number
    data = load_file(write_csv(tmp_path / "n.csv", ["a", "t"], [["1", "2.5"], ["2", "1e3"]]))
    assert data.y.tolist() == [2.5, 1000.0]
    for value in ("nan", "-Infinity", "inf"):
        path = write_csv(tmp_path / "bad.csv", ["a", "t"], [["1", "0"], [value, "1"]])
        with pytest.raises(DataError, match="NaN or infinite"):
            load_file(path)
        path = write_csv(tmp_path / "badt.csv", ["a", "t"], [["1", "0"], ["2", value]])
        with pytest.raises(DataError, match="NaN or infinite"):
            load_file(path)


# ----------------------------------------------------------------------------- terminal
EVIL = "numpy\x1b[31m\nFAKE LINE\x1b]0;pwned\x07"


def assert_no_control(text):
    assert "\x1b" not in text and "\x07" not in text, repr(text)
    assert not any(line.startswith("FAKE LINE") for line in text.splitlines()), text


def test_printable_escapes_control_characters_only():
    from xpnet.cli._common import printable

    assert printable(EVIL) == "numpy\\x1b[31m\\nFAKE LINE\\x1b]0;pwned\\x07"
    assert printable("R² é 中 tab\there\u202e\x85") == "R² é 中 tab\\there\\u202e\\x85"
    assert printable(3) == "3"


def test_evaluate_escapes_the_recorded_backend(tmp_path):
    path = tmp_path / "m.npz"
    proc = run("train", "--epochs", "3", "--save", path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = decoded_header(arrays)
    header["trained_on"]["backend"] = EVIL
    header["trained_on"]["device"] = "cpu\u202e\r"
    evil = write_zip(tmp_path / "evil.npz", model_members(arrays, json.dumps(header).encode()))
    proc = run("evaluate", evil, "--dataset", "moons")
    assert proc.returncode == 0, proc.stderr
    assert_no_control(proc.stdout)
    assert "\r" not in proc.stdout and "\u202e" not in proc.stdout
    assert "trained on numpy\\x1b[31m\\nFAKE LINE\\x1b]0;pwned\\x07 (cpu\\u202e\\r)" in proc.stdout


def test_csv_names_and_labels_are_escaped_in_output_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[f"{v:.3f}", f"{w:.3f}", EVIL if v > 0 else "plain\x9b2J"]
            for v, w in rng.normal(size=(40, 2))]
    path = write_csv(tmp_path / "evil.csv", ["x\x1b]0;title\x07", "y\nz", "label\x1b[2J"], rows)
    proc = run("train", "--data", path, "--epochs", "3", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    assert_no_control(proc.stdout)
    assert "\x9b" not in proc.stdout and "numpy\\x1b[31m\\nFAKE LINE" in proc.stdout
    proc = run("train", "--data", path, "--target", "nope")
    assert_error(proc, "columns are: 'x\\x1b]0;title\\x07', 'y\\nz'")
    assert_no_control(proc.stderr)
    proc = run("evaluate", tmp_path / "m.npz", "--data", path)
    assert proc.returncode == 0, proc.stderr
    assert_no_control(proc.stdout)


def test_predictions_keep_labels_in_files_and_escape_them_on_a_terminal(tmp_path):
    rng = np.random.default_rng(1)
    rows = [[f"{v:.3f}", EVIL if v > 0 else "b"] for v in rng.normal(size=30)]
    data = write_csv(tmp_path / "evil.csv", ["x", "label"], rows)
    model = tmp_path / "m.npz"
    assert run("train", "--data", data, "--epochs", "3", "--save", model,
               "--quiet").returncode == 0
    piped = run("predict", model, "--data", data)  # a pipe: the CSV holds the real labels
    assert piped.returncode == 0, piped.stderr
    import csv
    import io
    table = list(csv.reader(io.StringIO(piped.stdout)))
    assert f"p_{EVIL}" in table[0] and table[1][1] in (EVIL, "b")

    # a terminal: control characters escaped
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    code, shown, stderr = run_on_terminal("predict", model, "--data", data, env=env, timeout=60)
    assert code == 0, stderr
    text = shown.decode("utf-8")
    assert_no_control(text)
    assert "p_numpy\\x1b[31m\\nFAKE LINE" in text

"""Zarr stores and .npy shard folders given to ``--data`` are checked before they are read,
and ``xpnet convert --overwrite`` replaces only what xpnet wrote (issue 16).

Every chunk of a store must exist (a missing one is an error naming it, never zeros);
a part that is not a regular file inside the store (FIFO, link leading out), absurd or
inconsistent metadata, and a corrupt chunk (found on the worker that reads it) are each
one line naming the store and the part. Real stores written by zarr and by xpnet
convert, real FIFOs and links, real subprocess runs of the CLI; nothing waits a fixed
time: a run that could hang has a timeout, and the lock test polls /proc/locks.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("dask.array", reason="the dask extra is not installed "
                    "(pip install 'xpnet[dask]')")
pytest.importorskip("distributed", reason="dask.distributed is not installed")
zarr = pytest.importorskip("zarr", reason="zarr is not installed (pip install 'xpnet[dask]')")

from test_cli import assert_error, run  # noqa: E402

from xpnet.data import DataError, convert_to_zarr  # noqa: E402
from xpnet.distributed.storage import open_data  # noqa: E402

ROWS, COLUMNS, CHUNK = 40, 3, 10


def write_csv(path, X, y):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i + 1}" for i in range(X.shape[1])] + ["label"])
        writer.writerows([*map(repr, map(float, row)), int(t)] for row, t in zip(X, y))
    return str(path)


@pytest.fixture
def csv_file(tmp_path):
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(ROWS, COLUMNS)), 6)
    return write_csv(tmp_path / "m.csv", X, (X[:, 0] > 0).astype(int))


@pytest.fixture
def store(tmp_path, csv_file):
    """A store written by xpnet convert (zarr 3 layout): 4 chunks of 10 rows."""
    path = tmp_path / "s.zarr"
    convert_to_zarr(csv_file, path, chunk_rows=CHUNK)
    return path


def v2_store(path):
    """The same layout in zarr 2 format (.zgroup, X/.zarray, chunks X/<i>.<j>)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    options = {"config": {"write_empty_chunks": True}}
    group.create_array("X", shape=(ROWS, COLUMNS), chunks=(CHUNK, COLUMNS), dtype="f8",
                       **options)[:] = np.arange(ROWS * COLUMNS, dtype=float).reshape(
                           ROWS, COLUMNS)
    group.create_array("y", shape=(ROWS,), chunks=(CHUNK,), dtype="f8",
                       **options)[:] = np.arange(ROWS) % 2
    return path


def chunk_path(store, name, row_chunk):
    """The file of chunk ``row_chunk`` (of rows) of array ``name``, in either format."""
    if (store / "zarr.json").exists():
        return (store / name / "c" / str(row_chunk) / "0" if name == "X"
                else store / name / "c" / str(row_chunk))
    return store / name / (f"{row_chunk}.0" if name == "X" else str(row_chunk))


def error_of(path, **kwargs):
    with pytest.raises(DataError) as info:
        X, y = open_data(path, **kwargs)
        X.compute(scheduler="synchronous")
        y.compute(scheduler="synchronous")
    message = str(info.value)
    assert "\n" not in message
    return message


def metadata(store, name):
    path = store / name / ("zarr.json" if (store / "zarr.json").exists() else ".zarray")
    return path, json.loads(path.read_text())


# --------------------------------------------------------------------------- chunks
@pytest.mark.parametrize("layout", ["v3", "v2"])
def test_a_missing_chunk_is_an_error_naming_it_never_zeros(tmp_path, store, layout):
    path = store if layout == "v3" else v2_store(tmp_path / "v2.zarr")
    X, y = open_data(path)  # complete: it reads
    assert X.compute(scheduler="synchronous").shape == (ROWS, COLUMNS)
    chunk_path(path, "X", 2).unlink()
    message = error_of(path)
    key = "X/c/2/0" if layout == "v3" else "X/2.0"
    assert repr(str(path)) in message and repr(key) in message, message
    assert "rows 21-30" in message and "missing" in message and "zeros" in message
    chunk_path(path, "X", 2).write_bytes(b"")  # the gap filled: y's gap is named next
    chunk_path(path, "y", 0).unlink()
    assert "'y/" in error_of(path)


def test_a_missing_chunk_stops_training_before_anything_is_written(tmp_path, store):
    chunk_path(store, "X", 1).unlink()
    model = tmp_path / "m.npz"
    proc = run("train", "--data", store, "--dask-workers", "1", "--epochs", "1",
               "--save", model)
    assert_error(proc, repr(str(store)), "'X/c/1/0'", "missing")
    assert not model.exists()


def test_convert_writes_every_chunk_even_one_equal_to_the_fill_value(tmp_path):
    """zarr 3 leaves out a chunk whose values all equal the fill value (0): a sorted
    label column starting with ten 0s lost its first chunk, and open_data refuses it."""
    X = np.arange(ROWS * COLUMNS, dtype=float).reshape(ROWS, COLUMNS)
    X[:CHUNK] = 0.0
    source = write_csv(tmp_path / "sorted.csv", X, np.arange(ROWS) >= CHUNK)
    store = tmp_path / "sorted.zarr"
    convert_to_zarr(source, store, chunk_rows=CHUNK)
    for name in ("X", "y"):
        assert chunk_path(store, name, 0).is_file(), sorted(os.listdir(store / name / "c"))
    X_read, y_read = open_data(store)
    np.testing.assert_array_equal(X_read.compute(scheduler="synchronous"), X)
    np.testing.assert_array_equal(y_read.compute(scheduler="synchronous"),
                                  np.arange(ROWS) >= CHUNK)


@pytest.mark.parametrize("chunk_rows", [None, 15])
def test_a_corrupt_chunk_names_the_store_and_the_chunk(store, chunk_rows):
    chunk_path(store, "X", 2).write_bytes(b"not zstd at all")
    message = error_of(store, chunk_rows=chunk_rows)  # 15 rows: a block spans 2 chunks
    assert repr(str(store)) in message and "'X/c/2/0'" in message, message
    assert "cannot be read" in message and "Zstd" in message


def test_a_corrupt_chunk_read_on_a_worker_is_one_xpnet_error(tmp_path, store):
    chunk_path(store, "X", 1).write_bytes(b"garbage")
    model = tmp_path / "m.npz"
    proc = run("train", "--data", store, "--dask-workers", "1", "--epochs", "1",
               "--save", model)
    # (the worker's own log lines come first: distributed prints them)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2, proc.stderr
    assert last.startswith("xpnet: error: zarr store "), last
    assert "'X/c/1/0'" in last and "unexpected" not in last and "report" not in last
    assert not model.exists()


def test_uncompressed_chunks_of_the_wrong_size_are_refused_at_open(tmp_path):
    """The metadata declare (10, 3) float64 chunks (240 bytes) but a chunk holds more:
    zarr read it as 'cannot reshape array of size ...', naming nothing."""
    group = zarr.open_group(str(tmp_path / "raw.zarr"), mode="w")
    group.create_array("X", shape=(ROWS, COLUMNS), chunks=(CHUNK, COLUMNS), dtype="f8",
                       compressors=None)[:] = 1.0
    group.create_array("y", shape=(ROWS,), chunks=(CHUNK,), dtype="f8",
                       compressors=None)[:] = 1.0
    with open(tmp_path / "raw.zarr" / "X" / "c" / "3" / "0", "ab") as handle:
        handle.write(b"\0" * 16)
    message = error_of(tmp_path / "raw.zarr")
    assert "'X/c/3/0'" in message and "256 bytes" in message and "240 bytes" in message


# --------------------------------------------------------------------------- not files
def test_a_fifo_as_chunk_metadata_or_shard_is_refused_without_blocking(tmp_path, store):
    """Each case runs in a subprocess with a timeout: today's code blocks forever."""
    fifo_chunk = chunk_path(store, "X", 1)
    fifo_chunk.unlink()
    os.mkfifo(fifo_chunk)
    meta = shutil.copytree(store, tmp_path / "meta.zarr", symlinks=True,
                           ignore=lambda folder, names: [n for n in names if n == "0"
                                                         and folder.endswith("/1")])
    shutil.copyfile(chunk_path(store, "X", 0), chunk_path(meta, "X", 1))
    (meta / "y" / "zarr.json").unlink()
    os.mkfifo(meta / "y" / "zarr.json")
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "X_0.npy", np.ones((4, 2)))
    os.mkfifo(shards / "y_0.npy")
    for path, part in ((store, "'X/c/1/0' is a FIFO"), (meta, "'y/zarr.json' is a FIFO"),
                       (shards, "FIFO")):
        proc = run("train", "--data", path, "--dask-workers", "1", "--epochs", "1",
                   timeout=60)
        assert_error(proc, part)
        assert repr(str(path)) in proc.stderr or str(path) in proc.stderr


def test_links_leading_out_of_the_store_or_folder_are_refused(tmp_path, store):
    outside = tmp_path / "outside.bin"
    shutil.copyfile(chunk_path(store, "X", 1), outside)
    target = chunk_path(store, "X", 1)
    target.unlink()
    target.symlink_to(outside)
    assert "'X/c/1/0' is a link leading outside the store" in error_of(store)
    target.unlink()
    target.symlink_to("/dev/zero")
    assert "leading outside" in error_of(store)
    # a link inside the store to a chunk of the store is a regular file of it
    target.unlink()
    target.symlink_to(chunk_path(store, "X", 0))
    X, _ = open_data(store)
    computed = X.compute(scheduler="synchronous")
    np.testing.assert_array_equal(computed[10:20], computed[:10])
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(tmp_path / "X.npy", np.ones((4, 2)))
    np.save(shards / "y_0.npy", np.ones(4))
    (shards / "X_0.npy").symlink_to(tmp_path / "X.npy")
    assert "is a link leading outside" in error_of(shards)


def test_a_shard_replaced_by_a_fifo_after_opening_fails_on_read_without_blocking(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "X_0.npy", np.ones((4, 2)))
    np.save(shards / "y_0.npy", np.ones(4))
    script = (
        "import os, sys\n"
        "from xpnet.distributed.storage import open_data\n"
        "X, y = open_data(sys.argv[1])\n"
        "os.remove(sys.argv[1] + '/X_0.npy'); os.mkfifo(sys.argv[1] + '/X_0.npy')\n"
        "try:\n"
        "    X.compute(scheduler='synchronous')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(shards)], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.startswith("DataError shard "), (proc.stdout, proc.stderr)
    assert "FIFO" in proc.stdout


# --------------------------------------------------------------------------- metadata
def edit(store, name, change):
    path, meta = metadata(store, name)
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("change, fragments", [
    (lambda m: m["chunk_grid"]["configuration"].update(chunk_shape=[0, COLUMNS]),
     ["X/zarr.json", "chunk shape [0, 3]", "at least 1"]),
    (lambda m: m.update(shape=[10**12, COLUMNS]),
     ["X/zarr.json", "1000000000000", "holds only 4 files", "'X/c/4/0'"]),
    (lambda m: m.update(shape=[ROWS, "3"]), ["X/zarr.json", "shape [40, '3']"]),
    (lambda m: m.update(shape=[ROWS]), ["X/zarr.json", "one length per axis"]),
    (lambda m: m["chunk_grid"]["configuration"].update(chunk_shape=[10**11, COLUMNS]),
     ["X/zarr.json", "one chunk", "2.2 TiB", "XPNET_MAX_DATA_BYTES"]),
    (lambda m: m.update(chunk_grid={"name": "rectilinear"}), ["X/zarr.json", "'regular'"]),
    (lambda m: m.update(data_type="no-such-type"), ["array 'X'", "cannot be opened"]),
])
def test_absurd_metadata_is_one_line_naming_the_store_and_part(store, change, fragments):
    edit(store, "X", change)
    proc = run("train", "--data", store, "--dask-workers", "1", "--epochs", "1")
    assert_error(proc, f"zarr store {str(store)!r}", *fragments)


def test_metadata_that_is_not_json_or_huge_is_named(store):
    path, _ = metadata(store, "y")
    path.write_text("{not json")
    assert "'y/zarr.json' is not valid JSON" in error_of(store)
    path.write_bytes(b" " * ((1 << 24) + 1))
    assert "'y/zarr.json' holds 16777217 bytes" in error_of(store)


def test_a_chunk_larger_than_the_memory_limit_is_refused(store, monkeypatch):
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", "100")  # a chunk of X: 240 bytes
    message = error_of(store)
    assert "one chunk of X/zarr.json" in message and "XPNET_MAX_DATA_BYTES" in message


# --------------------------------------------------------------------------- overwrite
def test_overwrite_never_deletes_a_folder_of_the_users_files(tmp_path, csv_file):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "zarr.json").write_text('{"name": "cfg"}')
    (folder / "thesis.tex").write_text("x")
    assert_error(run("convert", csv_file, folder, "--overwrite"), "not a zarr store",
                 "'thesis.tex'")
    assert sorted(os.listdir(folder)) == ["thesis.tex", "zarr.json"]
    empty = tmp_path / "q"
    empty.mkdir()
    (empty / ".zgroup").write_text("")
    assert_error(run("convert", csv_file, empty, "--overwrite"), "not a zarr store")
    assert os.listdir(empty) == [".zgroup"]
    # a zarr store that some other program wrote (no 'xpnet' attribute) is not replaced
    other = v2_store(tmp_path / "other.zarr")
    assert_error(run("convert", csv_file, other, "--overwrite"), "no 'xpnet' attribute")
    assert {".zgroup", "X", "y"} <= set(os.listdir(other))
    assert open_data(other)[0].shape == (ROWS, COLUMNS)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".xpnet-")]


def test_overwrite_refuses_a_store_of_xpnet_holding_anything_else(tmp_path, store,
                                                                  csv_file):
    (store / "X" / "notes.txt").write_text("mine")
    assert_error(run("convert", csv_file, store, "--overwrite"), "X/notes.txt")
    assert (store / "X" / "notes.txt").read_text() == "mine"
    (store / "X" / "notes.txt").unlink()
    (store / "y" / "c" / "0").unlink()
    (store / "y" / "c" / "0").symlink_to(csv_file)
    assert_error(run("convert", csv_file, store, "--overwrite"), "not a file xpnet writes")
    (store / "y" / "c" / "0").unlink()
    proc = run("convert", csv_file, store, "--overwrite", "--chunk-rows", "20")
    assert proc.returncode == 0, proc.stderr  # its own store, complete or not: replaced
    assert open_data(store)[0].chunks[0] == (20, 20)


@pytest.mark.parametrize("slash", ["", "/"])
def test_overwrite_through_a_link_is_refused_with_or_without_a_slash(tmp_path, store,
                                                                     csv_file, slash):
    link = tmp_path / "link"
    link.symlink_to(store)
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    assert_error(run("convert", csv_file, f"{link}{slash}", "--overwrite"),
                 "symbolic link")
    assert link.is_symlink() and sorted(p.relative_to(store) for p in store.rglob("*")) \
        == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".xpnet-")]


# --------------------------------------------------------------------------- two writers
def wait_for_lock_waiter(pid, deadline=60.0):
    """Until process ``pid`` waits for a flock (a ``->`` line of /proc/locks)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with open("/proc/locks") as handle:
            for line in handle:
                fields = line.split()
                if fields[1] == "->" and fields[2] == "FLOCK" and fields[5] == str(pid):
                    return
        time.sleep(0.01)  # polling an observable condition, with a deadline
    raise AssertionError(f"process {pid} never waited for the destination's lock")


@pytest.fixture
def folder_lock(tmp_path):
    """The lock another conversion holds while it moves its store into place."""
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield fd
    os.close(fd)


def start_convert(*args):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.Popen([sys.executable, "-m", "xpnet", "convert", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux /proc/locks")
def test_a_destination_made_by_another_writer_meanwhile_is_left_alone(tmp_path, csv_file,
                                                                      folder_lock):
    """Two conversions into one new store: the second to move finds the first one's
    complete store and is refused with a clear line (before: 'Directory not empty', or a
    half-moved store)."""
    dest = tmp_path / "d.zarr"
    proc = start_convert(csv_file, dest, "--chunk-rows", "10")
    wait_for_lock_waiter(proc.pid)
    # the other writer, which won: it wrote its store and moved it into place (here its
    # move is a rename: the lock that a conversion takes is held by this test)
    (tmp_path / "sub").mkdir()
    convert_to_zarr(csv_file, tmp_path / "sub" / "d.zarr", chunk_rows=20)
    os.rename(tmp_path / "sub" / "d.zarr", dest)
    fcntl.flock(folder_lock, fcntl.LOCK_UN)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "appeared while converting" in err, err
    assert open_data(dest)[0].chunks[0] == (20, 20)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".xpnet-")]


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux /proc/locks")
def test_a_file_put_into_the_old_store_meanwhile_is_never_deleted(tmp_path, store,
                                                                  csv_file, folder_lock):
    proc = start_convert(csv_file, store, "--overwrite")
    wait_for_lock_waiter(proc.pid)
    (store / "thesis.tex").write_text("x")  # after convert checked the destination
    fcntl.flock(folder_lock, fcntl.LOCK_UN)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "'thesis.tex'" in err, err
    assert (store / "thesis.tex").read_text() == "x"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".xpnet-")]


def test_two_conversions_with_overwrite_at_once_leave_one_complete_store(tmp_path, store,
                                                                         csv_file):
    procs = [start_convert(csv_file, store, "--overwrite", "--chunk-rows", rows)
             for rows in (5, 20)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code == 0 for code, _ in results), results  # one after the other: last wins
    X, y = open_data(store)
    assert X.chunks[0] in ((5,) * 8, (20, 20))
    assert X.compute(scheduler="synchronous").shape == (ROWS, COLUMNS)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".xpnet-")]


def test_two_trainings_saving_to_one_path_at_once_leave_one_complete_model(tmp_path,
                                                                           csv_file):
    model = tmp_path / "m.npz"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    procs = [subprocess.Popen([sys.executable, "-m", "xpnet", "train", "--data", csv_file,
                               "--epochs", "3", "--seed", str(seed), "--save", str(model),
                               "--quiet"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    proc = run("evaluate", model, "--data", csv_file)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["m.csv", "m.npz"]

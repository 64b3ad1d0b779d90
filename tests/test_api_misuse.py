"""Misuse is refused before anything changes, and sizes beyond memory before allocating.

Issue 8, sections 4 (resource exhaustion is a clear error before allocation) and 5 (the
API refuses misuse before it changes anything). The command-line cases run the real
``xpnet`` in a subprocess whose address space is capped (so that, on code without the
checks, a huge request fails fast instead of swapping the test machine).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from test_cli import assert_error, write_csv

import xpnet
from xpnet.data import DataError, Standardizer, load_dataset, make_moons
from xpnet.train import History, fit

#: Address-space cap of the CLI subprocesses below (a guard for the test machine only).
CAP = 6 << 30


def _limit_address_space() -> None:  # runs in the child, before exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def run_capped(*args, timeout=60):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    env.pop("XPNET_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "xpnet", *map(str, args)], capture_output=True, text=True,
        timeout=timeout, env=env, preexec_fn=_limit_address_space,
    )


@contextlib.contextmanager
def address_space_cap(extra=2 << 30):
    """Cap this process's address space at its current size plus ``extra`` for the block:
    on code without the size checks a huge request then fails at once with MemoryError
    instead of filling the machine's memory."""
    import resource

    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    previous = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (used + extra, previous[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, previous)


def _weights(net):
    return [np.array(xpnet.to_numpy(W), copy=True) for W, _ in net.params]


# ----------------------------------------------------------------------------- section 5: fit
@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (dict(callback=5), ("callback", "callback(epoch, loss)", "5")),
        (dict(callback="print"), ("callback", "'print'")),
        (dict(history="foo"), ("history", "History", "'foo'")),
        (dict(history={"loss": []}), ("history", "History")),
        (dict(rng="foo"), ("rng", "permutation", "default_rng", "'foo'")),
        (dict(rng=42), ("rng", "permutation", "42")),
        (dict(verbose="yes"), ("verbose", "True or False", "'yes'")),
        (dict(validation_data=5), ("validation_data", "(X_val, Y_val)", "int")),
        (dict(optimizer=5), ("optimizer", "'sgd', 'adam'", "Optimizer instance", "5")),
    ],
)
def test_fit_refuses_a_bad_argument_before_the_first_update(options, fragments):
    X, y = make_moons(64)
    net = xpnet.MLP([2, 5, 1], seed=3)
    before = _weights(net)
    # Mini-batches with shuffling: on the old code a bad rng failed inside the loop and a
    # bad callback only after the first epoch had already updated W1.
    with pytest.raises(TypeError) as info:
        fit(net, X, y, epochs=2, lr=0.5, batch_size=8, **options)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    for W_before, W_after in zip(before, _weights(net)):
        np.testing.assert_array_equal(W_before, W_after)


def test_fit_accepts_what_the_checks_allow():
    X, y = make_moons(64)
    seen = []
    history = History()
    net = xpnet.MLP([2, 4, 1])
    fit(net, X, y, epochs=2, batch_size=16, callback=lambda e, loss: seen.append(e),
        history=history, rng=np.random.default_rng(1), verbose=False,
        validation_data=[X[:10], y[:10]])
    assert seen == [0, 1] and history.epochs == 2


def test_mlp_fit_method_goes_through_the_same_checks():
    X, y = make_moons(32)
    net = xpnet.MLP([2, 3, 1])
    before = _weights(net)
    with pytest.raises(TypeError, match="callback must be a function"):
        net.fit(X, y, epochs=1, callback=5)
    np.testing.assert_array_equal(before[0], _weights(net)[0])


# ----------------------------------------------------------------------------- section 5: MLP
@pytest.mark.parametrize("activation", [5, None, 1.5, [5], ["relu", None], {"relu": 1}])
def test_activation_of_the_wrong_type_is_a_type_error(activation):
    with pytest.raises(TypeError, match=r"activation must be a name .* or a list of names"):
        xpnet.MLP([2, 3, 4, 1], activation=activation)


def test_activation_names_still_work_as_str_list_and_tuple():
    assert xpnet.MLP([2, 3, 4, 1], activation="relu").activations == ("relu", "relu")
    assert xpnet.MLP([2, 3, 4, 1], activation=("relu", "tanh")).activations == ("relu", "tanh")
    with pytest.raises(ValueError, match="activation must be one of"):
        xpnet.MLP([2, 3, 1], activation="swish")


@pytest.mark.parametrize("sizes", [{2: 0, 4: 0, 1: 0}, {2, 4, 1}, frozenset({2, 4, 1}), "241"])
def test_layer_sizes_refuses_mappings_sets_and_strings(sizes):
    with pytest.raises(TypeError, match=r"layer_sizes must be a sequence .* in order"):
        xpnet.MLP(sizes)


# ----------------------------------------------------------------------------- section 5: values
@pytest.mark.parametrize("backend_name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize(
    ("labels", "shown"),
    [([0, 1, 1e19], "1e+19"), ([0, 1, -1e19], "-1e+19"), ([0, 1, 7], "7"), ([0, -2, 1], "-2")],
)
def test_softmax_label_out_of_range_is_reported_by_value(backend_name, labels, shown):
    try:
        net = xpnet.MLP([2, 3, 2], output="softmax", backend=backend_name)
    except xpnet.BackendUnavailableError as exc:
        pytest.skip(str(exc))
    X = np.zeros((3, 2))
    y = np.array(labels, dtype=np.float64 if "e" in shown else np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old code cast 1e19 to int64 with a warning
        with pytest.raises(ValueError) as info:
            net.fit(X, y, epochs=1)
    message = str(info.value)
    assert f"class label {shown} " in message and "[0, 1]" in message, message
    assert "9223372036854775808" not in message


@pytest.mark.parametrize("backend_name", ["numpy", "torch", "array_api_strict"])
def test_values_too_large_for_the_dtype_are_named_without_warnings(backend_name):
    try:
        net = xpnet.MLP([2, 3, 1], dtype="float32", backend=backend_name)
    except xpnet.BackendUnavailableError as exc:
        pytest.skip(str(exc))
    X = np.array([[1e308, -1e308], [1.0, 2.0], [3.0, 4.0]])
    y = np.array([0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"X holds values up to 1e\+308 .* too large for "
                           r"float32"):
            net.fit(X, y, epochs=1)
        regressor = xpnet.MLP([2, 3, 1], dtype="float32", output="identity",
                              backend=backend_name)
        with pytest.raises(ValueError, match=r"Y holds values up to 1e\+300 .* float32"):
            regressor.fit(X[1:], np.array([1e300, 1.0]), epochs=1)
        with pytest.raises(ValueError, match="X contains NaN or infinite values"):
            net.fit(np.array([[np.inf, 0.0], [1.0, 2.0]]), np.array([0, 1]), epochs=1)


def test_standardizer_handles_finite_values_near_the_float64_limit():
    X = np.array([[1e308, -1e308], [1e308, -1e308], [3.0, 4.0], [5.0, 6.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old code overflowed in the sum and the square
        scaler = Standardizer.fit(X)
        Z = scaler.transform(X)
    assert np.all(np.isfinite(scaler.mean)) and np.all(np.isfinite(scaler.scale))
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, rtol=1e-12)
    # Ordinary columns keep the plain formula, bit for bit.
    small = np.random.default_rng(0).normal(size=(50, 3))
    plain = Standardizer.fit(small)
    np.testing.assert_array_equal(plain.mean, small.mean(axis=0))
    np.testing.assert_array_equal(plain.scale, small.std(axis=0))


def test_cli_trains_on_finite_values_near_the_float64_limit(tmp_path):
    rows = [[1e308, -1e308, 0], [1e308, -1e308, 1]] + [[i, i + 1, i % 2] for i in range(8)]
    path = write_csv(tmp_path / "huge.csv", ["a", "b", "y"], rows)
    proc = run_capped("train", "--data", path, "--epochs", "2", "--test-fraction", "0",
                      "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no overflow warnings
    proc = run_capped("train", "--data", path, "--epochs", "2", "--no-standardize",
                      "--dtype", "float32", "--test-fraction", "0")
    assert_error(proc, "too large for float32")


# ----------------------------------------------------------------------------- section 4
def test_network_larger_than_memory_is_a_value_error_naming_layer_sizes():
    with address_space_cap(), pytest.raises(ValueError) as info:
        xpnet.MLP([2, 10**12, 1])
    message = str(info.value)
    assert "layer_sizes" in message and "4,000,000,000,001 parameters" in message
    assert "TiB of memory" in message and "is available" in message


def test_generated_data_larger_than_memory_is_refused_before_generating():
    with address_space_cap():
        with pytest.raises(DataError, match=r"n_samples=1000000000 needs about .* GiB of memory"):
            load_dataset("xor", n_samples=10**9)
        with pytest.raises(DataError, match="n_samples=1000000000"):
            make_moons(10**9)


def test_available_memory_is_a_positive_number_of_bytes():
    from xpnet import _memory

    available = _memory.available_memory()
    assert available is not None and available > 1 << 20
    assert _memory.format_bytes(1536) == "1.5 KiB"
    assert _memory.format_bytes(15 * (1 << 30)) == "15.0 GiB"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("train", "--layers", "1000000000"), ("--layers 1000000000", "parameters", "available")),
        (("train", "--n-samples", "1000000000"),
         ("--n-samples 1000000000", "GiB of memory", "available")),
        (("train", "--layers", "20000", "--n-samples", "200000"),
         ("--layers 20000 with a full batch", "--batch-size", "available")),
        (("gradcheck", "--rows", "1000000000"), ("--rows 1000000000", "available")),
        (("gradcheck", "--layers", "2,1000000000,1"), ("--layers 2,1000000000,1", "available")),
    ],
)
def test_cli_refuses_sizes_beyond_memory_before_allocating(args, fragments):
    proc = run_capped(*args)
    assert_error(proc, *fragments)
    assert "MemoryError" not in proc.stderr


def test_cli_estimate_follows_the_address_space_limit():
    """Under ``ulimit -v`` the estimate uses what the limit leaves, not the machine's RAM:
    a run that would fit the machine but not the cap is refused by name."""
    rows = CAP // 48  # 48 of the 96 bytes per generated row: twice the cap in all
    proc = run_capped("train", "--n-samples", rows, "--epochs", "1")
    assert_error(proc, f"--n-samples {rows}", "available")

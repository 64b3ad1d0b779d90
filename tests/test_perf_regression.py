"""Coarse, noise-proof performance properties of the training loop (run in CI).

No wall-clock thresholds here: timings belong to ``benchmarks/``. These tests count
things that do not depend on the machine's speed or load:

- memory: the bytes NumPy allocates (tracemalloc sees every NumPy buffer) do not grow
  from epoch to epoch, and the peak of a fit stays within 2x of data + parameters + one
  batch's activations and gradients;
- host read-backs: on PyTorch every conversion of a tensor to a Python number is
  observed with a ``TorchFunctionMode``; a fit reads the loss back once per epoch,
  however many steps the epoch has;
- GPU (skipped without one): a training step queues its work without synchronising
  the host with the device.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import xpnet
from xpnet.optim import SGD

# (layer sizes, activation, output): one mini-batch problem per output kind
SIZES = (16, 32, 10)
N_ROWS, BATCH = 600, 50  # 12 steps per epoch


def _selected(config: pytest.Config, name: str) -> bool:
    """Honour ``pytest --backend NAME`` (added by the suite's conftest) when given."""
    chosen = config.getoption("backend", default=None)  # None: option not registered
    return not chosen or name in chosen


def _require(request: pytest.FixtureRequest, name: str) -> None:
    if not _selected(request.config, name):
        pytest.skip(f"backend {name} not selected with --backend")
    try:
        xpnet.get_backend(name)
    except xpnet.BackendUnavailableError as exc:
        pytest.skip(f"backend {name} unavailable: {exc}")


def _problem(dtype: str = "float64", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, SIZES[-1], N_ROWS)
    centres = rng.normal(0.0, 2.0, (SIZES[-1], SIZES[0]))
    X = (centres[labels] + rng.normal(0.0, 1.0, (N_ROWS, SIZES[0]))).astype(dtype)
    return X, labels


def _net(backend: str, dtype: str = "float64", device: object = None) -> xpnet.MLP:
    return xpnet.MLP(SIZES, activation="relu", output="softmax", backend=backend,
                     device=device, dtype=dtype, seed=0)


# --------------------------------------------------------------------------- memory
# (parameter names avoid "backend": the suite's conftest parametrises that fixture itself)
@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_no_memory_growth_from_epoch_to_epoch(request: pytest.FixtureRequest, backend_name: str,
                                              shuffle: bool) -> None:
    _require(request, backend_name)
    X, labels = _problem()
    net = _net(backend_name)
    epochs = 40
    traced = np.zeros(epochs, dtype=np.int64)  # preallocated: recording allocates nothing

    def after_epoch(epoch: int, loss: float) -> None:
        gc.collect()  # garbage cycles are not leaks: count only what is still reachable
        traced[epoch] = tracemalloc.get_traced_memory()[0]

    gc.collect()
    tracemalloc.start()
    try:
        net.fit(X, labels, epochs=epochs, lr=0.1, batch_size=BATCH, shuffle=shuffle,
                callback=after_epoch)
    finally:
        tracemalloc.stop()
    # The first epochs fill lasting helpers and NumPy's small-buffer caches. After that,
    # what may still grow is the loss history (a float per epoch, ~35 bytes) and a small
    # allocation NumPy keeps in np.array(copy=_CopyMode) when the permutation is moved
    # (~40 bytes per epoch on average, outside xpnet): about 80 bytes per epoch measured.
    # Keeping even one 0-d array per epoch adds >= 120 bytes per epoch (header + data),
    # one batch or gradient per step several kilobytes.
    start = 10
    growth = int(traced[-1] - traced[start])
    per_epoch = growth / (epochs - 1 - start)
    assert per_epoch < 192, (
        f"memory grew by {growth} bytes over epochs {start + 1}-{epochs} "
        f"({per_epoch:.0f} bytes per epoch): {traced.tolist()}"
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_peak_memory_within_twice_data_params_and_one_batch(request: pytest.FixtureRequest,
                                                            dtype: str) -> None:
    _require(request, "numpy")
    X, labels = _problem(dtype)
    net = _net("numpy", dtype)
    itemsize = np.dtype(dtype).itemsize
    n_params = net.n_params
    data = X.nbytes + N_ROWS * SIZES[-1] * itemsize  # X and the one-hot targets fit builds
    batch_work = 2 * BATCH * sum(SIZES[1:]) * itemsize + n_params * itemsize  # A, dZ, grads
    budget = data + n_params * itemsize + batch_work

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        net.fit(X, labels, epochs=3, lr=0.1, batch_size=BATCH)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # X was already allocated by the caller; what fit adds on top must keep the total
    # within 2x of the yardstick (a shuffled copy of the whole data set per epoch would not).
    assert X.nbytes + peak <= 2 * budget, (
        f"peak {X.nbytes + peak} bytes (X {X.nbytes} + fit {peak}) > 2 x budget {budget}"
    )


# --------------------------------------------------------------------------- host reads
_HOST_READS = {"__float__", "__int__", "__bool__", "__index__", "item", "tolist", "numpy",
               "__array__", "__complex__"}


def _count_host_reads(fit: object) -> int:
    from torch.overrides import TorchFunctionMode

    class CountHostReads(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if getattr(func, "__name__", "") in _HOST_READS:
                self.count += 1
            return func(*args, **(kwargs or {}))

    with CountHostReads() as counter:
        fit()  # type: ignore[operator]
    return counter.count


@pytest.mark.parametrize("batch_size", [BATCH, 2 * BATCH, None])
def test_loss_is_read_back_once_per_epoch(request: pytest.FixtureRequest,
                                          batch_size: int | None) -> None:
    _require(request, "torch")
    X, labels = _problem()
    net = _net("torch")
    backend = net.array_backend
    X_t, y_t = backend.asarray(X), backend.asarray(labels)

    def reads(epochs: int) -> int:
        return _count_host_reads(
            lambda: net.fit(X_t, y_t, epochs=epochs, lr=0.1, batch_size=batch_size)
        )

    # The input checks read a few flags once per fit; the difference isolates the loop.
    # Each epoch has 12, 6 or 1 steps: one read per epoch means none per step.
    extra = reads(7) - reads(2)
    assert extra == 5, f"{extra} host read-backs for 5 more epochs (expected 5: one per epoch)"


# --------------------------------------------------------------------------- GPU
def _device_batches(net: xpnet.MLP, X: np.ndarray, labels: np.ndarray) -> list[tuple]:
    """Checked device arrays, gathered into batches the way the training loop does."""
    Xd, Yd = net._check_XY(net.array_backend.asarray(X), net.array_backend.asarray(labels))
    order = net.array_backend.asarray(np.random.default_rng(0).permutation(N_ROWS))
    xp = net.xp
    return [
        (xp.take(Xd, order[i:i + BATCH], axis=0), xp.take(Yd, order[i:i + BATCH], axis=0))
        for i in range(0, N_ROWS, BATCH)
    ]


def _steps(net: xpnet.MLP, batches: list[tuple]) -> object:
    optimizer = SGD(0.1)
    total = None
    for Xb, Yb in batches:
        loss, grads = net._loss_and_grads(Xb, Yb)
        optimizer.update(net._params, grads)
        total = loss if total is None else total + loss
    return total


def test_cupy_steps_do_not_synchronise_the_host(request: pytest.FixtureRequest) -> None:
    """A kernel that keeps the GPU busy for a second or more is queued first; if any step
    synchronised, it would have to wait for that kernel, so the event recorded right
    after the kernel would be complete when the steps return."""
    _require(request, "cupy")
    import cupy

    X, labels = _problem("float32")
    net = _net("cupy", "float32")
    batches = _device_batches(net, X, labels)
    _steps(net, batches)  # warm up: compile kernels, fill the memory pool
    cupy.cuda.Device().synchronize()
    spin = cupy.RawKernel(
        r"""
        extern "C" __global__ void spin(long long cycles) {
            long long start = clock64();
            while (clock64() - start < cycles) { }
        }
        """,
        "spin",
    )
    # 3e9 cycles: one to three seconds at today's GPU clocks, while the steps below queue
    # their work in milliseconds
    spin((1,), (1,), (np.int64(3_000_000_000),))
    busy = cupy.cuda.Event()
    busy.record()
    _steps(net, batches)
    still_busy = not busy.done
    cupy.cuda.Device().synchronize()
    assert still_busy, "a training step waited for the GPU (host synchronisation)"


def test_torch_cuda_steps_do_not_synchronise_the_host(request: pytest.FixtureRequest) -> None:
    _require(request, "torch")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    X, labels = _problem("float32")
    net = _net("torch", "float32", device="cuda")
    batches = _device_batches(net, X, labels)
    _steps(net, batches)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        _steps(net, batches)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


"""Coarse, noise-proof performance properties of the training loop (run in CI).

No wall-clock thresholds here: timings belong to ``benchmarks/``. These tests count
things that do not depend on the machine's speed or load:

- memory: the bytes NumPy allocates (tracemalloc sees every NumPy buffer) do not grow
  from epoch to epoch, and the peak of a fit stays within 2x of data + parameters + one
  batch's activations and gradients;
- host read-backs: on PyTorch every conversion of a tensor to a Python number is
  observed with a ``TorchFunctionMode``; a fit reads the loss back once per epoch,
  however many steps the epoch has;
- host traffic per epoch of ``fit``, for SGD, momentum, Nesterov, Adam, L2, row weights,
  early stopping, full batch and unshuffled batches: uploads of host data counted at
  xpnet's upload point on every backend; host reads and uploads counted by torch on the
  CPU (CI) and CUDA; the synchronisations CUDA torch reports (skipped without a GPU);
- GPU (skipped without one): no training step waits for the device, in the bare step and
  inside ``fit``; data checked once with ``MLP.prepare`` make ``step``/``loss``/
  ``loss_and_grads`` free of host reads.
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
    Xd, Yd = net.check_XY(net.array_backend.asarray(X), net.array_backend.asarray(labels))
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
        optimizer.update(net.flat_params, grads)
        total = loss if total is None else total + loss
    return total


def _cupy_spin_kernel():  # type: ignore[no-untyped-def]
    """A one-thread CuPy kernel that keeps the GPU busy for ``cycles`` clock cycles (by
    cycle count: recent CUDA has no clock-rate attribute to convert seconds)."""
    import cupy

    return cupy.RawKernel(
        r"""
        extern "C" __global__ void spin(long long cycles) {
            long long start = clock64();
            while (clock64() - start < cycles) { }
        }
        """,
        "spin",
    )


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
    spin = _cupy_spin_kernel()
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



# --------------------------------------------------------------------------- host syncs
# What a fit may wait for, per epoch: one loss read-back, one permutation upload when
# mini-batches are shuffled, and one validation-score read-back with early stopping.
# Nothing per step, whatever the optimiser, penalty or row weights. Counted three ways:
# - everywhere (CI included): uploads of host data, at xpnet's one upload point
#   (Backend.asarray with a NumPy argument);
# - on torch, CPU (CI) and CUDA: every host read and every upload torch sees
#   (TorchFunctionMode), and on CUDA the synchronisations torch itself reports;
# - on GPUs: no step waits for the device (a long kernel queued at the first step of each
#   epoch is still running at every later step of that epoch).
from xpnet.optim import Adam  # noqa: E402

EPOCH_CONFIGS = {
    # name: (MLP options, fit options); optimisers are built fresh for every fit
    "sgd": ({}, {}),
    "momentum": ({}, {"optimizer": lambda: SGD(0.05, momentum=0.9)}),
    "nesterov": ({}, {"optimizer": lambda: SGD(0.05, momentum=0.9, nesterov=True)}),
    "adam": ({}, {"optimizer": lambda: Adam(0.01)}),
    "l2": ({"alpha": 1e-3}, {}),
    "sample weights": ({}, {"sample_weight": np.linspace(0.5, 2.0, N_ROWS)}),
    "early stopping": ({}, {"early_stopping": True, "n_iter_no_change": 1000, "tol": 0.0}),
    "full batch": ({}, {"batch_size": None}),
    "no shuffle": ({}, {"shuffle": False}),
}
TARGETS = {  # name: (backend, device)
    "numpy": ("numpy", None),
    "array_api_strict": ("array_api_strict", None),
    "torch-cpu": ("torch", "cpu"),
    "torch-cuda": ("torch", "cuda"),
    "cupy": ("cupy", None),
}


def _expected_per_epoch(config: str) -> tuple[int, int]:
    """(host reads, host uploads) per epoch."""
    fit_options = EPOCH_CONFIGS[config][1]
    shuffled = fit_options.get("batch_size", BATCH) is not None and fit_options.get(
        "shuffle", True)
    return 1 + bool(fit_options.get("early_stopping")), int(bool(shuffled))


def _require_target(request: pytest.FixtureRequest, target: str) -> None:
    backend, device = TARGETS[target]
    _require(request, backend)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("torch has no CUDA device here")


def _config_fit(target: str, config: str, float32: bool = False):  # type: ignore[no-untyped-def]
    """A network on ``target`` and ``fit(epochs)`` running ``config`` on device data."""
    backend, device = TARGETS[target]
    dtype = "float32" if float32 or device == "cuda" or backend == "cupy" else "float64"
    net_options, fit_options = EPOCH_CONFIGS[config]
    X, labels = _problem(dtype)
    net = xpnet.MLP(SIZES, activation="relu", output="softmax", backend=backend,
                    device=device, dtype=dtype, seed=0, **net_options)
    be = net.array_backend
    X_dev, y_dev = be.asarray(X), be.asarray(labels)
    options = {"batch_size": BATCH, "lr": 0.05, **fit_options}
    if "sample_weight" in options:
        options["sample_weight"] = be.asarray(options["sample_weight"])

    def fit(epochs: int, callback=None):  # type: ignore[no-untyped-def]
        kwargs = dict(options)
        if callable(kwargs.get("optimizer")):
            kwargs["optimizer"] = kwargs["optimizer"]()
        return net.fit(X_dev, y_dev, epochs=epochs, callback=callback, **kwargs)

    return net, fit


class _Uploads:
    """Counts host-to-device uploads at xpnet's upload point, Backend.asarray."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = xpnet.Backend.asarray

        def asarray(backend, obj, *args, **kwargs):  # type: ignore[no-untyped-def]
            if isinstance(obj, np.ndarray):
                self.count += 1
            return real(backend, obj, *args, **kwargs)

        monkeypatch.setattr(xpnet.Backend, "asarray", asarray)


@pytest.mark.parametrize("config", list(EPOCH_CONFIGS))
@pytest.mark.parametrize("target", ["numpy", "array_api_strict", "torch-cpu", "cupy"])
def test_uploads_per_epoch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                           target: str, config: str) -> None:
    _require_target(request, target)
    _, fit = _config_fit(target, config)
    uploads = _Uploads(monkeypatch)

    def count(epochs: int) -> int:
        uploads.count = 0
        fit(epochs)
        return uploads.count

    extra = count(7) - count(2)
    expected = 5 * _expected_per_epoch(config)[1]
    assert extra == expected, f"{extra} uploads for 5 more epochs (expected {expected})"


class _TorchHostTraffic:
    """Host reads and uploads of torch tensors, as torch's function mode sees them."""

    def __init__(self) -> None:
        from torch.overrides import TorchFunctionMode

        outer = self
        self.reads = self.uploads = 0

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                name = getattr(func, "__name__", "")
                if name in _HOST_READS:
                    outer.reads += 1
                elif args and isinstance(args[0], np.ndarray):
                    outer.uploads += 1  # asarray/as_tensor/tensor of host data
                return func(*args, **(kwargs or {}))

        self.mode = Mode

    def count(self, call) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        self.reads = self.uploads = 0
        with self.mode():
            call()
        return self.reads, self.uploads


@pytest.mark.parametrize("config", list(EPOCH_CONFIGS))
@pytest.mark.parametrize("target", ["torch-cpu", "torch-cuda"])
def test_host_reads_and_uploads_per_epoch_on_torch(request: pytest.FixtureRequest, target: str,
                                                   config: str) -> None:
    _require_target(request, target)
    _, fit = _config_fit(target, config)
    traffic = _TorchHostTraffic()
    reads_2, uploads_2 = traffic.count(lambda: fit(2))
    reads_7, uploads_7 = traffic.count(lambda: fit(7))
    reads, uploads = _expected_per_epoch(config)
    assert (reads_7 - reads_2, uploads_7 - uploads_2) == (5 * reads, 5 * uploads), (
        f"5 more epochs read {reads_7 - reads_2} values back and uploaded "
        f"{uploads_7 - uploads_2} arrays (expected {5 * reads} and {5 * uploads})"
    )


@pytest.mark.parametrize("config", list(EPOCH_CONFIGS))
def test_cuda_synchronisations_per_epoch(request: pytest.FixtureRequest, config: str) -> None:
    """The synchronisations CUDA torch itself reports (sync debug mode), per epoch."""
    _require_target(request, "torch-cuda")
    import warnings

    import torch

    _, fit = _config_fit("torch-cuda", config)
    fit(1)  # warm up
    torch.cuda.synchronize()

    def syncs(epochs: int) -> int:
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fit(epochs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    extra = syncs(7) - syncs(2)
    expected = 5 * sum(_expected_per_epoch(config))
    assert extra == expected, f"{extra} synchronisations for 5 more epochs (expected {expected})"


def _spin_and_event(target: str):  # type: ignore[no-untyped-def]
    """``start()`` queues a ~0.5-1 s kernel and an event after it; ``busy()`` says
    whether that event is still pending (no host wait has happened since)."""
    if target == "cupy":
        import cupy

        kernel = _cupy_spin_kernel()
        state: dict = {}

        def start() -> None:
            kernel((1,), (1,), (np.int64(1_000_000_000),))
            state["event"] = cupy.cuda.Event()
            state["event"].record()

        return start, lambda: not state["event"].done
    import torch

    state = {}

    def start_torch() -> None:
        torch.cuda._sleep(1_000_000_000)
        state["event"] = torch.cuda.Event()
        state["event"].record()

    return start_torch, lambda: not state["event"].query()


@pytest.mark.parametrize("config", [c for c in EPOCH_CONFIGS if c != "full batch"])
@pytest.mark.parametrize("target", ["torch-cuda", "cupy"])
def test_gpu_fit_steps_never_wait_for_the_device(request: pytest.FixtureRequest, target: str,
                                                 config: str) -> None:
    _require_target(request, target)
    net, fit = _config_fit(target, config)
    fit(1)  # warm up: compile kernels, fill the memory pool
    net.array_backend.synchronize()
    start, busy = _spin_and_event(target)
    steps_per_epoch = -(-N_ROWS // BATCH)
    if EPOCH_CONFIGS[config][1].get("early_stopping"):
        steps_per_epoch = -(-(N_ROWS - -(-N_ROWS // 10)) // BATCH)  # 10 % held out
    observed: list[bool] = []
    real_loss_and_grads = net._loss_and_grads

    def step(*args, **kwargs):  # type: ignore[no-untyped-def]
        # instrumentation of xpnet's own step: the first step of each epoch queues the
        # long kernel, every later step records whether the host has waited since
        if len(observed) % steps_per_epoch == 0:
            start()
            observed.append(True)
        else:
            observed.append(busy())
        return real_loss_and_grads(*args, **kwargs)

    net._loss_and_grads = step  # type: ignore[method-assign]
    fit(2)
    net.array_backend.synchronize()
    assert len(observed) == 2 * steps_per_epoch
    assert all(observed), (
        f"a step waited for the device (host synchronisation) at steps "
        f"{[i for i, b in enumerate(observed) if not b]} of {len(observed)}"
    )


# --------------------------------------------------------------------------- checked once
@pytest.mark.parametrize("target", ["torch-cpu", "torch-cuda"])
def test_prepared_data_make_step_loss_and_grads_sync_free(request: pytest.FixtureRequest,
                                                          target: str) -> None:
    """``step``/``loss``/``loss_and_grads`` check their inputs on every call (host reads);
    data checked once with ``MLP.prepare`` skip that, with the same results."""
    _require_target(request, target)
    net, _ = _config_fit(target, "sgd")
    twin, _ = _config_fit(target, "sgd")
    be = net.array_backend
    X, labels = _problem(net.dtype)
    X_dev, y_dev = be.asarray(X), be.asarray(labels)
    traffic = _TorchHostTraffic()
    raw_reads, _ = traffic.count(lambda: net.step(X_dev[:BATCH], y_dev[:BATCH], lr=0.1))
    assert raw_reads >= 2  # the finite and label-range checks
    prepared = twin.prepare(X_dev, y_dev)
    rows = be.asarray(np.arange(BATCH, 2 * BATCH))

    def hot_loop() -> None:
        twin.step(prepared[:BATCH], lr=0.1)
        twin.loss_and_grads(prepared.take(rows))
        twin.loss(prepared[BATCH:2 * BATCH])

    assert traffic.count(hot_loop) == (0, 0)
    if TARGETS[target][1] == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
        try:
            hot_loop()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        net.step(X_dev[:BATCH], y_dev[:BATCH], lr=0.1)  # the twin stepped twice
    for (W, b), (W2, b2) in zip(net.params, twin.params, strict=True):
        np.testing.assert_array_equal(xpnet.to_numpy(W), xpnet.to_numpy(W2))
        np.testing.assert_array_equal(xpnet.to_numpy(b), xpnet.to_numpy(b2))


def test_prepared_data_are_checked_for_the_right_network() -> None:
    X, labels = _problem()
    net = _net("numpy")
    prepared = net.prepare(X, labels)
    assert len(prepared) == N_ROWS and len(prepared[:BATCH]) == BATCH
    np.testing.assert_array_equal(net.loss(prepared), net.loss(X, labels))
    with pytest.raises(TypeError, match="Y must be left out"):
        net.step(prepared, labels)
    with pytest.raises(TypeError, match="Y is required"):
        net.loss(X)
    other = xpnet.MLP(SIZES, activation="relu", output="softmax", dtype="float32")
    with pytest.raises(ValueError, match="prepared for another network"):
        other.loss_and_grads(prepared)
    with pytest.raises(TypeError, match="slice"):
        prepared[3]  # noqa: B018

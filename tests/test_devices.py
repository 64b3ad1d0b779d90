"""Devices: autograd-free parameters with torch inputs, the backends' own device objects,
canonical device names, and the device context every network computation runs in.

CuPy and CUDA cannot run here; what can is tested with real backends: torch on the CPU,
array-api-strict's several (virtual) devices, and the parsing of device objects. The
CuPy device context itself (``cupy.cuda.Device(i)`` made current) is exercised by the GPU
check (``benchmarks/gpu_check.sh``) on a GPU machine.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import weakref

import numpy as np
import pytest

import xpnet
from xpnet import backends
from xpnet.backends import Backend, get_backend

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_STRICT = importlib.util.find_spec("array_api_strict") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
needs_strict = pytest.mark.skipif(not HAVE_STRICT, reason="array-api-strict not installed")


def _blobs(m: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, m)
    X = rng.normal(size=(m, 3)) + 2.0 * y[:, None]
    return X, y


# --------------------------------------------------------------------------- item 1
def _graph_nodes(tensor: object) -> int:
    """Autograd nodes reachable from ``tensor.grad_fn`` (0 for a tensor outside any graph)."""
    seen: set[int] = set()
    stack = [getattr(tensor, "grad_fn", None)]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


@needs_torch
@pytest.mark.parametrize("batch_size", [None, 20])
def test_fit_on_a_tensor_that_requires_grad_keeps_parameters_out_of_autograd(batch_size):
    import torch

    X_np, y_np = _blobs()
    X = torch.tensor(X_np, requires_grad=True)
    y = torch.tensor(y_np, dtype=torch.float64)
    net = xpnet.MLP([3, 4, 1], backend="torch", seed=0)
    nodes_per_epoch = []

    def after_epoch(epoch: int, loss: float) -> None:
        nodes_per_epoch.append(sum(_graph_nodes(p) for p in net.flat_params))

    net.fit(X, y, epochs=4, lr=0.1, batch_size=batch_size, callback=after_epoch)
    # a growing graph would hold every step's activations (device memory on a GPU)
    assert nodes_per_epoch == [0, 0, 0, 0], (
        f"autograd nodes held by the parameters after each epoch: {nodes_per_epoch}"
    )
    assert all(p.grad_fn is None and not p.requires_grad for p in net.flat_params)
    # nothing keeps the caller's tensor alive once the caller drops it
    alive = weakref.ref(X)
    del X
    gc.collect()
    assert alive() is None, "the network (or its graph) still holds the caller's input tensor"
    # and the training is the same as on a plain tensor
    reference = xpnet.MLP([3, 4, 1], backend="torch", seed=0)
    reference.fit(torch.tensor(X_np), y, epochs=4, lr=0.1, batch_size=batch_size)
    for mine, theirs in zip(net.flat_params, reference._params, strict=True):
        assert torch.equal(mine, theirs)


@needs_torch
def test_every_entry_point_detaches_torch_inputs():
    import torch

    X_np, y_np = _blobs(10)
    X = torch.tensor(X_np, requires_grad=True)
    net = xpnet.MLP([3, 4, 1], backend="torch")
    net.step(X, torch.tensor(y_np, dtype=torch.float64), lr=0.1)
    net.set_params([(torch.ones(3, 4, requires_grad=True), torch.zeros(4)),
                    (torch.ones(4, 1), torch.zeros(1, requires_grad=True))])
    net.step(X, y_np, lr=0.1)
    assert all(p.grad_fn is None and not p.requires_grad for p in net.flat_params)
    assert net.forward(X).grad_fn is None
    assert net.predict_proba(X).grad_fn is None


# --------------------------------------------------------------------------- item 2
class _StandInCupyDevice:
    """Only what xpnet reads of a ``cupy.cuda.Device``: an int ``id`` (CuPy is not
    installed here; this exercises the parsing, not CuPy)."""

    def __init__(self, index: int) -> None:
        self.id = index

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


def test_cupy_device_objects_parse_to_their_index_and_canonical_name():
    assert backends._parse_cuda_index(_StandInCupyDevice(1), "cupy") == 1
    assert backends._parse_cuda_index(_StandInCupyDevice(0), "cupy") == 0
    assert backends.device_name(_StandInCupyDevice(1)) == "cuda:1"  # never "<CUDA Device 1>"
    for good, index in ((None, 0), (0, 0), (2, 2), ("cuda", 0), ("cuda:3", 3), ("gpu:1", 1)):
        assert backends._parse_cuda_index(good, "cupy") == index
    for bad in ("cpu", "cuda:x", True, 1.5, object()):
        with pytest.raises(ValueError, match="device for backend 'cupy'"):
            backends._parse_cuda_index(bad, "cupy")


@needs_torch
def test_torch_device_objects_parse_and_name_canonically():
    import torch

    assert backends._parse_cuda_index(torch.device("cuda", 1), "cupy") == 1
    assert backends._parse_cuda_index(torch.device("cuda"), "cupy") == 0
    with pytest.raises(ValueError, match="device for backend 'cupy'"):
        backends._parse_cuda_index(torch.device("cpu"), "cupy")
    assert backends.device_name(torch.device("cpu")) == "cpu"
    assert backends.device_name(torch.device("cuda", 2)) == "cuda:2"
    assert backends.device_name(None) == "default device"
    assert backends.device_name(1) == "cuda:1"


@needs_torch
@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_torch_device_object_is_accepted_saved_and_reloaded(tmp_path, backend_name):
    import torch

    device = torch.device("cpu")
    backend = backend_name  # (the suite's conftest parametrises a fixture named backend)
    assert get_backend(backend, device).device_name == "cpu"
    X, y = _blobs()
    net = xpnet.MLP([3, 4, 1], backend=backend, device=device)
    net.fit(X, y, epochs=2, lr=0.1)
    path = tmp_path / "model.npz"
    xpnet.save(net, path)
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
    assert header["trained_on"] == {"backend": backend, "device": "cpu"}
    # the network's own device object goes straight back in
    again = xpnet.load(path, backend=backend, device=net.device)
    np.testing.assert_array_equal(xpnet.to_numpy(again.predict_proba(X)),
                                  xpnet.to_numpy(net.predict_proba(X)))
    assert xpnet.MLP([3, 1], backend="numpy", device=torch.device("cpu")).device == "cpu"
    with pytest.raises(ValueError, match="device for backend 'numpy'"):
        xpnet.MLP([3, 1], backend="numpy", device=torch.device("meta"))


def test_cli_prints_the_canonical_device_name(tmp_path):
    from test_cli import run

    data = tmp_path / "d.csv"
    X, y = _blobs(30)
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", header="a,b,c,y", comments="")
    proc = run("train", "--data", data, "--target", "y", "--epochs", "2", "--json",
               "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"]["device"] == "cpu"


# --------------------------------------------------------------------------- item 3
class _CountingActivation:
    """Records how deep inside ``Backend.activate()`` the computation is."""

    def __init__(self) -> None:
        self.entered = 0
        self.depth = 0

    @contextlib.contextmanager
    def __call__(self):  # type: ignore[no-untyped-def]
        self.entered += 1
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


def _numpy_backend_with(activation: _CountingActivation) -> Backend:
    """The real NumPy backend, with an activation hook that counts (as CuPy's makes its
    device current)."""
    real = get_backend("numpy")
    return Backend(real.name, real.xp, real.device, real._sync, activation)


def test_every_public_computation_runs_inside_the_device_context(monkeypatch):
    activation = _CountingActivation()
    net = xpnet.MLP([3, 4, 1], backend=_numpy_backend_with(activation), seed=0)
    X, y = _blobs()
    inside: list[int] = []
    real_step = xpnet.MLP._loss_and_grads

    def recording(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        inside.append(activation.depth)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(xpnet.MLP, "_loss_and_grads", recording)
    calls = {
        "fit": lambda: net.fit(X, y, epochs=2, lr=0.1, batch_size=20),
        "train.fit": lambda: xpnet.train.fit(net, X, y, epochs=1, lr=0.1),
        "step": lambda: net.step(X, y),
        "loss_and_grads": lambda: net.loss_and_grads(X, y),
        "loss": lambda: net.loss(X, y),
        "forward": lambda: net.forward(X),
        "predict": lambda: net.predict(X),
        "predict_proba": lambda: net.predict_proba(X),
        "params": lambda: net.params,
        "set_params": lambda: net.set_params(net.params),
        "prepare": lambda: net.prepare(X, y),
    }
    for name, call in calls.items():
        before = activation.entered
        call()
        assert activation.entered > before, f"{name} did not enter the device context"
        assert activation.depth == 0, f"{name} left the device context entered"
    assert inside and all(depth >= 1 for depth in inside), inside


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
def test_device_context_is_a_no_op_on_cpu_backends(name):
    try:
        backend = get_backend(name)
    except xpnet.BackendUnavailableError as exc:
        pytest.skip(f"backend {name} unavailable: {exc}")
    with backend.activate() as entered:
        assert entered is None
        with backend.activate():  # re-entrant
            pass


@needs_strict
def test_inputs_on_another_device_are_moved_not_refused():
    import array_api_strict as strict

    device = strict.Device("device1")
    net = xpnet.MLP([3, 4, 1], backend="array_api_strict", device=device, seed=0)
    X_np, y_np = _blobs()
    X, y = strict.asarray(X_np), strict.asarray(y_np)  # on the default CPU_DEVICE
    assert X.device != device
    # array-api-strict refuses any operation that mixes devices, so a fit that ran on
    # arrays left on the wrong device would raise here
    history = net.fit(X, y, epochs=3, lr=0.1, batch_size=20)
    assert len(history.loss) == 3
    assert net.predict_proba(X).device == device
    assert all(p.device == device for p in net.flat_params)
    moved = net.array_backend.asarray(X)
    assert moved.device == device
    np.testing.assert_array_equal(xpnet.to_numpy(moved), X_np)
    # the same data on NumPy give the same network, to rounding
    reference = xpnet.MLP([3, 4, 1], backend="numpy", seed=0)
    reference.fit(X_np, y_np, epochs=3, lr=0.1, batch_size=20)
    np.testing.assert_allclose(xpnet.to_numpy(net.predict_proba(X)),
                               reference.predict_proba(X_np), rtol=1e-12)


# --------------------------------------------------------------------------- on a GPU
def _gpu_network(kind: str) -> xpnet.MLP:
    if kind == "cupy":
        try:
            get_backend("cupy")
        except xpnet.BackendUnavailableError as exc:
            pytest.skip(f"backend cupy unavailable: {exc}")
        return xpnet.MLP([3, 4, 1], backend="cupy", device=0, dtype="float32")
    torch = pytest.importorskip("torch", reason="torch not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    return xpnet.MLP([3, 4, 1], backend="torch", device="cuda", dtype="float32")


@pytest.mark.parametrize("kind", ["cupy", "torch-cuda"])
def test_gpu_device_object_round_trip(tmp_path, kind):
    """The issue's case: ``load(p, backend=..., device=net.device)`` with the library's own
    device object, and ``cuda:0`` (not ``<CUDA Device 0>``) in the saved header."""
    net = _gpu_network(kind)
    X, y = _blobs()
    net.fit(X, y, epochs=3, lr=0.1, batch_size=20)
    assert net.array_backend.device_name == "cuda:0"
    path = tmp_path / "model.npz"
    xpnet.save(net, path)
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
    assert header["trained_on"]["device"] == "cuda:0"
    again = xpnet.load(path, backend=net.backend, device=net.device)
    assert again.array_backend.device_name == "cuda:0"
    np.testing.assert_array_equal(xpnet.to_numpy(again.predict_proba(X)),
                                  xpnet.to_numpy(net.predict_proba(X)))


def test_cupy_activate_makes_the_network_device_current():
    net = _gpu_network("cupy")
    import cupy

    with net.array_backend.activate():
        assert cupy.cuda.Device().id == net.device.id
        with net.array_backend.activate():  # re-entrant
            assert cupy.cuda.Device().id == net.device.id
    # a CuPy array given to another backend instance of the same device is used as is
    X = cupy.asarray(_blobs()[0], dtype=cupy.float32)
    assert net.array_backend.asarray(X).device == X.device

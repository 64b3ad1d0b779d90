"""The implementations that are timed in each case.

Each one trains the case's network for ``epochs`` epochs of mini-batch SGD (with the
loss of every step computed, and read back to the host once per epoch where the
implementation lets us choose) and returns the last epoch's mean loss. The harness
(``run.py``) times ``run`` and synchronises the device before reading the clock.

- ``xpnet-<backend>``: :meth:`xpnet.MLP.fit` (validation once per fit included);
  ``xpnet-jax-compiled`` is ``fit(..., compile=True)`` on JAX (several epochs per XLA
  program call on tiny/small, one per epoch on medium; cached per shape: the warm-up fit
  compiles, and whatever a timed fit compiles is inside its timing).
- ``sklearn``: ``MLPClassifier`` with solver sgd, no momentum, constant learning rate,
  ``alpha=0``, no early stopping, exactly ``epochs`` epochs.
- ``torch-<device>``: PyTorch eager: ``nn.Sequential``, autograd, ``optim.SGD``.
- ``floor-<backend>``: a hand-written plain NumPy (or CuPy) step with no checks and no
  abstraction: the cheapest Python a person could write for the same math.
- ``jax-handwritten-fori`` / ``jax-handwritten-scan``: what a JAX user writes in twenty
  lines: ``jax.value_and_grad`` of the loss, SGD in ``lax.scan`` over the batches of a
  ``jax.random.permutation``; all epochs in one ``lax.fori_loop`` (one call per fit), or
  one jitted scan epoch per call (the loss read back once per epoch). The same network,
  starting weights, batches (sizes and order kind) and learning rate as xpnet's.
- ``jax-explicit-fori`` / ``jax-explicit-scan``: the same two programs with xpnet's
  explicit backprop (``Architecture.loss_and_grads``) in place of ``jax.value_and_grad``:
  the cost of the math apart from the cost of xpnet's loop.
- ``gemm-<backend>``: only the matrix products of the same steps, into preallocated
  buffers: the hardware floor for the dense cases. ``gemm-jax``: the same products in
  one XLA program per fit (XLA's own floor, for the compiled JAX targets).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np
from cases import Case

__all__ = ["Impl", "gpu_available", "impl_specs", "make_impl"]


class Impl:
    """One implementation, prepared for one case (data already on its device)."""

    name = "?"
    group = "?"  # xpnet, sklearn, torch, floor, gemm
    platform = "cpu"  # the hardware it runs on: "cpu" or "gpu"
    gemm_key: str | None = None  # which GEMM floor matches it (same library and device)

    def __init__(self, case: Case, X: np.ndarray, labels: np.ndarray) -> None:
        self.case = case

    def run(self, epochs: int) -> float:
        raise NotImplementedError

    def sync(self) -> None:
        """Wait until queued device work is finished (no-op on the CPU)."""

    def reset_device_peak(self) -> None:
        """Start measuring peak device memory (GPU only)."""

    def device_peak_bytes(self) -> int | None:
        """Peak device memory since ``reset_device_peak`` (GPU pool bytes), or None."""
        return None


# --------------------------------------------------------------------------- xpnet
class XpnetImpl(Impl):
    group = "xpnet"

    def __init__(self, case: Case, X: np.ndarray, labels: np.ndarray, backend: str,
                 device: Any = None, compile: bool = False) -> None:
        super().__init__(case, X, labels)
        self.compile = compile
        import xpnet

        self.net = xpnet.MLP(
            case.layer_sizes, activation=case.activation, output=case.output,
            backend=backend, device=device, dtype=case.dtype, seed=0,
        )
        be = self.net.array_backend
        self.backend = be
        self.X = be.asarray(X)
        self.y = be.asarray(labels)
        self.initial = self.net.params
        gpu = device is not None and str(device).startswith("cuda") or backend == "cupy"
        self.platform = "gpu" if gpu else "cpu"
        lib = "cupy" if backend == "cupy" else "torch" if backend == "torch" else "numpy"
        self.gemm_key = f"{lib}-{self.platform}" if backend != "array_api_strict" else None
        label = backend if backend != "array_api_strict" else "strict"
        self.name = f"xpnet-{label}" + ("-cuda" if backend == "torch" and gpu else "")
        if backend == "jax":
            self.gemm_key = "jax-cpu"  # XLA's own products (gemm-jax)
            self.name += "-compiled" if compile else ""

    def run(self, epochs: int) -> float:
        self.net.set_params(self.initial)
        case = self.case
        history = self.net.fit(
            self.X, self.y, epochs=epochs, lr=case.lr, batch_size=case.batch_size, shuffle=True,
            **({"compile": True} if self.compile else {}),
        )
        return history.loss[-1]

    def sync(self) -> None:
        self.backend.synchronize(*self.net.flat_params)  # JAX: no device barrier

    def compiled_programs(self) -> int | None:
        """Traces (so compilations) held by xpnet's compiled-program cache: the harness
        reads it after the warm-up fit and after the timed fits, to show that a fit
        after one warm-up fit compiles nothing (or what it compiles, inside the
        timing). None where nothing is compiled."""
        if not self.compile:
            return None
        from xpnet.training.compiled import PROGRAMS

        return sum(program._cache_size() for program in PROGRAMS.values())

    def reset_device_peak(self) -> None:
        _reset_device_peak(self.backend.name, self.platform)

    def device_peak_bytes(self) -> int | None:
        return _device_peak(self.backend.name, self.platform)


def _reset_device_peak(lib: str, platform: str) -> None:
    """Start a device-memory measurement, keeping every allocator warm.

    CuPy's pool is *not* emptied: freeing it before a timed fit made xpnet-cupy and the
    CuPy floor pay for cudaMalloc inside the timing while PyTorch kept its cache. CuPy's
    pool total cannot be reset; it only grows while the pool is warm, so after the
    warm-up fit it is the peak of what the pool holds. PyTorch's peak counters are reset
    to the current figures.
    """
    if platform == "gpu" and lib == "torch":
        import torch

        torch.cuda.reset_peak_memory_stats()


def _device_peak(lib: str, platform: str) -> int | None:
    """Device memory held by the library's caching allocator, measured alike for both:
    CuPy's pool total and PyTorch's peak *reserved* bytes (not its allocated-only peak,
    which leaves out the cache CuPy's figure includes)."""
    if platform != "gpu":
        return None
    if lib == "cupy":
        import cupy

        return int(cupy.get_default_memory_pool().total_bytes())
    if lib == "torch":
        import torch

        return int(torch.cuda.max_memory_reserved())
    return None


class JaxGemmImpl(Impl):
    """The JAX GEMM floor: the matrix products of :class:`GemmImpl` (same shapes, same
    per-step list), as XLA runs them inside one compiled program per fit (a loop over
    epochs and batches), so neither dispatch nor element-wise work is counted.

    XLA hoists loop-invariant products out of a loop and drops unused ones, so every
    operand of a product is sliced at an offset that moves with the step (the fixed
    activations and errors have one spare row; the slice is a few KiB), and the
    products' results are the loop's carry (returned, so none is dead)."""

    group = "gemm"
    name = "gemm-jax"
    gemm_key = "jax-cpu"

    def __init__(self, case: Case, X: np.ndarray, labels: np.ndarray) -> None:
        super().__init__(case, X, labels)
        import jax
        import jax.numpy as jnp
        from jax import lax

        if case.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        rng = np.random.default_rng(1)
        sizes = case.layer_sizes
        rows = case.batch
        W = [jnp.asarray(rng.standard_normal((a, b)).astype(case.dtype) * 0.05)
             for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        A = [jnp.asarray(rng.standard_normal((rows + 1, n)).astype(case.dtype))
             for n in sizes[1:-1]]
        dZ = [jnp.asarray(rng.standard_normal((rows + 1, n)).astype(case.dtype))
              for n in sizes[1:]]
        self.X = jnp.asarray(X.astype(case.dtype))
        n_full, rest = divmod(case.n_samples, rows)

        def step(X_batch: Any, size: int, shift: Any) -> list[Any]:
            inputs = [X_batch] + [lax.dynamic_slice_in_dim(a, shift, size) for a in A]
            errors = [lax.dynamic_slice_in_dim(d, shift, size) for d in dZ]
            out = []
            for layer, W_l in enumerate(W):
                out.append(inputs[layer] @ W_l)  # forward
                out.append(inputs[layer].T @ errors[layer])  # dW
                if layer:
                    out.append(errors[layer] @ W_l.T)  # back
            return out

        def zeros(size: int) -> list[Any]:
            shapes = jax.eval_shape(lambda X: step(X, size, 0), self.X[:size])
            return [jnp.zeros(s.shape, s.dtype) for s in shapes]

        def epochs(X: Any, n_epochs: Any) -> Any:
            def epoch(e: Any, carry: Any) -> Any:
                full, last = carry
                if n_full:
                    full = lax.fori_loop(0, n_full, lambda i, _: step(
                        lax.dynamic_slice_in_dim(X, i * rows, rows, axis=0), rows,
                        (e + i) % 2), full)
                if rest:
                    last = step(X[n_full * rows:], rest, e % 2)
                return full, last

            return lax.fori_loop(0, n_epochs, epoch, (zeros(rows), zeros(rest or rows)))

        self.program = jax.jit(epochs)
        self.result: Any = None

    def run(self, epochs: int) -> float:
        self.result = self.program(self.X, epochs)
        return float("nan")

    def sync(self) -> None:
        if self.result is not None:
            import jax

            jax.block_until_ready(self.result)


class JaxHandwrittenImpl(Impl):
    """SGD as a JAX user writes it (see the module docs): autodiff, ``lax.scan``; with
    ``explicit`` the same program with xpnet's hand-written backprop
    (:meth:`xpnet.core.Architecture.loss_and_grads`) in place of ``jax.value_and_grad``,
    which separates the cost of the math from the cost of xpnet's loop."""

    group = "jax-handwritten"
    gemm_key = "jax-cpu"

    def __init__(self, case: Case, X: np.ndarray, labels: np.ndarray,
                 initial: list[np.ndarray], mode: str, explicit: bool = False) -> None:
        super().__init__(case, X, labels)
        import jax
        import jax.numpy as jnp
        from jax import lax

        if case.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        self.name = f"jax-{'explicit' if explicit else 'handwritten'}-{mode}"
        self.mode = mode
        self.jax = jax
        X_all = jnp.asarray(X.astype(case.dtype))
        if case.output == "softmax":
            Y_all = jax.nn.one_hot(jnp.asarray(labels), case.n_classes, dtype=case.dtype)
        else:
            Y_all = jnp.asarray(labels.reshape(-1, 1).astype(case.dtype))
        self.initial = [jnp.asarray(p.astype(case.dtype)) for p in initial]
        act = {"sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh}[case.activation]
        m, rows, lr = case.n_samples, case.batch, case.lr
        n_full = m // rows  # a shuffled epoch's last, smaller batch is dropped (as users do)
        softmax = case.output == "softmax"

        def loss(params: list[Any], xb: Any, yb: Any) -> Any:
            a = xb
            for i in range(0, len(params) - 2, 2):
                a = act(a @ params[i] + params[i + 1])
            z = a @ params[-2] + params[-1]
            if softmax:
                return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(z), axis=1))
            return jnp.mean(jnp.logaddexp(0.0, z) - yb * z)  # BCE on logits

        grad = jax.value_and_grad(loss)
        if explicit:
            import xpnet

            arch = xpnet.MLP(case.layer_sizes, activation=case.activation,
                             output=case.output, dtype=case.dtype, seed=0).architecture

            def grad(params: list[Any], xb: Any, yb: Any) -> tuple[Any, list[Any]]:
                return arch.loss_and_grads(params, xb, yb, None)

        def epoch(params: list[Any], key: Any) -> tuple[list[Any], Any]:
            order = (jax.random.permutation(key, m)[: n_full * rows].reshape(n_full, rows)
                     if rows < m else jnp.arange(m).reshape(1, m))

            def step(params: list[Any], index: Any) -> tuple[list[Any], Any]:
                value, g = grad(params, X_all[index], Y_all[index])
                return [p - lr * d for p, d in zip(params, g, strict=True)], value

            params, losses = lax.scan(step, params, order)
            return params, jnp.mean(losses)

        def fit(params: list[Any], key: Any, epochs: Any) -> tuple[list[Any], Any]:
            def body(e: Any, carry: Any) -> Any:
                return epoch(carry[0], jax.random.fold_in(key, e))

            return lax.fori_loop(0, epochs, body, (params, jnp.zeros((), X_all.dtype)))

        self.epoch_program = jax.jit(epoch)
        self.fit_program = jax.jit(fit)
        self.result: Any = None

    def run(self, epochs: int) -> float:
        key = self.jax.random.key(0)
        if self.mode == "fori":
            self.result = self.fit_program(self.initial, key, epochs)
            return float(self.result[1])  # one read-back per fit
        params, last = self.initial, float("nan")
        for e in range(epochs):
            params, value = self.epoch_program(params, self.jax.random.fold_in(key, e))
            last = float(value)  # one read-back per epoch, as xpnet's
        self.result = params
        return last

    def sync(self) -> None:
        if self.result is not None:
            self.jax.block_until_ready(self.result)


# --------------------------------------------------------------------------- scikit-learn
class SklearnImpl(Impl):
    name = "sklearn"
    group = "sklearn"
    gemm_key = "numpy-cpu"

    def __init__(self, case: Case, X: np.ndarray, labels: np.ndarray) -> None:
        super().__init__(case, X, labels)
        self.X, self.y = X, labels

    def run(self, epochs: int) -> float:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        case = self.case
        clf = MLPClassifier(
            hidden_layer_sizes=case.layer_sizes[1:-1],
            activation={"sigmoid": "logistic"}.get(case.activation, case.activation),
            solver="sgd", momentum=0.0, nesterovs_momentum=False,
            learning_rate="constant", learning_rate_init=case.lr, alpha=0.0,
            batch_size=case.batch, shuffle=True, early_stopping=False,
            # exactly `epochs` epochs: never stop for lack of improvement
            max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(self.X, self.y)
        if clf.n_iter_ != epochs:
            raise RuntimeError(f"sklearn ran {clf.n_iter_} epochs, not {epochs}")
        return float(clf.loss_curve_[-1])


# --------------------------------------------------------------------------- PyTorch
class TorchImpl(Impl):
    group = "torch"

    def __init__(self, case: Case, X: np.ndarray, labels: np.ndarray, device: str,
                 initial: list[np.ndarray]) -> None:
        super().__init__(case, X, labels)
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.platform = "gpu" if self.device.type == "cuda" else "cpu"
        self.name = "torch" + ("-cuda" if self.platform == "gpu" else "")
        self.gemm_key = f"torch-{self.platform}"
        dtype = getattr(torch, case.dtype)
        self.X = torch.as_tensor(X, device=self.device)
        self.loss_fn: Any
        if case.output == "softmax":
            self.y = torch.as_tensor(labels, device=self.device)
            self.loss_fn = torch.nn.CrossEntropyLoss()
        else:
            self.y = torch.as_tensor(labels.reshape(-1, 1), dtype=dtype, device=self.device)
            self.loss_fn = torch.nn.BCEWithLogitsLoss()
        act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
        layers: list[Any] = []
        pairs = list(zip(case.layer_sizes[:-1], case.layer_sizes[1:], strict=True))
        for index, (n_in, n_out) in enumerate(pairs):
            layers.append(torch.nn.Linear(n_in, n_out, dtype=dtype, device=self.device))
            if index < len(pairs) - 1:
                layers.append(act[case.activation]())
        self.model = torch.nn.Sequential(*layers)
        self.linears = [layer for layer in layers if isinstance(layer, torch.nn.Linear)]
        # Same starting point as xpnet: nn.Linear keeps W as (n_out, n_in).
        self.initial = [
            (torch.as_tensor(W.T.copy(), device=self.device),
             torch.as_tensor(b, device=self.device))
            for W, b in zip(initial[0::2], initial[1::2], strict=True)
        ]
        self.generator = torch.Generator(device=self.device).manual_seed(0)

    def run(self, epochs: int) -> float:
        torch = self.torch
        with torch.no_grad():
            for layer, (W, b) in zip(self.linears, self.initial, strict=True):
                layer.weight.copy_(W)
                layer.bias.copy_(b)
        model, loss_fn, X, y = self.model, self.loss_fn, self.X, self.y
        optimizer = torch.optim.SGD(model.parameters(), lr=self.case.lr)
        m, batch = self.case.n_samples, self.case.batch
        shuffle = batch < m
        epoch_loss = float("nan")
        for _ in range(epochs):
            if shuffle:
                order = torch.randperm(m, device=self.device, generator=self.generator)
            total = torch.zeros((), dtype=X.dtype, device=self.device)
            for first in range(0, m, batch):
                if shuffle:
                    index = order[first:first + batch]
                    xb, yb = X[index], y[index]
                else:
                    xb, yb = X, y
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
                total += loss.detach() * xb.shape[0]
            epoch_loss = float(total) / m  # one host read-back per epoch
        return epoch_loss

    def sync(self) -> None:
        if self.platform == "gpu":
            self.torch.cuda.synchronize(self.device)

    def reset_device_peak(self) -> None:
        _reset_device_peak("torch", self.platform)

    def device_peak_bytes(self) -> int | None:
        return _device_peak("torch", self.platform)


# --------------------------------------------------------------------------- floors
class FloorImpl(Impl):
    """Plain NumPy/CuPy SGD with no checks: the same math written out by hand."""

    group = "floor"

    def __init__(self, case: Case, X: np.ndarray, labels: np.ndarray, lib: str,
                 initial: list[np.ndarray]) -> None:
        super().__init__(case, X, labels)
        self.np = importlib.import_module(lib)
        xp = self.np
        self.platform = "gpu" if lib == "cupy" else "cpu"
        self.name = f"floor-{lib}"
        self.gemm_key = f"{lib}-{self.platform}"
        self.X = xp.asarray(X)
        k = case.layer_sizes[-1]
        if case.output == "softmax":
            Y = np.zeros((case.n_samples, k), dtype=case.dtype)
            Y[np.arange(case.n_samples), labels] = 1.0
        else:
            Y = labels.reshape(-1, 1).astype(case.dtype)
        self.Y = xp.asarray(Y)
        self.initial = [xp.asarray(p) for p in initial]
        self.rng = np.random.default_rng(0)

    def run(self, epochs: int) -> float:
        xp = self.np
        case = self.case
        params = [p.copy() for p in self.initial]
        Ws, bs = params[0::2], params[1::2]
        n_layers = len(Ws)
        X_all, Y_all = self.X, self.Y
        m, batch, lr = case.n_samples, case.batch, case.lr
        sigmoid_hidden = case.activation == "sigmoid"
        softmax = case.output == "softmax"
        ones = {b: xp.ones(b, dtype=case.dtype) for b in set(case.batch_sizes())}
        epoch_loss = float("nan")
        for _ in range(epochs):
            order = xp.asarray(self.rng.permutation(m)) if batch < m else None
            total = 0.0
            for first in range(0, m, batch):
                if order is None:
                    X, Y = X_all, Y_all
                else:
                    index = order[first:first + batch]
                    X, Y = X_all[index], Y_all[index]
                rows = X.shape[0]
                acts = [X]
                A = X
                for layer in range(n_layers - 1):
                    Z = A @ Ws[layer]
                    Z += bs[layer]
                    if sigmoid_hidden:
                        e = xp.exp(-xp.abs(Z))
                        r = 1.0 / (1.0 + e)
                        A = xp.where(Z >= 0, r, e * r)
                    else:
                        A = xp.maximum(Z, 0.0)
                    acts.append(A)
                Z = A @ Ws[-1]
                Z += bs[-1]
                if softmax:
                    shifted = Z - Z.max(axis=1, keepdims=True)
                    e = xp.exp(shifted)
                    s = e.sum(axis=1, keepdims=True)
                    loss = (Y * (xp.log(s) - shifted)).sum()
                    dZ = e / s
                else:
                    abs_z = xp.abs(Z)
                    e = xp.exp(-abs_z)
                    loss = ((Z + abs_z) * 0.5 + xp.log1p(e) - Y * Z).sum()
                    r = 1.0 / (1.0 + e)
                    dZ = xp.where(Z >= 0, r, e * r)
                dZ -= Y
                dZ /= rows
                total += loss  # a 0-d array: stays on the device
                for layer in range(n_layers - 1, -1, -1):
                    A_prev = acts[layer]
                    dW = A_prev.T @ dZ
                    db = ones[rows] @ dZ  # column sums as one BLAS call, as xpnet does
                    if layer:
                        dZ = dZ @ Ws[layer].T
                        if sigmoid_hidden:
                            dZ *= A_prev * (1.0 - A_prev)
                        else:
                            dZ *= A_prev > 0
                    dW *= lr
                    db *= lr
                    Ws[layer] -= dW
                    bs[layer] -= db
            epoch_loss = float(total) / m
        return epoch_loss

    def sync(self) -> None:
        if self.platform == "gpu":
            self.np.cuda.Device().synchronize()

    def reset_device_peak(self) -> None:
        _reset_device_peak("cupy" if self.platform == "gpu" else "numpy", self.platform)

    def device_peak_bytes(self) -> int | None:
        return _device_peak("cupy" if self.platform == "gpu" else "numpy", self.platform)


class GemmImpl(Impl):
    """Only the matrix products of every step, into preallocated outputs.

    Per step and layer: ``A_{l-1} @ W_l`` and ``A_{l-1}.T @ dZ_l``, and ``dZ_l @ W_l.T``
    for every layer but the first, on batches sliced (without copies) from the data.
    """

    group = "gemm"

    def __init__(self, case: Case, X: np.ndarray, labels: np.ndarray, lib: str,
                 device: str = "cpu") -> None:
        super().__init__(case, X, labels)
        rng = np.random.default_rng(1)
        self.lib = lib
        self.platform = "gpu" if lib == "cupy" or device.startswith("cuda") else "cpu"
        self.name = f"gemm-{lib}" + ("-cuda" if lib == "torch" and self.platform == "gpu" else "")
        self.gemm_key = f"{lib}-{self.platform}"
        sizes = case.layer_sizes
        rows = case.batch
        host: dict[str, Any] = {
            "X": X,
            "W": [rng.standard_normal((a, b)).astype(case.dtype) * 0.05
                  for a, b in zip(sizes[:-1], sizes[1:], strict=True)],
            "A": [rng.standard_normal((rows, n)).astype(case.dtype) for n in sizes[1:-1]],
            "dZ": [rng.standard_normal((rows, n)).astype(case.dtype) for n in sizes[1:]],
        }
        if lib == "torch":
            import torch

            self.torch = torch
            self.device = torch.device(device)

            def to(a: np.ndarray) -> Any:
                return torch.as_tensor(a, device=self.device)

            def matmul(a: Any, b: Any, out: Any) -> None:
                torch.matmul(a, b, out=out)

            def empty(shape: tuple[int, ...]) -> Any:
                return torch.empty(shape, dtype=getattr(torch, case.dtype), device=self.device)
        else:
            xp = importlib.import_module(lib)
            self.xp = xp

            def to(a: np.ndarray) -> Any:
                return xp.asarray(a)

            def matmul(a: Any, b: Any, out: Any) -> None:
                xp.matmul(a, b, out=out)

            def empty(shape: tuple[int, ...]) -> Any:
                return xp.empty(shape, dtype=case.dtype)

        self.matmul = matmul
        self.X = to(host["X"])
        self.W = [to(w) for w in host["W"]]
        self.A = [to(a) for a in host["A"]]
        self.dZ = [to(d) for d in host["dZ"]]
        # one set of outputs per distinct batch size (the last batch may be shorter)
        self.out: dict[int, tuple[list[Any], list[Any], list[Any]]] = {}
        for b in set(case.batch_sizes()):
            self.out[b] = (
                [empty((b, n)) for n in sizes[1:]],  # A @ W
                [empty(w.shape) for w in host["W"]],  # A.T @ dZ
                [empty((b, n)) for n in sizes[1:-1]],  # dZ @ W.T
            )

    def run(self, epochs: int) -> float:
        matmul = self.matmul
        n_layers = len(self.W)
        m, batch = self.case.n_samples, self.case.batch
        for _ in range(epochs):
            for first in range(0, m, batch):
                X = self.X[first:first + batch]
                rows = X.shape[0]
                fwd, dws, back = self.out[rows]
                inputs = [X] + [a[:rows] for a in self.A]
                errors = [d[:rows] for d in self.dZ]
                for layer in range(n_layers):
                    matmul(inputs[layer], self.W[layer], fwd[layer])
                for layer in range(n_layers - 1, -1, -1):
                    matmul(inputs[layer].T, errors[layer], dws[layer])
                    if layer:
                        matmul(errors[layer], self.W[layer].T, back[layer - 1])
        return float("nan")

    def sync(self) -> None:
        if self.platform != "gpu":
            return
        if self.lib == "torch":
            self.torch.cuda.synchronize(self.device)
        else:
            self.xp.cuda.Device().synchronize()

    def reset_device_peak(self) -> None:
        _reset_device_peak(self.lib, self.platform)

    def device_peak_bytes(self) -> int | None:
        return _device_peak(self.lib, self.platform)


# --------------------------------------------------------------------------- registry
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def gpu_available() -> dict[str, str | None]:
    """Which GPU libraries can run here: ``{"cupy": reason_or_None, "torch-cuda": ...}``."""
    status: dict[str, str | None] = {}
    try:
        import xpnet

        xpnet.get_backend("cupy")
        status["cupy"] = None
    except Exception as exc:  # BackendUnavailableError, or a broken CUDA install
        status["cupy"] = f"cupy unusable: {exc}".splitlines()[0][:160]
    if _installed("torch"):
        import torch

        status["torch-cuda"] = None if torch.cuda.is_available() else "torch has no CUDA device"
    else:
        status["torch-cuda"] = "torch not installed"
    return status


def impl_specs(case: Case, strict: bool) -> list[tuple[str, str | None]]:
    """``(name, reason)`` for every implementation of ``case`` in a fixed order;
    ``reason`` says why it cannot run here (``None``: it can)."""
    import xpnet

    gpu = gpu_available()
    available = set(xpnet.available_backends())
    torch_reason = None if _installed("torch") else "torch not installed"
    specs: list[tuple[str, str | None]] = []
    if not case.gpu_only:
        specs.append(("xpnet-numpy", None))
        specs.append(("xpnet-torch", None if "torch" in available else "torch not installed"))
        strict_reason = None
        if "array_api_strict" not in available:
            strict_reason = "array-api-strict not installed"
        elif not strict:
            strict_reason = "array-api-strict is a compliance check, slow: timed on tiny only"
        specs.append(("xpnet-strict", strict_reason))
        jax_reason = None if "jax" in available else "jax not installed"
        specs.append(("xpnet-jax", jax_reason))
        specs.append(("xpnet-jax-compiled", jax_reason))
        specs.append(("sklearn", None if _installed("sklearn") else "scikit-learn not installed"))
        specs.append(("torch", torch_reason))
        specs.append(("floor-numpy", None))
        specs.append(("gemm-numpy", None))
        specs.append(("gemm-torch", torch_reason))
        specs.append(("gemm-jax", jax_reason))
        specs.append(("jax-handwritten-fori", jax_reason))
        specs.append(("jax-handwritten-scan", jax_reason))
        specs.append(("jax-explicit-fori", jax_reason))
        specs.append(("jax-explicit-scan", jax_reason))
    cupy_reason, cuda_reason = gpu["cupy"], gpu["torch-cuda"]
    specs.append(("xpnet-cupy", cupy_reason))
    specs.append(("xpnet-torch-cuda", cuda_reason))
    specs.append(("torch-cuda", cuda_reason))
    specs.append(("floor-cupy", cupy_reason))
    specs.append(("gemm-cupy", cupy_reason))
    specs.append(("gemm-torch-cuda", cuda_reason))
    return specs


def make_impl(name: str, case: Case, X: np.ndarray, labels: np.ndarray) -> Impl:
    """Build implementation ``name`` for ``case`` (data moved to its device)."""
    import xpnet

    net = xpnet.MLP(case.layer_sizes, activation=case.activation, output=case.output,
                    dtype=case.dtype, seed=0)
    initial = [np.asarray(p) for pair in net.params for p in pair]
    factories = {
        "xpnet-numpy": lambda: XpnetImpl(case, X, labels, "numpy"),
        "xpnet-torch": lambda: XpnetImpl(case, X, labels, "torch"),
        "xpnet-strict": lambda: XpnetImpl(case, X, labels, "array_api_strict"),
        "xpnet-jax": lambda: XpnetImpl(case, X, labels, "jax"),
        "xpnet-jax-compiled": lambda: XpnetImpl(case, X, labels, "jax", compile=True),
        "sklearn": lambda: SklearnImpl(case, X, labels),
        "torch": lambda: TorchImpl(case, X, labels, "cpu", initial),
        "floor-numpy": lambda: FloorImpl(case, X, labels, "numpy", initial),
        "gemm-numpy": lambda: GemmImpl(case, X, labels, "numpy"),
        "gemm-torch": lambda: GemmImpl(case, X, labels, "torch"),
        "gemm-jax": lambda: JaxGemmImpl(case, X, labels),
        "jax-handwritten-fori": lambda: JaxHandwrittenImpl(case, X, labels, initial, "fori"),
        "jax-handwritten-scan": lambda: JaxHandwrittenImpl(case, X, labels, initial, "scan"),
        "jax-explicit-fori": lambda: JaxHandwrittenImpl(case, X, labels, initial, "fori", True),
        "jax-explicit-scan": lambda: JaxHandwrittenImpl(case, X, labels, initial, "scan", True),
        "xpnet-cupy": lambda: XpnetImpl(case, X, labels, "cupy"),
        "xpnet-torch-cuda": lambda: XpnetImpl(case, X, labels, "torch", "cuda"),
        "torch-cuda": lambda: TorchImpl(case, X, labels, "cuda", initial),
        "floor-cupy": lambda: FloorImpl(case, X, labels, "cupy", initial),
        "gemm-cupy": lambda: GemmImpl(case, X, labels, "cupy"),
        "gemm-torch-cuda": lambda: GemmImpl(case, X, labels, "torch", "cuda"),
    }
    if name == "xpnet-numpy-before":
        impl = XpnetImpl(case, X, labels, "numpy")
        impl.name = name
        return impl
    return factories[name]()

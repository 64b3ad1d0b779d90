"""Thread pools of the numerical libraries during training: ``fit(threads=...)``.

NumPy's BLAS (OpenBLAS/MKL), OpenMP (torch's CPU kernels, libgomp) and XLA each start a
pool of worker threads. On a small network every matrix product is far too short to
split, so the workers only spin and wait; with two or three libraries in one process on
a small machine the pools also fight each other for the same cores. Measured on the
project's 2-core machine under load (median ms per epoch, 1 thread vs 2 threads):

=======================  ========  =========
case                     1 thread  2 threads
=======================  ========  =========
tiny 2-4-1, NumPy        0.168     0.151
tiny 2-4-1, torch        0.689     9.41
small 64-32-10, NumPy    10.2      11.5
small 64-32-10, torch    30.1      420
medium 784-256-10, NumPy 423       6,768
=======================  ========  =========

So the default (``threads=None``, "auto", :func:`choose_threads`) decides from what is
measurable when ``fit`` starts:

- the per-step work, the largest per-step matrix product (``batch rows x fan-in x
  fan-out``): below :data:`SMALL_WORK` multiply-adds (below :data:`TORCH_SMALL_WORK` on
  torch, whose OpenMP workers spin while they wait: 2 threads were 7x slower than 1 on
  tiny and 10-119x on small under load, and the digits example's full batch of 5.5
  million multiply-adds took 0.92-18.9 s with 2 threads against 0.97-1.05 s with 1) a
  product is too short to split: 1 thread;
- else the cores this process may run on (``os.sched_getaffinity``) less those the
  machine is already busy with (the 1-minute load average, rounded down; one other
  CPU-bound process per core leaves 1): threads that would only queue behind other
  work are not started.

The count chosen is recorded in ``History.threads`` (``History.threads_auto`` says it
was the automatic choice) and shown by ``xpnet train`` (``threads 1 (auto)``).

The limits hold only for the duration of the call (the previous settings are restored
afterwards): threadpoolctl caps the BLAS and OpenMP pools, ``torch.set_num_threads``
torch's intra-op pool. XLA's CPU pool is sized once, when JAX starts its CPU backend, and
cannot be changed afterwards: set ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``
(matrix products on the calling thread) before JAX starts; ``xpnet train --threads 1``
does so when JAX is not started yet.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["SMALL_WORK", "TORCH_SMALL_WORK", "check_threads", "choose_threads", "free_cores",
           "resolve_threads", "thread_limits", "xla_flags"]

SMALL_WORK = 1 << 20  # multiply-adds of the largest per-step matrix product
TORCH_SMALL_WORK = 1 << 23  # the same on torch, whose idle OpenMP workers spin

_controller: tuple[frozenset[str], Any] | None = None
_WATCHED = ("numpy", "scipy", "torch", "jaxlib", "cupy", "sklearn")


def check_threads(value: Any) -> int | None:
    """``None`` (auto) or a positive integer; anything else is refused, naming ``threads``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"threads must be a positive integer or None (auto: 1 for small networks); "
            f"got {value!r}"
        )
    return int(value)


def free_cores() -> int:
    """The cores this process may use (``sched_getaffinity``) less those the machine is
    busy with (1-minute load average, rounded down); at least 1."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    try:
        busy = int(os.getloadavg()[0])
    except (AttributeError, OSError):  # no load average (Windows)
        busy = 0
    return max(1, min(cores, cores - busy))


def choose_threads(threads: int | None, layer_sizes: tuple[int, ...] | list[int], batch: int,
                   backend: str = "numpy") -> tuple[int, bool]:
    """``(count, auto)``: ``threads`` when given, else the automatic rule (module docs)."""
    if threads is not None:
        return threads, False
    work = max((batch * a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:])), default=0)
    small = TORCH_SMALL_WORK if backend == "torch" else SMALL_WORK
    return (1 if work < small else free_cores()), True


def resolve_threads(threads: int | None, layer_sizes: tuple[int, ...], batch: int,
                    backend: str = "numpy") -> int:
    """The thread count to impose (:func:`choose_threads` without the flag)."""
    return choose_threads(threads, layer_sizes, batch, backend)[0]


def _threadpool_controller() -> Any:
    """One threadpoolctl controller per set of loaded libraries: building one scans the
    process's shared libraries (~2 ms); using a cached one to set limits costs ~0.1 ms."""
    global _controller
    loaded = frozenset(name for name in _WATCHED if name in sys.modules)
    if _controller is None or _controller[0] != loaded:
        from threadpoolctl import ThreadpoolController

        _controller = (loaded, ThreadpoolController())
    return _controller[1]


@contextlib.contextmanager
def thread_limits(threads: int | None) -> Iterator[None]:
    """Cap BLAS, OpenMP and torch's thread pools at ``threads`` inside the ``with``
    (``None``: change nothing). The previous limits are restored on exit."""
    if threads is None:
        yield
        return
    torch = sys.modules.get("torch")
    previous_torch = torch.get_num_threads() if torch is not None else None
    try:
        with _threadpool_controller().limit(limits=threads):
            if torch is not None:
                torch.set_num_threads(threads)
            yield
    finally:
        if torch is not None and previous_torch is not None:
            torch.set_num_threads(previous_torch)


def xla_flags(threads: int, environ: Any = None) -> bool:
    """For ``threads == 1``, add ``--xla_cpu_multi_thread_eigen=false`` (XLA's CPU matrix
    products on the calling thread) to ``XLA_FLAGS``, if JAX has not started its backends
    yet: its pool is fixed at start-up. XLA has no flag for another thread count (an
    unknown flag aborts the process), so other counts change nothing there. Returns
    whether the flag was set and can take effect."""
    environ = os.environ if environ is None else environ
    if threads != 1:
        return False
    if "jax" in sys.modules:
        try:
            from jax._src import xla_bridge

            if xla_bridge.backends_are_initialized():
                return False
        except (ImportError, AttributeError):  # private API moved: assume it started
            return False
    flags = environ.get("XLA_FLAGS", "")
    if "--xla_cpu_multi_thread_eigen" not in flags:
        environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    return True

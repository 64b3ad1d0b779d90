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
  fan-out``): below :data:`SMALL_WORK` multiply-adds a product is too short to split:
  1 thread;
- else the cores this process may run on (``os.sched_getaffinity``) less those other work
  holds (:func:`busy_cores`): the threads runnable elsewhere on the machine at that moment
  (Linux ``/proc/loadavg``, less this process's own threads: a script that trains one
  model after another keeps its cores), at most the 1-minute load average rounded up (so
  a passing process is not counted); one other CPU-bound process per core leaves 1:
  threads that would only queue behind other work are not started. Off Linux, the load
  average rounded down.

The second part matters most on torch, whose idle OpenMP workers spin: with 2 threads on
the 2-core machine while other work ran, tiny epochs were 7x slower than with 1 and small
ones 10-119x, and the README's digits example took 0.92-18.9 s against 0.97-1.05 s with
1 thread. A first rule counted busy cores from the load average alone (this process's
own past work included) and, to stay safe, kept torch on 1 thread below 2^23
multiply-adds; measured on an idle machine that cost the digits example 1.39x (1 thread
0.67 s, 2 threads 0.49 s). Counting the threads runnable elsewhere *now* sees the load
without that margin; ``benchmarks/threads.py`` measures the rule, idle and with one
CPU-bound process per core (``--background-load``).

The count chosen is recorded in ``History.threads`` (``History.threads_auto`` says it
was the automatic choice) and shown by ``xpnet train`` (``threads 1 (auto)``).

The limits hold only for the duration of the call (the previous settings are restored
afterwards): threadpoolctl caps the BLAS and OpenMP pools, ``torch.set_num_threads``
torch's intra-op pool. XLA's CPU pool is sized once, when JAX starts its CPU backend, and
cannot be changed afterwards: set ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``
(matrix products on the calling thread) before JAX starts; ``xpnet train --threads 1``
does so when JAX is not started yet.

Prediction on NumPy runs its blocks of rows side by side on threads of this process,
each block's products on one BLAS thread (:func:`one_blas_thread`, sized from
:func:`blas_threads`; see :mod:`xpnet.inference`): one thread's products round a row the
same whatever the other rows, so every block size gives the same bits.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["SMALL_WORK", "blas_threads", "busy_cores", "check_threads", "choose_threads",
           "free_cores", "one_blas_thread",
           "resolve_threads", "runnable_elsewhere", "thread_limits", "xla_flags"]

SMALL_WORK = 1 << 20  # multiply-adds of the largest per-step matrix product

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


def _own_runnable() -> int:
    """This process's threads that are runnable now (state ``R`` in ``/proc/self/task``)."""
    own = 0
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as stat:
            text = stat.read()
        own += text[text.rindex(")") + 2] == "R"  # the state follows the command name
    return own


def _runnable_elsewhere() -> int | None:
    """Threads runnable on the machine right now (``/proc/loadavg``'s fourth field) less
    this process's own runnable threads; ``None`` off Linux. The own threads are read
    before and after the machine's count, the larger kept: a pool worker of this process
    that stops spinning in between is not taken for another process."""
    try:
        before = _own_runnable()
        with open("/proc/loadavg") as loadavg:
            runnable = int(loadavg.read().split()[3].split("/")[0])
        return runnable_elsewhere(runnable, before, _own_runnable())
    except (OSError, ValueError, IndexError):
        return None


def runnable_elsewhere(runnable: int, own_before: int, own_after: int) -> int:
    """Of ``runnable`` threads on the machine, those not this process's: its own counted
    as the larger of two readings, and at least 1 (the reading thread itself runs)."""
    return max(0, runnable - max(own_before, own_after, 1))


def busy_cores(load1: float, elsewhere: int | None) -> int:
    """Cores other work holds: the threads runnable elsewhere now, at most the 1-minute
    load average rounded up (a process that only just started is not yet counted: a
    passing one, such as a shell command, must not halve the pool); the load average
    rounded down where the count is unknown (off Linux)."""
    if elsewhere is None:
        return int(load1)
    return min(elsewhere, math.ceil(load1))


def free_cores() -> int:
    """The cores this process may use (``sched_getaffinity``) less those other work is
    busy with (:func:`busy_cores`; this process's own threads are not counted); at least 1."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        load1 = 0.0
    return max(1, min(cores, cores - busy_cores(load1, _runnable_elsewhere())))


def choose_threads(threads: int | None, layer_sizes: tuple[int, ...] | list[int],
                   batch: int) -> tuple[int, bool]:
    """``(count, auto)``: ``threads`` when given, else the automatic rule (module docs)."""
    if threads is not None:
        return threads, False
    work = max((batch * a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:])), default=0)
    return (1 if work < SMALL_WORK else free_cores()), True


def resolve_threads(threads: int | None, layer_sizes: tuple[int, ...], batch: int) -> int:
    """The thread count to impose (:func:`choose_threads` without the flag)."""
    return choose_threads(threads, layer_sizes, batch)[0]


def _threadpool_controller() -> Any:
    """One threadpoolctl controller per set of loaded libraries: building one scans the
    process's shared libraries (~2 ms); using a cached one to set limits costs ~0.1 ms."""
    global _controller
    loaded = frozenset(name for name in _WATCHED if name in sys.modules)
    if _controller is None or _controller[0] != loaded:
        from threadpoolctl import ThreadpoolController

        _controller = (loaded, ThreadpoolController())
    return _controller[1]


def _set_threads(pool: Any, threads: int) -> None:
    """``pool.set_num_threads(threads)`` from whichever thread calls it. threadpoolctl's
    OpenBLAS controller obeys only the first thread that set a count while that thread
    lives and silently ignores the others (OpenBLAS has one pool for the process): a
    prediction or a fit in a worker thread would leave the cap unset, or the pool stuck
    at the cap. The controlling thread is cleared around each change, so the caller's
    change takes effect and no thread keeps control."""
    clear = getattr(type(pool), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)
    pool.set_num_threads(threads)
    if clear is not None:
        clear(force=True)


def _changing(pools: list[Any], threads: int) -> list[tuple[Any, int]]:
    """``(pool, count before)`` of the pools whose count ``threads`` would change."""
    return [(pool, before) for pool in pools
            if (before := pool.get_num_threads()) not in (threads, None)]


def _restore(changed: list[tuple[Any, int]]) -> None:
    """Put back the counts :func:`_changing` recorded, last changed first."""
    for pool, before in reversed(changed):
        _set_threads(pool, before)


@contextlib.contextmanager
def thread_limits(threads: int | None) -> Iterator[None]:
    """Cap BLAS, OpenMP and torch's thread pools at ``threads`` inside the ``with``
    (``None``: change nothing). The previous limits are restored on exit."""
    if threads is None:
        yield
        return
    torch = sys.modules.get("torch")
    previous_torch = torch.get_num_threads() if torch is not None else None
    # each pool's own get/set (threadpoolctl's limit() builds its whole info first:
    # ~0.1 ms, a tenth of a warm tiny compiled fit), and only the pools that change
    changed = _changing(_threadpool_controller().lib_controllers, threads)
    try:
        for pool, _ in changed:
            _set_threads(pool, threads)
        if torch is not None and previous_torch != threads:
            torch.set_num_threads(threads)
        yield
    finally:
        _restore(changed)
        if torch is not None and previous_torch is not None and previous_torch != threads:
            torch.set_num_threads(previous_torch)


_one_blas = threading.Lock()
_one_blas_holders = 0
_one_blas_restore: list[tuple[Any, int]] = []


def _blas_pools() -> list[Any]:
    return [pool for pool in _threadpool_controller().lib_controllers
            if pool.user_api == "blas"]


def blas_threads() -> int:
    """The BLAS pools' thread count now (the largest; 1 when no BLAS is loaded or
    :func:`one_blas_thread` holds it at 1)."""
    return max((pool.get_num_threads() or 1 for pool in _blas_pools()), default=1)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """The BLAS pools on one thread (the calling one) inside the ``with``, for threads of
    this process that run products side by side (:mod:`xpnet.inference`). Held by
    several threads at once, the first sets the cap and the last one out restores the
    previous counts, so no holder sees the pool grow under it and none leaves it capped."""
    global _one_blas_holders
    with _one_blas:
        if _one_blas_holders == 0:
            _one_blas_restore[:] = _changing(_blas_pools(), 1)
            for pool, _ in _one_blas_restore:
                _set_threads(pool, 1)
        _one_blas_holders += 1
    try:
        yield
    finally:
        with _one_blas:
            _one_blas_holders -= 1
            if _one_blas_holders == 0:
                _restore(_one_blas_restore)
                _one_blas_restore.clear()


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

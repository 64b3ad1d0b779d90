"""The Dask client a distributed call runs on: the caller's, the current one, or a
``LocalCluster`` started for the call and closed after it."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from typing import Any

__all__ = ["ClusterError", "client_for", "cluster_description", "compute", "current_client",
           "gather", "local_client", "settle", "timeout_floor", "wait_bound"]


def quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with its stderr on the null device: when
    a worker process is killed, the tracker prints tracebacks (``KeyError: '/mp-...'``)
    about the shared memory the dead process never released, which say nothing to a
    user. It is started once per process; later calls do nothing."""
    from multiprocessing import resource_tracker

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def local_client(n_workers: int | None = None, threads_per_worker: int = 1) -> Iterator[Any]:
    """A ``LocalCluster`` of worker *processes* (one thread each by default: NumPy's
    BLAS pools would otherwise oversubscribe the cores) and its client, closed on exit."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
        dashboard_address=":0",  # any free port (None still tries 8787 and warns when taken)
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


@contextlib.contextmanager
def client_for(client: Any = None) -> Iterator[Any]:
    """``client``; else the current client (``distributed.get_client``); else a
    LocalCluster for the duration of the block."""
    current = client if client is not None else current_client()
    if current is not None:
        yield current
        return
    with local_client() as started:  # no client: start one for this call
        yield started


def current_client() -> Any:
    """The current Dask client (``distributed.get_client``), or None when there is none."""
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        return None


def cluster_description(client: Any) -> dict[str, Any]:
    """Workers, threads and memory of ``client``'s cluster, for reports."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
    limits = [int(w.get("memory_limit") or 0) for w in workers.values()]
    return {
        "scheduler": info.get("address", ""),
        "workers": len(workers),
        "threads": threads,
        "memory_bytes": sum(limits),
        # the smallest worker's memory limit (0: a worker without one, or no worker)
        "worker_memory_bytes": min(limits, default=0),
    }


# --------------------------------------------------------------------------- bounded waits
TIMEOUT_ENV = "XPNET_DASK_TIMEOUT"
DEFAULT_TIMEOUT = 60.0  # seconds: the floor of every wait on the cluster
SLOWEST_FACTOR = 10.0  # a step may take this many times the slowest step seen so far
NO_WORKER_GRACE = 20.0  # seconds without any worker, at most (a nanny restarts one in a
# few; the grace is the floor when that is shorter)
POLL = 1.0  # seconds between looks at the scheduler while a wait goes on


class ClusterError(ConnectionError):
    """Work on the Dask cluster cannot finish: its scheduler went away, no worker is left,
    data were lost that cannot be recomputed, or a wait outlasted its bound. The message
    is one line for the user (the CLI prints it after ``xpnet: error:``)."""


def timeout_floor(seconds: float | None = None) -> float:
    """The floor of every wait: ``seconds``, else ``$XPNET_DASK_TIMEOUT``, else 60 s."""
    source = "timeout"
    if seconds is None:
        text = os.environ.get(TIMEOUT_ENV, "").strip()
        if not text:
            return DEFAULT_TIMEOUT
        source = f"{TIMEOUT_ENV}={text!r}"
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{source}: expected a number of seconds > 0")
    return float(seconds)


def wait_bound(floor: float, seen: Sequence[float]) -> float:
    """How long a wait may last: ``SLOWEST_FACTOR`` × the slowest of the ``seen`` step
    times, and at least ``floor``."""
    return max(floor, SLOWEST_FACTOR * max(seen, default=0.0))


def _address(client: Any) -> str:
    return str(getattr(client.scheduler, "address", None) or "(unknown address)")


def _workers(client: Any) -> int | None:
    """How many workers the scheduler has (None: it did not answer)."""
    try:
        return len(client.scheduler_info()["workers"])
    except (OSError, RuntimeError, KeyError):  # CommClosedError is an OSError
        return None


def settle(client: Any, futures: list[Any], seconds: float, during: str,
           floor: float | None = None) -> None:
    """Wait until every future is finished (a result or a task's own error), at most
    ``seconds``; :class:`ClusterError` naming the scheduler and ``during`` (``"during
    epoch 7"``) when the scheduler went away, no worker was left for ``floor`` seconds
    (at most ``NO_WORKER_GRACE``), a future was cancelled (its data lost and not
    recomputable), or the bound passed."""
    from distributed import wait

    address = _address(client)
    started = time.monotonic()
    no_workers_since: float | None = None
    while True:
        elapsed = time.monotonic() - started
        try:
            with client.as_current():  # wait() asks for the current client
                wait(futures, timeout=max(0.01, min(POLL, seconds - elapsed)))
            return
        except TimeoutError:
            pass
        except CancelledError as exc:  # distributed's FutureCancelledError and its group
            raise _cancelled(client, address, during, exc) from None
        except OSError as exc:  # the connection to the scheduler broke
            raise ClusterError(f"the Dask scheduler at {address} went away {during}") from exc
        if client.status != "running":
            raise ClusterError(f"the Dask scheduler at {address} went away {during}")
        now = time.monotonic()
        workers = _workers(client)
        if workers == 0:
            no_workers_since = now if no_workers_since is None else no_workers_since
            grace = min(NO_WORKER_GRACE, seconds if floor is None else floor)
            if now - no_workers_since >= grace or now - started >= seconds:
                raise ClusterError(
                    f"every Dask worker of the scheduler at {address} went away {during}, "
                    f"and none came back within {now - no_workers_since:.0f} s")
        else:
            no_workers_since = None
        if now - started >= seconds:
            limit = f"{seconds:.3g} s"
            if floor is not None and seconds > floor:
                limit += f" ({SLOWEST_FACTOR:g} times the slowest step so far)"
            raise ClusterError(
                f"the Dask cluster at {address} did not finish its work {during} within "
                f"{limit}; set {TIMEOUT_ENV}=SECONDS to wait longer")


def _cancelled(client: Any, address: str, during: str, exc: BaseException) -> ClusterError:
    text = str(exc)
    if "scheduler-connection-lost" in text or client.status != "running":
        return ClusterError(f"the Dask scheduler at {address} went away {during}")
    return ClusterError(
        f"data on the Dask cluster at {address} were lost {during} and cannot be "
        "recomputed (data scattered from the driver die with their worker; give them as "
        "a zarr store, .npy shards or dask.array.from_array, which Dask can rebuild)")


def gather(client: Any, futures: list[Any], seconds: float, during: str,
           floor: float | None = None) -> list[Any]:
    """The futures' results in order, within ``seconds`` (see :func:`settle`); a task's
    own error is raised as it is, a task whose workers kept dying is a ClusterError."""
    from distributed import KilledWorker

    settle(client, futures, seconds, during, floor)
    try:
        return list(client.gather(futures))
    except KilledWorker as exc:
        raise ClusterError(
            f"Dask workers of the scheduler at {_address(client)} kept dying {during}: a "
            f"task was on each of them when it died ({exc})") from None
    except CancelledError as exc:
        raise _cancelled(client, _address(client), during, exc) from None
    except OSError as exc:
        raise ClusterError(
            f"the Dask scheduler at {_address(client)} went away {during}") from exc


def compute(client: Any, collections: list[Any], during: str,
            seconds: float | None = None) -> list[Any]:
    """``client.compute(collections)``'s results, waited for as :func:`gather` does
    (at most ``seconds``, default :func:`timeout_floor`)."""
    futures = client.compute(list(collections))
    return gather(client, futures, timeout_floor() if seconds is None else seconds, during)

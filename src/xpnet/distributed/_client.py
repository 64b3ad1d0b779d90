"""The Dask client a distributed call runs on: the caller's, the current one, or a
``LocalCluster`` started for the call and closed after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["client_for", "cluster_description", "local_client"]


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
    if client is not None:
        yield client
        return
    from distributed import get_client

    try:
        current = get_client()
    except ValueError:  # no client: start one for this call
        current = None
    if current is not None:
        yield current
        return
    with local_client() as started:
        yield started


def cluster_description(client: Any) -> dict[str, Any]:
    """Workers, threads and memory of ``client``'s cluster, for reports."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
    memory = sum(int(w.get("memory_limit") or 0) for w in workers.values())
    return {
        "scheduler": info.get("address", ""),
        "workers": len(workers),
        "threads": threads,
        "memory_bytes": memory,
    }

"""How much memory there is, and how much a network, a data set or a fit will need.

Every size check that refuses work *before* allocating (``MLP`` layer sizes, generated
data sets, ``xpnet train``/``gradcheck`` options, data files) asks this one module, so the
numbers and the wording agree. The estimates are deliberately simple upper bounds of the
host memory NumPy needs (the dominant arrays, counted once for every copy the code makes);
they exist to turn "unexpected MemoryError" (or minutes of swapping) into one clear line,
not to predict usage to the byte.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

__all__ = [
    "available_memory",
    "data_bytes",
    "format_bytes",
    "network_bytes",
    "training_bytes",
    "training_too_large",
]

#: Bytes of a float64, the dtype NumPy draws weights and generates data in.
FLOAT64 = 8


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping, or ``None``.

    The system's figure (:func:`system_available_memory`), lowered to what a container's
    cgroup limit or the process's address-space limit (``ulimit -v``) still allows, since
    either makes an allocation fail long before the machine runs out.
    """
    limits = [system_available_memory(), _cgroup_headroom(), _address_space_headroom()]
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None


def _cgroup_headroom() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup (v2), when limited."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as cgroup:
            lines = cgroup.read().splitlines()
        path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
        base = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
        with open(os.path.join(base, "memory.max"), encoding="ascii") as handle:
            limit = handle.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(base, "memory.current"), encoding="ascii") as handle:
            current = int(handle.read().strip())
        return max(0, int(limit) - current)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _address_space_headroom() -> int | None:
    """Address space left under ``RLIMIT_AS`` (``ulimit -v``), when one is set."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm", encoding="ascii") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        return max(0, soft - used)
    except (ImportError, OSError, ValueError, IndexError, AttributeError):
        return None


def system_available_memory() -> int | None:
    """Linux's ``MemAvailable`` (``/proc/meminfo``), the kernel's own estimate of what can
    be allocated without swapping; else ``os.sysconf`` (free physical pages), else
    ``psutil`` when installed. ``None`` when none of them answers: callers then skip the
    check rather than guess.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page_size > 0:
            return int(pages) * int(page_size)
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # not installed, or no answer on this platform
        return None


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; binary units as NumPy's MemoryError message uses."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def n_parameters(layer_sizes: Sequence[int]) -> int:
    """Weights and biases of a fully connected network (exact Python integer)."""
    return sum(a * b + b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))


def network_bytes(layer_sizes: Sequence[int], itemsize: int) -> int:
    """Building a network: the float64 draw of the initial weights plus the parameters in
    the network's dtype (``itemsize`` bytes each)."""
    return n_parameters(layer_sizes) * (FLOAT64 + itemsize)


def data_bytes(n_rows: int, n_columns: int, copies: int = 4) -> int:
    """A float64 data set of ``n_rows x n_columns`` held ``copies`` times (generation,
    noise, split and standardisation each make one)."""
    return n_rows * n_columns * FLOAT64 * copies


def training_bytes(
    layer_sizes: Sequence[int], n_rows: int, batch_rows: int, itemsize: int
) -> dict[str, int]:
    """The parts of a ``fit``: parameters with their gradients and optimiser state (4x),
    the data in the network's dtype (inputs and targets), and one batch's forward cache
    and backward temporaries (about three arrays per layer width)."""
    params = n_parameters(layer_sizes) * itemsize * 4
    data = n_rows * (layer_sizes[0] + layer_sizes[-1]) * itemsize
    activations = batch_rows * sum(layer_sizes) * itemsize * 3
    return {"parameters": params, "data": data, "activations": activations}


def too_large(estimate: int) -> str | None:
    """``None`` when ``estimate`` bytes fit in the available memory, else the predicate
    ``"needs about X of memory, but about Y is available"`` for an error message."""
    available = available_memory()
    if available is None or estimate <= available:
        return None
    return (
        f"needs about {format_bytes(estimate)} of memory, but about "
        f"{format_bytes(available)} is available"
    )


def rows_that_fit(bytes_per_row: float, fixed: int = 0) -> int | None:
    """How many rows of ``bytes_per_row`` fit next to ``fixed`` bytes, for a suggestion."""
    available = available_memory()
    if available is None or bytes_per_row <= 0:
        return None
    return max(0, math.floor((available - fixed) / bytes_per_row))


def training_too_large(
    layer_sizes: Sequence[int], n_rows: int, batch_rows: int, itemsize: int,
    on_host: bool = True,
) -> tuple[str, str] | None:
    """``None`` when building the network and fitting it fit in memory, else ``(part,
    clause)``: ``part`` is ``"parameters"`` when the network alone is too large,
    ``"data"`` when the data are, and ``"activations"`` otherwise (the batch's forward
    cache is what does not fit); ``clause`` is :func:`too_large`'s predicate with the
    estimate's parts.

    ``on_host=False`` (a GPU backend): the activations live in device memory, which this
    host-memory check does not judge, so they are left out of the estimate.
    """
    parts = training_bytes(layer_sizes, n_rows, batch_rows, itemsize)
    if not on_host:
        parts["activations"] = 0
    parts["parameters"] += network_bytes(layer_sizes, itemsize)
    total = sum(parts.values())
    clause = too_large(total)
    if clause is None:
        return None
    detail = (
        f"parameters {format_bytes(parts['parameters'])}, data {format_bytes(parts['data'])},"
        f" one batch of {batch_rows:,} rows {format_bytes(parts['activations'])}"
    )
    if too_large(parts["parameters"]) is not None:
        part = "parameters"
    elif too_large(parts["data"]) is not None:
        part = "data"
    else:
        part = "activations"
    return part, f"{clause} ({detail})"  # "needs about X ... (parameters ...)"

"""Crafting hostile model and data files for the hardening and fuzz tests.

Crafted model headers get a correct checksum, so what a test exercises is the header's
validation, not the checksum. Large members are streamed into the zip in chunks, so a
1 GiB member of zeros costs about 1 MiB on disk and little memory to write.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import xpnet

PARAM_ORDER = ("W1", "b1", "W2", "b2")


def small_model(path: Path, **metadata: Any) -> dict[str, np.ndarray]:
    """Save a 3-4-2 softmax model at ``path``; return its members by name (no ``.npy``)."""
    net = xpnet.MLP([3, 4, 2], output="softmax", seed=0)
    meta = {"classes": ["a", "b"], "split": {"test_fraction": 0.25, "seed": 0}, **metadata}
    xpnet.save(net, path, **meta)
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a ``.npy`` file."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def checksum(header: bytes, params: list[np.ndarray]) -> bytes:
    """The SHA-256 hex digest xpnet stores: the header bytes, then every parameter."""
    digest = hashlib.sha256(header)
    for array in params:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest().encode("ascii")


def write_zip(path: Path, members: dict[str, bytes], level: int = 6) -> Path:
    """A deflated zip of ``members`` (name -> raw member bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def model_members(arrays: dict[str, np.ndarray], header: bytes | None = None) -> dict[str, bytes]:
    """``.npy`` members of a model, with ``header`` (raw JSON bytes) and its checksum."""
    header = arrays["header"].tobytes() if header is None else header
    params = [arrays[name] for name in PARAM_ORDER]
    members = {f"{name}.npy": npy_bytes(arrays[name]) for name in PARAM_ORDER}
    members["header.npy"] = npy_bytes(np.frombuffer(header, dtype=np.uint8))
    members["checksum.npy"] = npy_bytes(np.frombuffer(checksum(header, params), dtype=np.uint8))
    return members


def with_header(path: Path, arrays: dict[str, np.ndarray], header: Any) -> Path:
    """Write a model whose header is ``header`` (a dict, or raw JSON text/bytes), the
    checksum recomputed so that only the header's validation can refuse it."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode("utf-8")
    return write_zip(path, model_members(arrays, header))


def decoded_header(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return json.loads(arrays["header"].tobytes())


def add_zero_member(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...],
                    descr: str = "<f8", extra: int = 0) -> None:
    """Stream a ``.npy`` member of zeros (``extra`` zero bytes more than it declares)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape})
    left = int(np.prod(shape)) * np.dtype(descr).itemsize + extra
    chunk = bytes(1 << 22)
    with archive.open(name, "w", force_zip64=True) as out:
        out.write(header.getvalue())
        while left > 0:
            out.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)


# Source of ``peak_rss_kib()``, a program's own peak resident memory in KiB, for scripts
# run in a fresh interpreter. /proc's VmHWM, not getrusage's ru_maxrss: Linux carries the
# forking process's peak across exec into ru_maxrss, so a script started by a pytest
# worker that has grown to 2.5 GB reads 2.5 GB (and a growth of 0 during the attempt).
PEAK_RSS_KIB = """
def peak_rss_kib():
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""


def peak_rss_of_load(code: str, env: dict[str, str] | None = None,
                     timeout: float = 60) -> tuple[str, float, float]:
    """Run ``code`` (which defines ``attempt()``) in a fresh interpreter; return what it
    printed, its seconds, and the growth of its peak RSS in MiB during ``attempt()``."""
    script = (
        "import time\n"
        f"{PEAK_RSS_KIB}\n"
        f"{code}\n"
        "import xpnet, xpnet.data, xpnet.io\n"
        "before = peak_rss_kib()\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    attempt()\n"
        "    print('LOADED')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__ + ': ' + str(exc))\n"
        "seconds = time.perf_counter() - start\n"
        "grown = (peak_rss_kib() - before) / 1024\n"
        "print(f'{seconds} {grown}')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    *message, last = proc.stdout.strip().splitlines()
    seconds, grown = (float(v) for v in last.split())
    return "\n".join(message), seconds, grown

"""Measured differences between each backend and NumPy float64, per dtype.

    python benchmarks/cross_backend.py            # every usable backend (GPU ones too)

For each usable backend/device (NumPy, array-api-strict, torch CPU, and where present
CuPy and CUDA torch) and dtype, the same network from the same initial weights computes
the loss and gradients of one batch, then trains 20 epochs of mini-batch SGD on the same
shuffles. The table gives the largest relative difference from NumPy float64 (``max |a −
b| / max |b|``, per quantity): what the tests' tolerances (``4·sqrt(eps)`` of the dtype)
must allow. It prints a Markdown table; the GPU check (``gpu_check.sh``) keeps it in its
log and summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if (HERE.parent / "src" / "xpnet").is_dir():  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent / "src"))

import xpnet  # noqa: E402

SIZES = (20, 32, 16, 5)


def _problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, SIZES[-1], 512)
    X = rng.normal(size=(512, SIZES[0])) + rng.normal(0.0, 2.0, (SIZES[-1], SIZES[0]))[labels]
    return X, labels


def _targets() -> list[tuple[str, str, object]]:
    """(label, backend, device) of every usable backend and device here."""
    found = [("numpy", "numpy", None)]
    available = xpnet.available_backends()
    if "array_api_strict" in available:
        found.append(("array_api_strict", "array_api_strict", None))
    if "torch" in available:
        found.append(("torch-cpu", "torch", "cpu"))
        import torch

        if torch.cuda.is_available():
            found.append(("torch-cuda", "torch", "cuda:0"))
    if "cupy" in available:
        found.append(("cupy", "cupy", None))
    return found


def _run(backend: str, device: object, dtype: str) -> dict[str, np.ndarray]:
    X, labels = _problem()
    net = xpnet.MLP(SIZES, activation="tanh", output="softmax", backend=backend,
                    device=device, dtype=dtype, seed=0, alpha=1e-3)
    loss, grads = net.loss_and_grads(X, labels)
    out = {"loss": np.asarray(float(loss)).reshape(1),
           "grads": np.concatenate([xpnet.to_numpy(g).ravel() for pair in grads for g in pair])}
    net.fit(X, labels, epochs=20, lr=0.05, batch_size=64, optimizer="adam")
    out["params after fit"] = np.concatenate(
        [xpnet.to_numpy(p).ravel() for pair in net.params for p in pair])
    out["probabilities"] = xpnet.to_numpy(net.predict_proba(X)).ravel()
    return {k: v.astype(np.float64) for k, v in out.items()}


def main() -> int:
    reference = _run("numpy", None, "float64")
    quantities = list(reference)
    rows = [["backend", "dtype", *quantities, "tolerance 4·sqrt(eps)"]]
    for label, backend, device in _targets():
        for dtype in ("float64", "float32"):
            try:
                result = _run(backend, device, dtype)
            except Exception as exc:  # report and go on: one broken backend is a finding
                rows.append([label, dtype, f"failed: {type(exc).__name__}: {exc}"[:120]]
                            + [""] * (len(quantities) - 1) + [""])
                continue
            cells = []
            for name in quantities:
                scale = float(np.max(np.abs(reference[name]))) or 1.0
                cells.append(f"{float(np.max(np.abs(result[name] - reference[name]))) / scale:.2e}")
            rows.append([label, dtype, *cells, f"{4 * np.sqrt(np.finfo(dtype).eps):.1e}"])
    print("Largest relative difference from NumPy float64 "
          f"({'-'.join(map(str, SIZES))} tanh/softmax, alpha 1e-3; one batch of 512, then "
          "20 epochs of Adam on batches of 64)\n")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

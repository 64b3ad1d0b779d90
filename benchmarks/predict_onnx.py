"""The onnxruntime column of the inference benchmark (issue 18), for benchmarks/predict.py.

``run_onnxruntime(net, X, repeats)`` exports ``net`` with :func:`xpnet.onnx.build` (the
graph traced from xpnet's forward code) and times ``InferenceSession.run`` on ``X``: the
same rows and weights as the other columns. Thread settings go into the result, as the
other columns record theirs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def run_onnxruntime(net: Any, X: np.ndarray, repeats: int = 5,
                    threads: int | None = None) -> dict[str, Any]:
    """Seconds per ``predict_proba``-equivalent run of the exported ``net`` on ``X``
    (median of ``repeats``, after one warm-up), rows/s, the thread setting, and the
    largest difference from xpnet-NumPy's probabilities on the first 1,000 rows."""
    import onnxruntime as ort

    from xpnet import to_numpy
    from xpnet.onnx import build

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(build(net).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = ["probabilities" if "probabilities" in names else "prediction"]
    rows = np.ascontiguousarray(X, dtype=net.dtype)
    session.run(wanted, {"X": rows[:1000]})  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(wanted, {"X": rows})
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    head = rows[:1000]
    ours = session.run(wanted, {"X": head})[0]
    theirs = to_numpy(net.predict_proba(head))
    return {"library": "onnxruntime", "version": ort.__version__, "seconds": seconds,
            "rows_per_s": len(rows) / seconds, "threads": threads or "onnxruntime default",
            "max_abs_diff": float(np.max(np.abs(ours.reshape(theirs.shape) - theirs)))}


if __name__ == "__main__":
    import xpnet

    demo = xpnet.MLP([784, 256, 10], output="softmax", dtype="float32")
    data = np.random.default_rng(0).standard_normal((100_000, 784)).astype(np.float32)
    print(run_onnxruntime(demo, data, repeats=3))

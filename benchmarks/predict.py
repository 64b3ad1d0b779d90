"""Inference benchmark (issue 18): the medium network 784-256-10 (sigmoid hidden, softmax
out, float32), the same weights in every library, predicting 10^4, 10^5 and 10^6 rows.

Implementations (all in this one process, on the same input array, interleaved
round-robin with the starting one rotated every repeat, 0.25 s settle between runs):

- ``xpnet-numpy``, ``xpnet-torch`` (CPU), ``xpnet-jax`` (eager): ``MLP.predict_proba``;
- ``xpnet-jax-jit``: ``jax.jit`` of xpnet's own forward code (``core.hidden_forward`` and
  the output activation) over all rows at once (xpnet has no compiled prediction);
- ``sklearn``: ``MLPClassifier.predict_proba`` with the weights copied into ``coefs_`` /
  ``intercepts_`` (float32: scikit-learn keeps float32 input and weights in float32);
- ``torch-no-grad``: ``softmax(sigmoid(X @ W1 + b1) @ W2 + b2)`` by hand under
  ``torch.no_grad()``;
- ``onnxruntime``: OPTIONAL COLUMN, the hook for issue 18 section 2: runs only when
  ``xpnet.export_onnx`` exists (the model is exported once and run with onnxruntime);
  skipped, and said so in the results, otherwise;
- ``products``: the bare floor ``X @ W1`` then ``A1 @ W2`` (NumPy, preallocated outputs,
  no bias, no activation).

Figures: the median time over the repeats, rows/s from it, and ratios *paired within a
repeat* (median and min-max over the repeats) of xpnet-numpy to scikit-learn and to the
products. Memory: the peak resident size (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` before each run) minus the resident size just before the run
and minus the result's bytes: the memory above the input and the output, every library
measured alike; it misses temporaries that reuse memory already resident (the heap
NumPy's blocks recycle), so for the NumPy-based columns one more untimed call is traced
with tracemalloc (NumPy's own allocations, exact).

The thread settings (``--threads``, default 2) are put into ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` before NumPy, PyTorch or JAX load, and
recorded with the load average at the start and the end; run it with
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` where those are set. Results: JSON
(``--out``, default ``benchmarks/predict.json``) and a table on stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _early_threads(argv: list[str]) -> int:
    """``--threads`` read before any numerical library loads (their pools size at load)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 2


THREADS = _early_threads(sys.argv[1:])
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(THREADS)

import numpy as np  # noqa: E402
from run import environment, peak_rss_bytes, reset_peak_rss, rss_bytes  # noqa: E402

import xpnet  # noqa: E402
from xpnet._files import atomic_write  # noqa: E402

SIZES = (784, 256, 10)


def weights(seed: int = 0) -> list[np.ndarray]:
    """``[W1, b1, W2, b2]`` in float32: xpnet's initial weights, biases drawn small."""
    net = xpnet.MLP(list(SIZES), activation="sigmoid", output="softmax", dtype="float32",
                    seed=seed)
    rng = np.random.default_rng(seed + 1)
    flat = []
    for W, b in net.params:
        flat += [np.asarray(W), (rng.normal(size=b.shape) * 0.1).astype(np.float32)]
    return flat


def make_impls(params: list[np.ndarray], names: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``{name: (prepare(X) -> input, run(input) -> result as something syncable)}``."""
    impls: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    pairs = [(params[0], params[1]), (params[2], params[3])]

    def xpnet_net(backend: str) -> Any:
        net = xpnet.MLP(list(SIZES), activation="sigmoid", output="softmax", backend=backend,
                        dtype="float32")
        net.set_params(pairs)
        return net

    if "xpnet-numpy" in names:
        net_np = xpnet_net("numpy")
        impls["xpnet-numpy"] = (lambda X: X, net_np.predict_proba)
    if names & {"xpnet-torch", "torch-no-grad"}:
        import torch

        if "xpnet-torch" in names:
            net_t = xpnet_net("torch")
            impls["xpnet-torch"] = (torch.from_numpy, net_t.predict_proba)
        if "torch-no-grad" in names:
            W1, b1, W2, b2 = (torch.from_numpy(p) for p in params)

            def torch_by_hand(X: Any) -> Any:
                with torch.no_grad():
                    return torch.softmax(torch.sigmoid(X @ W1 + b1) @ W2 + b2, dim=1)

            impls["torch-no-grad"] = (torch.from_numpy, torch_by_hand)
    if names & {"xpnet-jax", "xpnet-jax-jit"}:
        import jax
        import jax.numpy as jnp

        from xpnet import core

        net_j = xpnet_net("jax")

        def to_jax(X: np.ndarray) -> Any:
            return jax.device_put(X)

        def eager(X: Any) -> Any:
            return net_j.predict_proba(X).block_until_ready()

        hidden, output = net_j.hidden_activations, net_j.output_loss

        @jax.jit
        def forward(P: list[Any], X: Any) -> Any:
            _, Z = core.hidden_forward(hidden, P, X, jnp)
            return output.activation(jnp, Z)

        P = list(net_j.flat_params)
        if "xpnet-jax" in names:
            impls["xpnet-jax"] = (to_jax, eager)
        if "xpnet-jax-jit" in names:
            impls["xpnet-jax-jit"] = (to_jax, lambda X: forward(P, X).block_until_ready())
    if "sklearn" in names:
        impls["sklearn"] = (lambda X: X, sklearn_model(params).predict_proba)
    if "onnxruntime" in names:  # ---- hook for issue 18 section 2 (ONNX export) ----
        if not hasattr(xpnet, "export_onnx"):
            skipped["onnxruntime"] = "xpnet.export_onnx is absent (ONNX export not built yet)"
        else:
            impls["onnxruntime"] = (lambda X: X, onnx_session(xpnet_net("numpy")))
    if "products" in names:
        W1, W2 = params[0], params[2]
        buffers: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def products(X: np.ndarray) -> np.ndarray:
            m = X.shape[0]
            if m not in buffers:
                buffers.clear()
                buffers[m] = (np.empty((m, SIZES[1]), np.float32),
                              np.empty((m, SIZES[2]), np.float32))
            A1, out = buffers[m]
            np.matmul(X, W1, out=A1)
            np.matmul(A1, W2, out=out)
            return out

        impls["products"] = (lambda X: X, products)
    return impls, skipped


def sklearn_model(params: list[np.ndarray]) -> Any:
    """A fitted ``MLPClassifier`` (10 classes, logistic hidden layer) with our weights."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, SIZES[0])).astype(np.float32)
    y = np.arange(40) % SIZES[2]
    model = MLPClassifier(hidden_layer_sizes=(SIZES[1],), activation="logistic", max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    model.coefs_ = [params[0].copy(), params[2].copy()]
    model.intercepts_ = [params[1].copy(), params[3].copy()]
    return model


def onnx_session(net: Any) -> Any:  # pragma: no cover - needs section 2's export_onnx
    """``run(X) -> probabilities`` of ``net`` exported by ``xpnet.export_onnx`` and run by
    onnxruntime (the column the ONNX work fills in)."""
    import tempfile

    import onnxruntime as ort

    path = Path(tempfile.mkdtemp()) / "medium.onnx"
    xpnet.export_onnx(net, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    probabilities = next((o for o in outputs if "prob" in o), outputs[-1])
    return lambda X: session.run([probabilities], {name: X})[0]


def nbytes(result: Any) -> int:
    return int(np.prod(result.shape)) * 4


def time_one(run: Any, data: Any) -> tuple[float, int | None]:
    """Seconds of one call and the resident memory it needed above input and output."""
    before = rss_bytes()
    reset_peak_rss()
    start = time.perf_counter()
    result = run(data)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    above = None if peak is None or before is None else max(0, peak - before - nbytes(result))
    del result
    return seconds, above


def measure(rows: int, impls: dict[str, Any], repeats: int, settle: float) -> dict[str, Any]:
    X = np.random.default_rng(rows).standard_normal((rows, SIZES[0]), dtype=np.float32)
    data = {name: prepare(X) for name, (prepare, _) in impls.items()}
    for name, (_, run) in impls.items():  # warm-up (and JAX's compilation for this shape)
        run(data[name])
    times: dict[str, list[float]] = {name: [] for name in impls}
    memory: dict[str, list[int]] = {name: [] for name in impls}
    order = list(impls)
    for repeat in range(repeats):
        turn = order[repeat % len(order):] + order[:repeat % len(order)]
        for name in turn:
            time.sleep(settle)  # let the other libraries' spinning worker threads sleep
            seconds, above = time_one(impls[name][1], data[name])
            times[name].append(seconds)
            if above is not None:
                memory[name].append(above)
    traced = {name: traced_peak(impls[name][1], data[name]) for name in impls
              if name in NUMPY_IMPLS}
    del data, X
    return {"rows": rows, "times": times, "memory": memory, "tracemalloc": traced}


NUMPY_IMPLS = ("xpnet-numpy", "sklearn", "products")


def traced_peak(run: Any, data: Any) -> int:
    """Bytes NumPy allocated at the peak of one (untimed) call above its result's, by
    tracemalloc (exact for NumPy, blind to other libraries' allocators)."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = run(data)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return max(0, peak - nbytes(result))


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    ratios = [x / y for x, y in zip(a, b)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    rows, times, memory = result["rows"], result["times"], result["memory"]
    table = {}
    for name, values in times.items():
        median = statistics.median(values)
        table[name] = {"median_s": median, "rows_per_s": rows / median,
                       "peak_above_io_mib": (max(memory[name]) / 2**20 if memory[name]
                                             else None),
                       "tracemalloc_above_io_mib": (result["tracemalloc"][name] / 2**20
                                                    if name in result["tracemalloc"]
                                                    else None)}
    ratios = {}
    for other in ("sklearn", "products", "torch-no-grad"):
        if "xpnet-numpy" in times and other in times:
            ratios[f"xpnet-numpy / {other}"] = paired(times["xpnet-numpy"], times[other])
    return {"rows": rows, "table": table, "ratios": ratios, "raw": result}


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\n{summary['rows']:,} rows")
    print("| implementation | median s | rows/s | RSS peak above in+out MiB | "
          "tracemalloc peak above in+out MiB |")
    print("|---|---|---|---|---|")
    for name, row in summary["table"].items():
        mib = "-" if row["peak_above_io_mib"] is None else f"{row['peak_above_io_mib']:.1f}"
        traced = row["tracemalloc_above_io_mib"]
        traced_text = "-" if traced is None else f"{traced:.1f}"
        print(f"| {name} | {row['median_s']:.4f} | {row['rows_per_s']:.3g} | {mib} | "
              f"{traced_text} |")
    for name, r in summary["ratios"].items():
        print(f"  {name}: {r['median']:.3f} [{r['min']:.3f}-{r['max']:.3f}] (paired)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--settle", type=float, default=0.25)
    parser.add_argument("--impls", default="xpnet-numpy,xpnet-torch,xpnet-jax,xpnet-jax-jit,"
                        "sklearn,torch-no-grad,onnxruntime,products")
    parser.add_argument("--out", type=Path, default=HERE / "predict.json")
    args = parser.parse_args(argv)
    meta = environment()
    meta["threads"] = args.threads
    meta["xla_flags"] = os.environ.get("XLA_FLAGS")
    meta["memory_method"] = ("peak RSS (VmHWM after clear_refs) minus RSS before the call "
                             "minus the result's bytes")
    impls, skipped = make_impls(weights(), set(args.impls.split(",")))
    summaries = []
    for rows in (int(float(r)) for r in args.rows.split(",")):
        summary = summarise(measure(rows, impls, args.repeats, args.settle))
        print_summary(summary)
        summaries.append(summary)
    meta["loadavg_end"] = os.getloadavg()
    print(f"\nload average start {meta['loadavg_start']}, end {meta['loadavg_end']}; threads "
          f"{args.threads}; skipped: {skipped or 'none'}")
    import json

    report = {"meta": meta, "skipped": skipped, "results": summaries}
    with atomic_write(args.out, "w") as out:  # a context manager: the file on exit
        out.write(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

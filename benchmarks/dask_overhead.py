"""Per-step overhead of xpnet.distributed's data-parallel step on a LocalCluster (issue 10).

For each row count (784 float32 features, generated on the workers: nothing of that size
exists on the driver) and each batch mode (full batch, batches of 1024 drawn from one
permutation as fit draws them), runs ``--steps`` steps of
:class:`xpnet.distributed.DaskSource` (what ``xpnet.distributed.fit`` calls once per
step) and reports the medians of the step's wall time on the driver, of the busiest worker
process's compute (its chunk tasks' math, timed inside the tasks), and of their
difference: the overhead of distribution (scheduling, shipping weights and gradients,
summing on the driver). Writes Markdown to ``benchmarks/DASK_OVERHEAD.md`` (``--out``) and
prints it.

    python benchmarks/dask_overhead.py                       # 1e4, 1e5, 1e6 rows
    python benchmarks/dask_overhead.py --rows 10000 100000 --steps 15
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

TARGET_MS = 30.0


def _threads(dask_worker=None):  # runs on each worker (and on the driver)
    from threadpoolctl import threadpool_info

    return [(i.get("internal_api"), i.get("num_threads")) for i in threadpool_info()]


def measure(client, rows, n_in, sizes, chunk_rows, batch, steps, seed=0):
    import dask.array as da

    import xpnet
    from xpnet.distributed import DaskSource, network_options

    state = da.random.RandomState(seed)
    X = state.standard_normal((rows, n_in), chunks=(chunk_rows, n_in)).astype(np.float32)
    y = state.randint(0, sizes[-1], size=rows, chunks=chunk_rows)
    net = xpnet.MLP([n_in, *sizes], activation="relu", output="softmax", dtype="float32")
    source = DaskSource(client, X, y, **network_options(net))
    t = time.perf_counter()
    m = source.prepare(net.shuffle_rng, False, 0.1)  # generate, check, persist
    prepare_s = time.perf_counter() - t
    order = None if batch is None else np.asarray(net.shuffle_rng.permutation(m))
    size = m if batch is None else batch
    first = 0
    for step in range(steps + 2):  # two warm-up steps, dropped below
        if first + size > m:
            first = 0
        source.loss_and_grads(net.flat_params, order, first, first + size, step)
        first += size
    wall = np.asarray(source.step_seconds[2:])
    compute = np.asarray(source.compute_seconds[2:])
    client.cancel(source.data.parts)
    return {
        "rows": rows, "batch": "full" if batch is None else batch,
        "chunks": len(source.data.parts), "steps": len(wall),
        "prepare_s": prepare_s,
        "step_ms": 1000 * float(np.median(wall)),
        "compute_ms": 1000 * float(np.median(compute)),
        "overhead_ms": 1000 * float(np.median(wall - compute)),
        "overhead_min_ms": 1000 * float(np.min(wall - compute)),
        "overhead_max_ms": 1000 * float(np.max(wall - compute)),
    }


def projection(results, workers_now):
    """Step time on W workers for 1e8 rows, from the measured full-batch compute per row
    (linear in rows per worker) and the measured overhead (taken as it is at the largest
    size measured; it grows with the number of chunks, not rows)."""
    full = [r for r in results if r["batch"] == "full"]
    if not full:
        return []
    largest = max(full, key=lambda r: r["rows"])
    per_row_ms = largest["compute_ms"] * workers_now / largest["rows"]
    out = []
    for workers in (8, 64):
        compute = per_row_ms * 1e8 / workers
        out.append({"workers": workers, "rows": int(1e8), "compute_ms": compute,
                    "overhead_ms": largest["overhead_ms"],
                    "step_ms": compute + largest["overhead_ms"]})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--layers", default="64,10", help="hidden and output sizes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunks-per-worker", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                                      "DASK_OVERHEAD.md"))
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    import xpnet

    sizes = [int(s) for s in args.layers.split(",")]
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    results = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        worker_threads = client.run(_threads)
        for rows in args.rows:
            chunk_rows = -(-rows // (args.workers * args.chunks_per_worker))
            for batch in (None, 1024):
                # a seed per case: the same seed would give the same task keys as the
                # case before, whose data were just cancelled (asynchronously), and the
                # new case's tasks were then cancelled with them
                result = measure(client, rows, args.features, sizes, chunk_rows, batch,
                                 args.steps, seed=len(results))
                results.append(result)
                print(json.dumps(result), flush=True)
    load_end = os.getloadavg()
    lines = [
        "# xpnet.distributed: per-step overhead on a LocalCluster",
        "",
        f"Generated by `benchmarks/dask_overhead.py {' '.join(sys.argv[1:])}`".rstrip() + ".",
        "",
        "## Machine and settings",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}; "
        f"xpnet {xpnet.__version__}, numpy {np.__version__}, "
        f"dask {__import__('dask').__version__}, distributed "
        f"{__import__('distributed').__version__}",
        f"- CPU: {os.cpu_count()} logical CPUs; load average at start {load_start}, at end "
        f"{load_end} (other processes share this machine: timings are noisy)",
        f"- Cluster: LocalCluster of {args.workers} worker processes, 1 thread each, "
        f"{args.chunks_per_worker} chunks per worker",
        f"- Worker thread pools (threadpoolctl): {json.dumps(worker_threads)}",
        f"- Environment: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}",
        f"- Network: {args.features}-{'-'.join(map(str, sizes))} (relu, softmax), float32; "
        f"data generated on the workers (standard normal), {args.steps} timed steps after 2 "
        "warm-up steps",
        "",
        "## Results",
        "",
        f"Overhead = step wall time on the driver − the busiest worker's compute (its chunk "
        f"tasks' math, timed in the tasks). Target: median overhead ≤ {TARGET_MS:g} ms.",
        "",
        "| rows | batch | chunks | step ms (median) | compute ms | overhead ms (median [min–max]) "
        "| target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "met" if r["overhead_ms"] <= TARGET_MS else "**missed**"
        lines.append(
            f"| {r['rows']:,} | {r['batch']} | {r['chunks']} | {r['step_ms']:.1f} | "
            f"{r['compute_ms']:.1f} | {r['overhead_ms']:.1f} [{r['overhead_min_ms']:.1f}–"
            f"{r['overhead_max_ms']:.1f}] | {met} |")
    proj = projection(results, args.workers)
    if proj:
        lines += [
            "",
            "## Projection: full batch, 1e8 rows",
            "",
            "Linear in rows per worker from the largest full-batch case measured, plus its "
            "overhead (which grows with the number of chunks, not rows; more workers add "
            "tasks per step, so read these as lower bounds):",
            "",
            "| workers | compute ms | overhead ms | step ms |",
            "|---|---|---|---|",
        ]
        for p in proj:
            lines.append(f"| {p['workers']} | {p['compute_ms']:.0f} | {p['overhead_ms']:.1f} | "
                         f"{p['step_ms']:.0f} |")
    text = "\n".join(lines) + "\n"
    from xpnet._files import atomic_write

    with atomic_write(args.out, "w") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()

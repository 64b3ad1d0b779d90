"""Out-of-core benchmark (issue 10): a float32 data set larger than the cluster's memory,
in a zarr store, trained full batch on a LocalCluster of 2 workers of 1 GiB each.

    python benchmarks/distributed_out_of_core.py                 # ~3.1 GiB, 3 epochs
    python benchmarks/distributed_out_of_core.py --rows 20000    # a quick dry run

Steps: write the store block by block (never whole in memory) beside ``--dir``; train
``xpnet.distributed.fit(persist=False)``, so every step's tasks read their chunk from the
store; report rows/s and every process's peak RSS (``VmHWM`` of the driver, which also
runs the scheduler, of each nanny and of each worker); then the loss check: the first
``--check-rows`` rows of the same store trained on the cluster and in this process
(NumPy, ``MLP.fit``) from the same seed must agree to 2e-5 (float32). The store is
deleted at the end (``--keep`` keeps it). Results: JSON on stdout and in ``--json``.
Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

GIB = 1 << 30


def peak_rss() -> dict[str, int]:
    """This process's peak and current resident memory (Linux /proc), in bytes."""
    out = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def thread_settings() -> dict[str, object]:
    from threadpoolctl import threadpool_info

    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS")}
    pools = [(p.get("internal_api"), p.get("num_threads")) for p in threadpool_info()]
    return {"env": env, "pools": pools}


def write_store(path: str, rows: int, features: int, chunk_rows: int, seed: int) -> float:
    """X ~ N(0, 1) float32 and y = [X @ w > 0], written one chunk at a time."""
    import zarr

    w = np.random.default_rng(seed).normal(size=features).astype(np.float32)
    group = zarr.open_group(path, mode="w-")
    X = group.create_array("X", shape=(rows, features), chunks=(chunk_rows, features),
                           dtype="float32")
    y = group.create_array("y", shape=(rows,), chunks=(chunk_rows,), dtype="float64")
    start_time = time.perf_counter()
    for index, start in enumerate(range(0, rows, chunk_rows)):
        stop = min(start + chunk_rows, rows)
        block = np.random.default_rng([seed, index]).standard_normal(
            (stop - start, features), dtype=np.float32)
        X[start:stop] = block
        y[start:stop] = (block @ w > 0).astype(np.float64)
    group.attrs["xpnet"] = {"format": 1, "rows": rows,
                            "feature_names": [f"x{i + 1}" for i in range(features)],
                            "target_name": "y", "source": "distributed_out_of_core.py"}
    return time.perf_counter() - start_time


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_050_000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--chunk-rows", type=int, default=32_768)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--check-rows", type=int, default=131_072)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="folder for the store (default: the temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the store")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    import xpnet
    from xpnet import distributed as xd
    from xpnet.distributed.storage import open_data

    data_bytes = args.rows * args.features * 4
    free = shutil.disk_usage(args.dir).free
    if free < data_bytes * 1.2 + GIB:
        sys.exit(f"not enough disk space in {args.dir}: {free / GIB:.1f} GiB free, "
                 f"{data_bytes / GIB:.2f} GiB needed")
    store = os.path.join(args.dir, f"xpnet-out-of-core-{os.getpid()}.zarr")
    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg()},
        "data": {"rows": args.rows, "features": args.features, "dtype": "float32",
                 "X_GiB": round(data_bytes / GIB, 3), "chunk_rows": args.chunk_rows},
        "network": f"{args.features}-{args.hidden}-1 relu/sigmoid, float32, full batch, "
                   f"sgd lr {args.lr}, {args.epochs} epochs",
    }
    try:
        seconds = write_store(store, args.rows, args.features, args.chunk_rows, seed=0)
        results["store"] = {"write_seconds": round(seconds, 1),
                            "GiB_on_disk": round(folder_bytes(store) / GIB, 3)}
        print(f"wrote {store}: {results['store']}", file=sys.stderr)

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               memory_limit=args.memory_limit, dashboard_address=None)
        client = Client(cluster)
        try:
            results["cluster"] = {
                "workers": 2, "threads_per_worker": 1, "memory_limit": args.memory_limit,
                "worker_threads": client.run(thread_settings),
                "driver_threads": thread_settings()}
            X, y = open_data(store)
            net = xpnet.MLP([args.features, args.hidden, 1], activation="relu",
                            output="sigmoid", dtype="float32", seed=0)
            start = time.perf_counter()
            history = xd.fit(net, X, y, client=client, epochs=args.epochs, lr=args.lr,
                             persist=False)
            elapsed = time.perf_counter() - start
            results["training"] = {
                "seconds": round(elapsed, 1),
                "rows_per_second": round(args.rows * args.epochs / elapsed),
                "loss": [float(v) for v in history.loss],
            }
            print(f"trained: {results['training']}", file=sys.stderr)
            workers = client.run(peak_rss)
            nannies = client.run(peak_rss, nanny=True)
            results["peak_rss_GiB"] = {
                "driver+scheduler": round(peak_rss()["VmHWM"] / GIB, 3),
                **{f"worker {i}": round(v["VmHWM"] / GIB, 3)
                   for i, v in enumerate(workers.values())},
                **{f"nanny {i}": round(v["VmHWM"] / GIB, 3)
                   for i, v in enumerate(nannies.values())},
            }
            print(f"peak RSS: {results['peak_rss_GiB']}", file=sys.stderr)

            # The loss check: the same computation on a subset that fits in memory.
            k = min(args.check_rows, args.rows)
            Xs, ys = open_data(store)
            Xs, ys = Xs[:k], ys[:k]
            remote = xpnet.MLP([args.features, args.hidden, 1], activation="relu",
                               output="sigmoid", dtype="float32", seed=0)
            local = xpnet.MLP([args.features, args.hidden, 1], activation="relu",
                              output="sigmoid", dtype="float32", seed=0)
            h_remote = xd.fit(remote, Xs, ys, client=client, epochs=args.epochs,
                              lr=args.lr, persist=False)
            X_np, y_np = client.compute([Xs, ys], sync=True)
            h_local = local.fit(X_np, y_np, epochs=args.epochs, lr=args.lr)
            worst = max(float(np.max(np.abs(np.asarray(p) - np.asarray(q))))
                        for p, q in zip(local._params, remote._params))
            loss_gap = float(np.max(np.abs(np.asarray(h_remote.loss)
                                           - np.asarray(h_local.loss))))
            results["subset_check"] = {
                "rows": k, "loss_cluster": [float(v) for v in h_remote.loss],
                "loss_single_process": [float(v) for v in h_local.loss],
                "max_abs_loss_difference": loss_gap,
                "max_abs_parameter_difference": worst,
                "equal_to_2e-5": bool(loss_gap <= 2e-5 and worst <= 2e-5),
            }
            print(f"subset check: {results['subset_check']}", file=sys.stderr)
        finally:
            client.close()
            cluster.close()
    finally:
        if not args.keep:
            shutil.rmtree(store, ignore_errors=True)
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

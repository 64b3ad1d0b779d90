"""The first compiled fit of a fresh process, with an empty and with a warm compilation
cache (issue 19: "compiled once per machine, not once per process").

Each case runs in new interpreters, in pairs: one with an empty ``XPNET_CACHE_DIR`` (a
cold machine: everything compiles), then one with the folder the first left (a user's
next run). Each child times its first ``fit(compile=True)`` alone (imports, data and the
network built before the clock starts) and reports JAX's own cache hit and miss counts.
The ratio is the median over ``--repeats`` pairs of cold/warm; each child also times the
same fit a second time (all compiled), and the ratio of the first fit's time beyond it
(compilation or loading, and first-call costs) is given too: on a network whose
training takes seconds, that is the part a cache can remove.

    python benchmarks/compile_cache.py                 # tiny, small, medium, digits
    python benchmarks/compile_cache.py --out benchmarks/compile_cache.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import collections, json, sys, time
import jax.monitoring
events = collections.Counter()
jax.monitoring.register_event_listener(lambda name, **kw: events.update([name]))
sys.path.insert(0, sys.argv[2])
import numpy as np, xpnet
case = sys.argv[1]
if case == "digits":
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    model = xpnet.MLPClassifier(hidden_layer_sizes=(64,), max_iter=20, backend="jax",
                                compile=True, random_state=0)
    fit = lambda: model.fit(X / 16.0, y)
else:
    from cases import CASES
    c = CASES[case]
    X, y = c.make_data()
    net = xpnet.MLP(list(c.layer_sizes), activation=c.activation, output=c.output,
                    backend="jax", dtype=c.dtype, seed=0)
    fit = lambda: net.fit(X, y, epochs=c.quick_epochs, lr=c.lr, batch_size=c.batch_size,
                          compile=True)
start = time.perf_counter()
fit()
seconds = time.perf_counter() - start
start = time.perf_counter()
fit()  # the same fit again in this process: nothing left to compile or load
again = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "again": again,
                  "hits": events["/jax/compilation_cache/cache_hits"],
                  "misses": events["/jax/compilation_cache/cache_misses"]}))
"""

CASE_NAMES = ("tiny", "small", "medium", "digits")


def run_child(case: str, folder: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "JAX_COMPILATION_CACHE_DIR")}
    env["XPNET_CACHE_DIR"] = folder
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", CHILD, case, here], env=env,
                          capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(proc.stdout.splitlines()[-1])


def measure(case: str, repeats: int) -> dict[str, object]:
    pairs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="xpnet-cache-bench-") as folder:
            cold = run_child(case, folder)
            warm = run_child(case, folder)
        pairs.append((cold, warm))
    ratios = [c["seconds"] / w["seconds"] for c, w in pairs]
    # the first fit's cost beyond a fit with everything compiled (the training itself)
    fixed = [(c["seconds"] - c["again"]) / max(w["seconds"] - w["again"], 1e-9)
             for c, w in pairs]
    return {
        "case": case,
        "cold_seconds_median": statistics.median(c["seconds"] for c, _ in pairs),
        "warm_seconds_median": statistics.median(w["seconds"] for _, w in pairs),
        "ratio_median": statistics.median(ratios),
        "again_seconds_median": statistics.median(c["again"] for c, _ in pairs),
        "first_fit_extra_ratio_median": statistics.median(fixed),
        "cold_misses": [c["misses"] for c, _ in pairs],
        "warm_hits": [w["hits"] for _, w in pairs],
        "warm_misses": [w["misses"] for _, w in pairs],
        "load_average_after": list(os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASE_NAMES), choices=CASE_NAMES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
              "cores": len(os.sched_getaffinity(0)), "load_average": list(os.getloadavg()),
              "threads": "defaults (no thread variables set)", "repeats": args.repeats,
              "results": []}
    for case in args.cases:
        result = measure(case, args.repeats)
        report["results"].append(result)
        print(f"{case:7s} cold {result['cold_seconds_median']:.3f} s  warm "
              f"{result['warm_seconds_median']:.3f} s  cold/warm {result['ratio_median']:.1f}x"
              f"  (compiled fit {result['again_seconds_median']:.3f} s; beyond it "
              f"cold/warm {result['first_fit_extra_ratio_median']:.1f}x)"
              f"  (warm misses {result['warm_misses']}, load "
              f"{result['load_average_after'][0]:.1f})", flush=True)
    if args.out:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "src"))
        from xpnet._files import atomic_write

        with atomic_write(args.out, "w") as out:
            out.write(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

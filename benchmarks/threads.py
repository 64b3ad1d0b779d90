"""Automatic thread count against 1 thread and every core, idle and under load (issue 19).

    python benchmarks/threads.py                       # idle machine
    python benchmarks/threads.py --background-load 2   # one CPU-bound process per core

For each case (``tiny``, ``small``, ``medium`` of ``cases.py``, and the README's digits
example: 64-64-10 sigmoid/softmax, float64, full batch of the 1347 training rows, lr 3)
and each backend (NumPy, torch CPU), one worker process times whole ``fit`` calls with
``threads=None`` (xpnet's automatic count), ``threads=1`` and ``threads=<cores>`` (the
cores this process may use), interleaved round-robin with the starting setting rotated
every repeat, a fresh network (same seed) per fit, 0.1 s between fits. The figure of
merit is *paired*: in each repeat, auto's time over the better of the other two; the
median and range over the repeats are reported, with the count auto chose
(``History.threads``) and the target: at most 1.3x.

JAX is not in the table: XLA sizes its CPU pool once, when JAX starts, so ``threads=``
cannot change it inside a process (``xpnet train --threads 1`` sets ``XLA_FLAGS`` before
JAX starts; see ``xpnet.threads``).

``--background-load N`` starts N CPU-bound processes (``load.py``) and waits until the
load average shows them before any timing. Results: ``--out`` (default
``benchmarks/threads.json``) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if (HERE.parent / "src" / "xpnet").is_dir():  # run from a checkout without installing
    sys.path.insert(1, str(HERE.parent / "src"))

TARGET = 1.3
#: case -> (layer sizes, activation, output, rows, batch size, dtype, lr, epochs)
CASES: dict[str, tuple[tuple[int, ...], str, str, int, int | None, str, float, int]] = {
    "tiny": ((2, 4, 1), "sigmoid", "sigmoid", 400, None, "float64", 0.5, 3000),
    "small": ((64, 32, 10), "relu", "softmax", 1797, 32, "float64", 0.05, 20),
    "medium": ((784, 256, 10), "relu", "softmax", 16384, 128, "float32", 0.05, 2),
    "digits": ((64, 64, 10), "sigmoid", "softmax", 1347, None, "float64", 3.0, 300),
}


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def _data(case: str) -> tuple[Any, Any]:
    import numpy as np

    sizes, _, _, rows, _, dtype, _, _ = CASES[case]
    if case == "digits":  # the README example's training rows, standardised as the CLI does
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X[:rows]
        X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        return X.astype(dtype), y[:rows]
    from cases import CASES as BENCH_CASES

    return BENCH_CASES[case].make_data()


def worker(case: str, backend: str, repeats: int) -> dict[str, Any]:
    """Time the three settings on one case and backend, in this process."""
    import xpnet

    sizes, activation, output, _, batch_size, dtype, lr, epochs = CASES[case]
    X, y = _data(case)
    settings: list[int | None] = [None, 1, _cores()]
    times: dict[str, list[float]] = {str(s): [] for s in settings}
    chosen: list[int] = []

    def fit(threads: int | None) -> float:
        net = xpnet.MLP(list(sizes), activation=activation, output=output, backend=backend,
                        dtype=dtype, seed=0)
        start = time.perf_counter()
        history = net.fit(X, y, epochs=epochs, lr=lr, batch_size=batch_size, threads=threads)
        seconds = time.perf_counter() - start
        if threads is None:
            chosen.append(history.threads)
        return seconds

    for setting in settings:  # warm-up: imports, first-call costs
        fit(setting)
    chosen.clear()
    for r in range(repeats):
        for i in range(len(settings)):
            setting = settings[(r + i) % len(settings)]
            time.sleep(0.1)  # let the previous fit's pool workers stop spinning
            times[str(setting)].append(fit(setting))
    return {"times": times, "chosen": chosen, "cores": _cores()}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    times, cores = result["times"], result["cores"]
    auto, one, every = times["None"], times["1"], times[str(cores)]
    ratios = [a / min(o, e) for a, o, e in zip(auto, one, every, strict=True)]
    return {
        "auto_s": statistics.median(auto), "one_s": statistics.median(one),
        "all_s": statistics.median(every), "chosen": sorted(set(result["chosen"])),
        "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "met": statistics.median(ratios) <= TARGET,
    }


def run_worker(case: str, backend: str, repeats: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", case, backend,
                          "--repeats", str(repeats)], capture_output=True, text=True,
                         check=False)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]], load: int) -> str:
    lines = [f"| case | backend | load | auto chose | auto s | 1 thread s | {_cores()} threads s "
             "| auto / best (paired median [range]) | ≤ 1.3× |", "|" + "---|" * 9]
    for row in rows:
        s = row.get("summary")
        if s is None:
            lines.append(f"| {row['case']} | {row['backend']} | {load} | - | - | - | - | "
                         f"{row['result'].get('error', '?')} | - |")
            continue
        chose = "/".join(str(c) for c in s["chosen"])
        lines.append(
            f"| {row['case']} | {row['backend']} | {load} | {chose} | {s['auto_s']:.4g} | "
            f"{s['one_s']:.4g} | {s['all_s']:.4g} | {s['ratio']:.2f} "
            f"[{s['ratio_min']:.2f}-{s['ratio_max']:.2f}] | {'met' if s['met'] else 'MISSED'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--backends", default="numpy,torch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="N CPU-bound processes running during the timing (default: 0)")
    parser.add_argument("--out", type=Path, default=HERE / "threads.json")
    args = parser.parse_args(argv)
    if args.worker:
        case, backend = args.worker
        print(json.dumps(worker(case, backend, args.repeats)))
        return 0
    from load import background_load

    from xpnet._files import atomic_write

    rows = []
    start_load = os.getloadavg()
    with background_load(args.background_load) as load:
        for case in args.cases.split(","):
            for backend in args.backends.split(","):
                result = run_worker(case, backend, args.repeats)
                row = {"case": case, "backend": backend, "result": result,
                       "summary": None if "error" in result else summarise(result)}
                rows.append(row)
                print(table([row], args.background_load).splitlines()[-1], flush=True)
    meta = {"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cores": _cores(), "loadavg_start": start_load, "loadavg_end": os.getloadavg(),
            "background_load": load, "repeats": args.repeats,
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")},
            "command": " ".join([Path(sys.executable).name, *sys.argv])}
    print()
    print(table(rows, args.background_load))
    print(f"\nload average start {meta['loadavg_start']}, end {meta['loadavg_end']}; "
          f"background load {load}")
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    report = {**previous, f"load{args.background_load}": {"meta": meta, "rows": rows}}
    with atomic_write(args.out, "w") as out:  # a context manager: the file on exit
        out.write(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

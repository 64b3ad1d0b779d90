"""Reading numeric CSV files: xpnet's reader (pyarrow, validated) against pandas.read_csv.

Each case writes one file of random float64 numbers (``%.17g``: every bit kept; the
last column is the target), then reads it in fresh interpreters, xpnet and pandas in
turn (paired, order alternating), ``--repeats`` times. Each child imports its library
first and then reports the seconds of the read alone (pandas: ``read_csv`` and
``to_numpy(float64)``, what a user needs for training) and the growth of its peak
resident memory during the read (``VmHWM``). The ratio is the median of the paired
ratios xpnet/pandas; memory is also given against the parsed float64 arrays.

    python benchmarks/csv_read.py                 # 10^5 and 10^6 x 20, 10^5 x 784
    python benchmarks/csv_read.py --quick         # 10^5 x 20 only
    python benchmarks/csv_read.py --out benchmarks/csv_read.json

Thread settings and the load are recorded with the results: xpnet's reader parses one
piece of the file per thread, a thread per core the process may run on (at most 8);
pandas' C parser is single threaded whatever the cores. ``--one-core`` runs every child
pinned to one core (``sched_setaffinity``): both readers then parse in one thread.
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
from pathlib import Path

CHILD = r"""
import os, sys, time
if sys.argv[3] == '1':
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
which, path = sys.argv[1], sys.argv[2]
import numpy as np
if which == 'pandas':
    import pandas as pd
else:
    import pyarrow.csv
    from xpnet.data import load_file
before = peak()
start = time.perf_counter()
if which == 'pandas':
    frame = pd.read_csv(path)
    X = frame.iloc[:, :-1].to_numpy(dtype=np.float64)
    y = frame.iloc[:, -1].to_numpy(dtype=np.float64)
else:
    data = load_file(path)
    X, y = data.X, data.y
seconds = time.perf_counter() - start
print(seconds, peak() - before, X.nbytes + y.nbytes, X.shape[0], X.shape[1],
      len(os.sched_getaffinity(0)))
"""


def write_case(path: Path, rows: int, columns: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    with open(path, "w") as out:
        out.write(",".join(f"f{i}" for i in range(columns - 1)) + ",y\n")
        for start in range(0, rows, 50_000):
            block = rng.standard_normal((min(50_000, rows - start), columns))
            np.savetxt(out, block, delimiter=",", fmt="%.17g")


def run_child(which: str, path: Path, one_core: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    proc = subprocess.run([sys.executable, "-c", CHILD, which, str(path), str(int(one_core))],
                          env=env, capture_output=True, text=True, check=True, timeout=1800)
    seconds, grown, nbytes, rows, columns, cores = proc.stdout.split()
    return {"seconds": float(seconds), "peak_mb": int(grown) / 1e6,
            "arrays_mb": int(nbytes) / 1e6, "rows": int(rows), "features": int(columns),
            "cores": int(cores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one-core", action="store_true",
                        help="pin each child to one core")
    args = parser.parse_args()
    cases = [(100_000, 21)] if args.quick else [(100_000, 21), (1_000_000, 21),
                                                (100_000, 785)]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for rows, columns in cases:
            path = Path(folder) / f"{rows}x{columns}.csv"
            write_case(path, rows, columns)
            runs: dict[str, list[dict[str, float]]] = {"xpnet": [], "pandas": []}
            for repeat in range(args.repeats):
                order = ("xpnet", "pandas") if repeat % 2 == 0 else ("pandas", "xpnet")
                for which in order:
                    runs[which].append(run_child(which, path, args.one_core))
            ratios = [a["seconds"] / b["seconds"] for a, b in zip(runs["xpnet"],
                                                                 runs["pandas"])]
            row = {"rows": rows, "features": columns - 1,
                   "cores_allowed": runs["xpnet"][0]["cores"],
                   "load_average_after": os.getloadavg(),
                   "file_mb": path.stat().st_size / 1e6,
                   "arrays_mb": runs["xpnet"][0]["arrays_mb"],
                   "ratio_time_median": statistics.median(ratios)}
            for which, values in runs.items():
                row[f"{which}_seconds"] = statistics.median(v["seconds"] for v in values)
                row[f"{which}_peak_mb"] = statistics.median(v["peak_mb"] for v in values)
            results.append(row)
            print(f"{rows:>9,} x {columns - 1:>3}  file {row['file_mb']:7.1f} MB  arrays "
                  f"{row['arrays_mb']:6.1f} MB | xpnet {row['xpnet_seconds']:6.2f} s "
                  f"{row['xpnet_peak_mb']:7.1f} MB | pandas {row['pandas_seconds']:6.2f} s "
                  f"{row['pandas_peak_mb']:7.1f} MB | time ratio {row['ratio_time_median']:.2f}"
                  f" | xpnet peak / arrays {row['xpnet_peak_mb'] / row['arrays_mb']:.2f}"
                  f" | cores {row['cores_allowed']} load {os.getloadavg()[0]:.1f}",
                  flush=True)
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
        "load_average": os.getloadavg(), "cores": os.cpu_count(),
        "threads": ("xpnet: one piece of the file parsed per thread, one thread per "
                    "allowed core (at most 8), pyarrow use_threads=False in each; pandas: "
                    "C parser (one thread)"),
        "one_core": args.one_core,
        "repeats": args.repeats, "results": results,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "results"}))


if __name__ == "__main__":
    main()

"""Benchmark xpnet side by side with scikit-learn, PyTorch and the hardware floors.

    python benchmarks/run.py            # full run: benchmarks/RESULTS.md, results.json/.png
    python benchmarks/run.py --quick    # < 2 minutes on 2 cores: writes under benchmarks/out/
    nox -s bench -- --quick

Timing protocol (see benchmarks/README.md): every implementation of a case runs in its own
worker process (so thread pools of different libraries never fight over the cores, and
peak memory is its own); it is prepared once (data moved to its device), warmed up, then
timed ``repeats`` times in round-robin
order (the order rotates each repeat), so that each repeat of every implementation runs
under the same machine conditions. The device is synchronised before the clock is read.
Ratios are computed pair by pair inside each repeat and summarised by their median and
range, never across runs. Peak memory is the process's peak resident set size during
the timed fit minus its resident size just before (Linux ``/proc/self/clear_refs``),
plus, on GPUs, the library pool's bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if (HERE.parent / "src" / "xpnet").is_dir():  # run from a checkout without installing
    sys.path.insert(1, str(HERE.parent / "src"))

import numpy as np  # noqa: E402
from cases import CASES, Case  # noqa: E402
from impls import Impl, gpu_available, impl_specs, make_impl  # noqa: E402
from load import background_load  # noqa: E402

from xpnet._files import atomic_write  # noqa: E402

MiB = 1024 * 1024
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "XLA_FLAGS")
#: XLA's CPU pool is sized when JAX starts, so ``--threads 1`` sets this in the
#: environment the workers are spawned with (the second word is the setting usually
#: quoted with it; XLA reads only the first, which runs the products on one thread).
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


# --------------------------------------------------------------------------- memory probes
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int | None:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def machine_busy_seconds() -> float | None:
    """CPU-seconds all processes on this machine have used since boot (/proc/stat)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU-seconds of this process and its finished (joined) children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# --------------------------------------------------------------------------- environment
def environment() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for dist in ("xpnet", "numpy", "array-api-compat", "array-api-strict", "scikit-learn",
                 "torch", "cupy-cuda12x", "cupy-cuda13x", "cupy", "threadpoolctl", "matplotlib"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas: list[dict[str, Any]] = []
    try:
        import threadpoolctl

        np.ones((64, 64)) @ np.ones((64, 64))  # make sure BLAS is loaded
        blas = [
            {k: info.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                      "architecture", "threading_layer", "num_threads")}
            for info in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        blas = [{"note": "threadpoolctl not installed: BLAS unknown"}]
    torch_info = None
    try:
        import torch

        torch_info = {
            "num_threads": torch.get_num_threads(),
            "blas": "mkl" if torch.backends.mkl.is_available() else "other",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        }
    except ImportError:
        pass
    gpu = None
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            props = cupy.cuda.runtime.getDeviceProperties(0)
            gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    except Exception:  # no cupy, or no usable CUDA device
        gpu = None
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpu": gpu or (torch_info or {}).get("cuda"),
        "versions": versions,
        "blas": blas,
        "torch": torch_info,
        "env": {name: os.environ.get(name) for name in BLAS_ENV},
        "loadavg_start": os.getloadavg(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


# --------------------------------------------------------------------------- timing
def time_once(impl: Impl, epochs: int) -> dict[str, Any]:
    gc.collect()
    impl.sync()
    rss_before = rss_bytes()
    has_peak = reset_peak_rss()
    impl.reset_device_peak()
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    loss = impl.run(epochs)
    impl.sync()
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    peak = peak_rss_bytes() if has_peak else None
    extra = None if peak is None or rss_before is None else max(0, peak - rss_before)
    return {
        "seconds_per_epoch": seconds / epochs,
        "seconds": seconds,
        "cpu_per_wall": cpu / seconds,  # ~ threads busy: records what the pools really did
        "rss_extra_bytes": extra,
        "device_peak_bytes": impl.device_peak_bytes(),
        "loss": loss,
    }


def _cpu_seconds() -> float:
    """CPU time of this process, all its threads (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compiled_programs(impl: Impl) -> int | None:
    """Compilations held by xpnet's program cache (compiled JAX only), else None."""
    count = getattr(impl, "compiled_programs", None)
    return None if count is None else count()


def rss_growth(impl: Impl, epochs: int) -> dict[str, Any] | None:
    """Resident size after each epoch of one xpnet fit (callback), to see any growth."""
    net = getattr(impl, "net", None)
    if net is None or impl.platform != "cpu":
        return None
    samples: list[int] = []

    def record(epoch: int, loss: float) -> None:
        samples.append(rss_bytes() or 0)

    net.set_params(impl.initial)  # type: ignore[attr-defined]
    case = impl.case
    net.fit(impl.X, impl.y, epochs=epochs, lr=case.lr,  # type: ignore[attr-defined]
            batch_size=case.batch_size, callback=record)
    second, last = samples[min(1, len(samples) - 1)], samples[-1]
    # The RSS can stay flat while a fit reuses memory the allocator kept from earlier
    # fits, so also count the bytes NumPy allocates (tracemalloc traces its buffers).
    import tracemalloc

    net.set_params(impl.initial)  # type: ignore[attr-defined]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    net.fit(impl.X, impl.y, epochs=2, lr=case.lr,  # type: ignore[attr-defined]
            batch_size=case.batch_size)
    traced_peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return {"epochs": epochs, "rss_after_epoch": samples, "growth_bytes": last - second,
            "traced_peak_bytes": traced_peak}


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Ratio a/b repeat by repeat (same round), summarised."""
    return summarise([x / y for x, y in zip(a, b, strict=True)])


def limit_threads(threads: int | None) -> None:
    """Cap every thread pool of this process (BLAS, OpenMP, PyTorch) at ``threads``."""
    if not threads:
        return
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(threads)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def _worker(conn: Any, case_name: str, impl_name: str, threads: int | None,
            baseline_src: str | None = None) -> None:
    """Child process: build one implementation, then time it on request.

    Each implementation lives in its own process so that its library's thread pool
    (OpenBLAS, OpenMP, MKL) never competes with another library's spinning threads, and
    so that its peak resident size is its own.
    """
    try:
        if impl_name.endswith("-before"):
            # an earlier xpnet (e.g. `git archive` of an older commit's src/): measured
            # side by side with the current one, in its own process
            sys.path.insert(0, str(baseline_src))
        case = CASES[case_name]
        X, labels = case.make_data()
        impl = make_impl(impl_name, case, X, labels)
        limit_threads(threads)  # after the import, so every library's pool is loaded
        xpnet_module = sys.modules.get("xpnet")
        conn.send(("ready", {"name": impl.name, "group": impl.group,
                             "platform": impl.platform, "gemm_key": impl.gemm_key,
                             "xpnet": getattr(xpnet_module, "__file__", None)}))
        while True:
            command, arg = conn.recv()
            if command == "stop":
                break
            if command == "warm":
                start = time.perf_counter()
                impl.run(arg)
                impl.sync()
                conn.send(("ok", {"seconds": time.perf_counter() - start,
                                  "programs": compiled_programs(impl)}))
            elif command == "programs":
                conn.send(("ok", compiled_programs(impl)))
            elif command == "run":
                conn.send(("ok", time_once(impl, arg)))
            elif command == "growth":
                conn.send(("ok", rss_growth(impl, arg)))
    except Exception:  # report any failure to the parent instead of hanging it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class Worker:
    def __init__(self, case: Case, name: str, threads: int | None,
                 baseline_src: str | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker, args=(child, case.name, name, threads, baseline_src), daemon=True
        )
        self.process.start()
        child.close()
        self.info: dict[str, Any] = {}
        self.name = name

    def wait_ready(self) -> None:
        self.info = self.ask(None)
        self.name = self.info["name"]

    def ask(self, command: tuple[str, int] | None) -> Any:
        if command is not None:
            self.conn.send(command)
        status, payload = self.conn.recv()
        if status == "error":
            raise RuntimeError(f"benchmark worker failed:\n{payload}")
        return payload

    def stop(self) -> None:
        try:
            self.conn.send(("stop", 0))
        except OSError:
            pass
        self.process.join(timeout=30)
        self.conn.close()


def run_case(case: Case, args: argparse.Namespace, skipped: list[str]) -> dict[str, Any] | None:
    epochs = args.epochs or (case.quick_epochs if args.quick else case.epochs)
    repeats = args.repeats or (case.quick_repeats if args.quick else case.repeats)
    want = set(args.impls.split(",")) if args.impls else None
    names = []
    specs = impl_specs(case, strict=case.name in args.strict_cases)
    if args.baseline_src and not case.gpu_only:
        specs.insert(1, ("xpnet-numpy-before", None))
    for name, reason in specs:
        if want is not None and not any(name == w or name.startswith(w + "-") for w in want):
            continue
        if reason is not None:
            skipped.append(f"{case.name}/{name}: {reason}")
        else:
            names.append(name)
    if not names:
        return None
    print(f"\n== {case.name}: {case.description}; {case.n_samples} samples, "
          f"batch {case.batch}, {case.dtype}, {epochs} epochs x {repeats} repeats", flush=True)
    baseline = str(args.baseline_src) if args.baseline_src else None
    workers = [Worker(case, name, args.threads, baseline) for name in names]  # in parallel
    try:
        for worker in workers:
            worker.wait_ready()
        warm = max(1, epochs // 5)
        warmups = {worker.name: worker.ask(("warm", warm)) for worker in workers}
        runs: dict[str, list[dict[str, Any]]] = {w.name: [] for w in workers}
        for repeat in range(repeats):
            shift = repeat % len(workers)
            for worker in workers[shift:] + workers[:shift]:
                # let the previous worker's BLAS/OpenMP threads stop spinning (OpenBLAS
                # busy-waits for about 0.1 s after a call) before the next one starts
                time.sleep(args.settle)
                runs[worker.name].append(worker.ask(("run", epochs)))
            print(f"   repeat {repeat + 1}/{repeats} done", flush=True)
        programs_after = {worker.name: worker.ask(("programs", 0)) for worker in workers}
        growth = {}
        for worker in workers:
            if worker.info["platform"] == "cpu" and worker.info["group"] == "xpnet" \
                    and worker.name == "xpnet-numpy":
                measured = worker.ask(("growth", max(epochs, 4 if args.quick else 6)))
                if measured is not None:
                    growth[worker.name] = measured
    finally:
        for worker in workers:
            worker.stop()

    # the inputs' size, without building them again here (1 GiB on `large`)
    input_bytes = case.n_samples * (case.layer_sizes[0] * case.itemsize + 8)
    flops = case.matmul_flops_per_epoch()
    times = {name: [r["seconds_per_epoch"] for r in rs] for name, rs in runs.items()}
    infos = {w.name: w.info for w in workers}
    reference = next((n for n, i in infos.items() if i["group"] == "xpnet"), workers[0].name)
    gemm_by_key = {i["gemm_key"]: n for n, i in infos.items() if i["group"] == "gemm"}
    rows: dict[str, Any] = {}
    for name, info in infos.items():
        sec = summarise(times[name])
        extras = [r["rss_extra_bytes"] for r in runs[name] if r["rss_extra_bytes"] is not None]
        dev = [r["device_peak_bytes"] for r in runs[name] if r["device_peak_bytes"] is not None]
        gemm = gemm_by_key.get(info["gemm_key"]) if info["group"] != "gemm" else None
        rows[name] = {
            "group": info["group"],
            "xpnet_module": info.get("xpnet"),
            "platform": info["platform"],
            "seconds_per_epoch": sec,
            "samples_per_second": case.n_samples / sec["median"],
            "gflops": flops / sec["median"] / 1e9,
            "vs_reference": paired(times[name], times[reference]),
            "gemm_floor": gemm,
            "vs_gemm_floor": paired(times[name], times[gemm]) if gemm else None,
            "rss_extra_bytes_max": max(extras) if extras else None,
            "device_peak_bytes_max": max(dev) if dev else None,
            "final_loss": runs[name][-1]["loss"],
            "raw_seconds_per_epoch": times[name],
            "cpu_per_wall": summarise([r["cpu_per_wall"] for r in runs[name]]),
            # the first fit of the worker (a warm-up of `warm` epochs) compiles what the
            # compiled paths need; `programs` counts compilations held after it and after
            # the timed fits (equal: the timed fits compiled nothing)
            "warmup_seconds": warmups[name]["seconds"],
            "first_timed_fit_seconds": runs[name][0]["seconds"],
            "compiled_programs_after_warmup": warmups[name]["programs"],
            "compiled_programs_after_timed": programs_after[name],
        }
    result = {
        "case": {
            "layer_sizes": list(case.layer_sizes), "activation": case.activation,
            "output": case.output, "n_samples": case.n_samples, "batch": case.batch,
            "dtype": case.dtype, "lr": case.lr, "epochs": epochs, "repeats": repeats,
            "warmup_epochs": warm, "steps_per_epoch": case.steps_per_epoch,
            "matmul_flops_per_epoch": flops, "description": case.description,
            "input_bytes": int(input_bytes),
            "memory_budget_bytes": case.memory_budget(),
        },
        "reference": reference,
        "rows": rows,
        "pairs": {
            f"{a}/{b}": paired(times[a], times[b]) for a in times for b in times if a != b
        },
        "rss_growth": growth,
    }
    print_case(case.name, result)
    return result


# --------------------------------------------------------------------------- reporting
def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def fmt_ratio(r: dict[str, float] | None) -> str:
    if r is None:
        return "–"
    return f"{r['median']:.2f}× [{r['min']:.2f}–{r['max']:.2f}]"


def fmt_mib(n: int | None) -> str:
    return "–" if n is None else f"{n / MiB:.1f}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / 1024:.0f} KiB"


def case_table(name: str, result: dict[str, Any]) -> list[list[str]]:
    ref = result["reference"]
    header = ["implementation", "s/epoch median [min–max]", "samples/s", "GFLOP/s",
              f"time ÷ {ref}", "time ÷ GEMM floor", "CPU/wall", "peak +RSS MiB", "last loss"]
    table = [header]
    for impl, row in result["rows"].items():
        sec = row["seconds_per_epoch"]
        mem = fmt_mib(row["rss_extra_bytes_max"])
        if row["device_peak_bytes_max"] is not None:
            mem += f" (GPU pool {fmt_mib(row['device_peak_bytes_max'])})"  # see _device_peak
        loss = row["final_loss"]
        table.append([
            impl,
            f"{fmt_time(sec['median'])} [{fmt_time(sec['min'])}–{fmt_time(sec['max'])}]",
            f"{row['samples_per_second']:,.0f}",
            f"{row['gflops']:.2f}",
            fmt_ratio(row["vs_reference"]) if impl != ref else "1 (reference)",
            fmt_ratio(row["vs_gemm_floor"]) if row["group"] != "gemm" else "1 (floor)",
            f"{row['cpu_per_wall']['median']:.2f}" if "cpu_per_wall" in row else "–",
            mem,
            "–" if loss is None or math.isnan(loss) else f"{loss:.4f}",
        ])
    return table


def print_case(name: str, result: dict[str, Any]) -> None:
    table = case_table(name, result)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for index, row in enumerate(table):
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if index == 0:
            print("  " + "  ".join("-" * w for w in widths))


def markdown_table(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    return "\n".join(lines)


TARGETS = [
    # (case, slower, faster, at least) : time(slower) / time(faster) >= at least
    ("tiny", "sklearn", "xpnet-numpy", 3.0, "xpnet-numpy ≥ 3× faster than scikit-learn"),
    ("tiny", "torch", "xpnet-numpy", 5.0, "xpnet-numpy ≥ 5× faster than PyTorch CPU"),
    ("small", "sklearn", "xpnet-numpy", 1.5, "xpnet-numpy ≥ 1.5× faster than scikit-learn"),
    ("small", "torch", "xpnet-numpy", 1.3, "xpnet-numpy ≥ 1.3× faster than PyTorch CPU"),
    ("medium", "sklearn", "xpnet-numpy", 1.5, "xpnet-numpy ≥ 1.5× faster than scikit-learn"),
    ("medium", "torch", "xpnet-numpy", 1.3, "xpnet-numpy ≥ 1.3× faster than PyTorch CPU"),
    ("large", "torch-cuda", "xpnet-cupy", 1.0, "xpnet-cupy at least as fast as PyTorch CUDA"),
    ("medium", "xpnet-numpy", "xpnet-cupy", 1.0 + 1e-9, "medium on CuPy faster than on NumPy"),
    # issue 9: compiled JAX epochs
    ("tiny", "sklearn", "xpnet-jax-compiled", 6.0,
     "xpnet-jax-compiled ≥ 6× faster than scikit-learn"),
    ("tiny", "xpnet-numpy", "xpnet-jax-compiled", 2.5,
     "xpnet-jax-compiled ≥ 2.5× faster than xpnet-numpy"),
    ("small", "sklearn", "xpnet-jax-compiled", 4.0,
     "xpnet-jax-compiled ≥ 4× faster than scikit-learn"),
    ("small", "xpnet-numpy", "xpnet-jax-compiled", 1.8,
     "xpnet-jax-compiled ≥ 1.8× faster than xpnet-numpy"),
    ("medium", "sklearn", "xpnet-jax-compiled", 2.0,
     "xpnet-jax-compiled ≥ 2× faster than scikit-learn"),
]
CEILINGS = [
    # (case, impl, floor, at most): time(impl) / time(floor) <= at most
    ("tiny", "xpnet-numpy", "floor-numpy", 1.3, "xpnet-numpy within 1.3× of the plain-NumPy floor"),
    ("medium", "xpnet-numpy", "gemm-numpy", 1.25, "xpnet-numpy within 1.25× of its GEMM floor"),
    ("large", "xpnet-cupy", "gemm-cupy", 1.3, "xpnet-cupy within 1.3× of its GEMM floor"),
    # issue 19: the compiled fit against what a JAX user writes (each hand-written program;
    # the bar is the faster of the two)
    *[(case, "xpnet-jax-compiled", f"jax-handwritten-{mode}", most,
       f"xpnet-jax-compiled within {most}× of jax-handwritten-{mode}")
      for case, most in (("tiny", 1.15), ("small", 1.15), ("medium", 1.05))
      for mode in ("fori", "scan")],
]
# issue 9: the same, only in runs with the named thread setting (None: libraries' default,
# 1: `--threads 1`, which also gives XLA one thread)
THREADED_CEILINGS = [
    ("medium", "xpnet-jax-compiled", "gemm-jax", 1.3, None,
     "xpnet-jax-compiled within 1.3× of the JAX GEMM floor (default threads)"),
    ("medium", "xpnet-jax-compiled", "gemm-jax", 1.1, 1,
     "xpnet-jax-compiled within 1.1× of the JAX GEMM floor (one thread)"),
]


def evaluate_targets(results: dict[str, Any],
                     threads_cap: int | None = None) -> list[dict[str, Any]]:
    out = []

    def pair(case: str, a: str, b: str) -> dict[str, float] | None:
        res = results.get(case)
        return None if res is None else res["pairs"].get(f"{a}/{b}")

    for case, slow, fast, need, text in TARGETS:
        r = pair(case, slow, fast)
        out.append({
            "case": case, "target": text, "measured": r, "required": f"≥ {need:.2f}×"
            if need != 1.0 + 1e-9 else "> 1×",
            "expression": f"time({slow}) ÷ time({fast})",
            "met": None if r is None else r["median"] >= need,
        })
    for case, impl, floor, most, text in CEILINGS:
        r = pair(case, impl, floor)
        out.append({
            "case": case, "target": text, "measured": r, "required": f"≤ {most:.2f}×",
            "expression": f"time({impl}) ÷ time({floor})",
            "met": None if r is None else r["median"] <= most,
        })
    for case, impl, floor, most, threads, text in THREADED_CEILINGS:
        r = pair(case, impl, floor) if threads == threads_cap else None
        out.append({
            "case": case, "target": text, "measured": r, "required": f"≤ {most:.2f}×",
            "expression": f"time({impl}) ÷ time({floor})"
                          + ("" if threads == threads_cap else " (another thread setting)"),
            "met": None if r is None else r["median"] <= most,
        })
    for case, res in results.items():
        row = res["rows"].get("xpnet-numpy")
        if row is None or row["rss_extra_bytes_max"] is None:
            continue
        growth = res["rss_growth"].get("xpnet-numpy")
        traced = (growth or {}).get("traced_peak_bytes") or 0
        extra = max(row["rss_extra_bytes_max"], traced)  # the larger, to be safe
        peak = res["case"]["input_bytes"] + extra
        budget = res["case"]["memory_budget_bytes"]
        out.append({
            "case": case,
            "target": "xpnet-numpy peak memory within 2× of data + params + one batch",
            "measured": {"median": peak / budget, "min": peak / budget, "max": peak / budget},
            "required": "≤ 2.00×",
            "expression": f"(inputs {fmt_bytes(res['case']['input_bytes'])} + fit's peak "
                          f"{fmt_bytes(extra)} [RSS rise {fmt_bytes(row['rss_extra_bytes_max'])}"
                          f", NumPy allocations {fmt_bytes(traced)}]) ÷ budget "
                          f"{fmt_bytes(budget)}",
            "met": peak <= 2 * budget,
        })
        if growth is not None:
            limit = max(MiB, budget // 100)
            out.append({
                "case": case,
                "target": "xpnet-numpy: no memory growth from epoch to epoch",
                "measured": None,
                "growth_bytes": growth["growth_bytes"],
                "required": f"RSS growth epoch 2→{growth['epochs']} ≤ {fmt_mib(limit)} MiB",
                "expression": f"RSS after epoch {growth['epochs']} − after epoch 2 = "
                              f"{growth['growth_bytes'] / 1024:.0f} KiB",
                "met": growth["growth_bytes"] <= limit,
            })
    return out


def targets_table(targets: list[dict[str, Any]]) -> list[list[str]]:
    table = [["case", "target", "measured (median [min–max] of paired ratios)", "required",
              "status"]]
    for t in targets:
        status = {True: "**met**", False: "**missed**", None: "not run here"}[t["met"]]
        measured = t["expression"]
        if t["measured"] is not None:
            measured = f"{t['expression']} = {fmt_ratio(t['measured'])}"
        table.append([t["case"], t["target"], measured, t["required"], status])
    return table


def write_plot(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(results)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.2 + 0.45 * 8 * len(names) / 2),
                             squeeze=False)
    colours = {"xpnet": "tab:blue", "sklearn": "tab:orange", "torch": "tab:red",
               "floor": "tab:green", "gemm": "tab:gray"}
    for ax, name in zip(axes[:, 0], names, strict=True):
        rows = results[name]["rows"]
        labels = list(rows)[::-1]
        med = [rows[n]["seconds_per_epoch"]["median"] for n in labels]
        lo = [m - rows[n]["seconds_per_epoch"]["min"] for m, n in zip(med, labels, strict=True)]
        hi = [rows[n]["seconds_per_epoch"]["max"] - m for m, n in zip(med, labels, strict=True)]
        ax.barh(labels, med, xerr=[lo, hi], capsize=3,
                color=["lightsteelblue" if n.endswith("-before") else
                       colours.get(rows[n]["group"], "k") for n in labels])
        ax.set_xscale("log")
        case = results[name]["case"]
        ax.set_title(f"{name}: {'-'.join(map(str, case['layer_sizes']))}, {case['n_samples']} "
                     f"samples, batch {case['batch']}, {case['dtype']}", fontsize=10)
        ax.set_xlabel("seconds per epoch (median, bars: min–max; lower is better)")
        ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_write(path) as handle:  # the repository's one writer: temp, fsync, rename
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return True


def write_markdown(report: dict[str, Any], path: Path, plot: str | None) -> None:
    meta = report["meta"]
    lines = ["# xpnet benchmark results", ""]
    lines.append(
        "Generated by `benchmarks/run.py` (see `benchmarks/README.md` for the method and the "
        "profiling notes). Every number below comes from one run; ratios are taken pair by "
        "pair within each repeat of that run (time of the first ÷ time of the second, so "
        "> 1 means the second is faster)."
    )
    lines += ["", "## Machine", ""]
    lines.append(f"- Date: {meta['date_utc']}; command: `{meta['command']}`"
                 + (" (**quick mode**)" if report["quick"] else ""))
    lines.append(f"- CPU: {meta['cpu']} ({meta['cpu_count']} logical CPUs); GPU: "
                 f"{meta['gpu'] or 'none'}")
    lines.append(f"- Python {meta['python']} on {meta['platform']}")
    lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    for blas in meta["blas"]:
        pool = ", ".join(f"{k}={v}" for k, v in blas.items() if v is not None)
        lines.append(f"- Thread pool (library default, before any cap): {pool}")
    if meta["torch"]:
        lines.append("- PyTorch: " + ", ".join(f"{k}={v}" for k, v in meta["torch"].items()))
    lines.append("- Environment: " + ", ".join(f"{k}={v if v is not None else '(unset)'}"
                                               for k, v in meta["env"].items()))
    if meta.get("baseline_src"):
        lines.append(f"- `xpnet-numpy-before`: the xpnet package found in `{meta['baseline_src']}`"
                     " (the code before this round of performance work), same settings")
    lines.append("- Thread cap for every implementation: "
                 + (f"{meta['threads_cap']} (`--threads`)" if meta["threads_cap"]
                    else "none (each library's default, listed above)"))
    lines.append(f"- Load average (1, 5, 15 min) at start: {meta['loadavg_start']}, at end: "
                 f"{meta['loadavg_end']}")
    if meta.get("other_processes_cores") is not None:
        lines.append(f"- Other processes on this machine kept on average "
                     f"{meta['other_processes_cores']:.2f} of its {meta['cpu_count']} cores busy "
                     f"during the run ({meta['total_seconds']:.0f} s): timings of multi-threaded "
                     "libraries suffer most from such contention")
    load = meta.get("background_load") or {}
    if load.get("processes"):
        lines.append(f"- Background load (`--background-load`): {load['processes']} CPU-bound "
                     f"processes for the whole run; timing began {load.get('settled_s')} s "
                     f"after they started, at load average {load.get('loadavg_settled')}")
    lines += ["", "## Targets", "", markdown_table(targets_table(report["targets"])), ""]
    for name, res in report["cases"].items():
        c = res["case"]
        lines += [
            f"## {name}: {c['description']}", "",
            f"{'-'.join(map(str, c['layer_sizes']))}, {c['activation']} hidden, {c['output']} "
            f"output, {c['n_samples']} samples, batch {c['batch']} ({c['steps_per_epoch']} "
            f"steps/epoch), {c['dtype']}, lr {c['lr']}; {c['epochs']} epochs per timed fit, "
            f"{c['repeats']} repeats after a {c['warmup_epochs']}-epoch warm-up; "
            f"{c['matmul_flops_per_epoch'] / 1e9:.3f} GFLOP of matrix products per epoch.",
            "", markdown_table(case_table(name, res)), "",
        ]
        for impl, row in res["rows"].items():
            if row.get("compiled_programs_after_warmup") is None:
                continue
            steady = row["seconds_per_epoch"]["median"] * c["warmup_epochs"]
            lines.append(
                f"- {impl}: first fit ({c['warmup_epochs']}-epoch warm-up, compiles) "
                f"{row['warmup_seconds']:.2f} s, i.e. ~{row['warmup_seconds'] - steady:.2f} s "
                f"of compilation (its time minus {c['warmup_epochs']} steady epochs); "
                f"compilations held after it: {row['compiled_programs_after_warmup']}, "
                f"after the timed fits: {row['compiled_programs_after_timed']} (a fit after "
                f"one warm-up fit compiles "
                + ("nothing" if row["compiled_programs_after_warmup"]
                   == row["compiled_programs_after_timed"] else "inside the timing")
                + f"); first timed fit {row['first_timed_fit_seconds']:.2f} s")
        for impl, g in res["rss_growth"].items():
            rss = g["rss_after_epoch"]
            shown = rss if len(rss) <= 12 else rss[:6] + rss[-6:]
            lines.append(f"- {impl}: RSS after each epoch of a {g['epochs']}-epoch fit (MiB"
                         + (", first and last six" if len(rss) > 12 else "") + "): "
                         + ", ".join(f"{b / MiB:.1f}" for b in shown)
                         + f" (growth from epoch 2: {g['growth_bytes'] / 1024:.0f} KiB); "
                         f"peak of NumPy allocations during a fit: "
                         f"{fmt_bytes(g.get('traced_peak_bytes'))}")
        lines.append("")
    if report["skipped"]:
        lines += ["## Not run here", ""] + [f"- {s}" for s in report["skipped"]] + [""]
    if plot:
        lines += ["## Plot", "", f"![seconds per epoch per case]({plot})", ""]
    lines += [
        "## Column definitions", "",
        "- *s/epoch*: wall time of one timed `fit` (or equivalent loop) divided by its epochs;"
        " includes the per-fit input checks, per-epoch shuffling and the loss of every step.",
        "- *samples/s*: samples ÷ median s/epoch. *GFLOP/s*: the matrix products' "
        "floating-point operations per epoch ÷ median s/epoch (element-wise work not counted).",
        "- *time ÷ reference*, *time ÷ GEMM floor*: median [min–max] over repeats of the "
        "ratio within each repeat. The GEMM floor is the same steps' matrix products alone, "
        "into preallocated buffers, with the same library on the same device.",
        "- *CPU/wall*: the worker process's CPU time (all threads) ÷ wall time over a timed "
        "fit, median: about the number of threads kept busy, whatever the thread settings "
        "say (2 = both cores).",
        "- *peak +RSS*: the largest rise of the process's resident set during a timed fit "
        "above its size just before (the inputs are already resident); it can stay near 0 "
        "when a fit reuses memory the allocator kept from the warm-up. The memory target "
        "takes the larger of this and the peak of NumPy's own allocations during a fit "
        "(tracemalloc), adds the inputs back and compares with data + parameters + one "
        "batch's activations, errors and gradients.",
        "- *GPU pool*: device memory the library's caching allocator holds, with the same "
        "measure for every GPU library: CuPy's memory-pool total (`total_bytes()`) and "
        "PyTorch's `max_memory_reserved()` over the timed fit. Every GPU implementation "
        "is timed with a warm allocator (its pool is never emptied between fits).",
        "",
    ]
    lines += separate_runs(path)
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(lines))


def separate_runs(path: Path) -> list[str]:
    """The sections of an existing ``path`` whose heading ends in ``(separate runs)``
    (tables of other scripts' runs, written by hand): kept when the file is rewritten."""
    try:
        text = path.read_text()
    except OSError:
        return []
    kept: list[str] = []
    keep = False
    for line in text.splitlines():
        if line.startswith("## "):
            keep = line.rstrip().endswith("(separate runs)")
        if keep:
            kept.append(line)
    return kept + [""] if kept else []


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer epochs and repeats (< 2 min on 2 cores); "
                             "output to benchmarks/out/")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated cases (default: all of {', '.join(CASES)})")
    parser.add_argument("--impls", default="",
                        help="comma-separated implementation names or prefixes (default: all)")
    parser.add_argument("--epochs", type=int, default=0, help="override epochs per timed fit")
    parser.add_argument("--repeats", type=int, default=0, help="override repeats")
    parser.add_argument("--strict-cases", default="tiny",
                        help="cases that also time the (slow) array_api_strict backend")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: benchmarks/ for a full run, "
                             "benchmarks/out/ with --quick)")
    parser.add_argument("--threads", type=int, default=0,
                        help="cap BLAS/OpenMP/PyTorch threads in every implementation "
                             "(default: each library's own default)")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="folder holding an earlier xpnet package (e.g. from git archive); "
                             "adds 'xpnet-numpy-before' to the CPU cases to measure changes "
                             "side by side")
    parser.add_argument("--settle", type=float, default=0.25,
                        help="seconds to wait between timed runs so that the previous "
                             "implementation's thread pools stop spinning (default 0.25)")
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="run N CPU-bound processes during the whole run (load.py: the "
                             "timing starts once the load average shows them; default 0)")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    args.strict_cases = set(filter(None, args.strict_cases.split(",")))
    out = args.out or (HERE / "out" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)

    if args.threads == 1:  # before any worker starts JAX (see XLA_ONE_THREAD)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_ONE_THREAD}".strip()
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(name):
            print(f"note: {name}={os.environ[name]} is set and may force a slower BLAS kernel; "
                  f"the kernel used is recorded in the results", file=sys.stderr)
    meta = environment()
    meta["threads_cap"] = args.threads or None
    meta["baseline_src"] = str(args.baseline_src) if args.baseline_src else None
    gpu = gpu_available()
    skipped: list[str] = []
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for name in args.cases.split(","):
        if name not in CASES:
            parser.error(f"unknown case {name!r}; choose from {', '.join(CASES)}")
    with background_load(args.background_load) as load:
        busy_start, own_start = machine_busy_seconds(), own_cpu_seconds()
        window = time.perf_counter()  # the timed window: after the load (if any) settled
        for name in args.cases.split(","):
            case = CASES[name]
            if case.gpu_only and all(reason is not None for reason in gpu.values()):
                reasons = "; ".join(r for r in gpu.values() if r)
                skipped.append(f"{name}: GPU-only case, no GPU here ({reasons})")
                print(f"\n== {name}: skipped, GPU only ({reasons})")
                continue
            result = run_case(case, args, skipped)
            if result is not None:
                results[name] = result
        busy_end, own_end = machine_busy_seconds(), own_cpu_seconds()
        window = time.perf_counter() - window
    meta["background_load"] = load
    meta["loadavg_end"] = os.getloadavg()
    meta["total_seconds"] = time.perf_counter() - started
    if busy_start is not None and busy_end is not None:
        others = (busy_end - busy_start) - (own_end - own_start)
        # average number of cores other processes (the background load included) kept busy
        meta["other_processes_cores"] = max(0.0, others) / window
    else:
        meta["other_processes_cores"] = None
    report = {"meta": meta, "quick": args.quick, "cases": results, "skipped": skipped}
    report["targets"] = evaluate_targets(results, meta["threads_cap"])
    print("\nTargets:")
    for t in report["targets"]:
        status = {True: "met", False: "MISSED", None: "not run"}[t["met"]]
        measured = fmt_ratio(t["measured"]) if t["measured"] else t["expression"]
        print(f"  [{status:7}] {t['case']}: {t['target']}: {measured} (required {t['required']})")
    for line in skipped:
        print(f"  skipped {line}")
    with atomic_write(out / "results.json", "w") as handle:
        handle.write(json.dumps(report, indent=1, default=float) + "\n")
    plot = None
    if not args.no_plot and results and write_plot(results, out / "results.png"):
        plot = "results.png"
    write_markdown(report, out / "RESULTS.md", plot)
    print(f"\nwrote {out / 'results.json'}, {out / 'RESULTS.md'}"
          + (f", {out / plot}" if plot else "")
          + f" in {meta['total_seconds']:.0f} s")
    if meta.get("other_processes_cores") is not None:
        print(f"other processes used {meta['other_processes_cores']:.2f} cores on average "
              "during the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# One-shot GPU check for a CUDA machine with CuPy and/or CUDA PyTorch, sized for one
# short device lease (QUICK=1, the default: about 3-5 minutes, so a rerun still fits).
#
#   0. imports: the wheels the machine lacks (array-api-compat, array-api-strict) are
#      installed from .whl/ (carried: see benchmarks/README.md); if one is still missing
#      the script stops at once, exit 3, naming the wheel;
#   1. pytest --backend cupy (the suite, cross-backend tests against NumPy);
#   2. the CUDA-torch and CuPy synchronisation and device tests;
#   3. JAX on CUDA (the suite's backend tests, --backend jax) when a CUDA build of JAX
#      imports; the lease's machine has none and its CUDA wheels (jaxlib + the nvidia-*
#      libraries, ~2 GiB) exceed what a device call can carry (64 MiB), so today this
#      phase records "skipped" with that reason;
#      and Dask with CuPy chunks (tests/test_distributed.py -k cupy) where dask imports;
#   4. the cross-backend differences from NumPy float64, per backend and dtype;
#   5. the GPU benchmark cases (medium: CuPy vs NumPy; large: GPU only).
#
# Each phase runs under its own `timeout` (a hung phase is killed and the next one runs,
# so the logs always come back). Files written under $OUT (else benchmarks/out/gpu),
# at most 5, all at the top level:
#   gpu_check.log   everything every phase printed, in order
#   summary.md      one line per phase (status, seconds), the pytest summaries and the
#                   cross-backend table: read this first
#   results.json    the benchmark's full results        (phase 4)
#   RESULTS.md      the benchmark's tables and targets  (phase 4)
#   results.png     the benchmark's plot                (phase 4, if matplotlib imports)
#
#   bash benchmarks/gpu_check.sh             # QUICK=1: fewer epochs and repeats
#   QUICK=0 bash benchmarks/gpu_check.sh     # full cases: ~10 minutes, no room to rerun
#
# Exit status: 0 all phases passed; 1 a phase failed or timed out; 3 a required package
# (wheel) is missing. Benchmark targets met or missed are in RESULTS.md either way.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT_DIR="${OUT:-benchmarks/out/gpu}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
SUMMARY="$OUT_DIR/summary.md"
PY="${PYTHON:-python3}"
QUICK="${QUICK:-1}"
export PYTHONUNBUFFERED=1
: > "$LOG"
: > "$SUMMARY"

say() { echo "$*" | tee -a "$LOG"; }
note() { echo "$*" >> "$SUMMARY"; }

# Phase time limits (seconds); their sum stays under the device call's timeout_s.
# Worst case 45 + 45 + 180 + 90 + 45 + 170 = 575 s, inside the call's timeout_s=600
# (phase 3, JAX, only runs where a CUDA JAX exists, and then takes T_JAX out of T_BENCH).
T_IMPORTS="${T_IMPORTS:-45}"
T_CUPY="${T_CUPY:-180}"
T_SYNC="${T_SYNC:-90}"
T_DIFFS="${T_DIFFS:-45}"
T_BENCH="${T_BENCH:-170}"
T_JAX="${T_JAX:-60}"
PHASE_OUT="$(mktemp /tmp/gpu_check_phase.XXXXXX)"  # scratch stays out of $OUT
trap 'rm -f "$PHASE_OUT"' EXIT

note "# gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname) (QUICK=$QUICK)"
note ""

# ---------------------------------------------------------------- 0. imports
if compgen -G ".whl/*.whl" > /dev/null; then
  if ! timeout "$T_IMPORTS" "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >> "$LOG" 2>&1; then
    say "== FATAL: pip could not install the carried wheels (.whl/*.whl); see above"
    note "- FATAL: installing .whl/*.whl failed (log: gpu_check.log)"
    exit 3
  fi
  export PYTHONPATH=/tmp/site:$PWD/src
  say "== installed from .whl/: $(cd .whl && ls *.whl | tr '\n' ' ')"
else
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
  say "== no .whl/ folder with wheels here (the device call must name .whl in carry)"
fi

{
  echo "== environment"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 \
    || echo "nvidia-smi: not available"
} 2>&1 | tee -a "$LOG"

# module -> (distribution/wheel, required?). Required ones stop the check: without
# array-api-compat xpnet cannot build any backend and pytest cannot even collect.
timeout "$T_IMPORTS" "$PY" - <<'EOF' 2>&1 | tee -a "$LOG" "$PHASE_OUT"
import importlib
import sys

REQUIRED = {"numpy": "numpy", "pytest": "pytest", "array_api_compat": "array-api-compat",
            "array_api_strict": "array-api-strict"}
OPTIONAL = {"hypothesis": "hypothesis", "sklearn": "scikit-learn", "cupy": "cupy-cuda13x",
            "torch": "torch", "matplotlib": "matplotlib", "xdist": "pytest-xdist"}
missing = []
for table, required in ((REQUIRED, True), (OPTIONAL, False)):
    for module, wheel in table.items():
        try:
            version = getattr(importlib.import_module(module), "__version__", "?")
            print(f"  {module} {version}")
        except Exception as exc:  # ImportError, or a CUDA library that fails to load
            print(f"  {module}: NOT importable ({type(exc).__name__}: {exc})")
            if required:
                missing.append(wheel)
            else:
                print(f"  (optional: what needs {wheel} is skipped, saying so)")
if missing:
    print(f"MISSING REQUIRED PACKAGE(S): {', '.join(missing)}. Carry their wheels in .whl/ "
          "and name .whl in the device call's carry (benchmarks/README.md, 'GPU check').")
    sys.exit(3)
import xpnet  # noqa: E402
from xpnet.backends import backend_info  # noqa: E402

print("  xpnet backends usable here:", xpnet.available_backends())
for name in ("cupy", "torch"):
    info = backend_info(name)
    print(f"  {name}: usable={info['usable']} {info['reason'] or ''}")
EOF
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  grep -E "^MISSING|^[A-Za-z]*Error" "$PHASE_OUT" | sed 's/^ */- /' >> "$SUMMARY"
  say "== FATAL (exit 3): a required package is missing or broken; nothing else was run"
  note "- FATAL: required package missing or broken (exit 3); see gpu_check.log"
  exit 3
fi

status=0
# run_phase NAME SECONDS COMMAND...: log everything; record status, time and pytest's
# last lines in the summary. At its limit a phase gets SIGINT (pytest then still prints
# its summary), then SIGKILL 15 s later; a phase stopped so counts as a failure.
run_phase() {
  local name=$1 limit=$2
  shift 2
  say ""
  say "== $name (limit ${limit}s): $*"
  local start=$SECONDS
  : > "$PHASE_OUT"
  timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$LOG" "$PHASE_OUT"
  local rc=${PIPESTATUS[0]}
  local took=$((SECONDS - start))
  local verdict="passed"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] || [ "$took" -ge "$limit" ]; then
    verdict="TIMED OUT (exit $rc)"; status=1
  elif [ "$rc" -eq 5 ]; then verdict="nothing collected"
  elif [ "$rc" -ne 0 ]; then verdict="FAILED (exit $rc)"; status=1
  fi
  say "== $name: $verdict in ${took}s"
  note "- **$name**: $verdict in ${took}s"
  # pytest's final counts line, and its failures, go into the summary too
  grep -E "^(FAILED|ERROR) |[0-9]+ (passed|failed|skipped)|no tests ran|Interrupted" \
    "$PHASE_OUT" | tail -15 | sed 's/^/    /' >> "$SUMMARY"
}

# pytest options: workers when pytest-xdist is there (each with 2 threads, not 16), a
# per-test limit when pytest-timeout is, and CuPy's PerformanceWarning (arrays used
# from another device) as an error
PYTEST_EXTRA=()
if "$PY" -c "import xdist" 2>/dev/null; then PYTEST_EXTRA+=(-n 6); export OMP_NUM_THREADS=2; fi
if "$PY" -c "import pytest_timeout" 2>/dev/null; then PYTEST_EXTRA+=(--timeout=90); fi
CUPY_WARNING="$("$PY" -c "
import cupy
for where in ('cupy.exceptions', 'cupy._util'):
    try:
        module = __import__(where, fromlist=['PerformanceWarning'])
        module.PerformanceWarning
        print(where + '.PerformanceWarning')
        break
    except (ImportError, AttributeError):
        pass
" 2>/dev/null)"
if [ -n "$CUPY_WARNING" ]; then PYTEST_EXTRA+=(-W "error::$CUPY_WARNING"); fi

# ---------------------------------------------------------------- 1. the suite on CuPy
run_phase "pytest --backend cupy" "$T_CUPY" \
  "$PY" -m pytest --backend cupy -q -rs -p no:cacheprovider "${PYTEST_EXTRA[@]}" || true

# ---------------------------------------------------------------- 2. sync and device tests
run_phase "sync and device tests (CUDA torch, CuPy)" "$T_SYNC" \
  "$PY" -m pytest --backend torch --backend cupy -q -rs -p no:cacheprovider \
  "${PYTEST_EXTRA[@]}" tests/test_perf_regression.py tests/test_devices.py || true

# ---------------------------------------------------------------- 3. JAX on CUDA
JAX_GPU="$("$PY" -c "
import jax
print(sum(d.platform == 'gpu' for d in jax.devices()))
" 2>/dev/null)"
if [ "${JAX_GPU:-0}" -gt 0 ] 2>/dev/null; then
  T_BENCH=$((T_BENCH - T_JAX))
  # xpnet sets JAX's float32 matmul precision to "highest" on GPUs (backends.py: the
  # default rounds to TF32), so the suite's float32 tolerances apply unchanged.
  run_phase "pytest --backend jax (CUDA)" "$T_JAX" \
    "$PY" -m pytest --backend jax --backend-tests-only -q -rs -p no:cacheprovider \
    "${PYTEST_EXTRA[@]}" || true
else
  say "== JAX on CUDA: skipped (no CUDA build of JAX imports here; its wheels are too large to carry)"
  note "- **pytest --backend jax (CUDA)**: skipped, no CUDA build of JAX on this machine"
fi

# ---------------------------------------------------------------- 3b. Dask with CuPy chunks
# (issue 10: workers pick CuPy for CuPy chunks; equal to a single-GPU CuPy fit). Runs
# where dask[distributed] imports; the lease's machine has none, and its compiled
# dependencies (msgpack, psutil, tornado, pyyaml) would have to match its Python to carry.
if "$PY" -c "import dask.array, distributed" 2>/dev/null; then
  run_phase "Dask, CuPy chunks" 60 \
    "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_distributed.py -k cupy || true
else
  say "== Dask with CuPy chunks: skipped (dask[distributed] is not installed here)"
  note "- **Dask, CuPy chunks**: skipped, dask[distributed] not installed on this machine"
fi

# ---------------------------------------------------------------- 4. cross-backend differences
run_phase "cross-backend differences" "$T_DIFFS" "$PY" benchmarks/cross_backend.py || true
if grep -q "^| backend" "$PHASE_OUT"; then
  { echo ""; sed -n '/^Largest relative/,$p' "$PHASE_OUT"; echo ""; } >> "$SUMMARY"
fi

# ---------------------------------------------------------------- 5. benchmark
if ! "$PY" -c "
import sys, xpnet
try:
    import torch
    cuda = torch.cuda.is_available()
except ImportError:
    cuda = False
sys.exit(0 if 'cupy' in xpnet.available_backends() or cuda else 1)
" 2>> "$LOG"; then
  say "== no usable GPU (neither CuPy nor CUDA PyTorch; see the environment above): benchmark skipped"
  note "- **benchmark**: skipped, no usable GPU here"
else
  bench_args=(--cases medium,large --out "$OUT_DIR")
  if [ "$QUICK" = "1" ]; then bench_args+=(--quick); fi
  # medium on the CPU side only needs xpnet-numpy and the NumPy GEMM floor for the
  # CuPy-vs-NumPy target; every GPU implementation runs.
  run_phase "benchmark (medium, large)" "$T_BENCH" \
    "$PY" benchmarks/run.py "${bench_args[@]}" \
    --impls xpnet-numpy,gemm-numpy,xpnet-cupy,xpnet-torch-cuda,torch-cuda,floor-cupy,gemm-cupy,gemm-torch-cuda \
    || true
  grep -E "^\s+\[(met|MISSED|not run)" "$PHASE_OUT" | sed 's/^ */    /' >> "$SUMMARY" || true
fi

say ""
say "== done: status $status (0 = every phase passed); files in $OUT_DIR: $(cd "$OUT_DIR" && ls | tr '\n' ' ')"
note ""
note "status $status; files: $(cd "$OUT_DIR" && ls | tr '\n' ' ')"
exit $status

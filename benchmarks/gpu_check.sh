#!/usr/bin/env bash
# One-shot GPU check for a CUDA machine with CuPy (and optionally CUDA PyTorch):
#   1. the test suite on CuPy (`pytest --backend cupy`: cross-backend tests against NumPy),
#      plus the GPU performance-regression tests (no per-step host sync, CuPy and torch);
#   2. the GPU benchmark cases (medium on CuPy vs NumPy, and `large`, GPU only).
# Everything it writes goes under $OUT when set (else benchmarks/out/gpu). Without a usable
# GPU it says so and the GPU parts skip cleanly.
#
# Pure-Python wheels the machine lacks (array-api-compat, array-api-strict...) can be brought
# in a `.whl/` folder at the repository root; they are installed into /tmp/site.
#
#   bash benchmarks/gpu_check.sh            # full GPU cases (several minutes on one GPU)
#   QUICK=1 bash benchmarks/gpu_check.sh    # fewer epochs/repeats: for a short device lease
#
# Exit status 0 when the tests pass and the benchmark ran; targets met or missed are in
# $OUT/bench/RESULTS.md either way.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT_DIR="${OUT:-benchmarks/out/gpu}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
PY="${PYTHON:-python3}"

if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi

{
  echo "== gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "nvidia-smi: not available"
  "$PY" - <<'EOF'
import importlib
for name in ("numpy", "cupy", "torch", "array_api_compat", "array_api_strict", "sklearn"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # report, do not stop
        print(f"{name}: not importable ({exc.__class__.__name__}: {exc})")
import xpnet
print("xpnet backends usable here:", xpnet.available_backends())
EOF
} 2>&1 | tee "$LOG"

status=0

echo "== pytest --backend cupy" | tee -a "$LOG"
"$PY" -m pytest --backend cupy -q -rs --junitxml="$OUT_DIR/pytest_cupy.xml" 2>&1 | tee "$OUT_DIR/pytest_cupy.log"
rc=${PIPESTATUS[0]}
# 5: nothing collected/selected; anything else non-zero is a failure
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi

echo "== GPU sync checks on CUDA PyTorch" | tee -a "$LOG"
"$PY" -m pytest --backend torch -q -rs tests/test_perf_regression.py -k cuda \
  --junitxml="$OUT_DIR/pytest_torch_cuda.xml" 2>&1 | tee "$OUT_DIR/pytest_torch_cuda.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi

if ! "$PY" -c "
import sys, xpnet
try:
    import torch
    cuda = torch.cuda.is_available()
except ImportError:
    cuda = False
sys.exit(0 if 'cupy' in xpnet.available_backends() or cuda else 1)
"; then
  echo "== no usable GPU (neither CuPy nor CUDA PyTorch): GPU benchmark cases skipped" | tee -a "$LOG"
  echo "== done: status $status; outputs in $OUT_DIR" | tee -a "$LOG"
  exit $status
fi

echo "== GPU benchmark cases (medium: CuPy vs NumPy; large: GPU only)" | tee -a "$LOG"
bench_args=(--cases medium,large --out "$OUT_DIR/bench")
if [ "${QUICK:-0}" = "1" ]; then bench_args+=(--quick); fi
# medium on the CPU side only needs xpnet-numpy and the NumPy GEMM floor for the
# CuPy-vs-NumPy target; every GPU implementation runs.
"$PY" benchmarks/run.py "${bench_args[@]}" \
  --impls xpnet-numpy,gemm-numpy,xpnet-cupy,xpnet-torch-cuda,torch-cuda,floor-cupy,gemm-cupy,gemm-torch-cuda \
  2>&1 | tee "$OUT_DIR/bench.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then status=1; fi

echo "== done: status $status (0 = tests passed and benchmarks ran); outputs in $OUT_DIR" | tee -a "$LOG"
exit $status

"""Targeted mutation testing of xpnet's core: does the test suite notice each bug?

Each mutant is one deliberate bug: a (file, exact source snippet, replacement) triple, with
alternatives where an older version of the file spells the same code differently. For each
mutant the script copies ``src/`` to a temporary folder, applies the mutant there, and runs
a fast subset of the tests with ``PYTHONPATH`` pointing at the mutated copy (subprocess CLI
tests inherit it). A failing run *kills* the mutant; a passing run means it *survived*: a
behaviour no test checks. The score is killed / (killed + survived).

    python tests/mutation/run_mutants.py                  # this checkout's src and tests
    python tests/mutation/run_mutants.py --jobs 1 -k cli  # mutants whose id contains "cli"
    python tests/mutation/run_mutants.py --src /tmp/old/src --tests /tmp/old/tests
    nox -s mutation                                       # the same, in a nox session

Why not mutmut: it mutates every operator of every line and reruns the suite for each;
on a 2-core machine that is hours. These ~40 mutants are the classic backprop and
training-loop mistakes (wrong sign in BP1, W instead of dW in BP2, a dropped L2 term, a
swapped derivative, ...) plus the blind spots issue 8 found, and the whole run takes
about ten minutes. A mutant whose snippet is not found in the source is reported as
"stale" (the code moved on; update the snippet) and counts as neither killed nor survived.
Exit status: 0 when every applicable mutant is killed, 1 when some survive, 2 on a
usage problem or when the unmutated code already fails the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Test files run for every mutant, in this order (fast, broad killers first); files
#: missing from the tests folder are left out, so an older suite can be measured too.
#: Left out for speed: the CLI, estimator, cross-backend and autodiff (PyTorch oracle)
#: suites, which take minutes or import PyTorch in every run.
FAST_TESTS = (
    "test_gradients.py",
    "test_blind_spots.py",
    "test_api.py",
    "test_validation.py",
    "test_data.py",
    "test_optim.py",
    "test_learning.py",
    "test_api_misuse.py",
)


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to src/xpnet
    edits: tuple[tuple[str, str], ...]  # (snippet, replacement) alternatives; first found wins
    what: str
    tests: tuple[str, ...] = ()  # test files for this mutant instead of FAST_TESTS


def m(id: str, file: str, what: str, *edits: tuple[str, str],
      tests: tuple[str, ...] = ()) -> Mutant:
    return Mutant(id, file, tuple(edits), what, tests)


MUTANTS = [
    # ------------------------------------------------------------------ core.py: backprop
    # (the pure step; before issue 9 these lines stood in network.py's _loss_and_grads)
    m("bp1-sign", "core.py", "BP1 with the wrong sign: dZ_L = Y - A_L",
      ("dZ = A_out - Y  # (BP1)", "dZ = Y - A_out  # (BP1)")),
    m("bp1-no-mean", "core.py", "BP1 without the 1/m",
      ("        dZ /= total_weight\n", "        dZ /= 1\n"),
      ("dZ = inplace.divide(xp, dZ, total_weight)", "dZ = inplace.divide(xp, dZ, 1)")),
    m("bp2-dW", "core.py", "BP2 carries the error back with dW_l instead of W_l",
      ("dZ = dZ @ W.T  # (BP2)", "dZ = dZ @ dW.T  # (BP2)")),
    m("bp2-no-derivative", "core.py", "BP2 without the g'(A_{l-1}) factor",
      ("                dZ *= derivative(xp, A_prev)\n", "                pass\n"),
      ("dZ *= derivative(xp, undropped[layer])", "pass"),
      ("dZ = inplace.multiply(xp, dZ, derivative(xp, undropped[layer]))", "pass")),
    m("bp3-no-alpha", "core.py", "the L2 term alpha*W/m dropped from dW",
      ("dW = dW + (alpha / total_weight) * W", "dW = dW")),
    m("bp4-bias-half", "core.py", "BP4: db is half the column sum",
      ("grads[2 * layer + 1] = summed(dZ)  # (BP4)",
       "grads[2 * layer + 1] = summed(dZ) * 0.5  # (BP4)")),
    m("forward-bias-sign", "core.py", "the forward pass subtracts the bias",
      ("Z += params[2 * layer + 1]", "Z -= params[2 * layer + 1]"),
      ("Z += params[2 * layer + 1]  # Z_l", "Z -= params[2 * layer + 1]  # Z_l"),
      ("# the namespace allows, see xpnet._inplace; a plain Add node on ndonnx)\n"
       "        Z = inplace.add(xp, A @ params[2 * layer], params[2 * layer + 1])",
       "# the namespace allows, see xpnet._inplace; a plain Add node on ndonnx)\n"
       "        Z = inplace.subtract(xp, A @ params[2 * layer], params[2 * layer + 1])")),
    m("penalty-no-half", "core.py", "L2 penalty alpha/m instead of alpha/(2m)",
      ("(alpha / (2 * total_weight))", "(alpha / total_weight)")),
    m("weighted-bp1-unweighted", "core.py", "row weights dropped from BP1",
      ("dZ *= weight_column  #", "dZ /= X.shape[0]  #"),
      ("dZ = inplace.multiply(xp, dZ, weight_column)",
       "dZ = inplace.divide(xp, dZ, X.shape[0])")),
    # ------------------------------------------------------------------ network.py: init
    m("init-he-scale", "network.py", "He std sqrt(1/fan_in) instead of sqrt(2/fan_in)",
      ("math.sqrt(2.0 / fan_in)", "math.sqrt(1.0 / fan_in)")),
    m("init-glorot-scale", "network.py", "Glorot limit sqrt(2/(in+out)) instead of 6",
      ("math.sqrt(6.0 / (fan_in + fan_out))", "math.sqrt(2.0 / (fan_in + fan_out))")),
    m("init-output-he", "network.py", "He initialisation at the output layer",
      ('inits = [act.init for act in self._hidden] + ["glorot"]',
       'inits = [act.init for act in self._hidden] + ["he"]')),
    # ------------------------------------------------------------------ network.py: predict
    m("predict-threshold", "network.py", "MLP.predict's threshold flipped at exactly 0.5",
      ("return xp.astype(A > 0.5, self.array_backend.index_dtype)",
       "return xp.astype(A >= 0.5, self.array_backend.index_dtype)")),
    m("predict-dtype", "network.py", "binary predictions as int32",
      ("return xp.astype(A > 0.5, self.array_backend.index_dtype)",
       "return xp.astype(A > 0.5, xp.int32)")),
    m("predict-softmax-dtype", "network.py", "softmax predictions as int32",
      ("return xp.astype(xp.argmax(A, axis=1), self.array_backend.index_dtype, copy=False)",
       "return xp.astype(xp.argmax(A, axis=1), xp.int32)")),
    # ------------------------------------------------------------------ activations.py
    m("sigmoid-derivative", "activations.py", "sigmoid' written as tanh' (1 - a^2)",
      ("    return a * (1.0 - a)\n", "    return 1.0 - a * a\n"),
      ("return inplace.multiply(xp, 1.0 - a, a)", "return 1.0 - a * a")),
    m("tanh-derivative", "activations.py", "tanh' written as sigmoid' (a(1 - a))",
      ("    return 1.0 - a * a\n", "    return a * (1.0 - a)\n"),
      ("return inplace.add(xp, d, 1.0)  #", "return a * (1.0 - a)  #")),
    m("relu-derivative", "activations.py", "relu' = 1[a >= 0] (1 everywhere)",
      ("return xp.astype(a > 0, a.dtype)", "return xp.astype(a >= 0, a.dtype)")),
    m("logistic-tanh-scale", "activations.py", "hidden logistic as tanh(z)/2 + 1/2",
      ("    h = z * 0.5  # exact (a power of two)\n", "    h = z * 1.0\n")),
    m("inplace-add-sign", "_inplace.py", "the in-place add subtracts (NumPy/torch path)",
      ("    if inplace_ok(xp, a):\n        a += b\n",
       "    if inplace_ok(xp, a):\n        a -= b\n")),
    m("softmax-no-shift", "activations.py", "softmax without the row max subtracted",
      ("e = xp.exp(z - xp.max(z, axis=1, keepdims=True))", "e = xp.exp(z)"),
      ('e = inplace.apply(xp, "exp", z - xp.max(z, axis=1, keepdims=True))',
       'e = inplace.apply(xp, "exp", z + 0)')),
    m("relu-init-glorot", "activations.py", "Glorot instead of He before relu",
      ('Activation("relu", relu, relu_derivative, "he")',
       'Activation("relu", relu, relu_derivative, "glorot")')),
    # ------------------------------------------------------------------ losses.py
    m("bce-sign", "losses.py", "binary cross-entropy softplus(z) + y z",
      ("xp.log1p(e) - y * z, weight)", "xp.log1p(e) + y * z, weight)")),
    m("fused-softmax-no-shift", "losses.py", "fused softmax loss without the max shift",
      ("    e = xp.exp(z - z_max)\n", "    e = xp.exp(z)\n"),
      ('e = inplace.apply(xp, "exp", z - z_max)', 'e = inplace.apply(xp, "exp", z + 0)')),
    m("squared-error-no-half", "losses.py", "squared error without the 1/2",
      ("return _mean(xp, diff * diff, weight) * 0.5", "return _mean(xp, diff * diff, weight)")),
    # ------------------------------------------------------------------ optim.py
    m("sgd-sign", "optim.py", "gradient ascent: p += lr * grad",
      ("                p -= lr * grad\n", "                p += lr * grad\n")),
    m("momentum-sign", "optim.py", "momentum velocity v <- mu v + eta g",
      ("            v -= step\n", "            v += step\n")),
    m("nesterov-plain", "optim.py", "Nesterov's look-ahead replaced by plain momentum",
      ("p += momentum * v - step", "p += v")),
    m("adam-no-bias-correction", "optim.py", "Adam without bias correction",
      ("lr = self.learning_rate_init * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)",
       "lr = self.learning_rate_init")),
    m("adam-no-sqrt", "optim.py", "Adam divides by s instead of sqrt(s)",
      ("p += -lr * m / (xp.sqrt(s) + epsilon)", "p += -lr * m / (s + epsilon)")),
    # ------------------------------------------------------------------ training/
    m("shuffled-weights-ignored", "training/sources.py",
      "sample weights ignored with shuffled batches",
      ("w_batch = None if w is None else xp.take(w, rows, axis=0)", "w_batch = None")),
    m("validation-rows-trained", "training/sources.py",
      "early-stopping validation rows also trained on",
      ("return order[n_val:], order[:n_val]", "return order, order[:n_val]")),
    m("validation-split-swapped", "training/sources.py", "validation and training rows swapped",
      ("return order[n_val:], order[:n_val]", "return order[:n_val], order[n_val:]")),
    m("best-weights-not-restored", "training/loop.py", "early stopping keeps the last weights",
      ("        state.params = [plan.xp.asarray(p, copy=True) for p in history.best_params]\n",
       "        pass\n")),
    m("tol-sign", "training/stopping.py", "loss improvement measured against best + tol",
      ("improved = not epoch_loss > history.best_loss - tol",
       "improved = not epoch_loss > history.best_loss + tol")),
    m("epoch-loss-unweighted", "training/loop.py", "epoch loss sums batch means unweighted",
      ("weighted = loss * (last - first)", "weighted = loss * batch_size")),
    m("no-shuffle", "training/loop.py", "mini-batches never reshuffled",
      ("self.shuffled = shuffle and plan.batch_size < plan.m", "self.shuffled = False")),
    m("validation-score-threshold", "training/sources.py",
      "validation accuracy with the wrong side",
      ("correct = xp.all((A > 0.5) == (Y > 0.5), axis=1)",
       "correct = xp.all((A < 0.5) == (Y > 0.5), axis=1)")),
    # ------------------------------------------------------------------ _validation.py
    m("binary-target-unchecked", "_validation.py", "sigmoid targets other than 0/1 accepted",
      ("if not bool(xp.all((Y == 0.0) | (Y == 1.0))):", "if False:")),
    m("label-range-off-by-one", "_validation.py", "softmax label n_out accepted",
      ("else high if bool(high >= n_out) else None", "else high if bool(high > n_out) else None"),
      ("if low < 0 or high >= n_out:", "if low < 0 or high > n_out:")),
    m("X-width-unchecked", "_validation.py", "X with the wrong number of features accepted",
      ("    if X.shape[1] != n_features:\n", "    if False:\n")),
    # ------------------------------------------------------------------ data.py
    m("split-test-row-leaks", "data.py", "a test row also in training (plain split)",
      ("return np.sort(order[n_test:]), np.sort(order[:n_test])",
       "return np.sort(order[n_test - 1:]), np.sort(order[:n_test])")),
    m("train-test-split-leaks", "data.py", "a test row also in training (train_test_split)",
      ("test, train = order[:n_test], order[n_test:]",
       "test, train = order[:n_test], order[n_test - 1:]")),
    m("stratified-empty-test", "data.py", "a class may get no test row",
      ("n_tests.append(min(max(int(round(size * test_fraction)), 1), size - 1))",
       "n_tests.append(min(int(round(size * test_fraction)), size - 1))")),
    m("standardize-constant-column", "data.py", "constant features divided by zero",
      ("return cls(mean, np.where(constant, 1.0, std))", "return cls(mean, std)")),
    # ------------------------------------------------------------------ argument checks
    # (stale on code older than issue 8, which lacked these checks)
    m("fit-callback-unchecked", "training/options.py",
      "a non-callable callback found after epoch 1",
      ("    if callback is not None and not callable(callback):\n", "    if False:\n")),
    m("cast-range-unchecked", "_validation.py", "values beyond the dtype cast to inf",
      ("            if peak > largest:\n", "            if False:\n")),
    m("network-memory-unchecked", "network.py", "no memory estimate before allocating",
      ("        if too_large is not None:  # refuse", "        if False:  # refuse")),
    m("layer-sizes-mapping", "network.py", "a dict's keys taken as layer sizes",
      ("    if isinstance(layer_sizes, (Mapping, Set, str, bytes)):",
       "    if isinstance(layer_sizes, (str, bytes)):")),
    # ------------------------------------------------------------------ metrics, CLI
    m("metrics-threshold", "metrics.py", "metrics' threshold flipped at exactly 0.5",
      ("(outputs[:, 0] > 0.5)", "(outputs[:, 0] >= 0.5)"),
      ("(outputs[:, 0] >= 0.5)", "(outputs[:, 0] > 0.5)")),
    m("cli-target-test-statistics", "cli/train.py", "regression target standardised with "
      "test-split statistics",
      ("y_scaler = Standardizer.fit(y_train[:, None])",
       "y_scaler = Standardizer.fit(y_test[:, None])")),
    m("cli-features-all-rows", "cli/train.py", "features standardised with all rows",
      ("scaler = Standardizer.fit(X_train_raw) if args.standardize else None",
       "scaler = Standardizer.fit(data.X) if args.standardize else None")),
    # ------------------------------------------------------------------ serving, threads
    # (their own test files: the fast suite does not predict in blocks or count threads)
    m("folded-sigmoid-unnegated", "inference.py", "the folded sigmoid's weights not negated "
      "(the logistic function of -z)",
      ("params[2 * layer], params[2 * layer + 1] = -W, -b",
       "params[2 * layer], params[2 * layer + 1] = W, b"), tests=("test_inference.py",)),
    m("block-min-values-ignored", "inference.py", "a narrow output's blocks under 4096 "
      "values (XLA sums their rows another way)",
      ("values = -(-_MIN_ENTRIES // int(n_outputs)) if n_outputs >= 2 else 0", "values = 0"),
      tests=("test_inference.py",)),
    m("blas-control-kept", "threads.py", "the thread that set a BLAS count keeps "
      "threadpoolctl's control (other threads' caps and restores then do nothing)",
      ('clear = getattr(type(pool), "clear_controlling_thread", None)', "clear = None"),
      tests=("test_inference.py",)),
    m("predict-blas-uncapped", "inference.py", "host blocks' products on the whole BLAS pool "
      "(a row's bits then depend on the other rows of the product)",
      ("one_thread = on_host and m >= _MIN_ROWS", "one_thread = False and m >= _MIN_ROWS"),
      tests=("test_inference.py",)),
    m("predict-blocks-serial", "inference.py", "NumPy's blocks run one after another",
      ('workers = blas_threads() if one_thread and net.backend == "numpy" else 1',
       "workers = 1"), tests=("test_inference.py",)),
    m("predict-rows-unbalanced", "inference.py", "the block count not rounded up to a "
      "multiple of the threads", ("blocks = -(-blocks // workers) * workers", "blocks = blocks"),
      tests=("test_inference.py",)),
    m("blas-cap-first-out-restores", "threads.py", "the first holder out restores the BLAS "
      "pool while another still runs its products",
      ("            if _one_blas_holders == 0:\n                _restore(",
       "            if _one_blas_holders >= 0:\n                _restore("),
      tests=("test_inference.py",)),
    m("threads-busy-max", "threads.py", "busy cores: the larger of the runnable count and "
      "the load average, not the smaller",
      ("return min(elsewhere, math.ceil(load1))", "return max(elsewhere, math.ceil(load1))"),
      tests=("test_threads.py",)),
    m("threads-own-counted", "threads.py", "this process's own runnable threads taken for "
      "other work", ("return max(0, runnable - max(own_before, own_after, 1))",
                     "return max(0, runnable - 1)"),
      tests=("test_threads.py",)),
    m("optim-step-int32", "optim.py", "the step count always int32 (overflows past 2**31)",
      ("        return xp.int32\n    return xp.int64",
       "        return xp.int32\n    return xp.int32"),
      tests=("test_optim.py",)),
    m("csv-python-bytes", "_csv.py", "pyarrow parses a Python bytes (aborts exiting processes)",
      ("return pa.allocate_buffer(size + size // 4, memory_pool=pa.system_memory_pool())",
       "return pa.py_buffer(bytearray(size + size // 4))"),
      tests=("test_csv.py",)),
    m("csv-buffers-not-reused", "_csv.py", "every piece read into fresh memory (page faults)",
      ("            finally:\n                buffers.give(text)",
       "            finally:\n                pass"),
      tests=("test_csv.py",)),
    m("csv-pieces-out-of-order", "_csv.py", "pieces parsed at once yielded as they finish",
      ("                if len(pending) > workers:\n                    yield pending.popleft()",
       "                if len(pending) > workers:\n                    yield pending.pop()"),
      tests=("test_csv.py",)),
    m("csv-threads-left-running", "_csv.py", "a reader stopped early leaves its threads",
      ('    with ThreadPoolExecutor(workers, thread_name_prefix="xpnet-csv") as pool:',
       '    with contextlib.nullcontext(ThreadPoolExecutor(workers, '
       'thread_name_prefix="xpnet-csv")) as pool:'),
      tests=("test_csv.py",)),
    m("validation-on-device", "_validation.py", "host data checked on the device (JAX programs)",
      ('return backend.name != "numpy" and array_module(obj) in (None, "numpy")',
       "return False"),
      tests=("test_jit_cache.py",)),
    m("optim-scalar-jnp", "backends.py", "optimiser scalars through jnp.asarray",
      ("        if placed is not None:\n            return placed\n    return xp.asarray(value",
       "        if False:\n            return placed\n    return xp.asarray(value"),
      tests=("test_jit_cache.py",)),
    m("jax-put-aliases", "backends.py", "the caller's host array kept as the JAX buffer",
      ("            if np.may_share_memory(host, obj):", "            if False:"),
      tests=("test_jax.py",)),
    m("host-view-cast-kept", "_validation.py", "a JAX array the host checks cast is kept "
      "uncast", ("    if checked is host and host is not obj:", "    if host is not obj:"),
      tests=("test_validation.py",)),
    m("set-params-host-uncopied", "_validation.py", "set_params keeps the caller's NumPy "
      "array", ("    if host is not value and np.dtype(value.dtype) == checked.dtype:",
                "    if np.dtype(value.dtype) == checked.dtype:"),
      tests=("test_validation.py",)),
    m("bound-hidden-plus-one", "training/sources.py", "a hidden layer's output bound without "
      "the +1 (a sigmoid's 1/2 at Z = 0)", ("        a = bound + 1", "        a = bound"),
      tests=("test_divergence_outputs.py",)),
    m("bound-no-exp", "training/sources.py", "the exp output's loss bound without e^E",
      ("        P = P + xp.exp(E)", "        P = P"), tests=("test_divergence_outputs.py",)),
    m("bound-taken-when-infinite", "training/sources.py", "the finished check takes an "
      "overflowed bound for the loss",
      ("            if math.isfinite(bound):\n                return bound",
       "            if True:\n                return bound"),
      tests=("test_divergence_outputs.py",)),
    m("ahead-step0", "training/compiled.py", "a chunk started ahead draws its dropout masks "
      "from the running chunk's first step",
      ("        step0 = state.steps + n * plan.steps_per_epoch if self.dropout else None",
       "        step0 = state.steps if self.dropout else None"), tests=("test_dropout.py",)),
    m("ahead-always-used", "training/compiled.py", "a chunk started ahead used whatever "
      "the loop asks for",
      ("        return (ahead.n <= n and self.carried is ahead.carried",
       "        return True or (ahead.n <= n and self.carried is ahead.carried"),
      tests=("test_compiled.py",)),
    m("ahead-rates-unshifted", "training/compiled.py", "a chunk started ahead takes the "
      "running chunk's rates", ("                                 n + following)[n:]",
                                "                                 n + following)[:following]"),
      tests=("test_compiled.py",)),
    m("memo-key-without-check", "_validation.py", "a remembered check answers another "
      "check of the same array", ("    memo_key = (id(obj), str(backend.device), str(dtype), "
                                  "*key)", "    memo_key = (id(obj), str(backend.device))"),
      tests=("test_validation.py",)),
    m("memo-host-data", "_validation.py", "NumPy data (mutable) are remembered too",
      ("    if host is obj:  # host data (mutable): checked each time; else a JAX array's "
       "view", "    if False:"), tests=("test_validation.py",)),
    m("scalar-key-without-dtype", "backends.py", "a JAX scalar is remembered by its bytes "
      "alone", ("        key = (host.tobytes(), host.dtype.str, str(device))",
                "        key = (host.tobytes(), str(device))"), tests=("test_validation.py",)),
    m("scalar-deleted-reused", "backends.py", "a deleted JAX scalar is handed out again",
      ("        if placed is None or placed.is_deleted():", "        if placed is None:"),
      tests=("test_validation.py",)),
    m("finished-check-unwired", "training/api.py", "a chunked fit's end runs the loss "
      "program", ("    if isinstance(plan.runner, ChunkRunner) and guard.outputs is not None:",
                  "    if False:"), tests=("test_compiled.py",)),
    m("finished-check-infinite-bound", "training/compiled.py", "the last call's bound is "
      "taken when it overflows", ("            if (math.isfinite(bound) and len(params) == "
                                  "len(last)", "            if (len(params) == len(last)"),
      tests=("test_compiled.py",)),
    m("chunk-epochs-any-finite", "training/compiled.py", "an epoch with one non-finite "
      "parameter passes for finite", ("        return [(loss, [] if all(row) else",
                                      "        return [(loss, [] if any(row) else"),
      tests=("test_compiled.py", "test_divergence.py")),
    m("sgd-schedule-constant", "optim.py", "invscaling's rates are predicted constant",
      ("        return self.schedule == \"invscaling\"", "        return False"),
      tests=("test_compiled.py", "test_optim.py")),
    m("thread-limits-kept", "threads.py", "the pools keep the fit's thread count after it",
      ("    for pool, before in reversed(changed):\n        _set_threads(pool, before)",
       "    for pool, before in reversed(changed):\n        pass"),
      tests=("test_threads.py",)),
]


def apply(mutant: Mutant, source: str) -> str | None:
    """The mutated source, or ``None`` when no alternative matches exactly once."""
    for snippet, replacement in mutant.edits:
        if source.count(snippet) == 1:
            return source.replace(snippet, replacement)
    return None


def run_tests(src: Path, tests: list[Path], timeout: float) -> tuple[str, float, str]:
    """Run the tests against ``src``: ("passed" | "failed" | "timeout", seconds, tail)."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("XPNET_DEBUG", None)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "--backend", "numpy",
               # hypothesis's plugin alone costs seconds of start-up per run
               "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--no-header",
               *map(str, tests)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=tests[0].parent)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    seconds = time.perf_counter() - start
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
    return ("passed" if proc.returncode == 0 else "failed"), seconds, tail[0]


def check_import_path(src: Path) -> None:
    """The mutated copy must shadow an installed (editable) xpnet."""
    proc = subprocess.run(
        [sys.executable, "-c", "import xpnet; print(xpnet.__file__)"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)}, timeout=60,
    )
    if not proc.stdout.strip().startswith(str(src)):
        sys.exit(f"run_mutants: xpnet is imported from {proc.stdout.strip() or proc.stderr!r}, "
                 f"not from the copy {src}; an installed xpnet shadows PYTHONPATH")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="source tree to mutate (a folder holding xpnet/)")
    parser.add_argument("--tests", type=Path, default=ROOT / "tests",
                        help="tests folder (its conftest.py, helpers and test files)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run side by side")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant")
    parser.add_argument("-k", dest="select", default=None,
                        help="only mutants whose id contains this text (or one of several, "
                        "separated by commas)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)

    chosen = None if args.select is None else args.select.split(",")
    mutants = [mu for mu in MUTANTS if chosen is None or any(c in mu.id for c in chosen)]
    if args.list:
        for mu in mutants:
            print(f"{mu.id:30} {mu.file:15} {mu.what}")
        return 0
    package = args.src / "xpnet"
    tests = [args.tests / name for name in FAST_TESTS if (args.tests / name).exists()]
    if not package.is_dir() or not tests:
        print(f"run_mutants: need {package}/ and test files in {args.tests}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="xpnet-mutants-") as tmp:
        def copy(name: str, source: Path) -> Path:
            target = Path(tmp) / name
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            return target

        # One snapshot at the start: edits to the checkout during the run change nothing.
        baseline_src = copy("baseline", args.src)
        check_import_path(baseline_src)
        print(f"tests: {', '.join(t.name for t in tests)} (in {args.tests})")
        targeted = sorted({name for mu in mutants for name in mu.tests} - set(FAST_TESTS))
        status, seconds, tail = run_tests(
            baseline_src, tests + [args.tests / name for name in targeted], args.timeout)
        print(f"unmutated source: {status} in {seconds:.0f} s ({tail})", flush=True)
        if status != "passed":
            print("run_mutants: the unmutated source fails these tests; fix that first",
                  file=sys.stderr)
            return 2

        def one(index_mutant: tuple[int, Mutant]) -> tuple[Mutant, str, float, str]:
            index, mutant = index_mutant
            path = baseline_src / "xpnet" / mutant.file
            mutated = apply(mutant, path.read_text(encoding="utf-8"))
            if mutated is None:
                return mutant, "stale", 0.0, "snippet not found exactly once"
            src = copy(f"m{index}", baseline_src)
            (src / "xpnet" / mutant.file).write_text(mutated, encoding="utf-8")
            own = [args.tests / name for name in mutant.tests]
            status, seconds, tail = run_tests(src, own or tests, args.timeout)
            shutil.rmtree(src, ignore_errors=True)
            verdict = {"failed": "killed", "timeout": "killed (timeout)"}.get(status, "SURVIVED")
            print(f"{verdict:16} {mutant.id:30} {seconds:5.0f} s  {mutant.what}", flush=True)
            return mutant, verdict, seconds, tail

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(one, enumerate(mutants)))

    killed = [r for r in results if r[1].startswith("killed")]
    survived = [r for r in results if r[1] == "SURVIVED"]
    stale = [r for r in results if r[1] == "stale"]
    applicable = len(killed) + len(survived)
    print()
    print(f"mutation score: {len(killed)}/{applicable} killed"
          + (f" ({100 * len(killed) / applicable:.0f}%)" if applicable else "")
          + f", {len(stale)} stale, {time.perf_counter() - start:.0f} s")
    for mutant, *_ in survived:
        print(f"  survived: {mutant.id} ({mutant.file}: {mutant.what})")
    for mutant, *_ in stale:
        print(f"  stale:    {mutant.id} ({mutant.file}: snippet not found)")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

"""Dropout: the counter-based mask stream and inverted dropout in the training step.

Three kinds of tests:

- **bits**: the masks every backend makes on its device equal, bit for bit, a reference
  written here in plain Python integers (no array library), for eager steps (Python
  ints), compiled steps (0-d arrays) and JAX in 32-bit mode;
- **statistics** of the stream (NumPy, fixed keys, so deterministic): keep rate per
  layer and step, bit balance, lag correlations between consecutive steps, layers,
  units and rows. Each statistic is standardised (``z``: deviation over its standard
  deviation under independence) and must stay below ``Z_MAX = 5``: a fair stream passes
  each check with probability 1 - 6e-7, a biased one (a wrong shift, a lost key) lands
  at hundreds of sigma;
- **math and plumbing**: finite differences and torch autograd with the mask held fixed,
  eager = compiled = every backend, the step counter, files, estimators, CLI.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from helpers import assert_close, make_problem
from test_cli import assert_error, run

import xpnet
from xpnet import _dropout, core
from xpnet._dropout import DropoutStream

Z_MAX = 5.0
MASK = 0xFFFFFFFF


# ---------------------------------------------------------------------- the reference
def _fmix32(x: int) -> int:
    """MurmurHash3's 32-bit finaliser, on Python integers."""
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & MASK
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & MASK
    return x ^ (x >> 16)


def reference_words(key, step: int, layer: int, rows, n_units: int) -> np.ndarray:
    """The hash of xpnet._dropout's notes, one element at a time in Python integers."""
    k0, k1 = key
    layer_key = _fmix32(k0 ^ _fmix32((k1 + (layer + 1) * 0x27D4EB2F) & MASK))
    step_key = _fmix32(layer_key ^ (((step & MASK) * 0x9E3779B1 + 0x7F4A7C15) & MASK))
    out = np.zeros((len(rows), n_units), dtype=np.int64)
    for a, row in enumerate(rows):
        row_hash = _fmix32(((int(row) & MASK) * 0xD3A2646D + step_key) & MASK)
        for j in range(n_units):
            unit_hash = _fmix32((j * 0x165667B1 + layer_key) & MASK)
            x = row_hash ^ unit_hash
            x ^= x >> 16
            x = (x * 0x85EBCA6B) & MASK
            x ^= x >> 13
            out[a, j] = (x * 0xC2B2AE35) & MASK  # fmix32 less its last xor-shift
    return out


KEYS = [(0, 0), (123456789, 987654321), (MASK, 1)]
ROWS = [0, 1, 2, 7, 1000, 2**31 - 1, 2**31 + 5, 2**32 - 1]


def _words(backend_name: str, key, step, layer, rows, n_units, step_as_array=False):
    backend = xpnet.get_backend(backend_name)
    xp = backend.xp
    device_rows = backend.asarray(np.asarray(rows, dtype=np.int64))
    if step_as_array:
        step = xp.asarray(step, dtype=xp.int64, device=backend.device)
    words = _dropout.keep_words(xp, key, step, layer, device_rows, n_units)
    return np.asarray(xpnet.to_numpy(words)).astype(np.int64)


@pytest.mark.parametrize("key", KEYS)
def test_words_equal_the_reference_on_every_backend(backend, key):
    if backend == "jax":
        pytest.importorskip("jax").config.update("jax_enable_x64", True)  # int64 rows
    for step, layer in [(0, 0), (1, 0), (0, 1), (12345, 2), (2**32 + 3, 1)]:
        expected = reference_words(key, step, layer, ROWS, 11)
        got = _words(backend, key, step, layer, ROWS, 11)
        np.testing.assert_array_equal(got, expected, err_msg=f"{backend} step {step}")
        if step < 2**31:  # a compiled epoch's step: a 0-d array on the device
            got = _words(backend, key, step, layer, ROWS, 11, step_as_array=True)
            np.testing.assert_array_equal(got, expected, err_msg=f"{backend} 0-d step")


def test_masks_equal_the_reference_under_jit_and_in_32_bit_jax():
    """JAX without ``jax_enable_x64`` (what a float32 network gets in a fresh process) has
    no int64: the lanes are uint32 and the rows int32; and under ``jax.jit`` the step is
    a tracer. Same bits as the reference in both."""
    pytest.importorskip("jax")
    code = textwrap.dedent("""
        import json, jax, jax.numpy as jnp
        from xpnet import _dropout
        assert not jax.config.jax_enable_x64
        rows = jnp.asarray([0, 1, 2, 7, 1000, 2**31 - 1], dtype=jnp.int32)
        eager = _dropout.keep_words(jnp, (123456789, 987654321), 77, 1, rows, 11)
        jitted = jax.jit(lambda s, r: _dropout.keep_words(
            jnp, (123456789, 987654321), s, 1, r, 11))(jnp.asarray(77), rows)
        print(json.dumps([eager.dtype.name, eager.tolist(), jitted.tolist()]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={"JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu",
                                            "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    dtype, eager, jitted = json.loads(proc.stdout)
    assert dtype == "uint32"
    expected = reference_words((123456789, 987654321), 77, 1, ROWS[:6], 11)
    np.testing.assert_array_equal(np.array(eager), expected)
    np.testing.assert_array_equal(np.array(jitted), expected)


def test_lanes_are_uint32_except_int64_on_torch(backend):
    xp = xpnet.get_backend(backend).xp
    expected = "int64" if backend == "torch" else "uint32"
    assert expected in str(_dropout.lane_dtype(xp))


def test_a_chunk_makes_the_masks_of_its_own_rows():
    """What distributed training relies on: a row's mask depends on its global index, not
    on the batch or chunk it is computed in, nor on its position there."""
    rows = np.random.default_rng(0).permutation(300)
    whole = _dropout.keep_mask(np, (5, 6), 9, 0, rows, 40, 0.3)
    parts = [_dropout.keep_mask(np, (5, 6), 9, 0, rows[a:b], 40, 0.3)
             for a, b in [(0, 100), (100, 101), (101, 300)]]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    reverse = _dropout.keep_mask(np, (5, 6), 9, 0, rows[::-1], 40, 0.3)
    np.testing.assert_array_equal(reverse[::-1], whole)


def test_threshold_and_scale():
    assert _dropout.threshold(0.0) == 0  # every word >= 0: all kept
    assert _dropout.threshold(0.5) == 2**31
    assert _dropout.threshold(1 - 1e-12) == MASK  # the largest lane value
    stream = DropoutStream((1, 2), 3, np.arange(50))
    masks = _dropout.scaled_masks(np, stream, (0.0, 0.25), (4, 30), np.float64)
    assert masks[0] is None  # p = 0: no mask at all
    assert set(np.unique(masks[1])) == {0.0, 1 / 0.75}


# ---------------------------------------------------------------------- statistics
STAT_KEY = (2024, 1129)
STAT_ROWS = np.arange(1000)
STAT_UNITS = 256


def _stat_words(step: int, layer: int) -> np.ndarray:
    return _dropout.keep_words(np, STAT_KEY, step, layer, STAT_ROWS, STAT_UNITS)


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.5, 0.9])
def test_keep_rate_is_binomial_per_layer_and_step(rate):
    """Keep rate of each (layer, step) grid of 256,000 draws: z = (rate - (1-p)) /
    sqrt(p(1-p)/N) below 5 for every one of 3 layers x 8 steps."""
    n = STAT_ROWS.size * STAT_UNITS
    worst = 0.0
    for layer in range(3):
        for step in range(8):
            kept = float(np.mean(_stat_words(step, layer) >= _dropout.threshold(rate)))
            z = (kept - (1 - rate)) / math.sqrt(rate * (1 - rate) / n)
            assert abs(z) < Z_MAX, f"layer {layer} step {step}: keep rate {kept} (z={z:.1f})"
            worst = max(worst, abs(z))
    print(f"p={rate}: worst |z| of 24 keep rates {worst:.2f}")


def test_bits_are_balanced():
    """Each of the 32 bits of the words is 1 half of the time (z of its mean below 5)."""
    words = _stat_words(3, 1).astype(np.int64)
    n = words.size
    z = [(np.mean((words >> bit) & 1) - 0.5) / (0.5 / math.sqrt(n)) for bit in range(32)]
    print(f"bit balance: worst |z| over 32 bits {max(map(abs, z)):.2f}")
    assert max(map(abs, z)) < Z_MAX, z


def _lag_z(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two paired samples times sqrt(n): ~N(0, 1) if independent."""
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1] * math.sqrt(a.size))


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_no_correlation_between_steps_layers_units_or_rows(rate):
    """Keep decisions of neighbours in every counter: step s vs s+1, layer l vs l+1,
    unit j vs j+1, row i vs i+1 (and the words themselves, as uniforms)."""
    t = _dropout.threshold(rate)
    base = _stat_words(4, 0)
    pairs = {
        "steps": (base, _stat_words(5, 0)),
        "layers": (base, _stat_words(4, 1)),
        "units": (base[:, :-1], base[:, 1:]),
        "rows": (base[:-1], base[1:]),
    }
    for name, (a, b) in pairs.items():
        for what, x, y in [("masks", a >= t, b >= t), ("words", a, b)]:
            z = _lag_z(x, y)
            print(f"p={rate} {name} {what}: lag correlation z={z:.2f}")
            assert abs(z) < Z_MAX, f"{name} ({what}): z={z:.1f}"


def test_keys_give_unrelated_streams():
    other = _dropout.keep_words(np, (STAT_KEY[0] + 1, STAT_KEY[1]), 4, 0, STAT_ROWS, STAT_UNITS)
    assert abs(_lag_z(_stat_words(4, 0), other)) < Z_MAX


# ---------------------------------------------------------------------- the step
def _step_setup(backend="numpy", activation="tanh", output="softmax", rates=(0.3, 0.5),
                sizes=(3, 6, 5, 3), seed=1):
    X, Y = make_problem(output, m=9, seed=seed)
    net = xpnet.MLP(list(sizes), activation=activation, output=output, backend=backend,
                    dtype="float64", seed=seed, alpha=0.1, dropout=list(rates))
    # non-zero biases: a row whose units are all zero after relu and dropout would
    # otherwise sit exactly on relu's kink in the next layer (Z = b = 0), where central
    # differences measure 1/2 and no derivative is right
    rng = np.random.default_rng(seed)
    net.set_params([(np.asarray(xpnet.to_numpy(W)), rng.normal(0.0, 0.5, size=b.shape[0]))
                    for W, b in net.params])
    Xd, Yd = net.check_XY(X, Y)
    rows = net.array_backend.asarray(np.array([5, 0, 17, 3, 2, 8, 40, 1, 6]))
    stream = DropoutStream(net.dropout_key, 7, rows)
    return net, Xd, Yd, stream


def _pure(net, params, X, Y, stream):
    return core.loss_and_grads(params, X, Y, hidden=net.hidden_activations, output=net.output_loss,
                               alpha=net.alpha, dropout=net.dropout, stream=stream)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_finite_differences_with_the_mask_held_fixed(backend, activation):
    """Central differences (h = 1e-6, float64) of the dropout loss, the stream (so the
    masks) fixed, against the hand-written gradients; see test_gradients for the bound."""
    if backend == "jax":
        pytest.importorskip("jax").config.update("jax_enable_x64", True)
    net, X, Y, stream = _step_setup(backend, activation)
    _, grads = _pure(net, net.flat_params, X, Y, stream)
    base = [np.array(xpnet.to_numpy(p), dtype=np.float64) for p in net.flat_params]
    h = 1e-6
    for index, array in enumerate(base):
        numeric = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            values = []
            for sign in (1.0, -1.0):
                trial = [p.copy() for p in base]
                trial[index][position] += sign * h
                params = [net.array_backend.asarray(p, dtype=net.array_dtype) for p in trial]
                values.append(float(_pure(net, params, X, Y, stream)[0]))
            numeric[position] = (values[0] - values[1]) / (2 * h)
        analytic = np.asarray(xpnet.to_numpy(grads[index]), dtype=np.float64)
        error = np.linalg.norm(analytic - numeric) / max(
            np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-300)
        assert error < 1e-6, f"parameter {index}: relative error {error:.2e}"


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("output", ["softmax", "identity"])
def test_gradients_equal_torch_autograd_with_the_same_masks(activation, output):
    """torch computes the dropped network (A·M/(1-p), M from our keep_mask as a fixed
    boolean tensor, the scale 1/(1-p) written here) and differentiates it itself."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    net, X, Y, stream = _step_setup("numpy", activation, output)
    loss, grads = _pure(net, net.flat_params, X, Y, stream)
    params = [torch.tensor(np.asarray(p), requires_grad=True) for p in net.flat_params]
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation]
    A = torch.tensor(X)
    for layer, rate in enumerate(net.dropout):
        A = act(A @ params[2 * layer] + params[2 * layer + 1])
        keep = _dropout.keep_mask(np, stream.key, stream.step, layer, stream.rows,
                                  A.shape[1], rate)
        A = A * torch.tensor(keep, dtype=torch.float64) / (1 - rate)
    Z = A @ params[-2] + params[-1]
    m = X.shape[0]
    if output == "softmax":
        expected = F.cross_entropy(Z, torch.tensor(np.argmax(Y, axis=1)), reduction="mean")
    else:
        expected = 0.5 * F.mse_loss(Z, torch.tensor(Y), reduction="sum") / m
    expected = expected + net.alpha / (2 * m) * sum((W * W).sum() for W in params[0::2])
    expected.backward()
    assert abs(float(loss) - float(expected)) < 1e-12 * max(1.0, abs(float(expected)))
    for index, (ours, theirs) in enumerate(zip(grads, params)):
        assert_close(ours, theirs.grad.numpy(), rtol=1e-10, what=f"parameter {index}")


def test_dropout_changes_training_and_nothing_at_predict_time():
    X, Y = make_problem("softmax", m=40, seed=3)
    plain = xpnet.MLP([3, 8, 3], activation="tanh", output="softmax", seed=2)
    dropped = xpnet.MLP([3, 8, 3], activation="tanh", output="softmax", seed=2, dropout=0.4)
    # same weights: predictions and the public loss/gradients are the full network's
    np.testing.assert_array_equal(plain.predict_proba(X), dropped.predict_proba(X))
    assert float(plain.loss(X, Y)) == float(dropped.loss(X, Y))
    h_plain = plain.fit(X, Y, epochs=3, lr=0.2, batch_size=8)
    h_dropped = dropped.fit(X, Y, epochs=3, lr=0.2, batch_size=8)
    assert h_plain.loss[0] != h_dropped.loss[0]  # the very first batch is already dropped
    assert not np.allclose(plain.params[0][0], dropped.params[0][0])


def test_zero_rates_and_no_stream_are_the_plain_step():
    net, X, Y, stream = _step_setup(rates=(0.3, 0.5))
    parts = dict(hidden=net.hidden_activations, output=net.output_loss, alpha=net.alpha)
    plain = core.loss_and_grads(net.flat_params, X, Y, **parts)
    for loss, grads in [
        core.loss_and_grads(net.flat_params, X, Y, **parts, dropout=net.dropout),  # no stream
        core.loss_and_grads(net.flat_params, X, Y, **parts, dropout=(0.0, 0.0), stream=stream),
    ]:
        assert float(loss) == float(plain[0])
        for a, b in zip(grads, plain[1]):
            np.testing.assert_array_equal(a, b)


def test_chunks_with_their_global_rows_add_up_to_the_batch():
    """What a data-parallel engine does: each chunk passes its rows' global indices (and
    the batch's step) and the global row count; the chunks' losses and gradients add up
    to the whole batch's, dropout included."""
    X, Y = make_problem("softmax", m=30, seed=8)
    net = xpnet.MLP([3, 12, 9, 3], activation="tanh", output="softmax", seed=3,
                    dropout=[0.4, 0.2])
    X, Y = net.check_XY(X, Y)
    arch = net.architecture
    order = np.random.default_rng(1).permutation(100)[:30]  # the batch's global rows
    whole = arch.loss_and_grads(net.flat_params, X, Y, None, None,
                                stream=DropoutStream(net.dropout_key, 11, order))
    parts = [
        arch.loss_and_grads(net.flat_params, X[a:b], Y[a:b], None, 30,
                            stream=DropoutStream(net.dropout_key, 11, order[a:b]))
        for a, b in [(0, 7), (7, 19), (19, 30)]
    ]
    assert_close(sum(float(p[0]) for p in parts), float(whole[0]), 1e-13, "loss")
    for i, g in enumerate(whole[1]):
        assert_close(sum(p[1][i] for p in parts), g, 1e-13, f"grad {i}")


def test_the_step_is_pure_with_dropout():
    net, X, Y, stream = _step_setup()
    before = [p.copy() for p in net.flat_params] + [X.copy(), Y.copy(), stream.rows.copy()]
    first = _pure(net, net.flat_params, X, Y, stream)
    second = _pure(net, net.flat_params, X, Y, stream)
    assert float(first[0]) == float(second[0])
    for a, b in zip(before, [*net.flat_params, X, Y, stream.rows]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------- training
def _train(backend, dtype="float64", compile=False, epochs=3, batch_size=16, **kwargs):
    X, Y = make_problem("softmax", m=70, n_in=4, seed=4)
    net = xpnet.MLP([4, 10, 7, 3], activation="tanh", output="softmax", backend=backend,
                    dtype=dtype, seed=5, dropout=[0.3, 0.2])
    history = net.fit(X, Y, epochs=epochs, lr=0.2, batch_size=batch_size, compile=compile,
                      **kwargs)
    return net, history


def test_training_with_dropout_agrees_across_backends(backend):
    """The masks are the same bits everywhere, so dropout training keeps the float64
    cross-backend agreement of the rest of xpnet (summation order only)."""
    if backend == "jax":
        pytest.importorskip("jax").config.update("jax_enable_x64", True)
    reference, ref_history = _train("numpy")
    net, history = _train(backend)
    np.testing.assert_allclose(history.loss, ref_history.loss, rtol=1e-10)
    for (W, b), (W0, b0) in zip(net.params, reference.params):
        assert_close(W, W0, rtol=1e-10)
        assert_close(b, b0, rtol=1e-10)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("optimizer", [None, "adam"])
@pytest.mark.parametrize("calls", ["epoch-per-call", "chunks", "chunks-of-2"])
def test_compiled_epochs_draw_the_eager_masks(shuffle, optimizer, calls, monkeypatch):
    """compile=True on JAX (batches in lax.fori_loop, the last smaller batch after it)
    gives the eager loop's numbers to float rounding, over two fits (step counter):
    with one epoch per call (a callback asks for per-epoch work) and with several epochs
    per call (the chunk program: epoch ``e`` of a chunk starts at step
    ``start + e · steps per epoch``; in chunks of 2, unshuffled chunks are started
    ahead of the host's records, at the step their epochs will have)."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from xpnet import compiled as compiled_module
    from xpnet.training import compiled as engine

    starts = []
    if calls == "chunks-of-2":
        monkeypatch.setattr(engine, "MAX_CHUNK_EPOCHS", 2)
        start = engine.ChunkRunner._start
        monkeypatch.setattr(engine.ChunkRunner, "_start",
                            lambda self, state, n: starts.append(n) or start(self, state, n))
    options = {"shuffle": shuffle, "optimizer": optimizer}
    if calls == "epoch-per-call":
        options["callback"] = lambda epoch, loss: None
    results = []
    for compile in (False, True):
        compiled_module._programs.clear()
        net, history = _train("jax", compile=compile, **options)
        second = net.fit(*make_problem("softmax", m=70, n_in=4, seed=4), epochs=2, lr=0.2,
                         batch_size=16, compile=compile, **options)
        results.append((net, history.loss + second.loss))
        chunked = [key for key in compiled_module._programs if key[0] == "chunk"]
        assert bool(chunked) == (compile and calls != "epoch-per-call")
    (eager, eager_loss), (compiled, compiled_loss) = results
    if calls == "chunks-of-2":  # 3 epochs (chunks of 2 and 1), then 2: the 1 ran ahead
        assert starts == ([2, 1, 2] if shuffle else [2, 2])
    assert compiled._steps == eager._steps == 5 * 5
    np.testing.assert_allclose(compiled_loss, eager_loss, rtol=1e-12)
    for (W, b), (W0, b0) in zip(compiled.params, eager.params):
        assert_close(W, W0, rtol=1e-12)
        assert_close(b, b0, rtol=1e-12)


def test_a_second_fit_continues_the_stream():
    """The step counts every optimiser step of the network's life: two fits of 2 epochs
    are one fit of 4 (plain SGD has no state; the shuffles continue too). Were the
    counter reset, the second fit would repeat the first fit's masks."""
    X, Y = make_problem("softmax", m=50, n_in=4, seed=6)
    once = xpnet.MLP([4, 9, 3], output="softmax", seed=7, dropout=0.5)
    once.fit(X, Y, epochs=4, lr=0.3, batch_size=12)
    twice = xpnet.MLP([4, 9, 3], output="softmax", seed=7, dropout=0.5)
    twice.fit(X, Y, epochs=2, lr=0.3, batch_size=12)
    assert twice._steps == 2 * 5
    twice.fit(X, Y, epochs=2, lr=0.3, batch_size=12)
    assert once._steps == twice._steps == 4 * 5
    for (W, b), (W0, b0) in zip(twice.params, once.params):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


def test_the_seed_keys_the_stream():
    a = xpnet.MLP([4, 9, 3], seed=1, dropout=0.5)
    b = xpnet.MLP([4, 9, 3], seed=1, dropout=0.5)
    c = xpnet.MLP([4, 9, 3], seed=2, dropout=0.5)
    assert a._dropout_key == b._dropout_key != c._dropout_key
    # the weights and shuffles of a seed are those it had before dropout existed
    np.testing.assert_array_equal(a.params[0][0], xpnet.MLP([4, 9, 3], seed=1).params[0][0])


def test_lbfgs_refuses_dropout():
    X, Y = make_problem("softmax", m=20, seed=1)
    net = xpnet.MLP([3, 4, 3], output="softmax", dropout=0.2)
    with pytest.raises(ValueError, match="optimizer='lbfgs' cannot train with dropout"):
        net.fit(X, Y, optimizer="lbfgs", epochs=3)


@pytest.mark.parametrize(("dropout", "error", "match"), [
    (1.0, ValueError, r"dropout must be in \[0, 1\); got 1.0"),
    (-0.1, ValueError, r"dropout must be in \[0, 1\)"),
    (math.nan, ValueError, r"dropout must be in \[0, 1\)"),
    ([0.1], ValueError, "dropout lists 1 rate but the network has 2 hidden layers"),
    ([0.1, 0.2, 0.3], ValueError, "dropout lists 3 rates"),
    ([0.1, 1.5], ValueError, r"dropout\[1\] must be in \[0, 1\); got 1.5"),
    ("0.2", TypeError, "dropout must be a number in"),
    (True, TypeError, "dropout must be a number in"),
    ([0.1, "x"], TypeError, r"dropout\[1\] must be a number"),
    ({0.1, 0.2}, TypeError, "dropout must be a number in"),
])
def test_bad_rates_are_refused_naming_the_argument(dropout, error, match):
    with pytest.raises(error, match=match):
        xpnet.MLP([3, 4, 4, 2], dropout=dropout)


def test_rates_per_layer_and_repr():
    net = xpnet.MLP([3, 4, 4, 2], dropout=(0.1, 0))
    assert net.dropout == (0.1, 0.0)
    assert "dropout=[0.1, 0.0]" in repr(net)
    assert xpnet.MLP([3, 4, 4, 2], dropout=np.float32(0.25)).dropout == (0.25, 0.25)
    assert "dropout" not in repr(xpnet.MLP([3, 4, 2]))
    assert xpnet.MLP([3, 2], dropout=0.5).dropout == ()  # no hidden layer: nothing to drop


# ---------------------------------------------------------------------- files
def test_model_files_keep_the_rates(tmp_path):
    net = xpnet.MLP([3, 4, 4, 2], output="softmax", dropout=[0.3, 0.1])
    xpnet.save(net, tmp_path / "m.npz")
    loaded = xpnet.load(tmp_path / "m.npz")
    assert loaded.dropout == (0.3, 0.1)
    assert xpnet.io.read_header(tmp_path / "m.npz")["dropout"] == [0.3, 0.1]


def test_files_without_dropout_have_no_field_and_load(tmp_path):
    """A network without dropout writes the header of before (older xpnets read it), and
    such a file, old or new, loads with dropout off."""
    from crafting import decoded_header, small_model

    arrays = small_model(tmp_path / "old.npz")
    assert "dropout" not in decoded_header(arrays)
    assert xpnet.load(tmp_path / "old.npz").dropout == (0.0,)


@pytest.mark.parametrize("rates", [[0.5, 0.5], [1.0], ["0.1"], 0.1, [True]])
def test_bad_dropout_fields_are_refused(tmp_path, rates):
    from crafting import decoded_header, small_model, with_header

    arrays = small_model(tmp_path / "m.npz")
    header = decoded_header(arrays)
    header["dropout"] = rates
    with_header(tmp_path / "bad.npz", arrays, header)
    with pytest.raises(xpnet.io.ModelFileError, match="field 'dropout'"):
        xpnet.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------------- estimators
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_take_dropout():
    from xpnet import MLPClassifier, MLPRegressor

    X, y = make_problem("softmax", m=60, seed=2)
    plain = MLPClassifier((8, 6), max_iter=5, random_state=0).fit(X, y)
    dropped = MLPClassifier((8, 6), max_iter=5, random_state=0, dropout=[0.3, 0.0]).fit(X, y)
    again = MLPClassifier((8, 6), max_iter=5, random_state=0, dropout=[0.3, 0.0]).fit(X, y)
    assert dropped._fitted.net.dropout == (0.3, 0.0)
    assert not np.allclose(plain.coefs_[0], dropped.coefs_[0])
    np.testing.assert_array_equal(dropped.coefs_[0], again.coefs_[0])  # random_state keys it
    steps = dropped._fitted.net.steps
    dropped.partial_fit(X, y)
    assert dropped._fitted.net.steps > steps  # partial_fit continues the stream
    MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, dropout=0.2).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="needs solver='adam' or 'sgd'"):
        MLPClassifier((5,), solver="lbfgs", dropout=0.2).fit(X, y)
    with pytest.raises(ValueError, match="dropout lists 1 rate but the network has 2"):
        MLPClassifier((5, 5), dropout=[0.2]).fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_without_dropout_draws_nothing_more_from_random_state():
    from xpnet import MLPClassifier

    X, y = make_problem("softmax", m=30, seed=2)
    rs = np.random.RandomState(0)
    MLPClassifier((4,), max_iter=2, random_state=rs).fit(X, y)
    rs_drop = np.random.RandomState(0)
    MLPClassifier((4,), max_iter=2, random_state=rs_drop, dropout=0.0).fit(X, y)
    assert rs.randint(1 << 30) == rs_drop.randint(1 << 30)


# ---------------------------------------------------------------------- CLI
def test_cli_dropout(tmp_path):
    model = tmp_path / "m.npz"
    proc = run("train", "--dataset", "digits", "--layers", "16,8", "--dropout", "0.2,0.1",
               "--epochs", "3", "--batch-size", "64", "--save", model, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["training"]["dropout"] == [0.2, 0.1]
    assert xpnet.load(model).dropout == (0.2, 0.1)
    text = run("train", "--dataset", "digits", "--layers", "16", "--dropout", "0.3",
               "--epochs", "2", "--batch-size", "64")
    assert text.returncode == 0, text.stderr
    assert ", dropout 0.3," in text.stdout


@pytest.mark.parametrize(("value", "fragment"), [
    ("1", "argument --dropout: must be a rate in [0, 1)"),
    ("0.2,x", "argument --dropout: must be a rate in [0, 1)"),
    ("0.1,0.2,0.3", "--dropout lists 3 rates for 2 hidden layers"),
])
def test_cli_bad_dropout(value, fragment):
    proc = run("train", "--dataset", "digits", "--layers", "16,8", "--dropout", value,
               "--epochs", "1")
    assert_error(proc)
    assert fragment in proc.stderr


_ORDER_SENSITIVE = (
    "a row's dropout mask is keyed by its index in the training data, so a row given "
    "weight 2 keeps one mask while its repeated copy draws its own (and, with "
    "mini-batches, lands in another batch): the fits differ by design"
)


def _dropout_failures(estimator) -> dict[str, str]:
    return {
        "check_sample_weight_equivalence_on_dense_data": _ORDER_SENSITIVE,
        "check_sample_weight_equivalence_on_sparse_data": _ORDER_SENSITIVE,
    }


def _dropout_estimators():
    from xpnet import MLPClassifier, MLPRegressor

    return [MLPClassifier(max_iter=50, dropout=0.2, random_state=0),
            MLPRegressor(max_iter=50, dropout=[0.1], random_state=0)]


try:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.estimator_checks import parametrize_with_checks
except ImportError:  # pragma: no cover - scikit-learn is in the test extra
    def test_estimators_with_dropout_pass_sklearns_checks():
        pytest.skip("scikit-learn is not installed (xpnet[sklearn])")
else:
    @parametrize_with_checks(_dropout_estimators(), expected_failed_checks=_dropout_failures)
    def test_estimators_with_dropout_pass_sklearns_checks(estimator, check, monkeypatch):
        monkeypatch.setenv("SCIPY_ARRAY_API", "1")  # as tests/test_estimators.py
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", "scikit-learn's array_api_dispatch is on",
                                    UserWarning)  # (set after SciPy's import, as there)
            check(estimator)


def test_compiled_dropout_in_32_bit_jax_matches_numpy():
    """A float32 JAX network in a fresh process (no ``jax_enable_x64``): the compiled
    epoch's step counter and rows are int32 there; eager JAX, compiled JAX and NumPy
    draw the same masks, so they agree to float32 rounding over two fits."""
    pytest.importorskip("jax")
    code = textwrap.dedent("""
        import json, numpy as np, jax, xpnet
        assert not jax.config.jax_enable_x64
        rng = np.random.default_rng(0)
        X = rng.normal(size=(70, 4)).astype(np.float32)
        y = rng.integers(0, 3, 70)
        weights = []
        for backend, compile in [("numpy", False), ("jax", False), ("jax", True)]:
            net = xpnet.MLP([4, 10, 7, 3], activation="tanh", output="softmax",
                            backend=backend, dtype="float32", seed=5, dropout=[0.3, 0.2])
            net.fit(X, y, epochs=3, lr=0.2, batch_size=16, compile=compile)
            net.fit(X, y, epochs=2, lr=0.2, batch_size=16, compile=compile, shuffle=False)
            weights.append(np.asarray(xpnet.to_numpy(net.params[0][0])).tolist())
        print(json.dumps(weights))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={"JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu",
                                            "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    reference, eager, compiled = (np.array(w) for w in json.loads(proc.stdout))
    assert_close(eager, reference, rtol=1e-5, what="eager JAX vs NumPy")
    assert_close(compiled, reference, rtol=1e-5, what="compiled JAX vs NumPy")
    without = xpnet.MLP([4, 10, 7, 3], activation="tanh", output="softmax", dtype="float32",
                        seed=5)  # the same fits without dropout end elsewhere
    rng = np.random.default_rng(0)
    X = rng.normal(size=(70, 4)).astype(np.float32)
    y = rng.integers(0, 3, 70)
    without.fit(X, y, epochs=3, lr=0.2, batch_size=16)
    without.fit(X, y, epochs=2, lr=0.2, batch_size=16, shuffle=False)
    assert np.abs(np.asarray(without.params[0][0]) - reference).max() > 1e-3

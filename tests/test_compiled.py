"""``fit(..., compile=True)``: one compiled program per epoch on JAX, the same training as
eager (same shuffles and batches, the last partial batch included), cached per shape,
a no-op on NumPy/array-api-strict and refused on torch/CuPy."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from helpers import assert_close, make_problem
from test_cli import assert_error, run

import xpnet
from xpnet import compiled
from xpnet.optim import SGD, Adam

HAVE_JAX = importlib.util.find_spec("jax") is not None
jax_only = pytest.mark.skipif(not HAVE_JAX, reason="jax is not installed")

pytestmark = pytest.mark.backend_session("jax")  # run by the jax nox session too



def _pair(backend="jax", **kwargs):
    make = dict(activation="tanh", output="softmax", backend=backend, seed=3, **kwargs)
    return xpnet.MLP([3, 8, 3], **make), xpnet.MLP([3, 8, 3], **make)


@jax_only
@pytest.mark.parametrize(
    ("optimizer", "batch_size", "weighted"),
    [
        (None, None, False),  # full batch
        (None, 16, False),  # 50 rows: 3 batches of 16 and a last one of 2
        (SGD(0.1, momentum=0.9, nesterov=True), 16, True),
        (Adam(0.01), 7, False),
        ("sgd", 50, False),
    ],
    ids=["full", "partial-last", "nesterov-weighted", "adam", "one-batch"],
)
def test_compiled_epochs_train_as_eager(optimizer, batch_size, weighted):
    eager, compiled_net = _pair()
    X, Y = make_problem("softmax", m=50, n_in=3, n_out=3, seed=1)
    w = np.linspace(0.2, 1.8, 50) if weighted else None
    opts = [optimizer, optimizer]  # names and None build a fresh optimiser per fit
    if isinstance(optimizer, SGD):
        opts = [SGD(0.1, momentum=0.9, nesterov=True) for _ in range(2)]
    elif isinstance(optimizer, Adam):
        opts = [Adam(0.01) for _ in range(2)]
    h_eager = eager.fit(X, Y, epochs=6, lr=0.2, batch_size=batch_size, optimizer=opts[0],
                        sample_weight=w)
    h_comp = compiled_net.fit(X, Y, epochs=6, lr=0.2, batch_size=batch_size,
                              optimizer=opts[1], sample_weight=w, compile=True)
    np.testing.assert_allclose(h_comp.loss, h_eager.loss, rtol=1e-12)
    for p, q in zip(compiled_net.params, eager.params):
        assert_close(p[0], q[0], 1e-12, "W")
        assert_close(p[1], q[1], 1e-12, "b")
    if isinstance(opts[1], Adam):
        assert opts[1].t == opts[0].t == 6 * 8  # 50 rows / batch 7 = 8 steps per epoch
        assert opts[1].learning_rate == pytest.approx(opts[0].learning_rate, rel=1e-12)


@jax_only
def test_learning_rate_schedule_moves_under_compile():
    eager, compiled_net = _pair()
    X, Y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=2)
    opts = [SGD(0.5, schedule="invscaling") for _ in range(2)]
    eager.fit(X, Y, epochs=4, batch_size=8, optimizer=opts[0])
    compiled_net.fit(X, Y, epochs=4, batch_size=8, optimizer=opts[1], compile=True)
    assert opts[1].learning_rate == opts[0].learning_rate < 0.5
    for p, q in zip(compiled_net.params, eager.params):
        assert_close(p[0], q[0], 1e-12, "W after invscaling epochs")


@jax_only
def test_programs_are_cached_per_shape():
    X, Y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=2)
    net, other = _pair()
    net.fit(X, Y, epochs=1, batch_size=8, compile=True, callback=_per_epoch)
    held = compiled.cached_programs()
    other.fit(X, Y, epochs=2, batch_size=8, compile=True,  # same shapes: nothing new
              callback=_per_epoch)
    assert compiled.cached_programs() == held
    other.fit(X, Y, epochs=1, batch_size=10, compile=True,  # a new batch size: one more
              callback=_per_epoch)
    assert compiled.cached_programs() == min(held + 1, compiled._CACHE_SIZE)


@jax_only
def test_parameters_are_not_donated():
    """Donating the parameter buffers would delete arrays the caller (and the loop's
    rollback) still holds."""
    X, Y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=2)
    net, _ = _pair()
    held = list(net.flat_params)
    history = net.fit(X, Y, epochs=3, batch_size=8, compile=True, early_stopping=True,
                      validation_fraction=0.2)
    assert history.best_params is not None
    for array in held + history.best_params + net.flat_params:
        assert not array.is_deleted()
        np.asarray(array)  # readable
    held = list(net.flat_params)  # and several epochs per call (the chunk program)
    net.fit(X, Y, epochs=3, batch_size=8, compile=True)
    for array in held + net.flat_params:
        assert not array.is_deleted()
        np.asarray(array)


@jax_only
def test_compiled_divergence_rolls_back():
    X, Y = make_problem("identity", m=40, n_in=3, n_out=3, seed=2)
    net = xpnet.MLP([3, 8, 3], activation="relu", output="identity", backend="jax")
    start = [np.array(p) for p in net.flat_params]
    with pytest.raises(FloatingPointError, match="diverged at epoch 1"):
        net.fit(X * 1e6, Y * 1e6, epochs=3, lr=10.0, batch_size=8, compile=True)
    for p, p0 in zip(net.flat_params, start):
        np.testing.assert_array_equal(np.array(p), p0)


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_compile_is_a_no_op_on_numpy_and_strict(name):
    if name not in xpnet.available_backends():
        pytest.skip(f"backend {name} is not installed")
    eager, compiled_net = _pair(name)
    X, Y = make_problem("softmax", m=30, n_in=3, n_out=3, seed=2)
    h1 = eager.fit(X, Y, epochs=3, batch_size=8)
    h2 = compiled_net.fit(X, Y, epochs=3, batch_size=8, compile=True)
    assert h1.loss == h2.loss


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_compile_is_refused_on_torch():
    net, _ = _pair("torch")
    X, Y = make_problem("softmax", m=30, n_in=3, n_out=3, seed=2)
    with pytest.raises(ValueError, match="compile=True is not available on backend 'torch'"):
        net.fit(X, Y, epochs=1, compile=True)
    with pytest.raises(TypeError, match="compile must be True or False"):
        net.fit(X, Y, epochs=1, compile="yes")


def test_cli_compile():
    assert_error(run("train", "--dataset", "xor", "--backend", "torch", "--compile")
                 if importlib.util.find_spec("torch") else
                 run("train", "--dataset", "xor", "--backend", "cupy", "--compile"),
                 "backend")
    if HAVE_JAX:
        proc = run("train", "--dataset", "xor", "--backend", "jax", "--compile",
                   "--epochs", "5", "--quiet", timeout=240)
        assert proc.returncode == 0, proc.stderr


@jax_only
def test_estimator_compile():
    pytest.importorskip("sklearn")
    import jax.numpy as jnp

    from xpnet.sklearn import MLPClassifier

    X, y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=1)
    # float64 explicitly, and one input array for both: the dtype of jnp.asarray(X)
    # depends on whether jax_enable_x64 is on yet (a float64 network turns it on), and
    # float32 eager/compiled Adam differ by ~1e-6
    kwargs = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0, batch_size=8,
                  dtype="float64")
    X_jax = jnp.asarray(X)
    with pytest.warns(Warning):
        plain = MLPClassifier(**kwargs).fit(X_jax, y)
    with pytest.warns(Warning):
        fast = MLPClassifier(compile=True, **kwargs).fit(X_jax, y)
    assert_close(fast.predict_proba(X_jax), plain.predict_proba(X_jax), 1e-10, "proba")


# ---------------------------------------------------------------------- several epochs per call
# Without per-epoch work (no callback, early stopping or verbose output) fit runs chunks
# of epochs per compiled call (compiled.fit_in_chunks). A callback that does nothing
# forces one epoch per call: the reference the chunks must equal bit for bit.
def _per_epoch(epoch, loss):
    """A callback: asks for per-epoch work, so fit runs one compiled epoch per call."""


def _chunk_keys():
    return [key for key in compiled._programs if key[0] == "chunk"]


def _fit_three_ways(make_opt, X, Y, **kwargs):
    """(eager, one epoch per call, chunks): each (history, params on the host, the next
    draw of the shuffle generator, the optimiser) or the DivergenceError raised."""
    results = []
    for mode in ("eager", "epoch", "chunk"):
        net = xpnet.MLP([3, 8, 3], activation="tanh", output="softmax", backend="jax",
                        seed=3)
        opt = make_opt()
        extra = {} if mode == "eager" else {"compile": True}
        if mode == "epoch":
            extra["callback"] = _per_epoch
        try:
            history = net.fit(X, Y, optimizer=opt, **kwargs, **extra)
        except FloatingPointError as error:
            history = error
        results.append((history, [np.array(p) for p in net.flat_params],
                        net.shuffle_rng.random(), opt))
    return results


SCHEDULES = {
    "sgd": lambda: SGD(0.2),
    "nesterov": lambda: SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(0.01),
    "invscaling": lambda: SGD(0.5, schedule="invscaling", power_t=0.3),
    "adaptive": lambda: SGD(0.5, schedule="adaptive"),
}


@jax_only
@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("batch_size", [None, 16, 7])
@pytest.mark.parametrize("stopping", [None, 2], ids=["all-epochs", "n_iter_no_change=2"])
def test_chunks_equal_one_epoch_per_call_and_eager(name, batch_size, stopping):
    """Per-epoch losses, parameters, every History field, the optimiser's rate/steps and
    the generator's position: identical to one epoch per call, equal to eager JAX to
    float64 rounding (1e-12). ``n_iter_no_change=2, tol=0.01`` makes training stop, or
    the adaptive schedule cut its rate, inside a chunk (40 epochs: one chunk of 256)."""
    X, Y = make_problem("softmax", m=50, n_in=3, n_out=3, seed=1)
    w = np.linspace(0.2, 1.8, 50) if name == "nesterov" else None
    (h_eager, p_eager, r_eager, o_eager), (h_epoch, p_epoch, r_epoch, o_epoch), \
        (h_chunk, p_chunk, r_chunk, o_chunk) = _fit_three_ways(
            SCHEDULES[name], X, Y, epochs=40, batch_size=batch_size, sample_weight=w,
            n_iter_no_change=stopping, tol=0.01,
        )
    assert [key for key in _chunk_keys() if key[2] == 50]  # the chunk path ran
    assert h_chunk.loss == h_epoch.loss  # bit for bit
    for field in ("n_iter", "samples_seen", "converged", "no_improvement_count",
                  "interrupted"):
        assert getattr(h_chunk, field) == getattr(h_epoch, field) == getattr(h_eager, field), field
    assert h_chunk.best_loss == h_epoch.best_loss
    assert h_chunk.best_loss == pytest.approx(h_eager.best_loss, rel=1e-12)
    for p, q in zip(p_chunk, p_epoch):
        np.testing.assert_array_equal(p, q)
    assert r_chunk == r_epoch == r_eager  # the generator drew the same permutations
    assert o_chunk.learning_rate == o_epoch.learning_rate
    assert o_chunk.learning_rate == pytest.approx(o_eager.learning_rate, rel=1e-12)
    assert getattr(o_chunk, "t", 0) == getattr(o_epoch, "t", 0) == getattr(o_eager, "t", 0)
    np.testing.assert_allclose(h_chunk.loss, h_eager.loss, rtol=1e-12)
    for p, q in zip(p_chunk, p_eager):
        assert_close(p, q, 1e-12, "parameters vs eager")
    if stopping is not None and name == "adaptive":
        assert o_chunk.learning_rate < 0.5  # the rate was cut inside a chunk
    if stopping is not None and name != "adaptive":
        assert h_chunk.converged and h_chunk.n_iter < 40  # stopped inside the chunk


@jax_only
def test_chunks_equal_numpy():
    """The chunked JAX fit and NumPy's eager fit: same shuffles, same batches, float64
    rounding apart (measured ≤ 1e-15 relative over 30 epochs; 1e-10 allows for the
    different summation orders of XLA's and OpenBLAS's products)."""
    X, Y = make_problem("softmax", m=50, n_in=3, n_out=3, seed=1)
    make = dict(activation="tanh", output="softmax", seed=3)
    reference = xpnet.MLP([3, 8, 3], **make)
    net = xpnet.MLP([3, 8, 3], backend="jax", **make)
    kwargs = dict(epochs=30, batch_size=16, optimizer="adam", lr=0.01)
    h_ref = reference.fit(X, Y, **kwargs)
    h = net.fit(X, Y, compile=True, **kwargs)
    np.testing.assert_allclose(h.loss, h_ref.loss, rtol=1e-10)
    for (W, b), (W_ref, b_ref) in zip(net.params, reference.params):
        assert_close(W, W_ref, 1e-10, "W")
        assert_close(b, b_ref, 1e-10, "b")


@jax_only
@pytest.mark.parametrize(("lr", "epoch"), [(0.02, 4), (0.03, 3)])
def test_chunk_divergence_rolls_back_to_the_diverged_epoch(lr, epoch):
    """Divergence at epoch 3 or 4, inside the first chunk (at 0.02 epoch 5's loss is the
    first non-finite one, but the weights epoch 4 left already give a non-finite loss on
    the training rows, so epoch 4 diverged): the network, the optimiser
    and the generator go back to the start of *that* epoch, not of the chunk, as with
    one epoch per call; the error names the same epoch, loss and parameters."""
    X, Y = make_problem("identity", m=40, n_in=3, n_out=3, seed=2)
    results = []
    for callback in (_per_epoch, None):
        net = xpnet.MLP([3, 8, 3], activation="relu", output="identity", backend="jax",
                        seed=1)
        opt = SGD(lr, momentum=0.9)
        with pytest.raises(FloatingPointError) as caught:
            net.fit(X * 3, Y * 3, epochs=60, optimizer=opt, batch_size=8, compile=True,
                    callback=callback)
        results.append((caught.value, [np.array(p) for p in net.flat_params],
                        [np.array(v) for v in opt.velocities], net.shuffle_rng.random()))
    (error_epoch, p_epoch, v_epoch, r_epoch), (error, p, v, r) = results
    assert error.epoch == error_epoch.epoch == epoch
    assert error.parameters == error_epoch.parameters
    assert str(error) == str(error_epoch)
    for a, b in zip(p + v, p_epoch + v_epoch):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(np.concatenate([a.ravel() for a in p])))
    assert r == r_epoch


@jax_only
@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("batch_size", [None, 16], ids=["full-batch", "unshuffled-16"])
@pytest.mark.parametrize("stopping", [None, 2], ids=["all-epochs", "n_iter_no_change=2"])
def test_chunks_started_ahead_equal_one_epoch_per_call_and_eager(name, batch_size, stopping,
                                                                 monkeypatch):
    """Unshuffled chunks of a small network start the next chunk before the host has
    recorded the last one (chunks of 4 epochs here, 40 epochs): every chunk started ahead
    is used when nothing changes, and dropped when training stops, a schedule cuts the
    rate, or the prediction of the rate fails; the numbers are those of one epoch per
    call, bit for bit, and of eager JAX to float64 rounding (1e-12)."""
    from xpnet.training import compiled as engine

    monkeypatch.setattr(engine, "MAX_CHUNK_EPOCHS", 4)
    starts, runs = [], []
    for method, seen in (("_start", starts), ("run", runs)):
        original = getattr(engine.ChunkRunner, method)

        def counted(self, *args, _original=original, _seen=seen):
            _seen.append(args[-1])
            return _original(self, *args)

        monkeypatch.setattr(engine.ChunkRunner, method, counted)
    X, Y = make_problem("softmax", m=50, n_in=3, n_out=3, seed=1)
    (h_eager, p_eager, _, o_eager), (h_epoch, p_epoch, _, o_epoch), \
        (h_chunk, p_chunk, _, o_chunk) = _fit_three_ways(
            SCHEDULES[name], X, Y, epochs=40, batch_size=batch_size, shuffle=False,
            n_iter_no_change=stopping, tol=0.01,
        )
    assert runs and sum(runs) >= h_chunk.n_iter  # the chunk path ran
    if stopping is None and name != "adaptive":
        assert runs == [4] * 10 and starts == [4]  # every later chunk was started ahead
    assert h_chunk.loss == h_epoch.loss  # bit for bit
    for field in ("n_iter", "samples_seen", "converged", "no_improvement_count"):
        assert getattr(h_chunk, field) == getattr(h_epoch, field) == getattr(h_eager, field), field
    for p, q, r in zip(p_chunk, p_epoch, p_eager):
        np.testing.assert_array_equal(p, q)
        assert_close(p, r, 1e-12, "parameters")
    assert o_chunk.learning_rate == o_epoch.learning_rate


@jax_only
def test_the_last_chunks_started_ahead_are_cut_short(monkeypatch):
    """The last call's records overlap nothing, so the chunks started ahead leave it an
    eighth of what is left: 30 epochs in chunks of 16 run as 16, 13 and 1 (the loop
    asked for 16, 14 and 1), with one epoch per call's numbers bit for bit."""
    from xpnet.training import compiled as engine

    monkeypatch.setattr(engine, "MAX_CHUNK_EPOCHS", 16)
    asked, ran = [], []
    run = engine.ChunkRunner.run

    def counted(self, state, n):
        asked.append(n)
        results = run(self, state, n)
        ran.append(len(results))
        return results

    monkeypatch.setattr(engine.ChunkRunner, "run", counted)
    X, Y = make_problem("softmax", m=50, n_in=3, n_out=3, seed=1)
    (h_eager, p_eager, _, _), (h_epoch, p_epoch, _, _), (h_chunk, p_chunk, _, _) = \
        _fit_three_ways(SCHEDULES["invscaling"], X, Y, epochs=30)
    assert asked == [16, 14, 1] and ran == [16, 13, 1]
    assert h_chunk.loss == h_epoch.loss and h_chunk.n_iter == h_eager.n_iter == 30
    for p, q, r in zip(p_chunk, p_epoch, p_eager):
        np.testing.assert_array_equal(p, q)
        assert_close(p, r, 1e-12, "parameters")


def test_only_small_unshuffled_chunks_run_ahead():
    """A chunk started ahead is lost work when training stops: only chunks of at most
    MAX_AHEAD_WORK multiply-adds, and never shuffled ones (their permutations would have
    been drawn from the generator)."""
    from xpnet.training.compiled import MAX_AHEAD_WORK, epoch_work, runs_ahead

    assert runs_ahead([2, 4, 1], 400, 256, False)  # the tiny benchmark case
    assert not runs_ahead([2, 4, 1], 400, 256, True)
    assert not runs_ahead([64, 32, 10], 1797, 64, False)  # ~1e9 per chunk
    work = epoch_work([3, 8, 3], 50)
    assert runs_ahead([3, 8, 3], 50, MAX_AHEAD_WORK // work, False)
    assert not runs_ahead([3, 8, 3], 50, MAX_AHEAD_WORK // work + 1, False)


@jax_only
def test_chunk_program_is_reused_without_recompiling():
    """A second fit of the same shape, even of another length (the chunk's epoch count
    is an input), compiles nothing: same cached programs (the chunk and the guard's
    loss), one trace."""
    X, Y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=2)
    net, other = _pair()
    compiled._programs.clear()  # (only costs other tests a compile)
    net.fit(X, Y, epochs=40, batch_size=8, compile=True)
    held = compiled.cached_programs()
    keys = _chunk_keys()
    assert len(keys) == 1 and keys[0][-1] == 256
    assert held == 2 and [key[0] for key in compiled._programs].count("loss") == 1
    program = compiled._programs[keys[0]]
    traces = program._cache_size()
    other.fit(X, Y, epochs=300, batch_size=8, compile=True)  # chunks of 256 and 44
    assert compiled.cached_programs() == held
    assert program._cache_size() == traces == 1


@jax_only
def test_per_epoch_work_falls_back_to_one_epoch_per_call():
    """A callback (or verbose output, or early stopping) runs between epochs: no chunk
    program is built or called, and the callback sees every epoch."""
    X, Y = make_problem("softmax", m=44, n_in=3, n_out=3, seed=2)  # a shape of its own
    net, _ = _pair()
    seen = []
    net.fit(X, Y, epochs=6, batch_size=8, compile=True,
            callback=lambda epoch, loss: seen.append(epoch))
    net.fit(X, Y, epochs=3, batch_size=8, compile=True, verbose=True)
    net.fit(X, Y, epochs=3, batch_size=8, compile=True, early_stopping=True)
    assert seen == list(range(6))
    assert not [key for key in _chunk_keys() if key[2] in (44, 39)]
    net.fit(X, Y, epochs=6, batch_size=8, compile=True)  # nothing per epoch: chunks
    assert [key for key in _chunk_keys() if key[2] == 44]


def test_chunk_length_rule():
    """Powers of two, at most 256, whatever the fit's length; one epoch per call where
    an epoch is long (medium-sized work) or the permutations large."""
    assert compiled.chunk_epochs([2, 4, 1], 400, False) == 256
    assert compiled.chunk_epochs([64, 32, 10], 1797, True) == 64  # ~1e9 multiply-adds
    assert compiled.chunk_epochs([4, 2], 20_000, True) == 32  # 4 MiB of orders at most
    assert compiled.chunk_epochs([784, 256, 10], 16384, True) == 1
    assert compiled.chunk_epochs([2, 4, 1], 4_000_000, True) == 1  # 16 MB per epoch


class _InterruptingGenerator(np.random.Generator):
    """Raises KeyboardInterrupt (as Ctrl-C would) at its ``at``-th permutation."""

    def __init__(self, seed, at):
        super().__init__(np.random.PCG64(seed))
        self.calls, self.at = 0, at

    def permutation(self, m):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().permutation(m)


@jax_only
def test_ctrl_c_in_a_chunk_keeps_the_complete_chunks():
    """Ctrl-C while the second chunk is being prepared (300 epochs: chunks of 256 and
    44): the network keeps the first chunk's 256 epochs, as a 256-epoch fit leaves it,
    and the history says so."""
    X, Y = make_problem("softmax", m=40, n_in=3, n_out=3, seed=2)
    net, reference = _pair()
    with pytest.warns(UserWarning, match="keeps the weights after epoch 256"):
        history = net.fit(X, Y, epochs=300, batch_size=8, compile=True,
                          rng=_InterruptingGenerator(5, at=260))
    h_ref = reference.fit(X, Y, epochs=256, batch_size=8, compile=True,
                          rng=np.random.Generator(np.random.PCG64(5)))
    assert history.interrupted and history.n_iter == 256
    assert history.loss == h_ref.loss
    for p, q in zip(net.flat_params, reference._params):
        np.testing.assert_array_equal(np.array(p), np.array(q))


@jax_only
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", [{}, {"solver": "sgd", "learning_rate": "adaptive"}],
                         ids=["adam-stops", "sgd-adaptive"])
def test_estimator_runs_chunks_and_stops_as_eager(solver):
    """The estimators' scikit-learn shuffle can be rewound, so ``compile=True`` runs
    chunks there too; stopping inside a chunk (``n_iter_no_change``), or the adaptive
    rate's cuts (the chunk replayed, the shuffle rewound and training going on), leave
    n_iter_, the loss curve, the weights and a shared RandomState as the eager fit
    does."""
    pytest.importorskip("sklearn")
    import jax.numpy as jnp

    from xpnet.sklearn import MLPClassifier

    X, y = make_problem("softmax", m=46, n_in=3, n_out=3, seed=1)  # a shape of its own
    X = jnp.asarray(X)  # one input for both fits (see test_estimator_compile)
    fitted = []
    for compile_ in (False, True):
        state = np.random.RandomState(4)
        model = MLPClassifier(hidden_layer_sizes=(6,), max_iter=60, random_state=state,
                              batch_size=8, n_iter_no_change=3, tol=1e-2, compile=compile_,
                              learning_rate_init=0.05, dtype="float64", **solver)
        model.fit(X, y)
        fitted.append((model, state.random_sample()))
    (eager, draw_eager), (chunked, draw_chunked) = fitted
    assert [key for key in _chunk_keys() if key[2] == 46]  # chunks ran
    assert chunked.n_iter_ == eager.n_iter_ < (60 if not solver else 61)
    if solver:
        assert chunked._optimizer.learning_rate < 0.05  # cut inside the chunks
    np.testing.assert_allclose(chunked.loss_curve_, eager.loss_curve_, rtol=1e-12)
    assert_close(chunked.predict_proba(X), eager.predict_proba(X), 1e-10, "proba")
    assert draw_chunked == draw_eager


@jax_only
def test_the_finished_check_of_a_chunked_fit_is_its_last_calls_bound():
    """A chunked fit's last call returns the loss bound of its parameters: when finite,
    the finished network's check runs no program of its own (a fresh process traces and
    loads one program fewer); when it overflows (weights of 1e200 behind a saturated
    sigmoid: the loss itself is finite) the loss program runs and the fit passes."""
    from xpnet.training import compiled as engine

    X, Y = make_problem("sigmoid", m=40, n_in=2, n_out=1, seed=3)
    for scale, traced in ((1.0, 0), (1e200, 1)):
        engine.PROGRAMS.clear()
        net = xpnet.MLP([2, 3, 1], backend="jax", dtype="float64", seed=0)
        (W1, b1), second = net.params
        net.set_params([(np.asarray(W1) * scale, b1), second])
        history = net.fit(X, Y, epochs=12, lr=0.1, compile=True)
        assert history.n_iter == 12 and np.isfinite(history.loss[-1])
        Xc, Yc = net.check_XY(X, Y)
        program = engine.loss_program(net.architecture, net.xp, 40, (2, 1), net.array_dtype,
                                      net.array_backend.device)
        assert program._cache_size() == traced, scale  # (jax.jit's count of its traces)

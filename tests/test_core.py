"""The pure step (``xpnet.core.loss_and_grads``) and the optimisers' explicit state
(``init``/``apply``): same numbers as the network and ``Optimizer.update``, nothing the
caller passed is modified, and under ``jax.jit`` the learning rate and Adam's step count
are inputs, not constants frozen at trace time."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, make_problem

import xpnet
from xpnet import core
from xpnet.optim import SGD, Adam

pytestmark = pytest.mark.backend_session("jax")  # run by the jax nox session too



def _net_and_batch(backend="numpy", dtype="float64", alpha=0.3, output="softmax"):
    net = xpnet.MLP([3, 6, 5, 3], activation=["tanh", "relu"], output=output, backend=backend,
                    dtype=dtype, seed=4, alpha=alpha)
    X, Y = make_problem(output, m=24, n_in=3, n_out=3, seed=9)
    batch = net.prepare(X, Y)
    return net, batch


def test_pure_step_is_the_networks_step(backend):
    net, batch = _net_and_batch(backend)
    weight = net.array_backend.asarray(np.linspace(0.0, 2.0, len(batch)), dtype=net.array_dtype)
    for w in (None, weight):
        loss_net, grads_net = net._loss_and_grads(batch.X, batch.Y, w)
        loss, grads = net.architecture.loss_and_grads(list(net.flat_params), batch.X, batch.Y, w)
        np.testing.assert_array_equal(xpnet.to_numpy(loss), xpnet.to_numpy(loss_net))
        for g, g_net in zip(grads, grads_net):
            np.testing.assert_array_equal(xpnet.to_numpy(g), xpnet.to_numpy(g_net))


def test_pure_step_modifies_nothing_it_is_given():
    net, batch = _net_and_batch()
    params = [np.array(p) for p in net.flat_params]
    X, Y = np.array(batch.X), np.array(batch.Y)
    weight = np.linspace(0.5, 1.5, X.shape[0])
    copies = [a.copy() for a in (*params, X, Y, weight)]
    for w in (None, weight):
        core.loss_and_grads(params, X, Y, w, hidden=net.architecture.hidden,
                            output=net.architecture.output, alpha=net.alpha)
    for before, after in zip(copies, (*params, X, Y, weight)):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("weighted", [False, True])
def test_chunks_with_the_global_total_add_up_to_the_batch(weighted):
    """``total`` is the global row count or weight sum: chunk gradients then add up."""
    net, batch = _net_and_batch(alpha=0.0)
    arch = net.architecture
    m = len(batch)
    w = np.linspace(0.1, 2.0, m) if weighted else None
    total = float(np.sum(w)) if weighted else m
    loss, grads = arch.loss_and_grads(net.flat_params, batch.X, batch.Y, w)
    parts = [
        arch.loss_and_grads(net.flat_params, batch.X[rows], batch.Y[rows],
                            None if w is None else w[rows], total)
        for rows in (slice(0, 10), slice(10, m))
    ]
    assert_close(parts[0][0] + parts[1][0], loss, 1e-14, "loss")
    for i, g in enumerate(grads):
        assert_close(parts[0][1][i] + parts[1][1][i], g, 1e-13, f"grad {i}")


@pytest.mark.parametrize(
    "make", [lambda: SGD(0.3), lambda: SGD(0.3, momentum=0.9),
             lambda: SGD(0.3, momentum=0.9, nesterov=True)],
    ids=["sgd", "momentum", "nesterov"],
)
def test_sgd_apply_is_update_bit_for_bit(make):
    net, batch = _net_and_batch()
    stateful, functional = make(), make()
    params_a = [np.array(p) for p in net.flat_params]
    params_b = [np.array(p) for p in net.flat_params]
    state = functional.init(params_b)
    arch = net.architecture
    for _ in range(15):
        _, grads = arch.loss_and_grads(params_a, batch.X, batch.Y)
        stateful.update(params_a, grads)
        _, grads = arch.loss_and_grads(params_b, batch.X, batch.Y)
        before = [p.copy() for p in params_b]
        new_params, state = functional.apply(params_b, grads, state)
        for p, p0 in zip(params_b, before):
            np.testing.assert_array_equal(p, p0)  # apply did not touch its input
        params_b = new_params
    assert int(state["step"]) == 15
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a, b)


def test_adam_apply_matches_update():
    net, batch = _net_and_batch()
    stateful, functional = Adam(0.01), Adam(0.01)
    params_a = [np.array(p) for p in net.flat_params]
    params_b = [np.array(p) for p in net.flat_params]
    state = functional.init(params_b)
    arch = net.architecture
    for _ in range(20):
        stateful.update(params_a, arch.loss_and_grads(params_a, batch.X, batch.Y)[1])
        params_b, state = functional.apply(
            params_b, arch.loss_and_grads(params_b, batch.X, batch.Y)[1], state
        )
    assert int(state["step"]) == stateful.t == 20
    for a, b in zip(params_a, params_b):
        assert_close(b, a, 1e-13, "Adam apply vs update")


# ---------------------------------------------------------------------- under jax.jit
jax_only = pytest.mark.skipif(
    __import__("importlib").util.find_spec("jax") is None, reason="jax is not installed"
)


@jax_only
def test_jitted_adam_advances_its_step_count():
    """Traced with Python-side state, Adam's ``t`` stayed 1 in the compiled step (0.084
    off after 20 steps); with ``t`` in the state it advances."""
    import jax

    net, batch = _net_and_batch("jax", alpha=0.0)
    arch = net.architecture
    opt = Adam(0.05)
    reference = Adam(0.05)
    ref_params = [np.array(p) for p in net.flat_params]
    host_batch = (np.array(batch.X), np.array(batch.Y))

    @jax.jit
    def step(params, state, X, Y):
        _, grads = arch.loss_and_grads(params, X, Y)
        return opt.apply(params, grads, state)

    params, state = list(net.flat_params), opt.init(list(net.flat_params))
    for _ in range(20):
        params, state = step(params, state, batch.X, batch.Y)
        reference.update(ref_params, arch.loss_and_grads(ref_params, *host_batch)[1])
    assert int(state["step"]) == 20
    for p, p_ref in zip(params, ref_params):
        assert_close(p, p_ref, 1e-12, "jitted Adam vs eager update")


@jax_only
def test_learning_rate_schedule_is_honoured_under_jit():
    import jax

    net, batch = _net_and_batch("jax", alpha=0.0)
    arch = net.architecture
    opt = SGD(0.5, schedule="invscaling")

    @jax.jit
    def step(params, state, X, Y):
        _, grads = arch.loss_and_grads(params, X, Y)
        return opt.apply(params, grads, state)

    params, state = list(net.flat_params), opt.init(list(net.flat_params))
    params, state = step(params, state, batch.X, batch.Y)  # traced with lr 0.5
    opt.iteration_ends(99)  # the schedule: lr = 0.5 / 100 ** 0.5 = 0.05
    state = opt.with_learning_rate(state)
    _, grads = arch.loss_and_grads(params, batch.X, batch.Y)
    expected = [p - 0.05 * g for p, g in zip(params, grads)]
    params, state = step(params, state, batch.X, batch.Y)
    for p, e in zip(params, expected):
        assert_close(p, e, 1e-14, "step with the scheduled lr")


@jax_only
def test_pure_step_under_jit_then_eager_network_calls():
    import jax

    net, batch = _net_and_batch("jax")
    jitted = jax.jit(net.architecture.loss_and_grads)
    loss_jit, grads_jit = jitted(list(net.flat_params), batch.X, batch.Y)
    loss, grads = net._loss_and_grads(batch.X, batch.Y)  # eager, after tracing
    net.step(batch, lr=0.1)
    assert_close(loss_jit, loss, 1e-13, "loss")
    for g_jit, g in zip(grads_jit, grads):
        assert_close(g_jit, g, 1e-12, "grad")

"""The core's full-batch L-BFGS (``MLP.fit(optimizer="lbfgs")``) on every backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("scipy", reason="optimizer='lbfgs' needs SciPy")

from helpers import OUTPUTS, assert_close, make_problem  # noqa: E402

import xpnet  # noqa: E402


@pytest.mark.parametrize("output", OUTPUTS)
def test_lbfgs_on_every_backend_follows_numpy(backend: str, output: str) -> None:
    """The loss and gradient are computed on the backend; SciPy sees the same numbers
    (to rounding), so the iterations and the weights are NumPy's."""
    X, Y = make_problem(output, m=30, n_in=3, n_out=3, seed=5)
    nets = [xpnet.MLP([3, 5, 3], activation="tanh", output=output, backend=name, seed=2,
                      alpha=0.01) for name in ("numpy", backend)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # iteration limit: no convergence
        histories = [net.fit(X, Y, epochs=8, optimizer="lbfgs") for net in nets]
    assert histories[1].n_iter == histories[0].n_iter == len(histories[1].loss)
    np.testing.assert_allclose(histories[1].loss, histories[0].loss, rtol=1e-9)
    for (W, b), (W0, b0) in zip(nets[1].params, nets[0].params, strict=True):
        assert_close(W, W0, 1e-8, "W")
        assert_close(b, b0, 1e-8, "b")


def test_lbfgs_minimises_to_a_small_gradient() -> None:
    """Converged (SciPy's status 0, on tol or on a stalled loss): a small gradient."""
    X, Y = make_problem("identity", m=40, n_in=3, n_out=2, seed=1)
    net = xpnet.MLP([3, 4, 2], activation="tanh", output="identity", seed=0)
    history = net.fit(X, Y, epochs=2000, optimizer="lbfgs", tol=1e-6)
    assert history.converged and history.n_iter < 2000
    _, grads = net.loss_and_grads(X, Y)
    assert max(float(np.max(np.abs(xpnet.to_numpy(g)))) for pair in grads for g in pair) < 1e-4


def test_lbfgs_refuses_what_does_not_apply() -> None:
    X, Y = make_problem("sigmoid", m=10)
    net = xpnet.MLP([3, 3], seed=0)
    with pytest.raises(ValueError, match="early stopping"):
        net.fit(X, Y, optimizer="lbfgs", early_stopping=True)
    with pytest.raises(ValueError, match="max_fun"):
        net.fit(X, Y, optimizer="lbfgs", max_fun=0)


def test_lbfgs_divergence_rolls_back_and_raises() -> None:
    """A loss that overflows (exp output, huge inputs) leaves the network as it was and
    raises the DivergenceError every other optimiser raises."""
    from xpnet.train import DivergenceError

    X = np.array([[800.0], [900.0], [1000.0]])
    net = xpnet.MLP([1, 1], output="exp", seed=0)
    net.set_params([(np.array([[1.0]]), np.array([0.0]))])  # e^800: inf from the start
    before = [xpnet.to_numpy(p).copy() for pair in net.params for p in pair]
    with warnings.catch_warnings(), pytest.raises(DivergenceError, match="L-BFGS diverged"):
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow in exp
        net.fit(X, np.array([1.0, 2.0, 3.0]), epochs=5, optimizer="lbfgs")
    after = [xpnet.to_numpy(p) for pair in net.params for p in pair]
    for a, b in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_lbfgs_ctrl_c_in_the_callback_keeps_the_iteration_just_finished() -> None:
    """As the other optimisers' loop: a KeyboardInterrupt from the callback (the CLI's
    Ctrl-C) ends the run after that iteration, marked interrupted, with a warning."""
    X, Y = make_problem("softmax", m=30, n_in=3, n_out=3, seed=5)

    def stop_at_fourth(epoch, loss):
        if epoch == 3:
            raise KeyboardInterrupt

    net = xpnet.MLP([3, 5, 3], activation="tanh", output="softmax", seed=2)
    with pytest.warns(UserWarning, match="training interrupted at iteration 4 of 50"):
        history = net.fit(X, Y, epochs=50, optimizer="lbfgs", callback=stop_at_fourth)
    assert history.interrupted and not history.converged
    assert history.n_iter == len(history.loss) == 4
    reference = xpnet.MLP([3, 5, 3], activation="tanh", output="softmax", seed=2)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        reference.fit(X, Y, epochs=4, optimizer="lbfgs")
    for p, q in zip(net.flat_params, reference.flat_params, strict=True):
        np.testing.assert_array_equal(xpnet.to_numpy(p), xpnet.to_numpy(q))

"""Every backend agrees with NumPy from the same seed: forward, loss, gradients, and the
parameters after 50 gradient-descent steps.

Tolerances (relative to the largest magnitude of each array, see helpers.assert_close):

* float64, one evaluation: 1e-12. Each result passes through a few matrix products and
  element-wise functions; backends differ only in summation order inside their BLAS and
  in the last bit of exp/tanh/log1p (a few ulp, eps = 2.2e-16). With sums of at most
  ~40 terms here that is below ~1e-14 relative; 1e-12 keeps a 100x margin.
* float64, after 50 steps: 1e-10. Rounding differences of ~1e-15 per step are carried
  forward and amplified by the (contractive to mildly expansive) gradient-descent map;
  measured differences stay below 1e-13.
* float32, one evaluation: 2e-5. The same argument with eps = 1.2e-7 gives ~1e-6; 2e-5
  leaves margin for GPU libraries that use fused multiply-add and different reductions.
* float32, after 50 steps: 2e-4, for the same accumulation as in float64.

JAX (XLA's own dot kernels and exp/tanh/log1p) stays well inside these bounds. Measured
over the four cases below on the CPU: float64 5.5e-16 for one evaluation and 3.3e-15
after 50 steps (1-15 ulp, not growing), float32 3.8e-7 and 1.1e-6: a margin of >1000x
in float64 and ~50x in float32, so JAX needs no tolerances of its own. On GPUs xpnet
sets JAX's float32 matmul precision to "highest" (its default there is TF32-like, ~1e-3
relative), which is what keeps the float32 bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, make_problem

import xpnet

TOLERANCES = {
    # dtype: (one evaluation, after 50 steps)
    "float64": (1e-12, 1e-10),
    "float32": (2e-5, 2e-4),
}

CASES = [
    # (layer sizes, hidden activation, output, alpha)
    ([2, 4, 1], "sigmoid", "sigmoid", 0.0),  # the lesson's network
    ([3, 8, 6, 3], "tanh", "softmax", 0.0),
    ([3, 8, 3], "relu", "identity", 0.3),
    ([3, 5, 3], "sigmoid", "sigmoid", 0.1),  # multi-label
]
IDS = ["lesson", "tanh-softmax", "relu-identity-l2", "multilabel-l2"]


def _pair(backend: str, dtype: str, sizes, activation, output, alpha):
    kwargs = dict(activation=activation, output=output, dtype=dtype, seed=11, alpha=alpha)
    reference = xpnet.MLP(sizes, backend="numpy", **kwargs)
    other = xpnet.MLP(sizes, backend=backend, **kwargs)
    X, Y = make_problem(output, m=64, n_in=sizes[0], n_out=sizes[-1], seed=12)
    if sizes[-1] == 1:
        Y = Y[:, 0] if Y.ndim == 2 else Y
    return reference, other, X, Y


@pytest.fixture
def other_backend(backend: str) -> str:
    if backend == "numpy":
        pytest.skip("NumPy is the reference backend")
    return backend


@pytest.mark.parametrize(("sizes", "activation", "output", "alpha"), CASES, ids=IDS)
def test_same_start(other_backend, dtype, sizes, activation, output, alpha):
    """Initial weights are identical bits on every backend (drawn by NumPy, then cast)."""
    reference, other, _, _ = _pair(other_backend, dtype, sizes, activation, output, alpha)
    for (W_ref, b_ref), (W, b) in zip(reference.params, other.params):
        np.testing.assert_array_equal(xpnet.to_numpy(W), W_ref)
        np.testing.assert_array_equal(xpnet.to_numpy(b), b_ref)


@pytest.mark.parametrize(("sizes", "activation", "output", "alpha"), CASES, ids=IDS)
def test_forward_loss_and_gradients_agree(other_backend, dtype, sizes, activation, output,
                                          alpha):
    reference, other, X, Y = _pair(other_backend, dtype, sizes, activation, output, alpha)
    rtol = TOLERANCES[dtype][0]
    assert_close(other.predict_proba(X), reference.predict_proba(X), rtol, "forward")
    loss_ref, grads_ref = reference.loss_and_grads(X, Y)
    loss, grads = other.loss_and_grads(X, Y)
    assert_close(loss, loss_ref, rtol, "loss")
    for layer, ((dW, db), (dW_ref, db_ref)) in enumerate(zip(grads, grads_ref), start=1):
        assert_close(dW, dW_ref, rtol, f"dW{layer}")
        assert_close(db, db_ref, rtol, f"db{layer}")


@pytest.mark.parametrize(("sizes", "activation", "output", "alpha"), CASES, ids=IDS)
def test_parameters_after_50_steps_agree(other_backend, dtype, sizes, activation, output,
                                         alpha):
    reference, other, X, Y = _pair(other_backend, dtype, sizes, activation, output, alpha)
    rtol = TOLERANCES[dtype][1]
    for _ in range(50):
        loss_ref = reference.step(X, Y, lr=0.5)
        loss = other.step(X, Y, lr=0.5)
    assert_close(loss, loss_ref, rtol, "loss at step 50")
    for layer, ((W, b), (W_ref, b_ref)) in enumerate(zip(other.params, reference.params), 1):
        assert_close(W, W_ref, rtol, f"W{layer}")
        assert_close(b, b_ref, rtol, f"b{layer}")


def test_minibatch_fit_agrees(other_backend, dtype):
    """Shuffled mini-batch training: the same permutations reach every backend."""
    reference, other, X, Y = _pair(other_backend, dtype, [3, 8, 3], "tanh", "softmax", 0.0)
    history_ref = reference.fit(X, Y, epochs=5, lr=0.2, batch_size=16)
    history = other.fit(X, Y, epochs=5, lr=0.2, batch_size=16)
    rtol = TOLERANCES[dtype][1]
    np.testing.assert_allclose(history.loss, history_ref.loss, rtol=rtol)
    for (W, _), (W_ref, _) in zip(other.params, reference.params):
        assert_close(W, W_ref, rtol, "W after mini-batch fit")

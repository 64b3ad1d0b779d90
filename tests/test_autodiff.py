"""Autodiff oracle: our hand-written gradients equal PyTorch autograd's on the same weights.

The torch side is an independent implementation (torch.nn.functional losses, autograd),
so agreement checks the derivation, not just the arithmetic. Both run in float64 on the
CPU; they differ only by summation order, so 1e-10 relative is generous (measured ~1e-15).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ACTIVATIONS, OUTPUTS, assert_close, make_problem

import xpnet

torch = pytest.importorskip("torch", reason="torch not installed: autodiff oracle needs it")
F = torch.nn.functional

RTOL = 1e-10

TORCH_ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda z: z,
}


def torch_loss(params, X, Y, activation: str, output: str, alpha: float):
    m = X.shape[0]
    A = X
    for W, b in params[:-1]:
        A = TORCH_ACTIVATIONS[activation](A @ W + b)
    W, b = params[-1]
    Z = A @ W + b
    if output == "sigmoid":
        loss = F.binary_cross_entropy_with_logits(Z, Y, reduction="sum") / m
    elif output == "softmax":
        loss = F.cross_entropy(Z, Y, reduction="mean")
    elif output == "exp":  # torch's Poisson NLL (e^z - y z) plus y log y - y: half deviance
        loss = F.poisson_nll_loss(Z, Y, log_input=True, full=False, reduction="sum") / m
        loss = loss + (torch.special.xlogy(Y, Y) - Y).sum() / m
    else:
        loss = 0.5 * F.mse_loss(Z, Y, reduction="sum") / m
    penalty = sum((W * W).sum() for W, _ in params)
    return loss + alpha / (2 * m) * penalty


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_equal_autograd(activation, output, alpha):
    X, Y = make_problem(output, m=16, n_in=4, n_out=3, seed=21)
    net = xpnet.MLP([4, 6, 5, 3], activation=activation, output=output, dtype="float64",
                    seed=22, alpha=alpha)
    loss, grads = net.loss_and_grads(X, Y)

    params = [
        (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
        for W, b in net.params
    ]
    X_t = torch.tensor(X)
    Y_t = torch.tensor(Y) if output != "softmax" else torch.tensor(Y, dtype=torch.int64)
    reference = torch_loss(params, X_t, Y_t, activation, output, alpha)
    reference.backward()

    assert_close(loss, reference.detach().numpy(), RTOL, "loss")
    for layer, ((dW, db), (W_t, b_t)) in enumerate(zip(grads, params), start=1):
        assert_close(dW, W_t.grad.numpy(), RTOL, f"dW{layer}")
        assert_close(db, b_t.grad.numpy(), RTOL, f"db{layer}")


def test_gradients_equal_autograd_in_float32():
    """float32 path, against autograd in float64: differences are float32 rounding only
    (eps = 1.2e-7, a few dozen operations deep), so 1e-5 relative."""
    X, labels = make_problem("softmax", m=32, n_in=4, n_out=3, seed=23)
    net = xpnet.MLP([4, 8, 3], activation="tanh", output="softmax", dtype="float32", seed=24)
    _, grads = net.loss_and_grads(X, labels)
    params = [
        (torch.tensor(np.asarray(W, dtype=np.float64), requires_grad=True),
         torch.tensor(np.asarray(b, dtype=np.float64), requires_grad=True))
        for W, b in net.params
    ]
    X32 = torch.tensor(X.astype(np.float32).astype(np.float64))
    torch_loss(params, X32, torch.tensor(labels), "tanh", "softmax", 0.0).backward()
    for (dW, db), (W_t, b_t) in zip(grads, params):
        assert_close(dW, W_t.grad.numpy(), 1e-5, "dW float32")
        assert_close(db, b_t.grad.numpy(), 1e-5, "db float32")

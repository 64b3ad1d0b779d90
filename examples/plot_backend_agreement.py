"""
NumPy, PyTorch and JAX agree, step by step
==========================================

The same float64 network (same initial weights, same data) trained for 300 full-batch
gradient-descent steps on every installed backend. The figure shows, per step, the
relative difference of each backend's loss and weights from NumPy's: rounding only
(sums in another order), far below the tolerance the tests hold them to (1e-10 in
float64). A backend that is not installed is left out, saying so.
"""

import matplotlib.pyplot as plt
import numpy as np

import xpnet
from xpnet.data import make_moons

X, y = make_moons(400, noise=0.1, seed=0)
steps = 300


def trajectory(backend):
    """Loss and flattened weights after every step on one backend."""
    net = xpnet.MLP([2, 16, 8, 1], activation="tanh", output="sigmoid",
                    backend=backend, dtype="float64", seed=0)
    batch = net.prepare(X, y)
    losses, weights = [], []
    for _ in range(steps):
        losses.append(float(xpnet.to_numpy(net.step(batch, lr=0.5))))
        weights.append(np.concatenate([xpnet.to_numpy(p).ravel()
                                       for pair in net.params for p in pair]))
    return np.array(losses), np.array(weights)


reference_loss, reference_weights = trajectory("numpy")
usable = xpnet.available_backends()
fig, ax = plt.subplots(figsize=(7, 4.2))
for backend in ["torch", "jax"]:
    if backend not in usable:
        print(f"{backend}: not installed here, left out")
        continue
    loss, weights = trajectory(backend)
    tiny = np.finfo(np.float64).tiny  # log scale: an exact 0 is drawn at the bottom
    loss_diff = np.abs(loss - reference_loss) / np.abs(reference_loss)
    weight_diff = (np.abs(weights - reference_weights).max(axis=1)
                   / np.abs(reference_weights).max(axis=1))
    ax.plot(np.maximum(loss_diff, tiny), label=f"{backend}: loss")
    ax.plot(np.maximum(weight_diff, tiny), "--", label=f"{backend}: weights")
    print(f"{backend}: largest relative difference from NumPy: loss {loss_diff.max():.1e}, "
          f"weights {weight_diff.max():.1e}")
ax.axhline(1e-10, color="k", lw=0.8, ls=":", label="test tolerance (float64)")
ax.set_yscale("log")
ax.set_ylim(1e-18, 1e-8)
ax.set_xlabel("step")
ax.set_ylabel("relative difference from NumPy")
ax.set_title("float64, 2-16-8-1 tanh, full-batch gradient descent")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

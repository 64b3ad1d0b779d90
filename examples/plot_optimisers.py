"""
Loss curves of SGD, momentum and Adam
=====================================

One 2-32-1 tanh network on the two moons, from the same initial weights and the same
mini-batches (batches of 32, the same shuffles), trained by plain stochastic gradient
descent, by SGD with Nesterov momentum, and by Adam. The curve is the mean training loss
of each epoch (``History.loss``).
"""

import matplotlib.pyplot as plt

import xpnet
from xpnet.data import make_moons
from xpnet.optim import SGD, Adam

X, y = make_moons(600, noise=0.2, seed=1)
optimisers = {
    "SGD, lr 0.05": SGD(0.05),
    "SGD + Nesterov momentum 0.9, lr 0.05": SGD(0.05, momentum=0.9, nesterov=True),
    "Adam, lr 0.005": Adam(0.005),
}

fig, ax = plt.subplots(figsize=(7, 4.2))
for label, optimizer in optimisers.items():
    net = xpnet.MLP([2, 32, 1], activation="tanh", output="sigmoid", seed=0)
    history = net.fit(X, y, epochs=150, batch_size=32, optimizer=optimizer)
    ax.plot(range(1, len(history.loss) + 1), history.loss, label=label)
    print(f"{label:38s} final loss {history.loss[-1]:.4f}")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss (binary cross-entropy)")
ax.set_title("moons, 2-32-1 tanh, batches of 32")
ax.legend()
fig.tight_layout()
plt.show()

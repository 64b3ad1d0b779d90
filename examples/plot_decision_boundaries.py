"""
Decision boundaries per activation
==================================

The same 2-16-1 network, trained with Adam on two 2-D data sets (the flower and the
two moons), once per hidden activation. Filled regions are the predicted class over the
plane; dots are the training points.
"""

import matplotlib.pyplot as plt
import numpy as np

import xpnet
from xpnet.data import make_flower, make_moons

datasets = {"flower": make_flower(400, noise=0.2, seed=0),
            "moons": make_moons(400, noise=0.15, seed=0)}
activations = ["sigmoid", "tanh", "relu"]

fig, axes = plt.subplots(2, 3, figsize=(10, 6.4), sharex="row", sharey="row")
for row, (name, (X, y)) in enumerate(datasets.items()):
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    grid_x, grid_y = np.meshgrid(np.linspace(-2.5, 2.5, 200), np.linspace(-2.5, 2.5, 200))
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    for col, activation in enumerate(activations):
        net = xpnet.MLP([2, 16, 1], activation=activation, output="sigmoid", seed=0)
        net.fit(X, y, epochs=600, batch_size=64, optimizer="adam", lr=0.02)
        accuracy = float((xpnet.to_numpy(net.predict(X)) == y).mean())
        p = xpnet.to_numpy(net.predict_proba(grid))[:, 0].reshape(grid_x.shape)
        ax = axes[row, col]
        ax.contourf(grid_x, grid_y, p, levels=[0, 0.5, 1], colors=["#c6dbef", "#fdd0a2"])
        ax.contour(grid_x, grid_y, p, levels=[0.5], colors="k", linewidths=0.8)
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=8, edgecolors="none")
        ax.set_title(f"{name}, {activation}: accuracy {accuracy:.3f}")
        print(f"{name:7s} {activation:8s} training accuracy {accuracy:.3f}")
fig.tight_layout()
plt.show()

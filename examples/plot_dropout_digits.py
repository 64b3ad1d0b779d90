"""
Dropout on digits
=================

A 64-256-256-10 relu network on scikit-learn's digits (needs the ``sklearn`` extra),
trained with Adam with and without inverted dropout (rate 0.3 on both hidden layers),
from the same initial weights and batches. After every epoch a callback scores the
held-out rows: dropout trades a higher training loss for a held-out loss that stays
closer to it (the numbers are printed below the figure).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import xpnet

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.5,
                                                    random_state=0, stratify=y)
fig, ax = plt.subplots(figsize=(7, 4.2))
for dropout, color in [(0.0, "C0"), (0.3, "C3")]:
    net = xpnet.MLP([64, 256, 256, 10], activation="relu", output="softmax",
                    dropout=dropout, seed=0)
    test_loss = []

    def score_held_out(epoch, loss, net=net, test_loss=test_loss):
        """Called by fit after every epoch: the held-out loss of the current weights."""
        test_loss.append(float(xpnet.to_numpy(net.loss(X_test, y_test))))

    history = net.fit(X_train, y_train, epochs=60, batch_size=64, optimizer="adam",
                      lr=1e-3, callback=score_held_out)
    accuracy = float((xpnet.to_numpy(net.predict(X_test)) == y_test).mean())
    epochs = np.arange(1, len(history.loss) + 1)
    ax.plot(epochs, history.loss, color=color, ls="--", label=f"dropout {dropout}: training")
    ax.plot(epochs, test_loss, color=color, label=f"dropout {dropout}: held out")
    print(f"dropout {dropout}: held-out accuracy {accuracy:.4f}, "
          f"held-out loss {test_loss[-1]:.4f} (lowest {min(test_loss):.4f})")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy")
ax.set_title("digits, 64-256-256-10 relu, Adam, batches of 64")
ax.legend()
fig.tight_layout()
plt.show()

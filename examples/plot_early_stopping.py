"""
Early stopping and the validation curve
=======================================

``MLPClassifier(early_stopping=True)`` holds 10 % of the training rows out, scores them
after every epoch (``validation_scores_``), stops once the score has not improved for
``n_iter_no_change`` epochs, and restores the weights of the best epoch. Here on
scikit-learn's digits (needs the ``sklearn`` extra), next to the training loss
(``loss_curve_``).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import xpnet

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.25,
                                                    random_state=0, stratify=y)
clf = xpnet.MLPClassifier((64,), learning_rate_init=0.01, max_iter=200,
                          early_stopping=True, n_iter_no_change=10, random_state=0)
clf.fit(X_train, y_train)
best = int(np.argmax(clf.validation_scores_))
print(f"stopped after {clf.n_iter_} epochs; best validation accuracy "
      f"{clf.best_validation_score_:.4f} at epoch {best + 1}; "
      f"test accuracy {clf.score(X_test, y_test):.4f}")

epochs = np.arange(1, clf.n_iter_ + 1)
fig, ax_loss = plt.subplots(figsize=(7, 4.2))
ax_loss.plot(epochs, clf.loss_curve_, color="C0", label="training loss")
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("training loss", color="C0")
ax_loss.set_yscale("log")
ax_score = ax_loss.twinx()
ax_score.plot(epochs, clf.validation_scores_, color="C1", label="validation accuracy")
ax_score.set_ylabel("validation accuracy", color="C1")
ax_score.axvline(best + 1, color="k", ls=":", lw=0.8)
ax_score.annotate("best epoch: weights restored", (best + 1, clf.best_validation_score_),
                  xytext=(10, -30), textcoords="offset points",
                  arrowprops={"arrowstyle": "->"})
ax_loss.set_title("digits, 64-64-10, Adam, early stopping (patience 10)")
fig.tight_layout()
plt.show()

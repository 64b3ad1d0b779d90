"""The benchmark cases: one network, data set and training setting each.

Every implementation in a case does identical work: same architecture, data, dtype,
batch size, number of epochs and learning rate. The data are synthetic Gaussian class
blobs drawn by NumPy from a fixed seed, so every run and every implementation sees the
same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CASES", "Case"]


@dataclass(frozen=True)
class Case:
    """One benchmark setting.

    ``activation`` is the hidden activation, ``output`` the output activation (sigmoid with
    binary cross-entropy, or softmax with categorical cross-entropy). ``batch_size=None``
    is full-batch gradient descent (one step per epoch).
    """

    name: str
    layer_sizes: tuple[int, ...]
    activation: str
    output: str
    n_samples: int
    batch_size: int | None
    dtype: str
    lr: float
    epochs: int
    repeats: int
    quick_epochs: int
    quick_repeats: int
    gpu_only: bool = False
    description: str = ""

    @property
    def batch(self) -> int:
        """Rows per step (the full data set for full-batch cases)."""
        return self.n_samples if self.batch_size is None else self.batch_size

    def batch_sizes(self) -> list[int]:
        """Rows of each step of one epoch (the last batch may be smaller)."""
        sizes = [self.batch] * (self.n_samples // self.batch)
        if self.n_samples % self.batch:
            sizes.append(self.n_samples % self.batch)
        return sizes

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batch_sizes())

    @property
    def n_classes(self) -> int:
        return 2 if self.layer_sizes[-1] == 1 else self.layer_sizes[-1]

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    def matmul_flops_per_epoch(self) -> int:
        """Floating-point operations of the matrix products of one epoch.

        Per step with ``b`` rows and layer ``l`` of shape ``(n_in, n_out)``: the forward
        product ``A @ W`` and the weight gradient ``A.T @ dZ`` (``2·b·n_in·n_out`` each)
        for every layer, and the back-propagated error ``dZ @ W.T`` for every layer but
        the first. Element-wise work is not counted (it is small next to these).
        """
        pairs = list(zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True))
        per_row = sum(2 * 2 * a * b for a, b in pairs) + sum(2 * a * b for a, b in pairs[1:])
        return per_row * self.n_samples

    def param_bytes(self) -> int:
        pairs = zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True)
        return sum((a * b + b) for a, b in pairs) * self.itemsize

    def data_bytes(self) -> int:
        """``X`` plus the targets as the network consumes them (float, one column per output)."""
        return self.n_samples * (self.layer_sizes[0] + self.layer_sizes[-1]) * self.itemsize

    def batch_work_bytes(self) -> int:
        """One batch's activations ``A_l`` and errors ``dZ_l`` for every layer, plus the
        gradients (one array per parameter)."""
        rows = self.batch
        per_layer = sum(2 * rows * n for n in self.layer_sizes[1:])
        return per_layer * self.itemsize + self.param_bytes()

    def memory_budget(self) -> int:
        """Data + parameters + one batch's activations and gradients (the issue's yardstick)."""
        return self.data_bytes() + self.param_bytes() + self.batch_work_bytes()

    def make_data(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``X`` of shape ``(n_samples, n_features)`` in ``dtype`` and integer labels.

        Class blobs: each class has a random centre; points are centre plus unit noise,
        so the problem is learnable and the loss falls during the benchmark.

        Built in blocks of rows: each block is drawn in float64 and cast into ``X``, so the
        host never holds float64 temporaries of the whole data set (on ``large`` that was
        ~6 GiB per benchmark worker). NumPy's generator draws the same numbers in blocks
        as in one call, so the bytes are those of the one-shot formula
        ``(centres[labels] + normal(size=(n, f))).astype(dtype)``.
        """
        rng = np.random.default_rng(seed)
        n_features = self.layer_sizes[0]
        labels = rng.integers(0, self.n_classes, self.n_samples)
        centres = rng.normal(0.0, 1.5 / np.sqrt(n_features) * 3.0, (self.n_classes, n_features))
        X = np.empty((self.n_samples, n_features), dtype=self.dtype)
        block = max(1, (32 * 1024 * 1024) // (8 * n_features))  # ~32 MiB of float64 per block
        for first in range(0, self.n_samples, block):
            last = min(first + block, self.n_samples)
            noise = rng.normal(0.0, 1.0, (last - first, n_features))
            noise += centres[labels[first:last]]
            X[first:last] = noise
        return X, labels.astype(np.int64)


CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case(
            "tiny", (2, 4, 1), "sigmoid", "sigmoid", 400, None, "float64", lr=0.5,
            epochs=1000, repeats=9, quick_epochs=200, quick_repeats=3,
            description="the lesson's network: 2-4-1 sigmoid, full batch (Python-overhead bound)",
        ),
        Case(
            "small", (64, 32, 10), "relu", "softmax", 1797, 32, "float64", lr=0.05,
            epochs=20, repeats=7, quick_epochs=4, quick_repeats=3,
            description="digits-sized: 64-32-10 relu/softmax, batch 32",
        ),
        Case(
            "medium", (784, 256, 10), "relu", "softmax", 16384, 128, "float32", lr=0.05,
            epochs=4, repeats=7, quick_epochs=1, quick_repeats=3,
            description="MNIST-shaped: 784-256-10 relu/softmax, batch 128",
        ),
        Case(
            "large", (4096, 4096, 4096, 10), "relu", "softmax", 65536, 4096, "float32",
            lr=0.01, epochs=5, repeats=7, quick_epochs=2, quick_repeats=3, gpu_only=True,
            description="GPU only: 4096-4096-4096-10 relu/softmax, batch 4096",
        ),
    )
}

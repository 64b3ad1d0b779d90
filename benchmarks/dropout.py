"""Dropout's two measured effects (issue 13): accuracy on digits, and cost per epoch.

    python benchmarks/dropout.py digits [--epochs 60] [--splits 5] [--torch]
    python benchmarks/dropout.py cost [--pairs 15] [--backend numpy] [--threads 1]

``digits``: an over-large network, ``[64, 512, 512, 10]`` relu/softmax, Adam (lr 1e-3),
batches of 64, float32, on scikit-learn's digits; five 75/25 splits (``xpnet.data``'s
``train_test_split`` with seeds 0..4, features standardised on the training rows); the
same split, initial weights and shuffles with dropout 0.3 and without. Prints the test
accuracy and cross-entropy of each split and the means.

``cost``: the ``medium`` benchmark case (784-256-10 relu/softmax, 16,384 rows, batches of
128, float32, SGD lr 0.05, from benchmarks/cases.py) trained two epochs per fit, with and
without dropout 0.3 in alternation (paired, interleaved: machine noise hits both), after
one warm-up epoch each. Prints the median seconds of each and the median of the pairs'
ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import xpnet
from xpnet.data import load_dataset, train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _torch_reference(X_train, y_train, X_test, y_test, rate, epochs, seed):
    """The same network, optimiser and batches in PyTorch with ``nn.Dropout`` (its own
    initialisation, shuffles and masks): (test accuracy, test cross-entropy)."""
    import torch

    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Dropout(rate),
                          nn.Linear(512, 512), nn.ReLU(), nn.Dropout(rate), nn.Linear(512, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    X = torch.tensor(X_train, dtype=torch.float32)
    y = torch.tensor(y_train)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for first in range(0, len(X), 64):
            rows = order[first:first + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[rows]), y[rows]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor(X_test, dtype=torch.float32))
        loss = float(torch.nn.functional.cross_entropy(out, torch.tensor(y_test)))
        return float((out.argmax(1).numpy() == y_test).mean()), loss


def digits(epochs: int, splits: int, threads: int | None, with_torch: bool = False) -> None:
    data = load_dataset("digits")
    results: dict[float, list[float]] = {0.0: [], 0.3: []}
    losses: dict[float, list[float]] = {0.0: [], 0.3: []}
    torch_results: dict[float, list[tuple[float, float]]] = {0.0: [], 0.3: []}
    for seed in range(splits):
        X_train, X_test, y_train, y_test = train_test_split(data.X, data.y, 0.25, seed)
        mean, scale = X_train.mean(axis=0), X_train.std(axis=0)
        scale[scale == 0] = 1.0
        X_train, X_test = (X_train - mean) / scale, (X_test - mean) / scale
        line = [f"split {seed}"]
        for rate in results:
            net = xpnet.MLP([64, 512, 512, 10], activation="relu", output="softmax",
                            dtype="float32", seed=seed, dropout=rate)
            net.fit(X_train, y_train, epochs=epochs, lr=1e-3, batch_size=64,
                    optimizer="adam", threads=threads)
            accuracy = float(np.mean(np.asarray(net.predict(X_test)) == y_test))
            loss = float(net.loss(X_test, y_test))  # test cross-entropy (no L2 here)
            results[rate].append(accuracy)
            losses[rate].append(loss)
            line.append(f"dropout {rate}: {accuracy:.4f} (loss {loss:.3f})")
            if with_torch:
                torch_results[rate].append(
                    _torch_reference(X_train, y_train, X_test, y_test, rate, epochs, seed))
                line.append("torch {:.4f} ({:.3f})".format(*torch_results[rate][-1]))
        print("   ".join(line), flush=True)
    for rate, values in results.items():
        print(f"dropout {rate}: mean test accuracy {statistics.mean(values):.4f} "
              f"(sd {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}, "
              f"{len(values)} splits, {epochs} epochs); mean test cross-entropy "
              f"{statistics.mean(losses[rate]):.3f}")
        if with_torch:
            print(f"  torch nn.Dropout({rate}): mean test accuracy "
                  f"{statistics.mean(a for a, _ in torch_results[rate]):.4f}, cross-entropy "
                  f"{statistics.mean(c for _, c in torch_results[rate]):.3f}")


def cost(pairs: int, backend: str, threads: int | None, epochs_per_fit: int = 2) -> None:
    from cases import CASES

    case = CASES["medium"]
    X, labels = case.make_data()
    nets = {
        rate: xpnet.MLP(list(case.layer_sizes), activation=case.activation,
                        output=case.output, backend=backend, dtype=case.dtype, seed=0,
                        dropout=rate)
        for rate in (0.0, 0.3)
    }
    backend_arrays = nets[0.0].array_backend
    X_dev, y_dev = backend_arrays.asarray(X), backend_arrays.asarray(labels)  # as run.py

    def epoch(rate: float) -> float:
        """Seconds per epoch of one fit of ``epochs_per_fit`` epochs (as run.py's
        xpnet implementations: device arrays in, shuffled mini-batches)."""
        start = time.perf_counter()
        nets[rate].fit(X_dev, y_dev, epochs=epochs_per_fit, lr=case.lr,
                       batch_size=case.batch_size, threads=threads)
        return (time.perf_counter() - start) / epochs_per_fit

    epoch(0.0), epoch(0.3)  # warm-up
    times: dict[float, list[float]] = {0.0: [], 0.3: []}
    ratios = []
    for index in range(pairs):
        order = (0.0, 0.3) if index % 2 == 0 else (0.3, 0.0)  # alternate who goes first
        pair = {rate: epoch(rate) for rate in order}
        for rate, seconds in pair.items():
            times[rate].append(seconds)
        ratios.append(pair[0.3] / pair[0.0])
    print(f"medium ({case.description}), backend {backend}, threads={threads}, "
          f"{pairs} interleaved pairs of fits of {epochs_per_fit} epochs")
    for rate, values in times.items():
        print(f"  dropout {rate}: median {statistics.median(values) * 1e3:.1f} ms/epoch "
              f"(min {min(values) * 1e3:.1f}, max {max(values) * 1e3:.1f})")
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"  with/without: median ratio {statistics.median(ratios):.3f} "
          f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("digits")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--splits", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--torch", action="store_true",
                   help="also train the same network with PyTorch's nn.Dropout, per split")
    p = sub.add_parser("cost")
    p.add_argument("--pairs", type=int, default=15)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.what == "digits":
        if args.threads is not None and args.torch:
            import torch

            torch.set_num_threads(args.threads)
        digits(args.epochs, args.splits, args.threads, args.torch)
    else:
        cost(args.pairs, args.backend, args.threads)


if __name__ == "__main__":
    main()

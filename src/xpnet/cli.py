"""Command line: ``xpnet train`` (argument parsing and printing only)."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .backends import BACKEND_NAMES, BackendUnavailableError
from .data import make_moons, train_test_split
from .network import MLP


def _train(args: argparse.Namespace) -> int:
    X, y = make_moons(400, noise=0.1, seed=args.seed)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, 0.25, seed=args.seed)
    net = MLP([2, *args.layers, 1], activation=args.activation, output="sigmoid",
              backend=args.backend, device=args.device, dtype=args.dtype, seed=args.seed)
    history = net.fit(X_train, y_train, epochs=args.epochs, lr=args.lr)
    from .backends import to_numpy

    train_acc = float((to_numpy(net.predict(X_train)) == y_train).mean())
    test_acc = float((to_numpy(net.predict(X_test)) == y_test).mean())
    print(f"network   {net!r}")
    print(f"loss      {history.loss[-1]:.6f}  after {history.epochs} epochs "
          f"({history.seconds:.2f} s)")
    print(f"accuracy  train {train_acc:.4f}  test {test_acc:.4f}")
    return 0


def _layers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 16,16; got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xpnet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the lesson's network on two moons")
    train.add_argument("--backend", default="numpy", choices=BACKEND_NAMES)
    train.add_argument("--device", default=None)
    train.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    train.add_argument("--layers", type=_layers, default=[8])
    train.add_argument("--activation", default="sigmoid")
    train.add_argument("--epochs", type=int, default=3000)
    train.add_argument("--lr", type=float, default=3.0)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BackendUnavailableError as exc:
        print(f"xpnet: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as exc:
        print(f"xpnet: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``xpnet backends``, ``xpnet gradcheck`` and ``xpnet explain``: look inside."""

from __future__ import annotations

import argparse

import numpy as np

from .._jit_cache import cache_directory, describe
from .._memory import n_parameters, training_too_large
from ..backends import BACKEND_NAMES, backend_info, get_backend
from ._common import (
    EXIT_CHECK_FAILED,
    check_backend,
    describe_net,
    device_name,
    emit_json,
    fail,
    on_host,
    parse_device,
)


def _devices(name: str) -> list[str]:
    """Devices usable by an available backend, as strings for ``--device``."""
    if name == "numpy":
        return ["cpu"]
    if name == "torch":
        import torch

        return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if name == "cupy":
        import cupy

        return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]
    if name == "jax":
        import jax

        try:
            gpus = jax.devices("gpu")
        except RuntimeError:  # a CPU-only jax
            gpus = []
        return ["cpu"] + [f"cuda:{i}" for i in range(len(gpus))]
    backend = get_backend(name)
    return [str(backend.device) if backend.device is not None else "default"]


def cmd_backends(args: argparse.Namespace) -> int:
    rows = []
    for name in BACKEND_NAMES:
        info = backend_info(name)
        info["devices"] = []
        if info["usable"]:
            try:
                info["devices"] = _devices(name)
            except Exception as exc:  # a broken driver must not break the table
                info["reason"] = f"could not list devices ({exc})"
        rows.append(info)
    if args.json:
        directory = cache_directory()
        emit_json({"command": "backends", "backends": rows,
                   "compile_cache": None if directory is None else str(directory)})
        return 0
    table = [("backend", "installed", "version", "usable", "devices", "notes")]
    for info in rows:
        if not info["installed"]:
            note = f"install: {info['install']}"
        elif not info["usable"]:
            note = str(info["reason"])
        else:
            note = info["description"]
        table.append((
            info["name"], "yes" if info["installed"] else "no", info["version"] or "-",
            "yes" if info["usable"] else "no", ", ".join(info["devices"]) or "-", note,
        ))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[5])
    print(describe())
    return 0


def _check_gradcheck_size(args: argparse.Namespace) -> None:
    """Refuse --layers/--rows whose network and random rows exceed the memory available."""
    itemsize = np.dtype(args.dtype).itemsize
    found = training_too_large(args.layers, args.rows, args.rows, itemsize,
                               on_host=on_host(args))
    if found is None:
        return
    part, clause = found
    if part == "parameters":
        fail(f"--layers {','.join(map(str, args.layers))} "
             f"({n_parameters(args.layers):,} parameters): the gradient check "
             f"{clause}; use smaller layers")
    fail(f"--rows {args.rows}: the gradient check {clause}; use fewer rows")


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from ..gradcheck import DEFAULTS, check_gradients, random_problem
    from ..network import MLP

    device = parse_device(args.device)
    check_backend(args.backend, device)
    _check_gradcheck_size(args)
    net = MLP(args.layers, activation=args.activation, output=args.output,
              backend=args.backend, device=device, dtype=args.dtype, seed=args.seed,
              alpha=args.alpha)
    X, Y = random_problem(net, rows=args.rows, seed=args.seed)
    eps = args.eps if args.eps is not None else DEFAULTS[net.dtype][0]
    threshold = args.threshold if args.threshold is not None else DEFAULTS[net.dtype][2]
    results = check_gradients(net, X, Y, eps=eps, max_entries=args.max_entries, seed=args.seed)
    worst = max(r.max_rel_error for r in results)
    passed = worst <= threshold
    if args.json:
        emit_json({
            "command": "gradcheck", "layer_sizes": list(net.layer_sizes),
            "activations": list(net.activations), "output": net.output,
            "backend": net.backend, "device": device_name(net), "dtype": net.dtype,
            "rows": args.rows, "eps": eps, "threshold": threshold,
            "parameters": [{"name": r.name, "shape": list(r.shape), "checked": r.checked,
                            "max_rel_error": r.max_rel_error, "max_abs_error": r.max_abs_error}
                           for r in results],
            "max_rel_error": worst, "passed": passed,
        })
    elif not args.quiet or not passed:
        print(f"gradcheck {describe_net(net)}")
        print(f"          on {net.backend} ({device_name(net)}, {net.dtype}), "
              f"{args.rows} random rows, central differences with eps {eps:g}")
        print(f"{'parameter':<10} {'shape':<12} {'checked':>7}  {'max rel error':>13}  "
              f"{'max abs error':>13}")
        for r in results:
            print(f"{r.name:<10} {str(r.shape):<12} {r.checked:>7}  {r.max_rel_error:>13.2e}  "
                  f"{r.max_abs_error:>13.2e}")
        verdict = "PASS" if passed else "FAIL"
        print(f"largest relative error {worst:.2e} {'<=' if passed else '>'} threshold "
              f"{threshold:g}: {verdict}")
    return 0 if passed else EXIT_CHECK_FAILED


def cmd_explain(args: argparse.Namespace) -> int:
    from ..explain import explain

    print(explain(args.layers, args.activation, args.output, alpha=args.alpha,
                  rows=args.rows if args.rows is not None else "m"))
    return 0

"""``xpnet export``: a model file as an ONNX graph, optionally checked in onnxruntime."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ._common import EXIT_CHECK_FAILED, emit_json, fail, printable
from ._paths import check_paths

# Largest difference --check accepts, relative to max(1, |value|), by the network's dtype:
# a few hundred rounding errors of float64; float32's 1e-6 (products of a few hundred terms
# summed in another order, transcendental functions within an ulp or two).
_TOLERANCE = {"float64": 1e-12, "float32": 1e-6}
_CHECK_ROWS = 256


def _sample_rows(spec: Any) -> np.ndarray:
    """Rows like the training data: the standardisation statistics' mean and spread (else
    standard normal), seed 0, plus one row of zeros."""
    rng = np.random.default_rng(0)
    n_in = spec.net.layer_sizes[0]
    rows = rng.standard_normal((_CHECK_ROWS - 1, n_in))
    if spec.standardize is not None:
        rows = rows * spec.standardize[1] + spec.standardize[0]
    return np.vstack([rows, np.zeros((1, n_in))])


def _check(proto: Any, spec: Any) -> tuple[bool, dict[str, Any]]:
    from ..onnx import compare, xpnet_outputs

    rows = _sample_rows(spec)
    report = compare(proto, spec, rows)
    tolerance = _TOLERANCE[spec.net.dtype]
    passed = True
    for name, expected in xpnet_outputs(spec, rows).items():
        entry = report[name]
        if name == "label":
            passed = passed and entry["differing_rows"] == 0
            continue
        size = max(1.0, float(np.max(np.abs(expected.astype(np.float64)), initial=0.0)))
        entry["largest_difference"] = entry["max_abs"] / size
        passed = passed and entry["largest_difference"] <= tolerance
    return passed, {"rows": len(rows), "tolerance": tolerance, "passed": passed,
                    "outputs": report}


def _check_lines(check: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in check["outputs"].items():
        if name == "label":
            lines.append(f"check     label: {entry['differing_rows']} of {check['rows']} rows "
                         "differ")
        else:
            lines.append(f"check     {name}: largest difference {entry['largest_difference']:.3g}"
                         f" (absolute {entry['max_abs']:.3g}, relative {entry['max_rel']:.3g}; "
                         f"tolerance {check['tolerance']:g})")
    lines.append(f"check     onnxruntime and xpnet (NumPy) on {check['rows']} sample rows: "
                 + ("agree" if check["passed"] else "DIFFER"))
    return lines


def _summary(proto: Any, spec: Any) -> dict[str, Any]:
    from ..onnx._lean import count_nodes

    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    return {"opset": opset, "nodes": count_nodes(proto.graph), "input_dtype": spec.input_dtype,
            "n_features": spec.net.layer_sizes[0],
            "outputs": [o.name for o in proto.graph.output]}


def cmd_export(args: argparse.Namespace) -> int:
    from .._files import atomic_write
    from ..onnx import OnnxUnavailableError, build, require, served

    check_paths({"OUT": ("ONNX file", args.out)}, {"MODEL": ("model file", args.model)})
    try:
        require("ndonnx", "onnx", *(["onnxruntime"] if args.check else []))
    except OnnxUnavailableError as exc:
        fail(str(exc))
    spec = served(args.model)
    proto = build(spec, batch=args.batch, opset=args.opset)
    result: dict[str, Any] = {"command": "export", "model": args.model, "out": args.out,
                              **_summary(proto, spec)}
    passed = True
    if args.check:
        passed, result["check"] = _check(proto, spec)
    if passed:
        with atomic_write(args.out, "wb") as handle:
            handle.write(proto.SerializeToString())
    result["written"] = passed
    if args.json:
        emit_json(result)
    elif not args.quiet or not passed:
        lines = _check_lines(result["check"]) if args.check else []
        print("\n".join([*lines, (
            f"wrote {printable(args.out)}: ONNX opset {result['opset']}, {result['nodes']} "
            f"nodes; input X (N, {result['n_features']}) {result['input_dtype']}; outputs "
            f"{', '.join(result['outputs'])}") if passed else
            "xpnet export: the check failed; nothing was written"]))
    return 0 if passed else EXIT_CHECK_FAILED

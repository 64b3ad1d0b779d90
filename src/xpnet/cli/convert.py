"""``xpnet convert``: a CSV or ``.npz`` file to a zarr store, block by block."""

from __future__ import annotations

import argparse

from ._common import emit_json, printable


def cmd_convert(args: argparse.Namespace) -> int:
    from ..data import convert_to_zarr

    summary = convert_to_zarr(args.source, args.dest, args.chunk_rows, args.target,
                              dtype=args.dtype, overwrite=args.overwrite,
                              delimiter=args.delimiter, header=args.header)
    if args.json:
        emit_json({
            "store": summary.path, "rows": summary.rows, "n_features": summary.n_features,
            "dtype": summary.dtype, "chunk_rows": summary.chunk_rows, "chunks": summary.chunks,
            "feature_names": summary.feature_names, "target": summary.target_name,
            "target_dtype": summary.target_dtype,
        })
    elif not args.quiet:
        target = "" if summary.target_name is None else (
            f", target {printable(summary.target_name)!r} ({summary.target_dtype})")
        print(f"wrote {printable(summary.path)}: {summary.rows} rows x {summary.n_features} "
              f"features ({summary.dtype}){target}, {summary.chunks} chunk"
              f"{'s' if summary.chunks != 1 else ''} of {summary.chunk_rows} rows")
    return 0

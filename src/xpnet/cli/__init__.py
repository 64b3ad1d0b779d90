"""The ``xpnet`` command line: train, evaluate, predict, export, convert, backends, gradcheck,
explain.

Argument parsing and printing only: the work is done by the library (``xpnet.data``,
``xpnet.io``, ``xpnet.metrics``, ``xpnet.gradcheck``, ``xpnet.explain``). Every error
is one line on stderr, ``xpnet: error: ...``, with exit status 2; never a traceback.

Modules: ``_common`` (exit codes, option types, errors, data loading, formatting),
``parser`` (every command's options and help), ``train`` (one flow, run ``Local``-ly or
``distributed.OnCluster``), ``distributed`` (the Dask cluster), ``models`` (evaluate,
predict), ``convert`` and ``inspection`` (backends, gradcheck, explain); this one holds
the entry point.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from ..backends import BackendUnavailableError
from ._common import EXIT_ERROR, EXIT_INTERRUPTED, CLIError, printable
from ._signals import (
    EXIT_BROKEN_PIPE,
    EXIT_SIGTERM,
    Terminated,
    TrainingAborted,
    install_sigterm,
    silence_stdout,
)
from .parser import build_parser

__all__ = ["build_parser", "main"]


def _one_line(message: object) -> str:
    """One line, control characters escaped: messages may quote a file's content."""
    return printable(" ".join(str(message).split()))


def _show_warning(message: Any, category: Any, filename: str, lineno: int,
                  file: Any = None, line: Any = None) -> None:
    sys.stderr.write(f"xpnet: warning: {_one_line(message)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    if args.command is None:
        parser.print_help(sys.stderr)
        sys.stderr.write("xpnet: error: choose a command (train, evaluate, predict, export, "
                         "convert, backends, gradcheck, explain)\n")
        return EXIT_ERROR

    from ..data import DataError
    from ..io import ModelFileError
    from ..plotting import PlotUnavailableError

    expected = (CLIError, DataError, ModelFileError, BackendUnavailableError,
                PlotUnavailableError, ValueError, TypeError, FloatingPointError, OSError)
    if hasattr(sys.stdout, "reconfigure"):  # never fail on a terminal without UTF-8
        sys.stdout.reconfigure(errors="replace")
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    restore_sigterm = install_sigterm()
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # a reader gone early shows here when the output was short
        return status
    except BrokenPipeError:  # 'xpnet predict ... | head': stop quietly, as Unix filters do
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except TrainingAborted:  # a second Ctrl-C during 'xpnet train'
        sys.stderr.write("xpnet: aborted; nothing was written\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("xpnet: interrupted\n")
        return 130
    except expected as exc:
        sys.stderr.write(f"xpnet: error: {_one_line(exc)}\n")
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("XPNET_DEBUG"):
            raise
        sys.stderr.write(f"xpnet: error: unexpected {type(exc).__name__}: {_one_line(exc)} "
                         "(set XPNET_DEBUG=1 to see the traceback, and please report it)\n")
        return EXIT_ERROR
    except Terminated:  # SIGTERM: every finally has run, so no temporary file is left
        sys.stderr.write("xpnet: terminated (SIGTERM)\n")
        return EXIT_SIGTERM
    finally:
        restore_sigterm()
        warnings.showwarning = previous

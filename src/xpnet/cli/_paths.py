"""Output paths checked before any work: never the same file as an input or another output.

Each command calls :func:`check_paths` first, with its outputs (``--save``, ``--plot``,
``--out``) and its input files (the model, ``--data``). A refusal is one ``xpnet: error:``
line and exit status 2, before a byte is read or written.
"""

from __future__ import annotations

import os

from .._files import UnsafeOutputError, check_output_path
from ._common import fail


def _same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode when both exist (so hard links,
    symbolic links and ``./a`` vs ``a`` match), else the same resolved real path."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_paths(outputs: dict[str, tuple[str, str | None]],
                inputs: dict[str, tuple[str, str | None]]) -> None:
    """Refuse, before any work, an output xpnet must not write.

    Parameters
    ----------
    outputs, inputs : dict
        Option (``"--save"``) to (what it is, ``"model file"``; the path given, or None
        when the option is absent).

    An output is refused if its name is empty, if it exists and is not a regular file
    (directory, FIFO, socket, device), if it is a link to nothing or its folder does not
    exist, and if it is the same file as another output or as any input.
    """
    given: dict[str, tuple[str, str]] = {
        opt: (what, path) for opt, (what, path) in outputs.items() if path is not None}
    for opt, (what, path) in given.items():
        try:  # refuses '' too
            check_output_path(path)
        except UnsafeOutputError as exc:
            fail(f"cannot write the {what} {path!r} ({opt}): {exc.problem}")
    done: list[str] = []
    for opt, (what, path) in given.items():
        for other in done:
            other_what, other_path = given[other]
            if _same_file(path, other_path):
                fail(f"{opt} {path!r} and {other} {other_path!r} are the same file: the "
                     f"{what} would overwrite the {other_what}; give them different names")
        for other, (input_what, input_path) in inputs.items():
            if input_path and _same_file(path, input_path):
                fail(f"{opt} {path!r} is the same file as the {input_what} {input_path!r} "
                     f"({other}): writing the {what} would destroy it; give another name")
        done.append(opt)

"""Per-backend test sessions, lint and type checks.

    nox -s "tests(backend='numpy')"     # or array_api_strict, torch, jax, cupy
    nox -s lint typecheck
    nox -s bench -- --quick             # benchmarks (not part of the default sessions)

Each tests session installs only its backend's extra (plus the test tools) and runs
pytest with ``--backend`` for it; the cross-backend tests always compare against NumPy.
The torch version used on the project's machines is pinned once, in constraints.txt.
"""

from __future__ import annotations

import nox

nox.options.sessions = [
    "tests(backend='numpy')",
    "tests(backend='array_api_strict')",
    "tests(backend='torch')",
    "tests(backend='jax')",
    "lint",
    "typecheck",
]
nox.options.reuse_existing_virtualenvs = True

EXTRAS = {
    "numpy": "test",
    "array_api_strict": "test,strict",
    "torch": "test,torch",
    "cupy": "test,cupy",
    "jax": "test,jax",
}


@nox.session
@nox.parametrize("backend", list(EXTRAS))
def tests(session: nox.Session, backend: str) -> None:
    """Run the test suite on one backend (NumPy is always the reference)."""
    session.install("-c", "constraints.txt", "-e", f".[{EXTRAS[backend]}]")
    session.run("pytest", "--backend", backend, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("mypy", "-e", ".")
    session.run("mypy", "src")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks vs scikit-learn, PyTorch and the NumPy/GEMM floors (see benchmarks/).

    Not in the default sessions: a full run takes about ten minutes. Pass ``-- --quick``
    for the two-minute version. Results: benchmarks/RESULTS.md (quick: benchmarks/out/).
    """
    session.install("-c", "constraints.txt", "-e", ".[torch,sklearn,strict,plot]", "threadpoolctl")
    session.run("python", "benchmarks/run.py", *session.posargs)

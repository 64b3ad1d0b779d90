"""Per-backend test sessions, lint and type checks.

    nox -s "tests(backend='numpy')"     # or array_api_strict, torch, jax, cupy
    nox -s lint typecheck
    nox -s bench -- --quick             # benchmarks (not part of the default sessions)
    nox -s mutation                     # mutation score of the core (not a default session)
    nox -s fuzz                         # long fuzz run of the file readers (not default)
    nox -s docs                         # the documentation site, warnings as errors
    nox -s docs_browser                 # the built site checked in headless Chromium

Each tests session installs only its backend's extra (plus the test tools) and runs
pytest with ``--backend`` for it; the cross-backend tests always compare against NumPy.
The numpy session runs the whole suite; the other backends' sessions run only the tests
that take the ``backend`` fixture (``--backend-tests-only``): every other test is the same
whatever the backend, and already runs in the numpy session and in the README's test
command (every installed backend at once). Tests run on every core (pytest-xdist).
The torch version used on the project's machines is pinned once, in constraints.txt.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = [
    "tests(backend='numpy')",
    "tests(backend='array_api_strict')",
    "tests(backend='torch')",
    "tests(backend='jax')",
    "lint",
    "typecheck",
    "tests_distributed",
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
    only = [] if backend == "numpy" else ["--backend-tests-only"]
    session.run("pytest", "-n", "auto", "--backend", backend, *only, *session.posargs)


@nox.session
def tests_distributed(session: nox.Session) -> None:
    """The Dask tests (``tests/test_distributed*.py``) with the ``dask`` extra installed.

    They start one LocalCluster of two worker processes for the whole session; the other
    sessions skip them (no dask there) and test the "not installed" error instead.
    """
    session.install("-c", "constraints.txt", "-e", ".[test,dask]")
    files = sorted(str(p) for p in Path("tests").glob("test_distributed*.py"))
    session.run("pytest", "--backend", "numpy", *(session.posargs or files))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py", "docs", "examples")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("mypy", "-e", ".")
    session.run("mypy", "src")


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz the model and data file readers with many random examples (minutes).

    Not in the default sessions: the normal test run already covers a small, fixed set of
    examples. ``XPNET_FUZZ_EXAMPLES`` sets the examples per test (default here 2000);
    ``nox -s fuzz -- -x`` passes options to pytest.
    """
    session.install("-c", "constraints.txt", "-e", ".[test]")
    examples = os.environ.get("XPNET_FUZZ_EXAMPLES", "2000")
    session.run("pytest", "tests/test_fuzz.py", "--backend", "numpy", *session.posargs,
                env={"XPNET_FUZZ_EXAMPLES": examples})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks vs scikit-learn, PyTorch and the NumPy/GEMM floors (see benchmarks/).

    Not in the default sessions: a full run takes about ten minutes. Pass ``-- --quick``
    for the two-minute version. Results: benchmarks/RESULTS.md (quick: benchmarks/out/).
    """
    session.install("-c", "constraints.txt", "-e", ".[torch,sklearn,strict,plot]", "threadpoolctl")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def mutation(session: nox.Session) -> None:
    """Targeted mutation testing of the core (tests/mutation/run_mutants.py).

    Not in the default sessions: about ten minutes on two cores. Each of ~45 deliberate
    bugs (wrong sign in BP1, W instead of dW in BP2, a test row leaking into training,
    ...) is applied to a copy of src/ and a fast subset of the tests is run against it;
    the session fails when a mutant survives. Pass ``-- -k ID`` for some mutants only,
    ``-- --list`` to list them.
    """
    # Not editable: the mutated copies on PYTHONPATH must shadow the installed package.
    session.install("-c", "constraints.txt", ".[test,sklearn]")
    session.run("python", "tests/mutation/run_mutants.py", *session.posargs)


# What the documentation build imports: the API pages document xpnet.sklearn,
# xpnet.distributed and export_onnx, and the gallery compares NumPy, torch and JAX.
DOCS_EXTRAS = "docs,sklearn,torch,jax,dask,onnx"


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (docs/) with every warning an error, then run the
    doctests of the guide and the docstrings and check every internal link of the HTML.

    ``docs/_build/html/index.html`` is the site. Intersphinx links to NumPy, SciPy,
    scikit-learn, PyTorch, JAX and Dask need their inventories from the network: set
    ``XPNET_DOCS_INTERSPHINX=1`` to use them (off by default: CI reaches no docs site).
    """
    session.install("-c", "constraints.txt", "-e", f".[{DOCS_EXTRAS}]")
    doctrees = "docs/_build/doctrees"
    common = ["-W", "--keep-going", "-q", "-d", doctrees, "-j", "1"]
    env = {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    session.run("sphinx-build", *common, "-b", "html", "docs", "docs/_build/html", env=env)
    session.run("sphinx-build", *common, "-b", "doctest", "docs", "docs/_build/doctest",
                env=env)
    session.run("python", "docs/check_links.py", "docs/_build/html")


@nox.session
def docs_browser(session: nox.Session) -> None:
    """Serve the built site on localhost and check it in headless Chromium (Playwright
    driving Debian's ``chromium``; no browser is downloaded). Run ``nox -s docs`` first.

    Screenshots go to ``docs/_build/screenshots/``. ``XPNET_CHROMIUM`` names another
    Chromium executable (default ``/usr/bin/chromium``).
    """
    session.install("playwright>=1.40")
    session.run("python", "docs/browser_check.py", "docs/_build/html",
                "docs/_build/screenshots")

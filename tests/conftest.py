"""Shared fixtures: a ``backend`` fixture over every installed backend, selectable with
``pytest --backend NAME`` (repeatable), and a ``dtype`` fixture."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile

import pytest

import xpnet
from xpnet.backends import BACKEND_NAMES, BackendUnavailableError


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKEND_NAMES,
        default=None,
        help="run backend-parametrised tests on this backend only (repeatable); "
        "default: every backend, those not usable here are skipped with the reason",
    )
    parser.addoption(
        "--backend-tests-only",
        action="store_true",
        default=False,
        help="run only the tests that take the backend fixture (the per-backend nox "
        "sessions use it: every other test is the same on every backend and already ran, "
        "once, in the full run and in the numpy session)",
    )


def selected_backends(config: pytest.Config) -> list[str]:
    return config.getoption("backend") or list(BACKEND_NAMES)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config), indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backend_session(name): kept by --backend-tests-only when `name` is among the "
        "--backend choices (tests of one backend's own pitfalls that need not take the "
        "backend fixture, e.g. tests/test_jax.py)",
    )
    # JAX's compiled programs go to a cache folder of this run, never the user's
    # ~/.cache (the xdist workers and the CLI subprocesses inherit the variable, so they
    # share it: a program compiled by one test is loaded by the next). Tests of the cache
    # itself set their own folder.
    if "XPNET_CACHE_DIR" not in os.environ and not hasattr(config, "workerinput"):
        folder = tempfile.mkdtemp(prefix="xpnet-test-jax-cache-")
        os.environ["XPNET_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def _for_selected_backend(item: pytest.Item, config: pytest.Config) -> bool:
    if "backend" in getattr(item, "fixturenames", ()):
        return True
    marker = item.get_closest_marker("backend_session")
    return marker is not None and marker.args[0] in (config.getoption("backend") or ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("backend_tests_only"):
        return
    keep = [item for item in items if _for_selected_backend(item, config)]
    dropped = [item for item in items if not _for_selected_backend(item, config)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _skip_reason(name: str, exc: Exception) -> str:
    if name == "cupy":
        installed = importlib.util.find_spec("cupy") is not None
        return "no CUDA device" + ("" if installed else " (and cupy is not installed)")
    return f"backend {name} unavailable: {exc}"


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Name of a usable backend; skips (saying why) when it is not usable here."""
    name = request.param
    try:
        xpnet.get_backend(name)
    except BackendUnavailableError as exc:
        pytest.skip(_skip_reason(name, exc))
    return name


@pytest.fixture(params=["float64", "float32"])
def dtype(request: pytest.FixtureRequest) -> str:
    return request.param


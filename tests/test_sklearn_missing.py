"""Without the sklearn extra, the estimators say how to install it (issue 20, item 6).

Each check is a real subprocess in which scikit-learn (and the other extras) are hidden:
``sys.modules[name] = None`` makes ``import name`` fail whether or not it is installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

EXTRAS = ("sklearn", "scipy", "torch", "jax", "jaxlib", "cupy", "array_api_strict", "dask",
          "distributed", "zarr", "pyarrow", "matplotlib", "rich", "pandas")
HIDE = f"import sys\nHIDDEN = {EXTRAS!r}\nfor name in HIDDEN:\n    sys.modules[name] = None\n"


def python(code):
    return subprocess.run([sys.executable, "-c", HIDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_import_xpnet_needs_no_extra():
    proc = python("""
        import xpnet, xpnet.train, xpnet.cli
        net = xpnet.MLP([2, 3, 1], backend="numpy", seed=0)
        print(type(net).__name__, sorted(n for n in HIDDEN if sys.modules[n] is not None))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["MLP", "[]"]


@pytest.mark.parametrize("statement", [
    "from xpnet import MLPClassifier",
    "from xpnet import MLPRegressor",
    "import xpnet.sklearn",
    "import xpnet; xpnet.MLPRegressor",
])
def test_estimators_without_sklearn_name_the_extra(statement):
    proc = python(f"""
        try:
            {statement}
        except ImportError as exc:
            print(type(exc).__name__)
            print(exc)
        else:
            raise SystemExit("no error")
    """)
    assert proc.returncode == 0, proc.stderr
    kind, message = proc.stdout.strip().splitlines()
    assert kind == "ImportError"  # not the bare ModuleNotFoundError of `import sklearn`
    assert "need scikit-learn, which is not installed" in message
    assert message.endswith("Install it with: pip install 'xpnet[sklearn]'")

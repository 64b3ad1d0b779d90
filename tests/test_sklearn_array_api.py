"""Pipelines and searches on device arrays (issue 20, item 4): the recipe of
docs/guide/sklearn.md, run as written in a fresh interpreter with ``SCIPY_ARRAY_API=1``,
and xpnet's one-line warning when scikit-learn's dispatch is on but SciPy is not in array API mode.

Each case runs in a subprocess: SciPy reads ``SCIPY_ARRAY_API`` once, when it is first
imported, so the variable can only be tested in a new process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the estimators need scikit-learn")
pytest.importorskip("torch", reason="the recipe's first half runs on torch tensors")
pytest.importorskip("array_api_strict", reason="the recipe's second half runs on array-api-strict")

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## scikit-learn pipelines on torch / array-api-strict arrays"
HINT = "set SCIPY_ARRAY_API=1 in the environment before SciPy (or scikit-learn) is imported"


def _python(code: str, tmp_path: Path, scipy_array_api: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # this checkout's xpnet
    env.pop("SCIPY_ARRAY_API", None)
    if scipy_array_api:
        env["SCIPY_ARRAY_API"] = "1"
    script = tmp_path / "script.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=600)


def readme_recipe() -> str:
    """The first ```python block under the recipe's heading in docs/guide/sklearn.md, as
    written."""
    text = (ROOT / "docs" / "guide" / "sklearn.md").read_text(encoding="utf-8")
    assert HEADING in text, "docs/guide/sklearn.md lost its pipelines recipe"
    return text.split(HEADING, 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]


def _scores(line: str) -> list[float]:
    assert line.startswith("cv accuracy [") and line.endswith("]"), line
    return [float(v) for v in line[len("cv accuracy ["):-1].split()]


def test_readme_recipe_stays_on_torch_and_array_api_strict(tmp_path):
    proc = _python(readme_recipe(), tmp_path, scipy_array_api=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 6, proc.stdout
    # the scaler's mean_, the network's coefs_, predict and predict_proba: torch tensors
    assert lines[0] == "Tensor Tensor Tensor Tensor"
    torch_scores, strict_scores = _scores(lines[1]), _scores(lines[4])
    assert len(torch_scores) == 3 and min(torch_scores) > 0.8  # it learned (y is linear)
    assert lines[2].startswith("best {'mlpclassifier__alpha': ") and lines[2].endswith(" Tensor")
    assert lines[3] == "array_api_strict array_api_strict"
    # the same float64 data and arithmetic on another namespace: the same folds' scores
    # up to a prediction flipped by rounding (1 of 100 rows per fold)
    assert all(abs(a - b) <= 0.011 for a, b in zip(torch_scores, strict_scores, strict=True))
    assert lines[5].startswith("best {'mlpclassifier__alpha': ")
    assert HINT not in proc.stderr  # set up right: no warning from xpnet


MISCONFIGURED = textwrap.dedent("""
    import os
    import warnings

    import sklearn
    import torch

    import xpnet

    os.environ["SCIPY_ARRAY_API"] = "1"  # too late: scikit-learn imported SciPy already
    X = torch.randn(60, 3, dtype=torch.float64)
    y = (X[:, 0] > 0).to(torch.int64)
    for dispatch in (False, True):
        with sklearn.config_context(array_api_dispatch=dispatch), \\
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            xpnet.MLPClassifier((4,), max_iter=2).fit(X, y)
        about = [str(w.message) for w in caught if "SCIPY_ARRAY_API" in str(w.message)]
        print(dispatch, len(about), about[0] if about else "")
""")


def test_scipy_without_array_api_under_dispatch_gets_one_line_saying_what_to_set(tmp_path):
    proc = _python(MISCONFIGURED, tmp_path, scipy_array_api=False)
    assert proc.returncode == 0, proc.stderr
    off, on = proc.stdout.splitlines()
    assert off == "False 0 "  # outside dispatch nothing is wrong
    flag, count, message = on.split(" ", 2)
    assert (flag, count) == ("True", "1")
    assert HINT in message and "\n" not in message


def test_without_the_variable_scikit_learn_refuses_dispatch_itself(tmp_path):
    """What the guide says happens without SCIPY_ARRAY_API: scikit-learn's own error."""
    code = textwrap.dedent("""
        import sklearn
        try:
            with sklearn.config_context(array_api_dispatch=True):
                pass
        except RuntimeError as exc:
            print("refused:", "SCIPY_ARRAY_API=1" in str(exc))
    """)
    proc = _python(code, tmp_path, scipy_array_api=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "refused: True"

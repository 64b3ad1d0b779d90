"""Small data makers shared by the tests (NumPy only, seeded)."""

from __future__ import annotations

import numpy as np

import xpnet

# Every hidden activation and every output/loss pair the library offers.
ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]
OUTPUTS = ["sigmoid", "softmax", "identity", "exp"]


def make_problem(output: str, m: int = 7, n_in: int = 3, n_out: int = 3, seed: int = 0):
    """Random ``X (m, n_in)`` and a target of the right kind for ``output``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n_in))
    if output == "sigmoid":  # multi-label 0/1 targets
        Y = (rng.random((m, n_out)) < 0.5).astype(np.float64)
    elif output == "softmax":  # integer class labels
        Y = rng.integers(0, n_out, size=m)
    elif output == "exp":  # Poisson counts, zeros included (0 log 0 = 0)
        Y = rng.poisson(2.0, size=(m, n_out)).astype(np.float64)
    else:
        Y = rng.normal(size=(m, n_out))
    return X, Y


def assert_close(actual, expected, rtol: float, what: str = "") -> None:
    """Compare arrays of any backend with NumPy, relative to the largest magnitude.

    ``atol = rtol * max|expected|``: an entry that is (nearly) zero after cancellation
    carries the absolute rounding error of the large terms it came from, so judging it
    relative to itself would demand more than any floating-point order allows.
    """
    actual = xpnet.to_numpy(actual).astype(np.float64)
    expected = xpnet.to_numpy(expected).astype(np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def one_line_error(proc, *fragments):
    """``xpnet`` exited 2 with one ``xpnet: error: ...`` line holding every fragment;
    returns that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpnet: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]

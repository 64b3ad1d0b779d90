"""xpnet.sklearn's copies of the scikit-learn private helpers it used to import behave as
the installed scikit-learn's own: same results, same exceptions, same words (the
estimators are compared with scikit-learn's number for number and message for message).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn (the 'sklearn' extra) not installed")

from scipy.optimize import OptimizeResult  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils.multiclass import _check_partial_fit_first_call  # noqa: E402
from sklearn.utils.optimize import _check_optimize_result  # noqa: E402
from sklearn.utils.validation import _check_sample_weight  # noqa: E402

import xpnet.sklearn as xsk  # noqa: E402


def _outcome(func, *args):  # type: ignore[no-untyped-def]
    try:
        return "ok", func(*args)
    except Exception as exc:  # noqa: BLE001 - the exception itself is compared
        return type(exc), str(exc)


@pytest.mark.parametrize("weight", [
    [1.0, 2.0, 3.0], [1, 2, 3], np.array([1, 2, 3], dtype=np.float32), 2.0, 0.0,
    [0.0, 0.0, 0.0], [[1.0, 2.0, 3.0]], [1.0, 2.0], ["a", "b", "c"], [1.0, np.nan, 2.0],
    [1.0, -1.0, 2.0],
])
def test_sample_weight_check_is_scikit_learns(weight) -> None:
    theirs = _outcome(lambda w: _check_sample_weight(w, np.empty((3, 0))), weight)
    ours = _outcome(lambda w: xsk._checked_sample_weight(w, 3), weight)
    if theirs[0] == "ok" and np.any(theirs[1] < 0):  # ours refuses them too (as _fit did)
        assert ours == (ValueError, "sample_weight must be non-negative")
        return
    assert ours[0] == theirs[0]
    if theirs[0] == "ok":
        assert ours[1].dtype == theirs[1].dtype
        np.testing.assert_array_equal(ours[1], theirs[1])
    else:
        assert ours[1] == theirs[1]


class _Fitted:
    classes_ = None


@pytest.mark.parametrize(("known", "classes"), [
    (None, None), (None, [2, 0, 1, 0]), (None, ["b", "a"]), ([0, 1, 2], None),
    ([0, 1, 2], [0, 1, 2]), ([0, 1, 2], [0, 1]), ([0, 1, 2], [2, 1, 0]),
])
def test_first_partial_fit_is_scikit_learns(known, classes) -> None:
    mine, theirs = _Fitted(), _Fitted()
    if known is not None:
        mine.classes_ = theirs.classes_ = np.array(known)
    expected = _outcome(_check_partial_fit_first_call, theirs, classes)
    assert _outcome(xsk._first_partial_fit, mine, classes) == expected
    np.testing.assert_array_equal(mine.classes_, theirs.classes_)


@pytest.mark.parametrize(("status", "nit", "max_iter"), [(0, 5, 10), (1, 10, 10), (2, 3, 10),
                                                         (1, 12, 10)])
def test_lbfgs_iterations_and_warning_are_scikit_learns(status, nit, max_iter) -> None:
    result = OptimizeResult(status=status, nit=nit, message="STOP: TOTAL NO. OF ITERATIONS")
    with warnings.catch_warnings(record=True) as theirs_caught:
        warnings.simplefilter("always")
        theirs = _check_optimize_result("lbfgs", result, max_iter)
    with warnings.catch_warnings(record=True) as ours_caught:
        warnings.simplefilter("always")
        ours = xsk._lbfgs_iterations(result, max_iter)
    assert ours == theirs
    assert [(w.category, str(w.message)) for w in ours_caught] == [
        (w.category, str(w.message)) for w in theirs_caught
    ]
    assert all(w.category is ConvergenceWarning for w in ours_caught)

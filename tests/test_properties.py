"""Property tests (hypothesis) of the stable activation and loss formulas on NumPy."""

from __future__ import annotations

import math

import array_api_compat.numpy as xp
import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis not installed (it is in xpnet[test])")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from xpnet.activations import sigmoid, softmax  # noqa: E402
from xpnet.losses import binary_cross_entropy, categorical_cross_entropy, softplus  # noqa: E402

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)
matrices = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 5)), elements=finite)


@settings(max_examples=200, deadline=None)
@given(matrices)
def test_sigmoid_is_a_probability_and_odd_symmetric(z):
    a = sigmoid(xp, z)
    assert np.all((a >= 0) & (a <= 1))
    np.testing.assert_allclose(a + sigmoid(xp, -z), 1.0, rtol=0, atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(matrices)
def test_softmax_rows_sum_to_one_and_shift_invariant(z):
    a = softmax(xp, z)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(softmax(xp, z + 123.0), a, rtol=1e-9, atol=1e-300)


@settings(max_examples=200, deadline=None)
@given(st.floats(-700, 700, allow_nan=False))
def test_softplus_matches_the_definition_where_it_is_representable(z):
    expected = math.log1p(math.exp(z))
    assert math.isclose(float(softplus(xp, np.array(z))), expected, rel_tol=1e-14,
                        abs_tol=1e-300)


@settings(max_examples=200, deadline=None)
@given(matrices, st.data())
def test_losses_are_finite_and_non_negative(z, data):
    m, k = z.shape
    y_binary = data.draw(arrays(np.float64, (m, k), elements=st.sampled_from([0.0, 1.0])))
    labels = data.draw(arrays(np.int64, (m,), elements=st.integers(0, k - 1)))
    one_hot = np.eye(k)[labels]
    for loss in (
        binary_cross_entropy(xp, z, sigmoid(xp, z), y_binary),
        categorical_cross_entropy(xp, z, softmax(xp, z), one_hot),
    ):
        assert np.isfinite(loss) and loss >= 0

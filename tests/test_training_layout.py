"""The training package's seams (issue 17): it imports neither the network nor Dask nor
scikit-learn, and any object speaking the batch-source protocol trains a network exactly
as its arrays do."""

from __future__ import annotations

import sys

import numpy as np
import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import test_structure  # noqa: E402

import xpnet  # noqa: E402
from xpnet.data import make_moons  # noqa: E402
from xpnet.training import ArraySource, fit  # noqa: E402


def test_training_imports_no_network_distributed_or_sklearn() -> None:
    graph = test_structure.import_graph()
    for module, targets in graph.items():
        if module == "xpnet.training" or module.startswith("xpnet.training."):
            bad = {t for t in targets
                   if t in ("xpnet.network", "xpnet.sklearn") or t.startswith("xpnet.distributed")}
            assert not bad, f"{module} imports {bad}"


class CountingSource:
    """A batch source of its own (the protocol only), over an ArraySource."""

    def __init__(self, inner: ArraySource) -> None:
        self.inner, self.steps, self.scores = inner, [], 0

    def prepare(self, rng, early_stopping, validation_fraction):  # type: ignore[no-untyped-def]
        return self.inner.prepare(rng, early_stopping, validation_fraction)

    def loss_and_grads(self, params, order, first, last, step):  # type: ignore[no-untyped-def]
        self.steps.append(step)
        return self.inner.loss_and_grads(params, order, first, last, step)

    def score(self, params):  # type: ignore[no-untyped-def]
        self.scores += 1
        return self.inner.score(params)


@pytest.mark.parametrize("options", [{}, {"early_stopping": True, "n_iter_no_change": 2}])
def test_a_source_of_its_own_trains_as_the_arrays_do(options: dict) -> None:
    X, y = make_moons(120, noise=0.2, seed=0)
    reference = xpnet.MLP([2, 6, 1], dropout=0.2, seed=1)
    expected = reference.fit(X, y, epochs=6, lr=0.3, batch_size=25, **options)
    net = xpnet.MLP([2, 6, 1], dropout=0.2, seed=1)
    Xc, Yc = net.check_XY(X, y)
    source = CountingSource(ArraySource(net.architecture, net.array_backend, Xc, Yc,
                                        dropout_key=net.dropout_key))
    history = fit(net, None, None, epochs=6, lr=0.3, batch_size=25, source=source, **options)
    assert history.loss == expected.loss
    assert history.validation_scores == expected.validation_scores
    assert net.steps == reference.steps == len(source.steps)
    assert source.steps == list(range(len(source.steps)))  # the absolute optimiser step
    assert source.scores == len(history.validation_scores)
    for p, q in zip(net.flat_params, reference.flat_params):
        np.testing.assert_array_equal(p, q)


class ValidatingSource(CountingSource):
    """A source with the optional ``validate`` (score and loss in one array)."""

    def __init__(self, inner: ArraySource) -> None:
        super().__init__(inner)
        self.validations = 0

    def validate(self, params):  # type: ignore[no-untyped-def]
        self.validations += 1
        return self.inner.validate(params)


def test_the_validation_loss_is_read_with_the_score_once_per_epoch() -> None:
    """Issue 20: ``History.validation_loss`` costs no read of its own: each epoch makes
    one ``validate`` call (one ``(2,)`` array read back), never a separate ``score``; a
    source with only ``score`` records NaN losses."""
    X, y = make_moons(120, noise=0.2, seed=0)
    options = {"epochs": 5, "lr": 0.3, "batch_size": 25, "early_stopping": True,
               "n_iter_no_change": 100}
    sources = []
    for kind in (ValidatingSource, CountingSource):
        net = xpnet.MLP([2, 6, 1], seed=1, alpha=0.1)
        Xc, Yc = net.check_XY(X, y)
        sources.append(kind(ArraySource(net.architecture, net.array_backend, Xc, Yc)))
        history = fit(net, None, None, source=sources[-1], **options)
        assert len(history.validation_loss) == len(history.validation_scores) == 5
    with_loss, score_only = sources
    assert with_loss.validations == 5 and with_loss.scores == 0
    assert score_only.scores == 5
    assert np.isnan(history.validation_loss).all()
    reference = xpnet.MLP([2, 6, 1], seed=1, alpha=0.1).fit(X, y, **options)
    assert np.isfinite(reference.validation_loss).all()

"""The per-search cost of the calibrated curves: the same numbers, computed once per hit kind and catalog state."""

from __future__ import annotations

import numpy as np
import pytest

from engine.query import Calibrations, PairFit
from engine.query.calibrate import _blas, _one_blas_thread, hubness_by_id
from engine.query.hydration import CachedStore


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("fit", [PairFit(11.3, -4.7), PairFit(9.1, -2.2, hub=-3.7, hub_typical=0.41),
                                 PairFit(9.1, -2.2, hub=-3.7, hub_typical=None)])
def test_one_hit_logit_is_the_array_logit_to_the_bit(fit):
    rng = np.random.default_rng(0)
    for score, hub in zip(rng.uniform(-1, 1, 200).tolist(), rng.uniform(0, 1, 200).astype(np.float32).tolist()):
        assert float(fit.logit(score, hub)) == float(fit.logit(np.array([score]), np.array([hub]))[0])
        assert float(fit.logit(score)) == float(fit.logit(np.array([score]))[0])
    assert fit.probability(0.3, 0.5) == pytest.approx(fit.probability(np.array([0.3]), np.array([0.5]))[0], abs=0)


def test_fit_for_answers_are_remembered_and_unchanged():
    fits = {"text->image": PairFit(1.0, 0.0), "text->text:caption": PairFit(2.0, 0.0)}
    cal = Calibrations(fits)
    for _ in range(2):
        assert cal.fit_for("text", "image", "segment") is fits["text->image"]
        assert cal.fit_for("text", "text", "caption") is fits["text->text:caption"]
        assert cal.fit_for("text", "text", "passage") is None and cal.fit_for("audio", "image") is None
    assert cal == Calibrations(fits)  # the remembered answers are no part of what a calibration is


class _Catalog:
    """A catalog that only knows vectors by representation id, and counts the ids it was asked for."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors, self.asked = vectors, []

    def vectors_for(self, model: str, ids: np.ndarray) -> np.ndarray:
        self.asked.append([int(i) for i in ids])
        return self.vectors[np.asarray(ids)]

    def hydrate(self, ids):  # what CachedHydration wraps
        return {}


class _Store:
    def __init__(self, catalog: _Catalog) -> None:
        self.catalog = catalog


def test_hubness_is_kept_for_a_pinned_catalog_state_only():
    rng = np.random.default_rng(3)
    vectors, sample = _unit(rng.normal(size=(50, 16))), _unit(rng.normal(size=(64, 16)))
    cal = Calibrations({"text->image": PairFit(10.0, -5.0, hub=-2.0, hub_typical=0.3)}, hub_samples={"text": sample})
    raw = _Catalog(vectors)
    store = CachedStore(_Store(raw))
    direct = dict(zip(range(50), cal.hubness("text", vectors).tolist()))

    assert hubness_by_id(cal, store, "m", "text", [3, 4, 5]) == pytest.approx({i: direct[i] for i in (3, 4, 5)})
    assert hubness_by_id(cal, store, "m", "text", [3, 4, 5]) and raw.asked == [[3, 4, 5], [3, 4, 5]]  # unpinned: read

    raw.asked.clear()
    store.catalog.pin(7)
    first = hubness_by_id(cal, store, "m", "text", [1, 2, 3, 2])
    again = hubness_by_id(cal, store, "m", "text", [2, 3, 9, 1])
    assert raw.asked == [[1, 2, 3], [9]]  # each id read once in this state
    assert first == pytest.approx({i: direct[i] for i in (1, 2, 3)}, abs=1e-6)
    assert list(again) == [2, 3, 9, 1] and again == pytest.approx({i: direct[i] for i in (2, 3, 9, 1)}, abs=1e-6)
    assert hubness_by_id(cal, store, "m", "audio", [1]) == {}  # no generic audio sample: nothing kept or invented
    store.catalog.unpin()

    store.catalog.pin(8)  # another catalog state (a vector may have changed): read again
    hubness_by_id(cal, store, "m", "text", [1, 2])
    assert raw.asked[-1] == [1, 2]


def test_one_blas_thread_inside_and_the_pools_restored_after():
    before = [pool.get_num_threads() for pool in _blas()]
    with _one_blas_thread():
        assert all(pool.get_num_threads() == 1 for pool in _blas())
        np.ones((64, 64), dtype=np.float32) @ np.ones((64, 64), dtype=np.float32)
    assert [pool.get_num_threads() for pool in _blas()] == before

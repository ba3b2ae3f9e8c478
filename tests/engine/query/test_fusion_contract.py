"""Contract: every registered fusion method, chosen by name, orders by its own score, is stable on ties and handles
one or no candidates; a new method is one ``Fusion`` registered by name."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInput
from engine.query import fusion as fusion_module
from engine.query.calibrate import Calibrations, PairFit
from engine.query.fusion import FUSIONS, Fusion, HitScore, estimate_calibration, fusion_named, fusion_names
from engine.query.search import Searcher
from index import open_store

DIM = 8
FITS = Calibrations({"text->image": PairFit(9.0, -4.0), "text->text": PairFit(6.0, -3.0)})


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _fill(store, vectors: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """One item per row, one representation each, in the vector set of its modality; returns item ids per set."""
    items: dict[str, list[int]] = {}
    with store.catalog.atomic():
        for modality, x in vectors.items():
            reps = []
            for i in range(len(x)):
                item = store.catalog.upsert_item(f"file:///{modality}/{i:03d}", modality, sha256=f"{modality}{i}",
                                                 size=i, mtime=1.0)
                items.setdefault(modality, []).append(item)
                reps.append(store.catalog.add_representation(item, modality, modality))
            store.catalog.write_vectors("m", reps, x)
    return items


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A store with 12 image and 9 text items (seeded), and a text query."""
    rng = np.random.default_rng(7)
    vectors = {"image": _unit(rng.standard_normal((12, DIM))), "text": _unit(rng.standard_normal((9, DIM)))}
    store = open_store(tmp_path_factory.mktemp("fusion") / "store")
    items = _fill(store, vectors)
    query = _unit(rng.standard_normal((1, DIM)))
    yield store, vectors, items, query
    store.close()


def _expected(method: Fusion, searcher: Searcher, vectors, items, query, fits) -> list[int]:
    """The order the method's own ``hit``/``combine`` give, computed here by brute force (ties: best cosine, id)."""
    fused: dict[int, float] = {}
    best: dict[int, float] = {}
    for target, x in vectors.items():
        cosines = (x @ query[0]).astype(np.float32)
        order = sorted(range(len(x)), key=lambda j: -cosines[j])
        background = searcher.calibration("text", target) if method.uses_background else None
        fit = fits.fit_for("text", target) if fits is not None else None
        for rank, j in enumerate(order):
            item, score = items[target][j], float(cosines[j])
            logit = float(fit.logit(score)) if fit is not None else None
            fused[item] = method.combine(fused.get(item), method.hit(HitScore(rank, score, background, logit)))
            best[item] = max(best.get(item, -np.inf), score)
    return sorted(fused, key=lambda i: (-fused[i], -best[i], i))


@pytest.mark.parametrize("name", fusion_names())
def test_orders_by_its_own_score(mixed, name):
    store, vectors, items, query = mixed
    searcher = Searcher(store, "m", FITS)
    results = searcher.search(query, "text", ["image", "text"], k=21, fusion=name)
    assert [r.item_id for r in results] == _expected(fusion_named(name), searcher, vectors, items, query, FITS)
    shown = [r.score for r in results]
    assert shown == sorted(shown, reverse=True)  # what a result shows is monotone in what ordered it


@pytest.mark.parametrize("name", fusion_names())
def test_stable_on_ties(tmp_path, name):
    rng = np.random.default_rng(3)
    base = _unit(rng.standard_normal((3, DIM)))
    twins = np.concatenate([base, base])  # items i and i+3 are identical in every score
    with open_store(tmp_path / "store") as store:
        _fill(store, {"image": twins, "text": base})
        searcher = Searcher(store, "m", FITS)
        first = searcher.search(base[:1], "text", ["image", "text"], k=9, fusion=name)
        again = searcher.search(base[:1], "text", ["image", "text"], k=9, fusion=name)
    assert [r.item_id for r in first] == [r.item_id for r in again]
    assert len(first) == 9
    ties = [(a, b) for a, b in zip(first, first[1:]) if (a.score, a.first_stage) == (b.score, b.first_stage)]
    assert ties and all(a.item_id < b.item_id for a, b in ties)  # equal scores: item-id order, every time


@pytest.mark.parametrize("name", fusion_names())
def test_one_candidate_and_none(tmp_path, name):
    one = _unit(np.ones((1, DIM)))
    with open_store(tmp_path / "store") as store:
        items = _fill(store, {"image": one})
        searcher = Searcher(store, "m", FITS)
        single = searcher.search(one, "text", ["image"], k=5, fusion=name)
        assert searcher.search(one, "text", [], k=5, fusion=name) == []  # no target list at all
        assert searcher.search(one, "text", ["audio"], k=5, fusion=name) == []  # a target with no vectors
    assert [r.item_id for r in single] == items["image"]
    assert single[0].first_stage == pytest.approx(1.0, abs=1e-5) and np.isfinite(single[0].score)


def test_builtin_names_and_unknown_name():
    assert FUSIONS == ("rrf", "calibrated", "probability") and set(FUSIONS) <= set(fusion_names())
    with pytest.raises(InvalidInput, match="fusion must be one of"):
        fusion_named("borda")


def test_probability_without_fits_falls_back(mixed):
    store, *_ , query = mixed
    plain = Searcher(store, "m", None)
    fallback = fusion_named("probability").fallback
    assert ([r.item_id for r in plain.search(query, "text", ["image", "text"], k=10, fusion="probability")]
            == [r.item_id for r in plain.search(query, "text", ["image", "text"], k=10, fusion=fallback)])


class BestCosine(Fusion):
    """A new method in a test: the item's best raw cosine."""

    name = "best-cosine"

    def hit(self, hit: HitScore) -> float:
        return hit.score


def test_a_new_method_is_one_registered_class(mixed, monkeypatch):
    store, vectors, items, query = mixed
    monkeypatch.setitem(fusion_module._FUSIONS, BestCosine.name, BestCosine())
    searcher = Searcher(store, "m", None)
    results = searcher.search(query, "text", ["image", "text"], k=21, fusion="best-cosine")
    cosines = [r.first_stage for r in results]
    assert cosines == sorted(cosines, reverse=True) and [r.score for r in results] == cosines


def test_background_matches_the_corpus():
    x = _unit(np.random.default_rng(0).standard_normal((50, DIM)))
    cal = estimate_calibration(x, x)
    assert cal.mean == pytest.approx(float((x @ x.T).mean())) and cal.std == pytest.approx(float((x @ x.T).std()))


def test_the_server_accepts_a_registered_method_and_refuses_unknown_ones(monkeypatch):
    from pydantic import ValidationError

    from engine.server.request import SearchIn

    with pytest.raises(ValidationError) as refused:
        SearchIn(text="dogs", fusion="best-cosine")
    assert "best-cosine" not in str(refused.value.errors()[0]["msg"])  # the input is never echoed
    monkeypatch.setitem(fusion_module._FUSIONS, BestCosine.name, BestCosine())
    assert SearchIn(text="dogs", fusion="best-cosine").fusion == "best-cosine"

"""The index-backend contract: every registered backend, and each FAISS index type the store builds, passes these."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index import (
    BACKENDS,
    DimensionMismatch,
    IndexConfig,
    IndexCorrupt,
    InvalidIndexConfig,
    NotUnitNorm,
    SearchParams,
    UnsupportedIndexOperation,
    VectorBackend,
    WrongDtype,
    WrongShape,
    backend_class,
    build_index,
    check_store,
    exact_search,
    open_store,
    register_backend,
)
from index.persist import index_paths, load_index, save_index
from index.settings import read_settings
from index.verify import compare_vectors
from tests._index_data import fill_catalog, unit_vectors

DIM = 32
N = 800
BIG = 2**40  # ids beyond int32


def _kinds() -> list[tuple[str, str]]:
    """(backend, index type): each registered backend's own choice for a small corpus, plus the FAISS types the store
    picks for larger ones (IVF-Flat, IVF-PQ with refine) or a user may configure (scalar quantizer, HNSW)."""
    kinds = [(name, backend_class(name).choose_factory(N, DIM, IndexConfig())) for name in sorted(BACKENDS)]
    kinds += [("faiss", f) for f in ("IVF16,Flat", "IVF16,SQ8", "IDMap,IVF16,PQ8x4fs,Refine(SQ8)", "HNSW16")]
    return kinds


KINDS = _kinds()
IDS = [f"{b}:{f}" for b, f in KINDS]


def _ids(n: int = N) -> np.ndarray:
    return BIG + np.arange(n, dtype=np.int64) * 7


def _filled(kind: tuple[str, str], n: int = N) -> tuple[VectorBackend, np.ndarray, np.ndarray]:
    """A backend index of ``kind`` trained on and holding ``n`` seeded vectors, with its widest search settings."""
    backend, factory = kind
    x, ids = unit_vectors(n, DIM, seed=3), _ids(n)
    index = backend_class(backend).create(DIM, factory)
    index.train(x)
    index.add(ids, x)
    index.set_params(SearchParams(**index.tunable()))  # knobs at their bound: as exact as the type allows
    return index, ids, x


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_search_finds_each_vector_first(kind) -> None:
    index, ids, x = _filled(kind)
    assert index.name == kind[0] and index.factory == kind[1] and index.is_trained and index.ntotal == N
    scores, found = index.search(x[:100], 5)
    assert found.dtype == np.int64 and scores.dtype == np.float32 and found.shape == scores.shape == (100, 5)
    assert (found[:, 0] == ids[:100]).all()
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    exact_scores, _ = exact_search(x[:100], x, 5)
    assert np.allclose(scores[:, 0], exact_scores[:, 0], atol=0.05)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_fewer_vectors_than_k_pads_with_minus_one(kind) -> None:
    ids, x = _ids(), unit_vectors(N, DIM, seed=3)
    few = backend_class(kind[0]).create(DIM, kind[1])
    few.train(x)
    few.add(ids[:3], x[:3])
    few.set_params(SearchParams(**few.tunable()))
    _, found = few.search(x[:2], 6)
    assert (found[:, 3:] == -1).all() and set(found[0, :3].tolist()) == set(ids[:3].tolist())


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_remove_or_refuse(kind) -> None:
    index, ids, x = _filled(kind)
    gone = ids[:40]
    assert index.remove(np.zeros(0, dtype=np.int64)) == 0
    if not index.supports_remove:
        with pytest.raises(UnsupportedIndexOperation):
            index.remove(gone)
        assert index.ntotal == N
        return
    assert index.remove(gone) == 40
    assert index.remove(gone) == 0  # absent ids are ignored
    assert index.ntotal == N - 40 and not np.isin(index.ids(), gone).any()
    _, found = index.search(x[:40], 5)
    assert not np.isin(found, gone).any()
    _, found = index.search(x[40:60], 1)
    assert (found[:, 0] == ids[40:60]).all()


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_save_load_round_trip_and_damaged_file(kind, tmp_path) -> None:
    index, ids, x = _filled(kind)
    index.recall = 0.97
    meta = save_index(index, tmp_path, "m", "image", "cat-id", 5, N, lineage="tok")
    data_path, sidecar = index_paths(tmp_path, "m", "image", kind[0])
    assert data_path.is_file() and json.loads(sidecar.read_text())["backend"] == kind[0] == meta.backend
    again, meta2 = load_index(tmp_path, "m", "image")
    assert type(again) is type(index) and meta2 == meta
    assert (again.factory, again.params, again.recall, again.dim) == (index.factory, index.params, 0.97, DIM)
    assert sorted(again.ids().tolist()) == sorted(index.ids().tolist()) == ids.tolist()
    q = unit_vectors(20, DIM, seed=11)
    s1, i1 = index.search(q, 10)
    s2, i2 = again.search(q, 10)
    assert np.array_equal(i1, i2) and np.allclose(s1, s2, atol=1e-6)
    raw = bytearray(data_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data_path.write_bytes(bytes(raw))
    with pytest.raises(IndexCorrupt):
        load_index(tmp_path, "m", "image")


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_verify_finds_vectors_that_differ(kind) -> None:
    index, ids, x = _filled(kind)
    clean = compare_vectors(index, iter([(ids[:500], x[:500]), (ids[500:], x[500:])]))
    assert clean.compared == N and clean.mismatched.size == 0
    other = x.copy()
    other[[5, 6]] = x[[400, 401]]  # the catalog holds other vectors for two ids
    found = compare_vectors(index, iter([(ids, other)]))
    assert sorted(found.mismatched.tolist()) == ids[[5, 6]].tolist()
    absent = compare_vectors(index, iter([(np.array([1, 2], dtype=np.int64), x[:2])]))
    assert absent.compared == 0 and absent.mismatched.dtype == np.int64


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_ids_are_int64(kind) -> None:
    index, ids, x = _filled(kind)
    assert index.ids().dtype == np.int64
    small = backend_class(kind[0]).create(DIM, kind[1])
    small.train(x)
    small.add(np.array([3, 4], dtype=np.int32), x[:2])  # narrower ints widen
    assert small.ids().dtype == np.int64 and sorted(small.ids().tolist()) == [3, 4]
    with pytest.raises(WrongDtype):
        small.add(np.array([1.5, 2.5]), x[2:4])
    with pytest.raises(WrongShape):
        small.add(np.array([[5, 6]]), x[2:4])
    with pytest.raises(WrongShape):
        small.add(np.array([5, 6, 7]), x[2:4])
    assert small.ntotal == 2


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_vectors_are_checked(kind) -> None:
    index = backend_class(kind[0]).create(DIM, kind[1])
    x = unit_vectors(N, DIM, seed=3)
    wider = unit_vectors(4, DIM + 8)
    with pytest.raises(DimensionMismatch):
        index.train(unit_vectors(N, DIM + 8))
    index.train(x)
    for bad, error in ((wider, DimensionMismatch), (x[:4].astype(np.float64), WrongDtype), (x[:4] * 2, NotUnitNorm),
                       (x[0], WrongShape)):
        with pytest.raises(error):
            index.add(np.arange(4), bad)
        with pytest.raises(error):
            index.search(bad, 3)
    assert index.ntotal == 0
    assert index.describe()["backend"] == kind[0] and index.describe()["dim"] == DIM


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_build_index_reaches_recall_with_each_backend(name) -> None:
    x = unit_vectors(3000, DIM, seed=4)
    index = build_index(_ids(3000), x, IndexConfig(backend=name, flat_max=0, target_recall=0.9))
    assert index.name == name and index.recall is not None and index.recall >= 0.9
    _, found = index.search(x[:50], 1)
    assert (found[:, 0] == _ids(3000)[:50]).mean() >= 0.9


def test_sidecars_written_before_backends_are_faiss_and_unknown_backends_are_corrupt(tmp_path) -> None:
    index, _, x = _filled(("faiss", "IDMap,Flat"))
    save_index(index, tmp_path, "m", "image", "cat-id", 5, N, lineage="tok")
    _, sidecar = index_paths(tmp_path, "m", "image")
    meta = json.loads(sidecar.read_text())
    del meta["backend"]  # format 2 as written before the backend seam
    sidecar.write_text(json.dumps(meta))
    again, read = load_index(tmp_path, "m", "image")
    assert read.backend == "faiss" and again.search(x[:1], 1)[1][0, 0] == index.ids()[0]
    for bad in ("annoy", ["faiss"], "../faiss"):
        sidecar.write_text(json.dumps({**meta, "backend": bad}))
        with pytest.raises(IndexCorrupt):
            load_index(tmp_path, "m", "image")


def test_registry_names_and_unknown_backend(tmp_path) -> None:
    for name in BACKENDS:
        assert backend_class(name).name == name
    with pytest.raises(InvalidIndexConfig, match="unknown index backend 'annoy'"):
        backend_class("annoy")
    with pytest.raises(InvalidIndexConfig):
        build_index(_ids(10), unit_vectors(10, DIM), IndexConfig(backend="annoy"))
    with pytest.raises(InvalidIndexConfig):
        open_store(tmp_path, config=IndexConfig(backend="../x"))
    assert not (tmp_path / "catalog.db").exists()
    with pytest.raises(InvalidIndexConfig):
        register_backend("../x", "index.backends.exact:ExactIndex")
    with pytest.raises(InvalidIndexConfig):
        backend_class("exact").create(DIM, "IVF16,Flat")
    register_backend("exact2", "index.backends.exact:ExactIndex")  # registered under a name it does not carry
    try:
        with pytest.raises(InvalidIndexConfig, match="not a VectorBackend named"):
            backend_class("exact2")
    finally:
        del BACKENDS["exact2"]


def test_store_follows_its_configured_backend(tmp_path) -> None:
    exact = IndexConfig(backend="exact")
    with open_store(tmp_path, config=exact) as store:
        reps = fill_catalog(store.catalog, 300)
        _, ids = store.search("m", "image", unit_vectors(300)[7:8], 1)
        assert ids[0, 0] == reps[7] and store.last_sync[("m", "image")].action == "rebuilt"
    data_path, sidecar = index_paths(tmp_path, "m", "image", "exact")
    assert data_path.is_file() and not index_paths(tmp_path, "m", "image")[0].exists()
    assert json.loads(sidecar.read_text())["backend"] == "exact"
    with open_store(tmp_path, config=exact) as store:
        with store.catalog.atomic():
            store.catalog.mark_deleted(1)
        assert store.index("m", "image").ntotal == 299 and store.last_sync[("m", "image")].action == "caught-up"
    report = check_store(tmp_path)
    assert report.ok and report.vector_sets[0]["compared"] == 299 and report.vector_sets[0]["exact"]
    assert read_settings(tmp_path)["index_backend"] == "exact"
    with open_store(tmp_path) as store:  # no config: the store keeps the backend it was set to
        assert store.config.backend == "exact" and store.index("m", "image").ntotal == 299
        assert store.last_sync[("m", "image")].action != "rebuilt"
    with open_store(tmp_path, config=IndexConfig()) as store:  # FAISS asked for: the exact index is replaced
        _, ids = store.search("m", "image", unit_vectors(300)[7:8], 1)
        assert ids[0, 0] == reps[7] and store.last_sync[("m", "image")].action == "rebuilt"
        assert "exact backend" in store.last_sync[("m", "image")].reason
    assert read_settings(tmp_path)["index_backend"] == "faiss"
    assert index_paths(tmp_path, "m", "image")[0].is_file() and not data_path.exists()
    assert check_store(tmp_path).ok

"""FaissIndex: validation, add/search/remove, ANN vs exact, index type choice, tuning, GPU."""

from __future__ import annotations

import numpy as np
import pytest

from index import (
    DimensionMismatch,
    IndexConfig,
    IndexStoreError,
    InvalidIndexConfig,
    InvalidVectors,
    NonFiniteVectors,
    NotUnitNorm,
    TopK,
    UnsupportedIndexOperation,
    FaissIndex,
    WrongDtype,
    WrongShape,
    build_index,
    check_vectors,
    choose_factory,
    exact_search,
    faiss_has_gpu,
    neighbour_recall,
    tie_tolerant_recall,
)
from tests._index_data import unit_vectors

DIM = 32


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return unit_vectors(4000, DIM, seed=1)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (np.ones((3, DIM), dtype=np.float64) / np.sqrt(DIM), WrongDtype),
        ([[1.0] + [0.0] * (DIM - 1)], WrongDtype),
        (np.ones(DIM, dtype=np.float32) / np.float32(np.sqrt(DIM)), WrongShape),
        (np.ones((3, DIM + 1), dtype=np.float32) / np.float32(np.sqrt(DIM + 1)), DimensionMismatch),
        (np.full((3, DIM), np.nan, dtype=np.float32), NonFiniteVectors),
        (np.full((3, DIM), np.inf, dtype=np.float32), NonFiniteVectors),
        (np.ones((3, DIM), dtype=np.float32), NotUnitNorm),
    ],
)
def test_bad_vectors_raise_specific_errors(bad, error) -> None:
    index = FaissIndex.create(DIM, "IDMap,Flat")
    with pytest.raises(error) as info:
        index.add(np.arange(3), bad)
    assert isinstance(info.value, InvalidVectors) and isinstance(info.value, IndexStoreError)
    with pytest.raises(error):
        index.search(bad, 5)
    assert index.ntotal == 0


def test_norm_tolerance_and_id_count() -> None:
    x = unit_vectors(4, DIM)
    check_vectors(x * np.float32(1.0005), DIM)
    with pytest.raises(NotUnitNorm):
        check_vectors(x * np.float32(1.01), DIM)
    with pytest.raises(WrongShape):
        FaissIndex.create(DIM, "IDMap,Flat").add(np.arange(3), x)


@pytest.mark.parametrize("factory", ["IDMap,Flat", "IVF16,Flat", "IVF16,PQ16x4fs"])
def test_add_search_remove_round_trip(corpus: np.ndarray, factory: str) -> None:
    ids = np.arange(len(corpus), dtype=np.int64) * 10 + 7
    index = FaissIndex.create(DIM, factory)
    index.train(corpus)
    index.add(ids, corpus)
    index.set_params(index.params.__class__(nprobe=16))
    assert index.ntotal == len(corpus)
    assert sorted(index.ids().tolist()) == ids.tolist()
    _, found = index.search(corpus[:50], 5)
    self_found = (found == ids[:50, None]).any(axis=1).mean()
    assert self_found >= (1.0 if factory.endswith("Flat") else 0.7)
    gone = ids[:50]
    assert index.remove(gone) == 50
    assert index.remove(gone) == 0
    _, found = index.search(corpus[:50], 5)
    assert not np.isin(found, gone).any()
    assert index.ntotal == len(corpus) - 50


def test_exact_search_matches_numpy_and_chunks(corpus: np.ndarray) -> None:
    q = unit_vectors(20, DIM, seed=9)
    D, I = exact_search(q, corpus, 10, chunk=333)
    scores = q @ corpus.T
    ref = np.argsort(-scores, axis=1)[:, :10]
    assert np.allclose(D, np.take_along_axis(scores, ref, axis=1), atol=1e-6)
    assert neighbour_recall(I, ref, 10) == 1.0
    top = TopK(len(q), 10)
    for s in range(0, len(corpus), 1000):
        top.add_chunk(q, corpus[s : s + 1000], np.arange(s, min(s + 1000, len(corpus))))
    assert np.array_equal(top.I, I)
    _, few = exact_search(q, corpus[:3], 5)
    assert (few[:, 3:] == -1).all()


def test_ann_agrees_with_exact_search(corpus: np.ndarray) -> None:
    ids = np.arange(len(corpus), dtype=np.int64)
    index = build_index(ids, corpus, IndexConfig(flat_max=0, target_recall=0.95))
    assert index.factory.startswith("IVF")
    assert index.recall is not None and index.recall >= 0.95
    q = unit_vectors(200, DIM, seed=77)
    D_true, _ = exact_search(q, corpus, 10)
    _, found = index.search(q, 10)
    exact_of_found = np.take_along_axis(q @ corpus.T, np.where(found < 0, 0, found), axis=1)
    assert tie_tolerant_recall(found, D_true, exact_of_found, 10) >= 0.9


def test_tuning_records_recall_and_params(corpus: np.ndarray) -> None:
    ids = np.arange(len(corpus), dtype=np.int64)
    index = build_index(ids, corpus, IndexConfig(factory="IVF64,Flat", target_recall=0.99))
    assert index.params.nprobe is not None and 1 <= index.params.nprobe <= 64
    assert index.recall >= 0.99
    lower = build_index(ids, corpus, IndexConfig(factory="IVF64,Flat", target_recall=0.5))
    assert lower.params.nprobe <= index.params.nprobe


def test_index_type_follows_size_and_memory() -> None:
    cfg = IndexConfig(memory_budget_bytes=8 * 2**30)
    assert choose_factory(1000, 512, cfg) == "IDMap,Flat"
    assert choose_factory(1_000_000, 512, cfg) == "IVF2048,Flat"
    big = choose_factory(10_000_000, 512, IndexConfig(memory_budget_bytes=6 * 2**30))
    assert big.startswith("IDMap,IVF4096,PQ64x4fs,Refine(SQ")
    assert choose_factory(10_000_000, 512, IndexConfig(memory_budget_bytes=2**30)) == "IVF4096,PQ64x4fs"
    assert choose_factory(10, 512, IndexConfig(factory="HNSW16")) == "HNSW16"


def test_bad_factory_and_unsupported_remove(corpus: np.ndarray) -> None:
    with pytest.raises(InvalidIndexConfig):
        FaissIndex.create(DIM, "NotAnIndex42")
    hnsw = build_index(np.arange(500), corpus[:500], IndexConfig(factory="HNSW8"))
    _, found = hnsw.search(corpus[:5], 1)
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(UnsupportedIndexOperation):
        hnsw.remove(np.array([1]))


@pytest.mark.gpu
@pytest.mark.skipif(not faiss_has_gpu(), reason="faiss has no GPU support or sees no GPU")
def test_gpu_search_matches_cpu(corpus: np.ndarray) -> None:
    ids = np.arange(len(corpus), dtype=np.int64)
    cpu = build_index(ids, corpus, IndexConfig(factory="IDMap,Flat"))
    gpu = FaissIndex(cpu.index, cpu.factory, device="cuda")
    q = unit_vectors(50, DIM, seed=5)
    _, i_cpu = cpu.search(q, 10)
    _, i_gpu = gpu.search(q, 10)
    assert gpu.on_gpu
    assert neighbour_recall(i_gpu, i_cpu, 10) >= 0.99


def test_cuda_without_faiss_gpu_searches_on_cpu_and_logs_once(corpus: np.ndarray, caplog) -> None:
    import logging

    from index.backends import faiss_gpu as gpu

    if faiss_has_gpu():
        pytest.skip("this faiss has a GPU")
    gpu._logged.discard(("cuda:0", False))
    with caplog.at_level(logging.INFO, logger="index.backends.faiss_gpu"):
        first = FaissIndex.create(DIM, "IDMap,Flat", device="cuda:0")
        FaissIndex.create(DIM, "IDMap,Flat", device="cuda:0")
    first.add(np.arange(10), corpus[:10])
    assert not first.on_gpu and first.search(corpus[:1], 1)[1][0, 0] == 0
    assert [r.getMessage() for r in caplog.records].count(
        "faiss search on CPU: device cuda:0 asked for CUDA but this faiss has no GPU support or sees no GPU") == 1

"""Parquet vector shards and autofaiss-style index shards: round trips, balanced assignment, merged search equal to
exact search on exact shards, recall on ANN shards, manifests that catch damaged files and stale catalogs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index import Catalog, IndexConfig, exact_search, neighbour_recall
from index.errors import DimensionMismatch, IndexCorrupt, InvalidIndexConfig, NotUnitNorm
from index.parquet import ParquetShardWriter, iter_shard, parquet_files, read_rows, shard_info
from index.shards import (
    LocalShards,
    assign_files,
    build_catalog_shards,
    build_shards,
    check_current,
    load_shard,
    merge_topk,
    read_manifest,
    shard_folder,
)
from tests._index_data import fill_catalog, unit_vectors

N, DIM = 6000, 32


def _write(folder: Path, x: np.ndarray, ids: np.ndarray, rows_per_file: int = 750) -> list[Path]:
    with ParquetShardWriter(folder, x.shape[1], rows_per_file=rows_per_file, meta={"model": "m"}) as writer:
        for s in range(0, len(ids), 1000):
            writer.write(ids[s : s + 1000], x[s : s + 1000])
    return writer.files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[np.ndarray, np.ndarray, list[Path], np.ndarray]:
    """Clustered unit vectors with sparse ids in 8 Parquet files, and 40 queries from another seed."""
    x = unit_vectors(N, DIM, seed=1)
    ids = np.arange(N, dtype=np.int64) * 5 + 3
    files = _write(tmp_path_factory.mktemp("parquet"), x, ids)
    return x, ids, files, unit_vectors(40, DIM, seed=99)


def test_parquet_round_trip_rolls_files_and_keeps_rows(corpus, tmp_path):
    x, ids, files, _ = corpus
    assert [shard_info(f)["rows"] for f in files] == [750] * 8
    assert shard_info(files[0])["meta"] == {"model": "m", "dim": DIM}
    got_ids, got = zip(*(b for f in files for b in iter_shard(f, DIM, batch_rows=300)))
    assert np.array_equal(np.concatenate(got_ids), ids) and np.array_equal(np.concatenate(got), x)
    rows = np.array([0, 749, 750, 5999])
    some_ids, some = read_rows(files, rows, DIM)
    assert np.array_equal(some_ids, ids[rows]) and np.array_equal(some, x[rows])
    with ParquetShardWriter(tmp_path, DIM, rows_per_file=10) as writer:
        writer.write(ids[:3], x[:3], extra={"uri": ["a", "b", "c"]})
    import pyarrow.parquet as pq

    assert pq.read_table(writer.files[0]).column("uri").to_pylist() == ["a", "b", "c"]


def test_parquet_writer_refuses_bad_vectors_and_leaves_no_partial_file(tmp_path):
    x = unit_vectors(20, DIM)
    with pytest.raises(NotUnitNorm):
        with ParquetShardWriter(tmp_path, DIM, rows_per_file=8) as writer:
            writer.write(np.arange(10), x[:10])  # one whole file and a partial one
            writer.write(np.arange(10, 20), x[10:] * 2)
    assert [p.name for p in parquet_files(tmp_path)] == ["vectors-00000.parquet"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the partial temp file is gone
    with pytest.raises(DimensionMismatch):
        list(iter_shard(parquet_files(tmp_path)[0], DIM + 1))
    bad = tmp_path / "vectors-00009.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(IndexCorrupt):
        shard_info(bad)


def test_files_are_assigned_whole_and_balanced():
    rows = [5, 5, 5, 5, 10]
    groups = assign_files(rows, 2)
    assert [sum(rows[i] for i in g) for g in groups] == [15, 15] and 4 in groups[0]
    groups = assign_files([3] * 9, 4)
    assert sorted(i for g in groups for i in g) == list(range(9)) and max(map(len, groups)) - min(map(len, groups)) <= 1
    with pytest.raises(InvalidIndexConfig):
        assign_files([1, 1], 3)


def test_merge_topk_equals_exact_search_over_the_parts():
    x, q = unit_vectors(500, DIM, seed=2), unit_vectors(7, DIM, seed=3)
    ids = np.arange(500) + 1000
    parts = [exact_search(q, x[s : s + 125], 10, ids[s : s + 125]) for s in range(0, 500, 125)]
    D, I = exact_search(q, x, 10, ids)
    d, i = merge_topk(parts, 10)
    assert np.array_equal(i, I) and np.allclose(d, D)
    d, i = merge_topk([exact_search(q, x[:3], 5, ids[:3])], 8)  # fewer candidates than k: padded with -1
    assert (i[:, 3:] == -1).all() and np.isneginf(d[:, 3:]).all()


@pytest.mark.parametrize("backend,factory", [("exact", None), ("faiss", "IDMap,Flat")])
def test_exact_shards_equal_unsharded_exact_search(corpus, tmp_path, backend, factory):
    x, ids, files, q = corpus
    manifest = build_shards(files, tmp_path, 4, IndexConfig(backend=backend, factory=factory), model="m",
                            modality="image")
    assert [s.ntotal for s in manifest.shards] == [1500] * 4 and manifest.recall == 1.0
    held = sorted(src for s in manifest.shards for src in s.sources)
    assert held == sorted(f.name for f in files)  # every Parquet file in exactly one shard
    D, I = exact_search(q, x, 10, ids)
    d, i = LocalShards.open(tmp_path).search(q, 10)
    assert np.array_equal(i, I) and np.allclose(d, D, atol=1e-5)


def test_ann_shards_trained_once_reach_recall(corpus, tmp_path):
    x, ids, files, q = corpus
    manifest = build_shards(files, tmp_path, 4, IndexConfig(factory="IVF32,Flat"), model="m", modality="image")
    assert manifest.trained_on > 0 and "nprobe" in manifest.params and manifest.recall >= 0.95
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == [f"shard-0000{i}.faiss" for i in range(4)]
    assert (tmp_path / "trained.faiss").is_file()
    _, I = exact_search(q, x, 10, ids)
    _, i = LocalShards.open(tmp_path).search(q, 10)
    assert neighbour_recall(i, I, 10) >= 0.95


def test_damaged_shard_file_is_refused(corpus, tmp_path):
    _, _, files, _ = corpus
    manifest = build_shards(files, tmp_path, 2, IndexConfig(backend="exact"))
    path = tmp_path / manifest.shards[1].file
    path.write_bytes(path.read_bytes()[:-8])
    load_shard(tmp_path, manifest, 0)
    with pytest.raises(IndexCorrupt):
        load_shard(tmp_path, manifest, 1)
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(IndexCorrupt):
        read_manifest(tmp_path)


def test_catalog_shards_record_the_catalog_state(tmp_path):
    with Catalog(tmp_path / "catalog.db") as catalog:
        fill_catalog(catalog, 400)
        build_catalog_shards(catalog, tmp_path, "m", "image", 3, IndexConfig(backend="exact"))
        manifest = build_catalog_shards(catalog, tmp_path, "m", "image", 2, IndexConfig(backend="exact"))
        folder = shard_folder(tmp_path, "m", "image")
        assert sorted(p.name for p in folder.glob("shard-*")) == ["shard-00000.exact", "shard-00001.exact"]
        assert manifest.catalog_id == catalog.catalog_id and manifest.generation == catalog.generation
        assert manifest.ntotal == 400 and len(parquet_files(folder / "parquet")) == 8
        assert check_current(read_manifest(folder), catalog) == ""
        fill_catalog(catalog, 3, seed=1, start=400)
        assert "rebuild" in check_current(read_manifest(folder), catalog)

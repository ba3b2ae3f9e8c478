"""Store: index files on disk, rebuild from the catalog, catch-up of stale indexes, corrupt and temp files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index import IndexConfig, UnknownVectorSet, exact_search, open_store
from index.persist import index_paths
from tests._index_data import fill_catalog, index_file, unit_vectors

IVF = IndexConfig(factory="IVF16,Flat", target_recall=0.99)


def _search_all(store, queries: np.ndarray, k: int = 10) -> np.ndarray:
    return store.search("m", "image", queries, k)[1]


def test_open_builds_saves_and_reloads(tmp_path) -> None:
    with open_store(tmp_path) as store:
        reps = fill_catalog(store.catalog, 300)
        index = store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "rebuilt"
        assert sorted(index.ids().tolist()) == reps
        faiss_path, meta_path = index_paths(tmp_path, "m", "image")
        meta = json.loads(meta_path.read_text())
        assert faiss_path.exists() and (meta["model"], meta["generation"], meta["ntotal"]) == ("m", store.catalog.generation, 300)
        assert store.index("m", "image") is index and store.last_sync[("m", "image")].action == "current"
    with open_store(tmp_path) as store:
        store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "loaded"
        with pytest.raises(UnknownVectorSet):
            store.index("no-such-model", "image")


def test_rebuild_from_catalog_equals_incremental_index(tmp_path) -> None:
    incremental = tmp_path / "inc"
    with open_store(incremental, config=IVF) as store:
        fill_catalog(store.catalog, 400, seed=1)
        store.index("m", "image")  # first build: trained on these 400
        more = fill_catalog(store.catalog, 200, seed=2, start=400)
        store.index("m", "image")
        store.catalog.mark_deleted(store.catalog.hydrate(more[:50])[more[0]].item_id)
        for rep in more[1:50]:
            store.catalog.mark_deleted(store.catalog.hydrate([rep])[rep].item_id)
        store.catalog.write_vectors("m", more[50:60], unit_vectors(10, seed=3))  # rewrites
        inc_index = store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "caught-up"
        queries = unit_vectors(30, seed=9)
        inc_ids = sorted(inc_index.ids().tolist())
        inc_found = _search_all(store, queries)
        store.rebuild("m", "image")
        assert sorted(store.index("m", "image").ids().tolist()) == inc_ids
        rebuilt_found = _search_all(store, queries)
        ids, vectors = store.catalog.load_vectors("m", "image")
    assert inc_ids == ids.tolist() and len(inc_ids) == 550 and not set(more[:50]) & set(inc_ids)
    _, truth = exact_search(queries, vectors, 10, ids)
    assert np.array_equal(np.sort(inc_found, axis=1), np.sort(truth, axis=1)) or (inc_found == truth).mean() > 0.97
    assert (np.sort(rebuilt_found, axis=1) == np.sort(inc_found, axis=1)).mean() > 0.97


def test_stale_index_catches_up_on_open(tmp_path) -> None:
    with open_store(tmp_path) as store:
        reps = fill_catalog(store.catalog, 100)
        store.sync()
        saved_generation = store.catalog.generation
    with open_store(tmp_path) as writer:  # e.g. ingest in another process, no index sync
        added = fill_catalog(writer.catalog, 20, seed=5, start=100)
        writer.catalog.mark_deleted(writer.catalog.hydrate([reps[0]])[reps[0]].item_id)
    with open_store(tmp_path) as store:
        index = store.index("m", "image")
        sync = store.last_sync[("m", "image")]
        assert sync.action == "caught-up" and sync.generation == store.catalog.generation > saved_generation
        assert sorted(index.ids().tolist()) == sorted(reps[1:] + added)
        _, found = index.search(unit_vectors(20, seed=5), 1)
        assert found[:, 0].tolist() == added
    with open_store(tmp_path) as store:  # the caught-up index was saved
        store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "loaded"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete", "sidecar"])
def test_damaged_index_file_is_rebuilt_on_open(tmp_path, damage: str) -> None:
    with open_store(tmp_path) as store:
        reps = fill_catalog(store.catalog, 200)
        store.sync()
    path = index_file(tmp_path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    elif damage == "delete":
        path.unlink()
    else:
        path.with_suffix(".json").write_text("{not json")
    with open_store(tmp_path) as store:
        index = store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "rebuilt"
        assert sorted(index.ids().tolist()) == reps
        _, found = index.search(unit_vectors(5), 1)
        assert found[:, 0].tolist() == reps[:5]


def test_leftover_temp_file_is_ignored(tmp_path) -> None:
    with open_store(tmp_path) as store:
        reps = fill_catalog(store.catalog, 50)
        store.sync()
    path = index_file(tmp_path)
    leftover = path.with_name(f".{path.name}.tmp-999-deadbeef")
    leftover.write_bytes(b"half a write")
    with open_store(tmp_path) as store:
        assert sorted(store.index("m", "image").ids().tolist()) == reps
        assert store.last_sync[("m", "image")].action == "loaded"
    assert leftover.exists()


def test_index_ahead_of_catalog_is_rebuilt(tmp_path) -> None:
    with open_store(tmp_path) as store:
        fill_catalog(store.catalog, 30)
        store.sync()
    meta_path = index_file(tmp_path).with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["generation"] += 100
    meta_path.write_text(json.dumps(meta))
    with open_store(tmp_path) as store:
        store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "rebuilt"


def test_growth_switches_index_type(tmp_path) -> None:
    config = IndexConfig(flat_max=1000)
    with open_store(tmp_path, config=config) as store:
        fill_catalog(store.catalog, 100)
        assert store.index("m", "image").factory == "IDMap,Flat"
        fill_catalog(store.catalog, 4900, seed=1, start=100)
        index = store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "rebuilt" and index.factory.startswith("IVF")
        assert index.ntotal == 5000


def test_index_from_another_catalog_is_rebuilt(tmp_path) -> None:
    with open_store(tmp_path) as store:
        fill_catalog(store.catalog, 40)
        store.sync()
    (tmp_path / "catalog.db").unlink()
    for extra in ("catalog.db-wal", "catalog.db-shm"):
        (tmp_path / extra).unlink(missing_ok=True)
    with open_store(tmp_path) as store:  # a new catalog that happens to reach a higher generation
        for batch in range(3):
            reps = fill_catalog(store.catalog, 10, seed=batch, start=100 * batch)
        store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "rebuilt"
        assert sorted(store.index("m", "image").ids().tolist())[-10:] == reps


def test_count_disagreement_on_open_triggers_rebuild(tmp_path) -> None:
    import sqlite3

    with open_store(tmp_path) as store:
        fill_catalog(store.catalog, 40)
        store.sync()
    conn = sqlite3.connect(tmp_path / "catalog.db")  # a change made behind the catalog's back
    conn.execute("DELETE FROM vectors WHERE representation_id = 3")
    conn.commit()
    conn.close()
    with open_store(tmp_path) as store:
        index = store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "rebuilt" and 3 not in index.ids()

"""Issue 18 item 3: an index must be provably built from this catalog's history, and ``check`` compares vectors."""

from __future__ import annotations

import shutil

import faiss
import numpy as np
import pytest

from engine.cli import main
from index import FaissIndex, IndexConfig, check_store, open_store
from index.persist import load_index, save_index
from index.verify import compare_vectors
from tests._index_data import fill_catalog, unit_vectors


def _restored_store(root):
    """Ingest, back up catalog.db, ingest and delete more, restore the backup keeping indexes/, write again until the
    catalog's generation and count equal the stale index's, with re-issued ids carrying other vectors."""
    with open_store(root) as store:
        fill_catalog(store.catalog, 50)  # representations 1..50
        store.sync()
    shutil.copy(root / "catalog.db", root / "backup.db")
    with open_store(root) as store:
        fill_catalog(store.catalog, 20, seed=1, start=50)  # 51..70
        with store.catalog.atomic():
            for item in range(66, 71):
                store.catalog.mark_deleted(item)  # 66..70 gone: index holds 1..65
        store.sync()
        stale_generation = store.catalog.generation
    (root / "catalog.db").unlink()
    shutil.copy(root / "backup.db", root / "catalog.db")
    with open_store(root) as store:
        assert store.catalog.generation < stale_generation
        while store.catalog.generation < stale_generation - 1:  # more transactions, each writing nothing indexed
            with store.catalog.atomic():
                store.catalog.upsert_item(f"file:///x/{store.catalog.generation}.txt", "text")
        fill_catalog(store.catalog, 15, seed=7, start=500)  # ids 51..65 again (SQLite kept no record of 51..70)
        assert store.catalog.generation == stale_generation
        assert store.catalog.count_vectors("m", "image") == 65
    return unit_vectors(15, seed=7), unit_vectors(20, seed=1)


def test_restored_catalog_index_is_detected_rebuilt_and_search_is_right(tmp_path) -> None:
    new, old = _restored_store(tmp_path)
    report = check_store(tmp_path)  # before anything opens it: check names the problem
    assert not report.ok and [p.kind for p in report.problems] == ["index-history"]
    with open_store(tmp_path) as store:
        index = store.index("m", "image")
        assert store.last_sync[("m", "image")].action == "rebuilt"
        scores, ids = index.search(new[:1], 1)
        assert ids[0, 0] == 51 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
        scores, ids = index.search(old[:1], 1)  # the deleted file's vector no longer finds id 51 at cosine 1
        assert scores[0, 0] < 0.999
    assert check_store(tmp_path).ok


def test_check_repair_fixes_restored_catalog(tmp_path, capsys) -> None:
    new, _ = _restored_store(tmp_path)
    assert main(["check", "--store", str(tmp_path)]) == 1
    assert "index-history" in capsys.readouterr().out
    assert main(["check", "--store", str(tmp_path), "--repair"]) == 0
    assert main(["check", "--store", str(tmp_path)]) == 0
    with open_store(tmp_path) as store:
        scores, ids = store.search("m", "image", new[3:4], 1)
        assert ids[0, 0] == 54 and store.last_sync[("m", "image")].action == "loaded"


def _corrupt_stored_vector(index: FaissIndex, rep_id: int) -> None:
    """Overwrite the vector stored for ``rep_id`` in place (Flat or IVF-Flat storage)."""
    top = faiss.downcast_index(index.index)
    if isinstance(top, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        pos = int(np.flatnonzero(faiss.vector_to_array(top.id_map) == rep_id)[0])
        flat = faiss.downcast_index(top.index)
        data = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
        data[pos] = data[(pos + 1) % flat.ntotal]
        return
    inv = top.invlists
    for lst in range(top.nlist):
        n = inv.list_size(lst)
        ids = faiss.rev_swig_ptr(inv.get_ids(lst), n) if n else np.zeros(0)
        if rep_id in ids:
            codes = faiss.rev_swig_ptr(inv.get_codes(lst), n * inv.code_size).view(np.float32).reshape(n, -1)
            codes[int(np.flatnonzero(ids == rep_id)[0])] *= -1.0  # still unit norm, opposite direction
            return
    raise AssertionError("id not found")


@pytest.mark.parametrize("factory", ["IDMap,Flat", "IVF16,Flat"])
def test_check_finds_corrupted_vector_whose_sidecar_hash_matches(tmp_path, capsys, factory: str) -> None:
    with open_store(tmp_path, config=IndexConfig(factory=factory)) as store:
        reps = fill_catalog(store.catalog, 400)
        index = store.index("m", "image")
        _corrupt_stored_vector(index, reps[10])
        gen = store.catalog.generation  # sidecar rewritten: size and sha256 match the corrupted file
        save_index(index, tmp_path, "m", "image", store.catalog.catalog_id, gen, 400, lineage=store.catalog.lineage(gen))
    load_index(tmp_path, "m", "image")  # the file passes its own integrity checks
    report = check_store(tmp_path)
    assert [(p.kind, p.detail) for p in report.problems] == [
        ("index-vectors", f"1 stored vector(s) differ from the catalog's: ids [{reps[10]}]")]
    assert report.vector_sets[0]["compared"] == 400 and report.vector_sets[0]["exact"]
    assert main(["check", "--store", str(tmp_path), "--repair"]) == 0
    assert "index-vectors" in capsys.readouterr().out
    assert check_store(tmp_path).ok
    truth = unit_vectors(400)
    with open_store(tmp_path) as store:
        scores, ids = store.search("m", "image", truth[10:11], 1)
        assert ids[0, 0] == reps[10] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("factory", ["IDMap,Flat", "IVF16,Flat", "IVF16,PQ4x4fs", "IDMap,IVF16,PQ4x4fs,Refine(SQ8)",
                                     "IVF16,SQ8", "HNSW16"])
def test_vector_comparison_has_no_false_alarms_and_catches_a_swap(factory: str) -> None:
    x = unit_vectors(2000)
    ids = np.arange(10, 2010, dtype=np.int64)
    index = FaissIndex.create(32, factory)
    index.train(x)
    index.add(ids, x)
    clean = compare_vectors(index, iter([(ids, x)]))
    assert clean.compared == 2000 and clean.mismatched.size == 0
    swapped = x.copy()
    swapped[[5, 6]] = x[[900, 901]]  # the catalog says other vectors for two ids
    found = compare_vectors(index, iter([(ids, swapped)]))
    assert sorted(found.mismatched.tolist()) == [15, 16]

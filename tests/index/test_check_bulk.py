"""``xmodal check`` of a bulk store: every Parquet file the catalog names exists, reads whole and holds its live ids
(else exit 5, damage; ``--repair`` drops what was lost so the next bulk ingest encodes it again), orphan files are
warnings ``--repair`` removes once old, and an unfinished re-embed is named with the command that finishes it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time

import numpy as np
import pytest

from engine.cli import main
from index import check_store, open_store
from index.bulk import BulkCatalog, bulk_files
from tests._index_data import fill_catalog, unit_vectors

N = 40


@pytest.fixture
def bulk_store(tmp_path):
    """40 image items whose vectors of model "m" are in Parquet files of 10 rows under ``pq``."""
    root, pq = tmp_path / "store", tmp_path / "pq"
    with open_store(root) as store:
        catalog = store.catalog
        with catalog.atomic():
            reps = [catalog.add_representation(catalog.upsert_item(f"file:///data/img{i:03d}.jpg", "image",
                                                                   sha256=f"{i:064x}", size=i, mtime=1000.0 + i),
                                               "image", "image") for i in range(N)]
        bulk = BulkCatalog(catalog, "m", pq, rows_per_file=10)
        with bulk.atomic():
            bulk.write_vectors("m", reps, unit_vectors(N))
    return root, pq


def _check(root, *extra: str) -> int:
    return main(["check", "--store", str(root), *extra])


def _files(root) -> list[tuple[str, int, np.ndarray]]:
    with open_store(root) as store:
        return bulk_files(store.catalog, "m", "image")


def test_clean_bulk_store_counts_its_parquet_vectors(bulk_store, capsys) -> None:
    root, _ = bulk_store
    assert _check(root) == 0
    out = capsys.readouterr().out
    assert "m/image: 40 vectors of dim 32 (40 in Parquet files)" in out and "ok" in out
    assert check_store(root).problems == []


def test_lost_parquet_files_are_damage_and_repair_lets_ingest_redo_them(bulk_store, capsys) -> None:
    root, pq = bulk_store
    (first, _, gone), (second, _, garbled), (third, _, _), (_, _, moved) = _files(root)
    os.unlink(first)  # planted: a file deleted, one cut short, one id pointed at a file that does not hold it
    with open(second, "r+b") as fh:
        fh.truncate(200)
    conn = sqlite3.connect(root / "catalog.db")
    conn.execute("UPDATE bulk_vectors SET file = ? WHERE representation_id = ?", (third, int(moved[0])))
    conn.commit()
    conn.close()
    old, fresh = pq / "m.image" / "g0000000099-00000.parquet", pq / "m.image" / "g0000000100-00000.parquet"
    shutil.copy(third, old)
    shutil.copy(third, fresh)
    os.utime(old, (time.time() - 3600,) * 2)  # an orphan an hour old, and one a write in progress may still commit
    assert _check(root, "--json") == 5
    data = json.loads(capsys.readouterr().out)
    kinds = sorted(p["kind"] for p in data["problems"])
    assert data["damaged"] and kinds == ["bulk-file-corrupt", "bulk-file-missing", "bulk-ids-missing",
                                         "bulk-orphan", "bulk-orphan"]
    assert _check(root, "--repair") == 0
    assert "[repaired]" in capsys.readouterr().out
    lost = {int(i) for i in gone} | {int(i) for i in garbled} | {int(moved[0])}
    assert not old.exists() and fresh.exists() and any(p.name.startswith(f"{os.path.basename(second)}.damaged")
                                                       for p in (pq / "m.image").iterdir())
    with open_store(root) as store:
        catalog = store.catalog
        assert len(bulk_files(catalog, "m", "image")) == 2 and first not in str(bulk_files(catalog, "m", "image"))
        survivors = BulkCatalog(catalog, "m").vector_ids("m", "image")
        assert len(survivors) == 19 and not lost & set(survivors.tolist())  # the last two files, less the moved id
        assert np.allclose(BulkCatalog(catalog, "m").vectors_for("m", survivors), unit_vectors(N)[survivors - 1])
        assert {i.status for i in catalog.items()} == {"ok"}  # kept: an item with no vector is encoded again
        assert len(catalog.items_with_vectors("m") | BulkCatalog(catalog, "m").items_with_vectors("m")) == 19
    (left,) = check_store(root).problems
    assert left.kind == "bulk-orphan" and left.severity == "warning" and not left.repaired


def test_unfinished_reembed_is_named_not_damage(tmp_path, capsys) -> None:
    with open_store(tmp_path) as store:
        reps = fill_catalog(store.catalog, 12)
        store.sync()
        store.catalog.stage_vectors("m", "image", "0123456789abcdef", reps[:4], unit_vectors(4, seed=9))
    assert _check(tmp_path) == 0
    out = capsys.readouterr().out
    assert "warning: m/image: reembed-unfinished: 4 re-embedded vector(s) staged" in out
    assert f"xmodal ingest PATHS --reembed --store {tmp_path}" in out

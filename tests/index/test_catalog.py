"""Catalog: schema and migrations, WAL, transactions and generations, items, representations, vectors, reads."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import sqlite_utils

from index import (
    Catalog,
    CatalogNotFound,
    DimensionMismatch,
    InvalidStatus,
    ItemNotFound,
    NonFiniteVectors,
    NotUnitNorm,
    SchemaTooNew,
    WrongDtype,
)
from index.schema import SCHEMA_VERSION
from tests._index_data import fill_catalog, unit_vectors


@pytest.fixture
def catalog(tmp_path):
    with Catalog(tmp_path / "catalog.db") as cat:
        yield cat


def test_new_catalog_is_wal_versioned_and_readable_with_sqlite_utils(tmp_path, catalog: Catalog) -> None:
    fill_catalog(catalog, 3)
    db = sqlite_utils.Database(tmp_path / "catalog.db")
    assert db.journal_mode == "wal"
    assert {"items", "representations", "vectors", "vector_sets", "tombstones", "schema_version",
            "catalog_state"} <= set(db.table_names())
    assert db["items"].count == 3
    assert [r["version"] for r in db["schema_version"].rows] == list(range(1, SCHEMA_VERSION + 1))
    assert next(db["items"].rows)["metadata"] == '{"batch": 0}'


def test_reopen_keeps_data_and_newer_schema_is_refused(tmp_path, catalog: Catalog) -> None:
    fill_catalog(catalog, 2)
    gen = catalog.generation
    catalog.close()
    with Catalog(tmp_path / "catalog.db") as again:
        assert again.generation == gen and len(again.items()) == 2
    conn = sqlite3.connect(tmp_path / "catalog.db")
    conn.execute("INSERT INTO schema_version VALUES (?, 'future')", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew):
        Catalog(tmp_path / "catalog.db")
    with pytest.raises(CatalogNotFound):
        Catalog(tmp_path / "nowhere" / "catalog.db", create=False)


def test_one_generation_per_transaction_and_rollback(catalog: Catalog) -> None:
    assert catalog.generation == 0
    with catalog.atomic():
        a = catalog.upsert_item("a.txt", "text")
        catalog.add_representation(a, "text", "text", text="hello")
    assert catalog.generation == 1
    catalog.upsert_item("b.txt", "text")
    assert catalog.generation == 2
    with pytest.raises(RuntimeError), catalog.atomic():
        catalog.upsert_item("c.txt", "text")
        raise RuntimeError("boom")
    assert catalog.generation == 2 and catalog.item_by_uri("c.txt") is None
    with catalog.atomic():
        pass
    assert catalog.generation == 2


def test_items_by_uri_and_sha256_status_changes(catalog: Catalog) -> None:
    first = catalog.upsert_item("x/1.jpg", "image", sha256="same", size=10, mtime=5.0, metadata={"k": "v"})
    second = catalog.upsert_item("y/1.jpg", "image", sha256="same")
    assert catalog.upsert_item("x/1.jpg", "image", sha256="same", size=11) == first  # stable id
    assert catalog.item(first).size == 11
    assert [i.id for i in catalog.items_by_sha256("same")] == [first, second]
    rep = catalog.add_representation(first, "image", "image")
    catalog.write_vectors("m", [rep], unit_vectors(1, 8))
    catalog.mark_failed(first, "decode error")
    item = catalog.item(first)
    assert (item.status, item.error) == ("failed", "decode error")
    assert catalog.representations_of(first) == [] and catalog.count_vectors("m", "image") == 0
    assert [i.id for i in catalog.items_by_sha256("same")] == [second]
    catalog.mark_deleted(second)
    assert catalog.item(second).status == "deleted"
    assert catalog.upsert_item("y/1.jpg", "image") == second and catalog.item(second).status == "ok"
    with pytest.raises(ItemNotFound):
        catalog.mark_deleted(999)
    with pytest.raises(ItemNotFound):
        catalog.add_representation(999, "image", "image")
    with pytest.raises(InvalidStatus):
        catalog.upsert_item("z", "lidar")


def test_write_vectors_validates_and_round_trips(catalog: Catalog) -> None:
    reps = fill_catalog(catalog, 5, dim=16)
    ids, vectors = catalog.load_vectors("m", "image")
    assert ids.tolist() == reps and np.array_equal(vectors, unit_vectors(5, 16, 0))
    assert catalog.vector_dim("m", "image") == 16
    with pytest.raises(DimensionMismatch):
        catalog.write_vectors("m", reps[:1], unit_vectors(1, 8))
    with pytest.raises(NotUnitNorm):
        catalog.write_vectors("m", reps[:1], unit_vectors(1, 16) * 2)
    with pytest.raises(NonFiniteVectors):
        catalog.write_vectors("m", reps[:1], np.full((1, 16), np.nan, np.float32))
    with pytest.raises(WrongDtype):
        catalog.write_vectors("m", reps[:1], unit_vectors(1, 16).astype(np.float64))
    with pytest.raises(ItemNotFound):
        catalog.write_vectors("m", [12345], unit_vectors(1, 16))
    catalog.write_vectors("other-model", reps[:2], unit_vectors(2, 4))  # decision 7: another set, nothing lost
    assert {(s.model, s.dim, s.count) for s in catalog.vector_sets()} == {("m", 16, 5), ("other-model", 4, 2)}


def test_changes_since_tracks_writes_rewrites_and_removals(catalog: Catalog) -> None:
    reps = fill_catalog(catalog, 4)
    g = catalog.generation
    catalog.write_vectors("m", reps[:1], unit_vectors(1, seed=3))  # rewrite
    catalog.mark_deleted(catalog.hydrate([reps[1]])[reps[1]].item_id)  # removal
    new = fill_catalog(catalog, 1, seed=4, start=10)  # addition
    changes = catalog.changes_since("m", "image", g)
    assert changes.generation == catalog.generation == g + 3
    assert changes.upserted.tolist() == [reps[0], new[0]]
    assert changes.removed.tolist() == sorted([reps[0], reps[1], new[0]])
    assert catalog.changes_since("m", "image", catalog.generation).removed.size == 0


def test_hydrate_mtimes_and_counts(catalog: Catalog) -> None:
    cat = catalog.upsert_item("photos/cat.jpg", "image", mtime=100.0, metadata={"album": "pets", "fav": True})
    dog = catalog.upsert_item("photos/dog.png", "image", mtime=200.0, metadata={"album": "pets"})
    song = catalog.upsert_item("music/song.wav", "audio", mtime=300.0, metadata={"album": "tunes"})
    catalog.add_representation(cat, "image", "image")
    r_cap = catalog.add_representation(cat, "caption", "text", text="a cat on a mat")
    catalog.add_representation(dog, "image", "image")
    r_seg = catalog.add_representation(song, "audio-segment", "audio", offset_seconds=12.5)
    hits = catalog.hydrate([r_cap, r_seg, -1])
    assert set(hits) == {r_cap, r_seg}
    assert (hits[r_cap].item_id, hits[r_cap].uri, hits[r_cap].kind, hits[r_cap].text) == (cat, "photos/cat.jpg", "caption", "a cat on a mat")
    assert (hits[r_seg].modality, hits[r_seg].offset_seconds) == ("audio", 12.5)
    assert catalog.item_mtimes({cat, song, 999}) == {cat: 100.0, song: 300.0}
    assert catalog.item_mtimes(set()) == {}
    catalog.mark_deleted(dog)
    assert sorted(catalog.item_counts()) == [("audio", "ok", 1), ("image", "deleted", 1), ("image", "ok", 1)]


def test_items_with_vectors_per_model_and_tokens(catalog: Catalog) -> None:
    reps = fill_catalog(catalog, 3)
    items = {catalog.hydrate([r])[r].item_id for r in reps}
    assert catalog.items_with_vectors("m") == items and catalog.items_with_vectors("other") == set()
    assert catalog.items_with_vectors("m", with_tokens=True) == set()
    with catalog.atomic():
        catalog.write_tokens("m", reps[:2], [np.ones((2, 4), dtype=np.float16)] * 2)
    first_two = {catalog.hydrate([r])[r].item_id for r in reps[:2]}
    assert catalog.items_with_vectors("m", with_tokens=True) == first_two


def test_migrations_apply_in_order_once(tmp_path, catalog: Catalog) -> None:
    from index.schema import MIGRATIONS, migrate

    fill_catalog(catalog, 2)
    catalog.close()
    conn = sqlite3.connect(tmp_path / "catalog.db")
    later = [*MIGRATIONS, ["ALTER TABLE items ADD COLUMN rating INTEGER", "UPDATE items SET rating = 5"]]
    assert migrate(conn, later) == len(later)
    assert migrate(conn, later) == len(later)  # nothing applied twice
    assert conn.execute("SELECT COUNT(*), MIN(rating) FROM items").fetchone() == (2, 5)
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version")] == list(range(1, len(later) + 1))
    broken = [*later, ["ALTER TABLE items ADD COLUMN good INTEGER", "NOT SQL AT ALL"]]
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert "good" not in [r[1] for r in conn.execute("PRAGMA table_info(items)")]  # rolled back whole
    conn.close()

"""The catalog's modality CHECKs come from the registry, byte for byte the SQL that shipped; old catalogs open."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from index import Catalog
from index.errors import InvalidStatus
from index.schema import MIGRATIONS

# A catalog written by the code before the registry existed (commit 18b5c22): one image, one audio and one text
# item with a vector each, model "m", schema version 5.
OLD_CATALOG = Path(__file__).parent / "data" / "catalog-schema5.sqlite"

SHIPPED_ITEMS = """CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uri TEXT NOT NULL UNIQUE,
        modality TEXT NOT NULL CHECK (modality IN ('image', 'text', 'audio')),
        sha256 TEXT,
        size INTEGER,
        mtime REAL,
        status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'failed', 'deleted')),
        error TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        generation INTEGER NOT NULL
    )"""
SHIPPED_REPRESENTATIONS = """CREATE TABLE representations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id INTEGER NOT NULL REFERENCES items (id),
        kind TEXT NOT NULL,
        modality TEXT NOT NULL CHECK (modality IN ('image', 'text', 'audio')),
        offset_seconds REAL,
        text TEXT,
        generation INTEGER NOT NULL
    )"""


def _schema_sql(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return {name: sql for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}


def test_generated_checks_are_the_shipped_sql():
    assert SHIPPED_ITEMS in MIGRATIONS[0] and SHIPPED_REPRESENTATIONS in MIGRATIONS[0]


def _without_modality_checks(schema: dict[str, str]) -> dict[str, str]:
    return {name: sql.replace(" CHECK (modality IN ('image', 'text', 'audio'))", "") for name, sql in schema.items()}


def test_a_catalog_made_before_the_registry_opens_and_loses_only_the_modality_checks(tmp_path):
    old = tmp_path / "catalog.sqlite"
    shutil.copy(OLD_CATALOG, old)
    before = _schema_sql(old)
    assert "CHECK (modality IN" in before["items"] and "CHECK (modality IN" in before["representations"]
    with Catalog(tmp_path / "new.sqlite"):
        pass
    with Catalog(old) as catalog:
        assert catalog.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert [(i.uri.rsplit("/", 1)[1], i.modality) for i in catalog.items()] == [
            ("a.jpg", "image"), ("b.wav", "audio"), ("c.txt", "text")]
        ids, vectors = catalog.load_vectors("m", "audio")
        assert len(ids) == 1 and vectors[0].tolist() == [0.0, 1.0, 0.0, 0.0]
        with catalog.atomic():
            item = catalog.upsert_item("file:///d/e.opus", "audio", sha256="e" * 64, size=1, mtime=1.0)
            rep = catalog.add_representation(item, "audio", "audio", offset_seconds=0.0)
            catalog.write_vectors("m", [rep], np.array([[0.0, 0.0, 0.0, 1.0]], dtype=np.float32))
        with pytest.raises(InvalidStatus, match=r"modality must be one of \('image', 'text', 'audio', 'video'\)"):
            catalog.upsert_item("file:///d/f.pcd", "lidar")  # the registry, not SQL, refuses an unknown modality
    # migration 6 removed exactly the two modality CHECKs; every other table, index and column is as it was, but for
    # what later migrations added (7: representations.end_seconds and enrichments; 8: keyword tables; 9:
    # vector_sets.weights and staged_vectors; 10: bulk tables)
    after, expected = _schema_sql(old), _without_modality_checks(before)
    assert after == _schema_sql(tmp_path / "new.sqlite")
    altered = ("representations", "vector_sets")
    assert {n: after[n] for n in expected if n not in altered} == {
        n: sql for n, sql in expected.items() if n not in altered}
    assert after["representations"].replace(", end_seconds REAL", "") == expected["representations"]
    assert after["vector_sets"].replace(" weights TEXT,", "") == expected["vector_sets"]
    with Catalog(old) as catalog:
        assert catalog.count_vectors("m", "audio") == 2


def test_a_modality_registered_later_is_stored_in_a_catalog_made_before_it(tmp_path):
    from core.modalities import Modality, registered

    old = tmp_path / "catalog.sqlite"
    shutil.copy(OLD_CATALOG, old)
    with registered(Modality("lidar", frozenset({".pcd"}))), Catalog(old) as catalog:
        with catalog.atomic():
            item = catalog.upsert_item("file:///d/f.pcd", "lidar", sha256="f" * 64, size=1, mtime=1.0)
            rep = catalog.add_representation(item, "sweep", "lidar", offset_seconds=12.5)
            video = catalog.upsert_item("file:///d/f.mp4", "video", sha256="e" * 64, size=1, mtime=1.0)
        assert catalog.item(item).modality == "lidar" and catalog.db.execute(
            "SELECT modality, offset_seconds FROM representations WHERE id = ?", [rep]).fetchone() == ("lidar", 12.5)
        assert catalog.item(video).modality == "video"  # the built-in video too, in a catalog made before it
        assert catalog.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

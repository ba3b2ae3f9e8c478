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


def test_a_catalog_made_before_the_registry_opens_unchanged(tmp_path):
    old = tmp_path / "catalog.sqlite"
    shutil.copy(OLD_CATALOG, old)
    before = _schema_sql(old)
    with Catalog(tmp_path / "new.sqlite"):
        pass
    assert _schema_sql(tmp_path / "new.sqlite") == before  # a new catalog's schema is the old one, text for text
    with Catalog(old) as catalog:
        assert [(i.uri.rsplit("/", 1)[1], i.modality) for i in catalog.items()] == [
            ("a.jpg", "image"), ("b.wav", "audio"), ("c.txt", "text")]
        ids, vectors = catalog.load_vectors("m", "audio")
        assert len(ids) == 1 and vectors[0].tolist() == [0.0, 1.0, 0.0, 0.0]
        with catalog.atomic():
            item = catalog.upsert_item("file:///d/e.opus", "audio", sha256="e" * 64, size=1, mtime=1.0)
            rep = catalog.add_representation(item, "audio", "audio", offset_seconds=0.0)
            catalog.write_vectors("m", [rep], np.array([[0.0, 0.0, 0.0, 1.0]], dtype=np.float32))
        with pytest.raises(InvalidStatus, match=r"modality must be one of \('image', 'text', 'audio'\)"):
            catalog.upsert_item("file:///d/f.mp4", "video")
    assert _schema_sql(old) == before
    with Catalog(old) as catalog:
        assert catalog.count_vectors("m", "audio") == 2

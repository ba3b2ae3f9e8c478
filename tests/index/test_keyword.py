"""Keyword tables (index.keyword): kept in step with the catalog by triggers, filled on migration, checked by SQLite."""

from __future__ import annotations

import sqlite3

import pytest

from index import Catalog
from index.keyword import (
    METADATA,
    MIGRATION,
    NAME,
    SUBSTRING,
    TEXT,
    has_keywords,
    keyword_problems,
    match_items,
    match_substrings,
    match_text,
    rebuild_keywords,
)
from index.schema import MIGRATIONS, migrate

BEFORE = [m for m in MIGRATIONS if m is not MIGRATION]  # the schema before keyword search


@pytest.fixture
def catalog(tmp_path):
    with Catalog(tmp_path / "catalog.db") as cat:
        assert has_keywords(cat)
        yield cat


def _item(cat: Catalog, uri: str, modality: str = "image", metadata=None, texts=(), kind: str = "caption") -> int:
    item = cat.upsert_item(uri, modality, sha256=uri, metadata=metadata)
    cat.add_representation(item, modality, modality, text=None if modality != "text" else "body")
    for t in texts:
        cat.add_representation(item, kind, "text", text=t)
    return item


def test_text_matches_words_stems_and_accents(catalog):
    dog = _item(catalog, "/p/a.jpg", texts=["Two dogs running on the beach"])
    cafe = _item(catalog, "/p/b.jpg", texts=["a small café at night"])
    assert {h.item_id for h in match_text(catalog, '"dog" "run"', 10)} == {dog}
    assert [h.item_id for h in match_text(catalog, '"cafe"', 10)] == [cafe]
    assert all(h.field == TEXT for h in match_text(catalog, '"beach"', 10))
    assert match_text(catalog, '"dog" "night"', 10) == []  # every piece must match


def test_file_names_and_metadata_values(catalog):
    named = _item(catalog, "/photos/IMG_2041.jpg")
    tagged = _item(catalog, "/photos/x.jpg", metadata={"album": "Lisbon trip", "year": 2019, "nested": {"who": "Ana"}})
    hits = match_items(catalog, '"img_2041"', 10)
    assert [(h.item_id, h.field, h.text) for h in hits] == [(named, NAME, "IMG_2041.jpg")]
    assert hits[0].representation_id == catalog.representations_of(named)[0].id  # the image stands for its name
    assert [(h.item_id, h.field) for h in match_items(catalog, '"lisbon"', 10)] == [(tagged, METADATA)]
    assert [h.item_id for h in match_items(catalog, '"2019"', 10)] == [tagged]
    assert [h.item_id for h in match_items(catalog, '"ana"', 10)] == [tagged]
    catalog.set_metadata(tagged, {"album": "Porto"})
    assert match_items(catalog, '"lisbon"', 10) == []
    assert [h.item_id for h in match_items(catalog, '"porto"', 10)] == [tagged]


def test_substrings_in_ocr_text_and_names(catalog):
    sign = _item(catalog, "/p/sign.jpg", texts=["OPENDAILY9TO5"], kind="ocr")
    code = _item(catalog, "/p/IMG20231105.jpg")
    _item(catalog, "/p/note.jpg", texts=["open daily"])  # a caption: not in the substring table
    assert match_text(catalog, '"daily"', 10)[0].item_id != sign  # the OCR line is one token for words...
    hits = match_substrings(catalog, '"daily"', 10)
    assert [(h.item_id, h.field) for h in hits] == [(sign, SUBSTRING)]  # ...and a substring for trigrams
    assert [h.item_id for h in match_substrings(catalog, '"20231105"', 10)] == [code]


def test_removed_failed_and_deleted_items_never_match(catalog):
    gone = _item(catalog, "/p/gone.jpg", texts=["zebra crossing"])
    failed = _item(catalog, "/p/failed.jpg", texts=["zebra stripes"], kind="ocr")
    kept = _item(catalog, "/p/kept.jpg", texts=["zebra herd"])
    catalog.mark_deleted(gone)
    catalog.mark_failed(failed, "bad file")
    assert [h.item_id for h in match_text(catalog, '"zebra"', 10)] == [kept]
    assert match_items(catalog, '"gone"', 10) == []
    assert match_substrings(catalog, '"ebra"', 10) == []  # the failed item's OCR line went with it
    catalog.remove_representations(kept)
    assert match_text(catalog, '"zebra"', 10) == []
    assert keyword_problems(catalog) == []


def test_modality_filter_and_limit(catalog):
    image = _item(catalog, "/p/x.jpg", texts=["red kite"])
    text = _item(catalog, "/p/y.txt", modality="text", texts=["red kite flying"])
    assert {h.item_id for h in match_text(catalog, '"kite"', 10)} == {image, text}
    assert [h.item_id for h in match_text(catalog, '"kite"', 10, ("text",))] == [text]
    assert len(match_text(catalog, '"kite"', 1)) == 1


def test_migration_fills_tables_from_an_older_catalog(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    migrate(conn, BEFORE)
    conn.execute("INSERT INTO items (uri, modality, status, metadata, created_at, updated_at, generation) "
                 "VALUES ('/old/receipt_77.png', 'image', 'ok', '{\"shop\": \"Bakery\"}', '', '', 1)")
    conn.execute("INSERT INTO representations (item_id, kind, modality, text, generation) "
                 "VALUES (1, 'caption', 'text', 'fresh bread loaves', 1)")
    conn.commit()
    migrate(conn, [*BEFORE, MIGRATION])
    assert [h.item_id for h in match_text(conn, '"loaves"', 10)] == [1]
    assert [h.field for h in match_items(conn, '"receipt_77"', 10)] == [NAME]
    assert [h.field for h in match_items(conn, '"bakery"', 10)] == [METADATA]
    assert keyword_problems(conn) == []
    conn.close()


def test_integrity_check_finds_drift_and_rebuild_repairs_it(catalog):
    _item(catalog, "/p/a.jpg", texts=["harbour lights"])
    assert keyword_problems(catalog) == []
    conn = catalog.db.conn
    conn.execute("INSERT INTO kw_text(rowid, text) VALUES (9999, 'ghost words')")  # behind the triggers' back
    conn.commit()
    assert [p.split(":")[0] for p in keyword_problems(catalog)] == ["kw_text"]
    with catalog.atomic():
        rebuild_keywords(catalog)
    assert keyword_problems(catalog) == []
    assert match_text(catalog, '"ghost"', 10) == []


def test_check_reports_and_repairs_the_keyword_tables(tmp_path):
    from index import check_store

    with Catalog(tmp_path / "catalog.db") as cat:
        _item(cat, "/p/a.jpg", texts=["harbour lights"])
        cat.db.conn.execute("INSERT INTO kw_text(rowid, text) VALUES (9999, 'ghost words')")
        cat.db.conn.commit()
    report = check_store(tmp_path)
    assert not report.ok and [p.kind for p in report.problems] == ["keyword-index"]
    repaired = check_store(tmp_path, repair=True)
    assert repaired.ok and [p.repaired for p in repaired.problems] == [True]
    assert check_store(tmp_path).ok and check_store(tmp_path).problems == []

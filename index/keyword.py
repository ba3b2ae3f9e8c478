"""Keyword search in the catalog: SQLite FTS5 tables kept in step with representations and items by triggers.

Four FTS5 tables; three are external-content tables reading views of the catalog, so SQLite can rebuild them and
check them against it:

- ``kw_text``: the text of every text-modality representation (captions, short texts, passages, transcripts, OCR
  lines), tokenised ``porter unicode61 remove_diacritics 2`` (words, stemmed, accents folded);
- ``kw_item``: each item's file name (the uri's last part) and its metadata values, same tokenizer (its own copy:
  FTS5 cannot read a view that calls ``json_tree``);
- ``kw_ocr_sub`` and ``kw_name_sub``: trigram tables over OCR text and file names, for substrings (OCR drops the
  spaces between words; codes inside names such as ``IMG20231105``).

Every query joins ``items`` and keeps ``status = 'ok'`` only, so a failed or deleted item never matches (its
representations are removed anyway, and the triggers take their text out of the tables). All keyword SQL lives here;
the expressions passed to ``MATCH`` are built by the query layer from quoted pieces, never from user syntax.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

TOKENIZE = "porter unicode61 remove_diacritics 2"
TEXT, NAME, METADATA, SUBSTRING = "text", "name", "metadata", "substring"  # where a keyword hit matched
TABLES = ("kw_text", "kw_item", "kw_ocr_sub", "kw_name_sub")
_EXTERNAL = ("kw_text", "kw_ocr_sub", "kw_name_sub")  # external content: rebuilt and checked against catalog rows
MAX_LIMIT = 10_000  # rows one keyword query returns at most
_CHUNK = 500


def _basename(uri: str) -> str:
    """SQL for the last ``/``-separated part of ``uri`` (SQLite has no basename function)."""
    return f"substr({uri}, length(rtrim({uri}, replace({uri}, '/', ''))) + 1)"


def _meta_values(metadata: str) -> str:
    """SQL for an item's metadata values (strings and numbers, space-separated); NULL for invalid JSON."""
    return (f"CASE WHEN json_valid({metadata}) THEN (SELECT group_concat(value, ' ') FROM json_tree({metadata}) "
            "WHERE type IN ('text', 'integer', 'real')) END")


_TEXT_ROW = "{r}.modality = 'text' AND {r}.text IS NOT NULL"
_OCR_ROW = "{r}.kind = 'ocr' AND {r}.text IS NOT NULL"


def _rep_sync(event: str) -> str:
    """One trigger on representations for ``event``; old rows leave the tables before new ones enter them."""
    body = []
    if event in ("DELETE", "UPDATE"):
        body += [f"INSERT INTO {t}({t}, rowid, text) SELECT 'delete', old.id, old.text WHERE {w.format(r='old')};"
                 for t, w in (("kw_text", _TEXT_ROW), ("kw_ocr_sub", _OCR_ROW))]
    if event in ("INSERT", "UPDATE"):
        body += [f"INSERT INTO {t}(rowid, text) SELECT new.id, new.text WHERE {w.format(r='new')};"
                 for t, w in (("kw_text", _TEXT_ROW), ("kw_ocr_sub", _OCR_ROW))]
    on = "UPDATE OF modality, kind, text" if event == "UPDATE" else event
    return f"CREATE TRIGGER kw_rep_{event.lower()} AFTER {on} ON representations BEGIN {' '.join(body)} END"


def _item_sync(event: str) -> str:
    """One trigger on items for ``event``: ``kw_item`` holds its own copy of the name and metadata values (SQLite's
    FTS5 cannot read them from a view that calls ``json_tree``); ``kw_name_sub`` reads the names from a view, so a
    'delete' gives exactly the name indexed (computed the same way each time)."""
    body = []
    if event in ("DELETE", "UPDATE"):
        body += ["DELETE FROM kw_item WHERE rowid = old.id;",
                 f"INSERT INTO kw_name_sub(kw_name_sub, rowid, name) VALUES ('delete', old.id, {_basename('old.uri')});"]
    if event in ("INSERT", "UPDATE"):
        body += [f"INSERT INTO kw_item(rowid, name, meta) VALUES (new.id, {_basename('new.uri')}, "
                 f"{_meta_values('new.metadata')});",
                 f"INSERT INTO kw_name_sub(rowid, name) VALUES (new.id, {_basename('new.uri')});"]
    on = "UPDATE OF uri, metadata" if event == "UPDATE" else event
    return f"CREATE TRIGGER kw_item_{event.lower()} AFTER {on} ON items BEGIN {' '.join(body)} END"


_FILL_ITEMS = (f"INSERT INTO kw_item(rowid, name, meta) SELECT id, {_basename('uri')}, {_meta_values('metadata')} "
               "FROM items")


# The catalog migration that adds keyword search (index.schema's _V8 is this list: never edit it once shipped).
MIGRATION: list[str] = [
    f"CREATE VIEW kw_text_docs AS SELECT id, text FROM representations r WHERE {_TEXT_ROW.format(r='r')}",
    f"CREATE VIEW kw_ocr_docs AS SELECT id, text FROM representations r WHERE {_OCR_ROW.format(r='r')}",
    f"CREATE VIEW kw_name_docs AS SELECT id, {_basename('uri')} AS name FROM items",
    f"CREATE VIRTUAL TABLE kw_text USING fts5(text, content='kw_text_docs', content_rowid='id', tokenize='{TOKENIZE}')",
    f"CREATE VIRTUAL TABLE kw_item USING fts5(name, meta, tokenize='{TOKENIZE}')",
    "CREATE VIRTUAL TABLE kw_ocr_sub USING fts5(text, content='kw_ocr_docs', content_rowid='id', tokenize='trigram')",
    "CREATE VIRTUAL TABLE kw_name_sub USING fts5(name, content='kw_name_docs', content_rowid='id', tokenize='trigram')",
    *(_rep_sync(e) for e in ("INSERT", "DELETE", "UPDATE")),
    *(_item_sync(e) for e in ("INSERT", "DELETE", "UPDATE")),
    *(f"INSERT INTO {t}({t}) VALUES ('rebuild')" for t in _EXTERNAL),  # a catalog made before: filled from its rows
    _FILL_ITEMS,
]


@dataclass(frozen=True)
class KeywordHit:
    """One keyword match: the representation that matched (for a file name or metadata match, the item's own first
    representation stands for it), its item, where it matched (``TEXT``, ``NAME``, ``METADATA``, ``SUBSTRING``),
    the relevance (``-bm25``: higher is better) and the matched text (a file name or metadata values for those)."""

    representation_id: int
    item_id: int
    field: str
    relevance: float
    text: str | None = None


def _conn(catalog: Any) -> sqlite3.Connection:
    return catalog.db.conn if hasattr(catalog, "db") else catalog


def has_keywords(catalog: Any) -> bool:
    """Whether the catalog has the keyword tables (schema 8 or later)."""
    return _conn(catalog).execute("SELECT 1 FROM sqlite_master WHERE name = 'kw_text'").fetchone() is not None


def _where_items(modalities: Sequence[str]) -> tuple[str, list[Any]]:
    if not modalities:
        return "", []
    return f" AND i.modality IN ({','.join('?' * len(modalities))})", list(modalities)


_ANCHOR = ("(SELECT a.id FROM representations a WHERE a.item_id = i.id "
           "ORDER BY a.source IS NOT NULL, a.id LIMIT 1)")  # an item's own representation first (not a caption)


def match_text(catalog: Any, expression: str, limit: int, modalities: Sequence[str] = ()) -> list[KeywordHit]:
    """Representations whose text matches ``expression`` (an FTS5 expression of quoted pieces), best first."""
    where, params = _where_items(modalities)
    rows = _conn(catalog).execute(
        f"""SELECT r.id, r.item_id, -bm25(kw_text) FROM kw_text JOIN representations r ON r.id = kw_text.rowid
            JOIN items i ON i.id = r.item_id WHERE kw_text MATCH ? AND i.status = 'ok'{where}
            ORDER BY bm25(kw_text), r.id LIMIT ?""", [expression, *params, min(limit, MAX_LIMIT)]).fetchall()
    return [KeywordHit(int(rep), int(item), TEXT, float(rel)) for rep, item, rel in rows]


def match_items(catalog: Any, expression: str, limit: int, modalities: Sequence[str] = ()) -> list[KeywordHit]:
    """Items whose file name or metadata values match ``expression``, best first (``NAME`` when the name alone
    matches too, else ``METADATA``)."""
    where, params = _where_items(modalities)
    conn = _conn(catalog)
    rows = conn.execute(
        f"""SELECT {_ANCHOR}, i.id, -bm25(kw_item), kw_item.name, kw_item.meta FROM kw_item
            JOIN items i ON i.id = kw_item.rowid WHERE kw_item MATCH ? AND i.status = 'ok'{where}
            ORDER BY bm25(kw_item), i.id LIMIT ?""", [expression, *params, min(limit, MAX_LIMIT)]).fetchall()
    if not rows:
        return []
    by_name = {int(r[0]) for r in conn.execute(
        f"SELECT rowid FROM kw_item WHERE kw_item MATCH ? AND rowid IN ({','.join('?' * len(rows))})",
        [f"name : ({expression})", *[int(r[1]) for r in rows]])}
    return [KeywordHit(int(anchor), int(item), NAME if int(item) in by_name else METADATA, float(rel),
                       name if int(item) in by_name else meta)
            for anchor, item, rel, name, meta in rows if anchor is not None]


def match_substrings(catalog: Any, expression: str, limit: int, modalities: Sequence[str] = ()) -> list[KeywordHit]:
    """OCR representations and items' file names holding every piece of ``expression`` (a trigram expression:
    quoted pieces of three characters or more) anywhere, case folded; best first."""
    where, params = _where_items(modalities)
    conn, limit = _conn(catalog), min(limit, MAX_LIMIT)
    ocr = conn.execute(
        f"""SELECT r.id, r.item_id, -bm25(kw_ocr_sub), NULL FROM kw_ocr_sub JOIN representations r
            ON r.id = kw_ocr_sub.rowid JOIN items i ON i.id = r.item_id
            WHERE kw_ocr_sub MATCH ? AND i.status = 'ok'{where} ORDER BY bm25(kw_ocr_sub), r.id LIMIT ?""",
        [expression, *params, limit]).fetchall()
    names = conn.execute(
        f"""SELECT {_ANCHOR}, i.id, -bm25(kw_name_sub), kw_name_sub.name FROM kw_name_sub
            JOIN items i ON i.id = kw_name_sub.rowid WHERE kw_name_sub MATCH ? AND i.status = 'ok'{where}
            ORDER BY bm25(kw_name_sub), i.id LIMIT ?""", [expression, *params, limit]).fetchall()
    merged = sorted(ocr + [r for r in names if r[0] is not None], key=lambda r: (-r[2], r[1]))[:limit]
    return [KeywordHit(int(rep), int(item), SUBSTRING, float(rel), text) for rep, item, rel, text in merged]


def stored_vectors(catalog: Any, model: str, representation_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The vectors of ``model`` stored for these representations (absent ones are left out)."""
    out: dict[int, np.ndarray] = {}
    ids = [int(i) for i in representation_ids]
    conn = _conn(catalog)
    for start in range(0, len(ids), _CHUNK):
        part = ids[start : start + _CHUNK]
        rows = conn.execute(f"SELECT representation_id, vector FROM vectors WHERE model = ? AND representation_id IN "
                            f"({','.join('?' * len(part))})", [model, *part]).fetchall()
        out.update((int(rep), np.frombuffer(blob, dtype="<f4")) for rep, blob in rows)
    return out


def keyword_problems(catalog: Any) -> list[str]:
    """What SQLite's FTS5 integrity check finds wrong in each keyword table against the catalog rows (empty: ok)."""
    conn, found = _conn(catalog), []
    if not has_keywords(conn):
        return found
    inside = conn.in_transaction
    for table in TABLES:
        try:
            conn.execute(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', {int(table in _EXTERNAL)})")
        except sqlite3.DatabaseError as exc:
            if "readonly" in str(exc):  # FTS5's check is an INSERT: a read-only store cannot run it
                return []
            found.append(f"{table}: {exc}")
        finally:
            if not inside and conn.in_transaction:  # the check writes nothing; end the transaction its INSERT began
                conn.rollback()
    return found


def rebuild_keywords(catalog: Any) -> None:
    """Rebuild every keyword table from the catalog rows (``check --repair``); call inside a write transaction."""
    conn = _conn(catalog)
    for table in _EXTERNAL:
        conn.execute(f"INSERT INTO {table}({table}) VALUES ('rebuild')")
    conn.execute("DELETE FROM kw_item")
    conn.execute(_FILL_ITEMS)

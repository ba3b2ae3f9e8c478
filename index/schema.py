"""Catalog schema as numbered migrations, applied in order inside one transaction each."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from typing import Callable

from core.modalities import MODALITIES
from index.errors import SchemaTooNew
from index.keyword import MIGRATION as KEYWORD_MIGRATION

# The modality CHECKs below are generated from the registry when this module is imported; with the built-in
# registry the text is byte for byte the SQL that shipped (tests/core pins it), so old catalogs are unchanged.
_MODALITY_IN = ", ".join(f"'{m}'" for m in MODALITIES[:3])  # V1 as shipped (image, text, audio); V6 drops it
STATUSES = ("ok", "failed", "deleted")
# A migration step: one SQL statement, or a function run on the connection inside the migration's transaction.
Step = str | Callable[[sqlite3.Connection], None]

_V1 = [
    """CREATE TABLE catalog_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL,
        catalog_id TEXT NOT NULL
    )""",
    "INSERT INTO catalog_state (id, generation, catalog_id) VALUES (1, 0, lower(hex(randomblob(16))))",
    f"""CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uri TEXT NOT NULL UNIQUE,
        modality TEXT NOT NULL CHECK (modality IN ({_MODALITY_IN})),
        sha256 TEXT,
        size INTEGER,
        mtime REAL,
        status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'failed', 'deleted')),
        error TEXT,
        metadata TEXT NOT NULL DEFAULT '{{}}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        generation INTEGER NOT NULL
    )""",
    "CREATE INDEX items_sha256 ON items (sha256)",
    "CREATE INDEX items_status ON items (status)",
    f"""CREATE TABLE representations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id INTEGER NOT NULL REFERENCES items (id),
        kind TEXT NOT NULL,
        modality TEXT NOT NULL CHECK (modality IN ({_MODALITY_IN})),
        offset_seconds REAL,
        text TEXT,
        generation INTEGER NOT NULL
    )""",
    "CREATE INDEX representations_item ON representations (item_id)",
    """CREATE TABLE vector_sets (
        model TEXT NOT NULL,
        modality TEXT NOT NULL,
        dim INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (model, modality)
    )""",
    """CREATE TABLE vectors (
        representation_id INTEGER NOT NULL REFERENCES representations (id),
        model TEXT NOT NULL,
        modality TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        generation INTEGER NOT NULL,
        PRIMARY KEY (representation_id, model)
    )""",
    "CREATE INDEX vectors_set_generation ON vectors (model, modality, generation)",
    """CREATE TABLE tombstones (
        representation_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        modality TEXT NOT NULL,
        generation INTEGER NOT NULL
    )""",
    "CREATE INDEX tombstones_set_generation ON tombstones (model, modality, generation)",
]

# Token features for the attention re-ranker: float16 (n, dim) per representation and model, stored at ingest.
_V2 = [
    """CREATE TABLE tokens (
        representation_id INTEGER NOT NULL REFERENCES representations (id),
        model TEXT NOT NULL,
        n INTEGER NOT NULL,
        dim INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (representation_id, model)
    )""",
]

# Whether a model has tokens at all is asked on every default search (``has_tokens``); without this index a store
# holding another model's tokens answers by scanning all of them.
_V3 = ["CREATE INDEX tokens_model ON tokens (model)"]

# One random token per committed generation: an index records the token of the generation it reflects, so a
# catalog restored from a backup (same catalog_id, lower generation) that later re-reaches that generation with other
# writes is told apart from the history the index was built from. Generation numbers repeat; tokens do not.
_V4 = [
    "CREATE TABLE generations (generation INTEGER PRIMARY KEY, token TEXT NOT NULL)",
    "INSERT INTO generations (generation, token) SELECT generation, lower(hex(randomblob(16))) FROM catalog_state",
]

# Which source gave a caption (the manifest or caption file's uri; NULL for a file's own representations and for
# captions stored before this migration): a manifest ingested again removes the captions it no longer lists, and
# only those, while captions from other sources stay.
_V5 = [
    "ALTER TABLE representations ADD COLUMN source TEXT",
    "CREATE INDEX representations_source ON representations (source) WHERE source IS NOT NULL",
]



def _drop_modality_checks(conn: sqlite3.Connection) -> None:
    """Remove V1's ``CHECK (modality IN (...))`` from items and representations, the way SQLite documents for
    removing a CHECK (edit the stored CREATE TABLE text, bump schema_version): the data on disk is unchanged, and
    ``index.catalog`` checks every modality against the registry (``core.modalities``) on write instead, so a
    modality registered later can be stored in a catalog made before it."""
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        for table in ("items", "representations"):
            (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
            narrowed = re.sub(r" CHECK \(modality IN \([^)]*\)\)", "", sql)
            if narrowed != sql:
                conn.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (narrowed, table))
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


_V6: list[Step] = [_drop_modality_checks]

# Enrichments: representations made from a file's content by a model (speech transcripts, OCR lines), stored with
# source 'enrich:<name>' and an end time; one row per (item, enricher) records the enricher's version and the content
# it read, so an item with no speech is not transcribed again on every run and a new model version redoes it.
_V7 = [
    "ALTER TABLE representations ADD COLUMN end_seconds REAL",
    """CREATE TABLE enrichments (
        item_id INTEGER NOT NULL REFERENCES items (id),
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        sha256 TEXT,
        segments INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        done_at TEXT NOT NULL,
        generation INTEGER NOT NULL,
        PRIMARY KEY (item_id, name)
    )""",
]

# Keyword search: FTS5 tables over representations' text, items' file names and metadata values, and trigram tables
# for substrings, kept in step by triggers and filled from the rows already there (index.keyword holds the SQL).
_V8: list[Step] = KEYWORD_MIGRATION

# What produced each vector set: a fingerprint of the weights (tower and head) its vectors were made by, NULL for
# sets stored before this migration (adopted once from xmodal.json's mirror). A re-embed after retraining stages the
# new vectors in staged_vectors (not searchable, no generation bump) and swaps them in with one transaction.
_V9 = [
    "ALTER TABLE vector_sets ADD COLUMN weights TEXT",
    """CREATE TABLE staged_vectors (
        representation_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        modality TEXT NOT NULL,
        weights TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        tokens_n INTEGER,
        tokens_dim INTEGER,
        tokens BLOB,
        PRIMARY KEY (representation_id, model)
    )""",
]

# Bulk mode (index.bulk): which Parquet file holds each vector of a bulk store. Stores written in bulk mode before
# this migration created these tables on their first bulk write, hence IF NOT EXISTS (same definitions).
_V10 = [
    """CREATE TABLE IF NOT EXISTS bulk_files (
        path TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        modality TEXT NOT NULL,
        dim INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS bulk_vectors (
        representation_id INTEGER NOT NULL REFERENCES representations (id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        modality TEXT NOT NULL,
        file TEXT NOT NULL REFERENCES bulk_files (path),
        generation INTEGER NOT NULL,
        PRIMARY KEY (representation_id, model)
    )""",
    "CREATE INDEX IF NOT EXISTS bulk_vectors_set ON bulk_vectors (model, modality, generation)",
    "CREATE INDEX IF NOT EXISTS bulk_vectors_file ON bulk_vectors (file)",
]

# Append new migrations here; never edit one that has shipped.
MIGRATIONS: list[list[Step]] = [_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10]
SCHEMA_VERSION = len(MIGRATIONS)


def now() -> str:
    """UTC timestamp as ISO-8601 text (readable in Datasette)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for an empty file)."""
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not has:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, migrations: list[list[Step]] | None = None) -> int:
    """Bring the schema up to the last migration; raises ``SchemaTooNew`` for a newer file. Returns the version."""
    migrations = MIGRATIONS if migrations is None else migrations
    latest = len(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        version = current_version(conn)
        if version > latest:
            raise SchemaTooNew(f"catalog schema version {version} is newer than this xmodal supports ({latest})")
        for number in range(version + 1, latest + 1):
            for step in migrations[number - 1]:
                if callable(step):
                    step(conn)
                else:
                    conn.execute(step)
            conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (number, now()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return latest

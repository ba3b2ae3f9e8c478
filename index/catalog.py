"""The catalog: SQLite (WAL) source of truth for items, representations and vectors, with a generation counter."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np
import sqlite_utils

from index.catalog_read import CatalogReads
from index.catalog_weights import CatalogWeights
from index.enrichments import CatalogEnrichments
from index.errors import (
    DimensionMismatch,
    InvalidStatus,
    ItemNotFound,
    StoreReadOnly,
    WrongShape,
)
from index.connect import open_catalog
from index.records import Item
from index.schema import MODALITIES, SCHEMA_VERSION, now
from index.validate import check_ids, check_vectors


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise InvalidStatus(f"modality must be one of {MODALITIES}, got {modality!r}")


class Catalog(CatalogEnrichments, CatalogWeights, CatalogReads):
    """Items, representations and per-model vectors; every committed change bumps ``generation``."""

    def __init__(self, path: str | Path, *, create: bool = True, read_only: bool | None = None) -> None:
        self.path = Path(path)
        conn, self.read_only, self.created = open_catalog(self.path, create=create, read_only=read_only)
        self.db = sqlite_utils.Database(conn)
        if not self.read_only:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
        self.schema_version = SCHEMA_VERSION
        self._pending: int | None = None  # generation being written by the open transaction
        self._dirty = False

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def generation(self) -> int:
        """The generation of the last committed change (0 for a new catalog)."""
        return int(self.db.execute("SELECT generation FROM catalog_state WHERE id = 1").fetchone()[0])

    @property
    def catalog_id(self) -> str:
        """Random id fixed when the catalog was created: an index built from another catalog is never caught up."""
        return str(self.db.execute("SELECT catalog_id FROM catalog_state WHERE id = 1").fetchone()[0])

    def lineage(self, generation: int) -> str | None:
        """The random token written with ``generation`` (None if this catalog's history never reached it)."""
        row = self.db.execute("SELECT token FROM generations WHERE generation = ?", (generation,)).fetchone()
        return None if row is None else str(row[0])

    @contextmanager
    def atomic(self) -> Iterator[Catalog]:
        """One transaction (nested calls become savepoints); commits with one generation bump if anything changed."""
        if self._pending is not None:
            with self.db.atomic():
                yield self
            return
        conn = self.db.conn
        if self.read_only:
            raise StoreReadOnly(f"{self.path} is read-only: the catalog cannot be written")
        conn.execute("BEGIN IMMEDIATE")
        self._pending = self.generation + 1
        self._dirty = False
        try:
            yield self
            if self._dirty:
                conn.execute("UPDATE catalog_state SET generation = ? WHERE id = 1", (self._pending,))
                conn.execute("INSERT INTO generations (generation, token) VALUES (?, lower(hex(randomblob(16))))",
                             (self._pending,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            self._pending = None

    @contextmanager
    def snapshot(self) -> Iterator[Catalog]:
        """A read transaction: every read inside sees one consistent state (WAL snapshot)."""
        if self.db.conn.in_transaction:
            yield self
            return
        self.db.conn.execute("BEGIN")
        try:
            yield self
        finally:
            self.db.conn.execute("COMMIT")

    def _write_generation(self) -> int:
        """The generation the current transaction writes (call inside ``atomic``)."""
        assert self._pending is not None, "writes must happen inside Catalog.atomic()"
        self._dirty = True
        return self._pending

    # ---- items -------------------------------------------------------------------------------------

    def upsert_item(self, uri: str, modality: str, *, sha256: str | None = None, size: int | None = None,
                    mtime: float | None = None, metadata: dict[str, Any] | None = None) -> int:
        """Insert or update the item at ``uri`` (status back to ok, error cleared); returns its stable id."""
        _check_modality(modality)
        meta = json.dumps(metadata or {}, sort_keys=True)
        with self.atomic():
            gen, ts = self._write_generation(), now()
            self.db.execute(
                """INSERT INTO items (uri, modality, sha256, size, mtime, status, error, metadata,
                                      created_at, updated_at, generation)
                   VALUES (?, ?, ?, ?, ?, 'ok', NULL, ?, ?, ?, ?)
                   ON CONFLICT (uri) DO UPDATE SET modality = excluded.modality, sha256 = excluded.sha256,
                     size = excluded.size, mtime = excluded.mtime, status = 'ok', error = NULL,
                     metadata = excluded.metadata, updated_at = excluded.updated_at, generation = excluded.generation""",
                (uri, modality, sha256, size, mtime, meta, ts, ts, gen),
            )
            return int(self.db.execute("SELECT id FROM items WHERE uri = ?", (uri,)).fetchone()[0])

    def _set_status(self, item_id: int, status: str, error: str | None) -> None:
        with self.atomic():
            gen = self._write_generation()
            cur = self.db.execute(
                "UPDATE items SET status = ?, error = ?, updated_at = ?, generation = ? WHERE id = ?",
                (status, error, now(), gen, item_id),
            )
            if cur.rowcount == 0:
                raise ItemNotFound(f"no item with id {item_id}")
            self.remove_representations(item_id)
            self.db.execute("DELETE FROM enrichments WHERE item_id = ?", (item_id,))

    def mark_failed(self, item_id: int, error: str) -> None:
        """Record that ingesting the item failed; its representations and vectors are removed."""
        self._set_status(item_id, "failed", error)

    def mark_deleted(self, item_id: int) -> None:
        """Record that the item is gone; its representations and vectors are removed (the row stays)."""
        self._set_status(item_id, "deleted", None)

    # ---- representations ---------------------------------------------------------------------------

    def add_representation(self, item_id: int, kind: str, modality: str, *, offset_seconds: float | None = None,
                           text: str | None = None, source: str | None = None, end_seconds: float | None = None) -> int:
        """Add a searchable view of an item (``source``: the manifest that gave a caption, or ``enrich:NAME``);
        returns its id (the FAISS id of its vectors)."""
        _check_modality(modality)
        with self.atomic():
            gen = self._write_generation()
            try:
                cur = self.db.execute(
                    """INSERT INTO representations (item_id, kind, modality, offset_seconds, text, generation, source,
                                                    end_seconds)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                    (item_id, kind, modality, offset_seconds, text, gen, source, end_seconds),
                )
            except sqlite3.IntegrityError as exc:
                raise ItemNotFound(f"no item with id {item_id}") from exc
            return int(cur.lastrowid)

    def remove_representations(self, item_id: int) -> int:
        """Remove all representations of an item and their vectors (tombstoned); returns how many."""
        with self.atomic():
            rep_ids = [r[0] for r in self.db.execute("SELECT id FROM representations WHERE item_id = ?", (item_id,))]
            self._delete_vectors("representation_id IN (SELECT id FROM representations WHERE item_id = ?)", (item_id,))
            self.db.execute("DELETE FROM tokens WHERE representation_id IN "
                            "(SELECT id FROM representations WHERE item_id = ?)", (item_id,))
            self.db.execute("DELETE FROM representations WHERE item_id = ?", (item_id,))
            if rep_ids:
                self._write_generation()
            return len(rep_ids)

    def remove_representation_ids(self, representation_ids: list[int]) -> int:
        """Remove these representations and their vectors and tokens (tombstoned); returns how many went."""
        ids = [int(i) for i in representation_ids]
        if not ids:
            return 0
        with self.atomic():
            for rep in ids:
                self._delete_vectors("representation_id = ?", (rep,))
            gone = sum(self.db.execute("DELETE FROM representations WHERE id = ?", (rep,)).rowcount for rep in ids)
            return gone

    def set_representation_source(self, representation_id: int, source: str | None) -> None:
        """Record which manifest gave a caption (its vectors are unchanged, so no index needs to change)."""
        with self.atomic():
            self._write_generation()
            self.db.execute("UPDATE representations SET source = ? WHERE id = ?", (source, representation_id))

    def set_metadata(self, item_id: int, metadata: dict[str, Any]) -> None:
        """Replace an item's metadata (nothing else about it changes)."""
        with self.atomic():
            gen = self._write_generation()
            cur = self.db.execute("UPDATE items SET metadata = ?, updated_at = ?, generation = ? WHERE id = ?",
                                  (json.dumps(metadata, sort_keys=True), now(), gen, item_id))
            if cur.rowcount == 0:
                raise ItemNotFound(f"no item with id {item_id}")

    # ---- vectors -----------------------------------------------------------------------------------

    def _delete_vectors(self, where: str, params: tuple) -> int:
        """Delete vector rows matching ``where``, leaving a tombstone for each."""
        gen = self._write_generation()
        self.db.execute(
            f"INSERT INTO tombstones (representation_id, model, modality, generation) "
            f"SELECT representation_id, model, modality, ? FROM vectors WHERE {where}",
            (gen, *params),
        )
        self.db.execute(f"DELETE FROM tokens WHERE {where}", params)
        return self.db.execute(f"DELETE FROM vectors WHERE {where}", params).rowcount

    def _register_set(self, model: str, modality: str, dim: int, weights: str | None = None) -> None:
        row = self.db.execute("SELECT dim, weights FROM vector_sets WHERE model = ? AND modality = ?",
                              (model, modality)).fetchone()
        if row is None:
            self.db.execute("INSERT INTO vector_sets (model, modality, dim, created_at, weights) VALUES (?, ?, ?, ?, ?)",
                            (model, modality, dim, now(), weights))
            return
        if row[0] != dim:
            raise DimensionMismatch(f"model {model!r} {modality} vectors have dimension {row[0]}, got {dim}")
        self._check_set_weights(model, modality, row[1], weights)

    def write_vectors(self, model: str, representation_ids: np.ndarray | list[int], vectors: np.ndarray,
                      weights: dict[str, str] | None = None) -> int:
        """Store (or replace) one vector per representation for ``model``, validated, in one transaction.

        ``weights``: the fingerprint per modality of what made them, recorded on the vector set; vectors of other
        weights than a set's non-empty recorded ones raise ``WeightsChanged`` (never mixed in one index)."""
        vectors = check_vectors(vectors)
        ids = check_ids(representation_ids, len(vectors))
        if len(np.unique(ids)) != len(ids):
            raise WrongShape("representation ids repeat within one write")
        with self.atomic():
            gen = self._write_generation()
            modality = self.representation_modalities(ids)
            missing = [int(i) for i in ids if int(i) not in modality]
            if missing:
                raise ItemNotFound(f"no representation with id {missing[0]} ({len(missing)} missing)")
            for mod in set(modality.values()):
                self._register_set(model, mod, vectors.shape[1], (weights or {}).get(mod))
            dim = vectors.shape[1]
            self.db.conn.executemany(
                """INSERT INTO vectors (representation_id, model, modality, dim, vector, generation)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (representation_id, model) DO UPDATE SET
                     vector = excluded.vector, dim = excluded.dim, generation = excluded.generation""",
                ((int(i), model, modality[int(i)], dim, v.astype("<f4").tobytes(), gen) for i, v in zip(ids, vectors)),
            )
            return len(ids)

    def write_tokens(self, model: str, representation_ids: np.ndarray | list[int], tokens: list[np.ndarray]) -> int:
        """Store (or replace) each representation's re-ranker token features (float16, (n, dim)) for ``model``."""
        ids = check_ids(representation_ids, len(tokens))
        rows = []
        for i, t in zip(ids, tokens):
            t = np.asarray(t)
            if t.ndim != 2 or not len(t) or not np.isfinite(t).all():
                raise WrongShape(f"tokens of representation {int(i)} must be a finite (n, dim) array, got {t.shape}")
            rows.append((int(i), model, t.shape[0], t.shape[1], t.astype("<f2").tobytes()))
        with self.atomic():
            self.db.conn.executemany(
                """INSERT INTO tokens (representation_id, model, n, dim, data) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (representation_id, model) DO UPDATE SET
                     n = excluded.n, dim = excluded.dim, data = excluded.data""", rows)
            return len(rows)

    def item(self, item_id: int) -> Item:
        """The item with this id, or ``ItemNotFound``."""
        rows = list(self.db.query("SELECT * FROM items WHERE id = ?", [item_id]))
        if not rows:
            raise ItemNotFound(f"no item with id {item_id}")
        return Item.from_row(rows[0])

"""Catalog reads: lookups for ingest, hydration and filters for the query layer, vector streams for indexes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import sqlite_utils

from index.errors import ItemNotFound, UnknownVectorSet
from index.records import Changes, Hit, Item, Representation, VectorSet

_CHUNK = 500  # ids per SQL statement, well under SQLite's variable limit
# A hit carries at most this much of its representation's text: whole-text items of older stores can be megabytes.
HIT_TEXT_CHARS = 4000


def _id_chunks(ids: np.ndarray | list[int]) -> Iterator[tuple[list[int], str]]:
    """Ids as ints in SQL-sized parts, each with its ``?,?,...`` placeholder list."""
    ints = [int(i) for i in ids]
    for start in range(0, len(ints), _CHUNK):
        part = ints[start : start + _CHUNK]
        yield part, ",".join("?" * len(part))


def _blobs_to_array(blobs: list[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32, copy=False).reshape(len(blobs), -1)


class CatalogReads:
    """Read side of ``Catalog`` (mixed in; uses ``self.db``)."""

    db: sqlite_utils.Database

    def item_by_uri(self, uri: str) -> Item | None:
        """The item stored under ``uri``, whatever its status, or None."""
        rows = list(self.db.query("SELECT * FROM items WHERE uri = ?", [uri]))
        return Item.from_row(rows[0]) if rows else None

    def items_by_sha256(self, sha256: str, status: str | None = "ok") -> list[Item]:
        """Items with this content hash (identical content under several uris), by id."""
        sql = "SELECT * FROM items WHERE sha256 = ?" + (" AND status = ?" if status else "") + " ORDER BY id"
        return [Item.from_row(r) for r in self.db.query(sql, [sha256, status] if status else [sha256])]

    def items(self, status: str | None = None) -> list[Item]:
        """All items (optionally of one status), by id."""
        sql = "SELECT * FROM items" + (" WHERE status = ?" if status else "") + " ORDER BY id"
        return [Item.from_row(r) for r in self.db.query(sql, [status] if status else [])]

    def representations_of(self, item_id: int) -> list[Representation]:
        """The representations of one item, by id."""
        return [Representation(**r) for r in self.db.query(
            "SELECT * FROM representations WHERE item_id = ? ORDER BY id", [item_id])]

    def captions_from(self, source: str) -> list[tuple[int, str]]:
        """(representation id, item uri) of every caption that ``source`` (a manifest's uri) gave, by id."""
        rows = self.db.execute(
            "SELECT r.id, i.uri FROM representations r JOIN items i ON i.id = r.item_id "
            "WHERE r.source = ? AND r.kind = 'caption' ORDER BY r.id", (source,)).fetchall()
        return [(int(rep), str(uri)) for rep, uri in rows]

    def hydrate(self, representation_ids: np.ndarray | list[int]) -> dict[int, Hit]:
        """Map representation ids (FAISS hits) to item id, uri, modality, kind, offset, text (its first
        ``HIT_TEXT_CHARS`` characters)."""
        out: dict[int, Hit] = {}
        for part, marks in _id_chunks([i for i in representation_ids if i >= 0]):
            rows = self.db.execute(  # raw tuples: this is on every query's path
                f"""SELECT r.id, r.item_id, i.uri, i.modality, r.kind, r.modality, r.offset_seconds,
                           substr(r.text, 1, {HIT_TEXT_CHARS}),
                           i.status, i.metadata, r.end_seconds
                    FROM representations r JOIN items i ON i.id = r.item_id
                    WHERE r.id IN ({marks})""",
                part,
            ).fetchall()
            for *fields, meta, end in rows:
                out[fields[0]] = Hit(*fields, json.loads(meta) if meta and meta != "{}" else {}, end)
        return out

    def item_mtimes(self, item_ids: set[int] | list[int]) -> dict[int, float | None]:
        """Modification time (epoch seconds, None when unknown) of each existing item among ``item_ids``."""
        out: dict[int, float | None] = {}
        for part, marks in _id_chunks(sorted(item_ids)):
            out.update((int(i), m) for i, m in self.db.execute(f"SELECT id, mtime FROM items WHERE id IN ({marks})", part))
        return out

    def item_counts(self) -> list[tuple[str, str, int]]:
        """(item modality, status, how many items) for every pair the catalog holds."""
        rows = self.db.execute("SELECT modality, status, COUNT(*) FROM items GROUP BY modality, status").fetchall()
        return [(str(m), str(s), int(n)) for m, s, n in rows]

    def items_with_vectors(self, model: str, *, with_tokens: bool = False) -> set[int]:
        """Items with a vector of ``model``; ``with_tokens``: only those whose every such vector has its tokens."""
        joined = "FROM vectors v JOIN representations r ON r.id = v.representation_id"
        items = {int(r[0]) for r in self.db.execute(f"SELECT DISTINCT r.item_id {joined} WHERE v.model = ?", (model,))}
        if with_tokens:
            items -= {int(r[0]) for r in self.db.execute(
                f"SELECT DISTINCT r.item_id {joined} LEFT JOIN tokens t ON t.representation_id = v.representation_id "
                "AND t.model = v.model WHERE v.model = ? AND t.representation_id IS NULL", (model,))}
        return items

    def vector_sets(self) -> list[VectorSet]:
        """Every (model, modality) that has ever had vectors, with its dimension, current count and weights."""
        rows = self.db.execute(
            """SELECT s.model, s.modality, s.dim,
                      (SELECT COUNT(*) FROM vectors v WHERE v.model = s.model AND v.modality = s.modality), s.weights
               FROM vector_sets s ORDER BY s.model, s.modality"""
        ).fetchall()
        return [VectorSet(*r) for r in rows]

    def vector_dim(self, model: str, modality: str) -> int:
        """Dimension of a vector set, or ``UnknownVectorSet``."""
        row = self.db.execute("SELECT dim FROM vector_sets WHERE model = ? AND modality = ?", (model, modality)).fetchone()
        if row is None:
            raise UnknownVectorSet(f"no vectors for model {model!r} and modality {modality!r}")
        return int(row[0])

    def count_vectors(self, model: str, modality: str) -> int:
        """How many vectors a set holds now."""
        return int(self.db.execute("SELECT COUNT(*) FROM vectors WHERE model = ? AND modality = ?",
                                   (model, modality)).fetchone()[0])

    def iter_vectors(self, model: str, modality: str, *, since: int | None = None,
                     batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream (ids, float32 vectors) of a set by id, optionally only rows written after generation ``since``."""
        dim = self.vector_dim(model, modality)
        sql = "SELECT representation_id, vector FROM vectors WHERE model = ? AND modality = ?"
        params: list[Any] = [model, modality]
        if since is not None:
            sql += " AND generation > ?"
            params.append(since)
        cur = self.db.execute(sql + " ORDER BY representation_id", params)
        while rows := cur.fetchmany(batch):
            yield np.array([r[0] for r in rows], dtype=np.int64), _blobs_to_array([r[1] for r in rows], dim)

    def load_vectors(self, model: str, modality: str, *, since: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, vectors) of a set in memory (see ``iter_vectors``)."""
        parts = list(self.iter_vectors(model, modality, since=since))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.vector_dim(model, modality)), dtype=np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def representation_modalities(self, ids: np.ndarray) -> dict[int, str]:
        """Modality of each existing representation among ``ids``."""
        out: dict[int, str] = {}
        for part, marks in _id_chunks(ids):
            out.update(self.db.execute(f"SELECT id, modality FROM representations WHERE id IN ({marks})", part))
        return out

    def vectors_for(self, model: str, ids: np.ndarray) -> np.ndarray:
        """The vectors of ``model`` for these representation ids, in the order given (all must exist)."""
        ids = [int(i) for i in ids]
        found: dict[int, bytes] = {}
        for part, marks in _id_chunks(ids):
            found.update(self.db.execute(
                f"SELECT representation_id, vector FROM vectors WHERE model = ? AND representation_id IN ({marks})",
                [model, *part]))
        missing = [i for i in ids if i not in found]
        if missing:
            raise ItemNotFound(f"no {model} vector for representation {missing[0]} ({len(missing)} missing)")
        return np.frombuffer(b"".join(found[i] for i in ids), dtype="<f4").astype(np.float32).reshape(len(ids), -1)

    def vector_ids(self, model: str, modality: str) -> np.ndarray:
        """Sorted ids of a set's vectors."""
        rows = self.db.execute("SELECT representation_id FROM vectors WHERE model = ? AND modality = ? ORDER BY 1",
                               (model, modality)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def changes_since(self, model: str, modality: str, generation: int) -> Changes:
        """Ids an index at ``generation`` must drop (tombstoned or rewritten) and re-add (rewritten or new)."""
        current = int(self.db.execute("SELECT generation FROM catalog_state WHERE id = 1").fetchone()[0])
        dead = self.db.execute(
            "SELECT DISTINCT representation_id FROM tombstones WHERE model = ? AND modality = ? AND generation > ?",
            (model, modality, generation)).fetchall()
        new = self.db.execute(
            "SELECT representation_id FROM vectors WHERE model = ? AND modality = ? AND generation > ? ORDER BY 1",
            (model, modality, generation)).fetchall()
        upserted = np.array([r[0] for r in new], dtype=np.int64)
        removed = np.union1d(np.array([r[0] for r in dead], dtype=np.int64), upserted)
        return Changes(since=generation, generation=current, removed=removed, upserted=upserted)

    def has_tokens(self, model: str) -> bool:
        """Whether any re-ranker token features are stored for ``model``."""
        return self.db.execute("SELECT 1 FROM tokens WHERE model = ? LIMIT 1", [model]).fetchone() is not None

    def tokens_for(self, model: str, representation_ids: np.ndarray | list[int]) -> dict[int, np.ndarray]:
        """Stored re-ranker token features (float16 (n, dim)) of these representations; absent ones are left out."""
        out: dict[int, np.ndarray] = {}
        for part, marks in _id_chunks(representation_ids):
            rows = self.db.execute(
                f"SELECT representation_id, n, dim, data FROM tokens WHERE model = ? AND representation_id IN ({marks})",
                [model, *part]).fetchall()
            for rep, n, dim, data in rows:
                out[int(rep)] = np.frombuffer(data, dtype="<f2").reshape(n, dim)
        return out

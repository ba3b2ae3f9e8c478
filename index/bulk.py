"""Bulk mode: a store's vectors live in Parquet files, the catalog records which file holds each one.

``BulkCatalog`` wraps a ``Catalog``: inside ``atomic()`` its ``write_vectors`` only collects vectors; when the
outermost transaction is about to commit, they are written as one Parquet file per vector modality (written whole,
fsynced, renamed into place) and the rows naming that file go into the same transaction. A crash before the
commit leaves a Parquet file no committed row names (an orphan, removed when a ``BulkCatalog`` is next opened for
writing); a crash after it leaves both. Reads (``vector_sets``, ``vector_ids``, ``vectors_for``, ``count_vectors``,
``items_with_vectors``) see catalog and Parquet vectors together, so search policy, calibration and twin copies
work unchanged over a bulk store. Everything else is the wrapped catalog's.

Tables (schema migration 10; empty in a catalog never written in bulk mode): ``bulk_files`` (one row per Parquet
file) and ``bulk_vectors`` (one row per live vector: representation, model, modality, file, generation). A
representation removed from the catalog takes its ``bulk_vectors`` row with it (``ON DELETE CASCADE``); its Parquet
row stays, dead, and index builds skip it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import IndexStoreError, ItemNotFound, StoreEmpty, WrongShape
from index.parquet import ParquetShardWriter, iter_shard
from index.persist import TMP_MARK
from index.records import VectorSet
from index.schema import now
from index.validate import check_ids, check_vectors

ROWS_PER_FILE = 1_000_000
MARKER = "xmodal-bulk.json"  # in a bulk folder: the catalog it belongs to (its orphan sweep must not touch others)


class BulkFolderInUse(IndexStoreError):
    """A bulk folder already holds another catalog's Parquet files."""

    exit_code = 2


class BulkSearchNeedsShards(StoreEmpty):
    """A bulk store's vectors are in Parquet files, which single-machine search does not read: use its shards."""


def refuse_single_machine(catalog: Any, model: str, held: list[str]) -> None:
    """Raise ``BulkSearchNeedsShards`` when ``model``'s bulk sets hold vectors that single-machine search (which
    holds ``held``) cannot see."""
    bulk = [m for _, m, n in bulk_sets(catalog, model) if n and m not in held]
    if bulk:
        raise BulkSearchNeedsShards(
            f"this is a bulk store: its {model} {', '.join(bulk)} vectors are in Parquet files, which `xmodal search` "
            f"does not read; build and search its shards: `xmodal shards build --store S` then "
            f"`xmodal shards search QUERY --store S`")


def set_folder(folder: str | Path, model: str, modality: str) -> Path:
    """``<folder>/<model>.<modality>`` with a safe model name."""
    return Path(folder) / f"{re.sub(r'[^A-Za-z0-9._-]', '_', model)}.{modality}"


def bulk_sets(catalog: Any, model: str | None = None) -> list[tuple[str, str, int]]:
    """(model, modality, live vectors) of every bulk vector set (of ``model`` when given)."""
    sql = "SELECT model, modality, COUNT(*) FROM bulk_vectors"
    rows = catalog.db.execute(sql + (" WHERE model = ?" if model else "") + " GROUP BY model, modality ORDER BY 1, 2",
                              [model] if model else []).fetchall()
    return [(str(m), str(d), int(n)) for m, d, n in rows]


def bulk_folders(catalog: Any, model: str) -> list[str]:
    """The bulk folders ``model``'s Parquet files were written under (the parents of their set folders)."""
    rows = catalog.db.execute("SELECT DISTINCT path FROM bulk_files WHERE model = ?", (model,)).fetchall()
    return sorted({str(Path(r[0]).parent.parent) for r in rows})


def bulk_state(catalog: Any, model: str, modality: str) -> tuple[int, int]:
    """(live vectors, highest generation among them) of one bulk set: an index built from it is stale when either
    moved (a removal lowers the count, a write raises the generation)."""
    n, gen = catalog.db.execute("SELECT COUNT(*), MAX(generation) FROM bulk_vectors WHERE model = ? AND modality = ?",
                                (model, modality)).fetchone()
    return int(n), int(gen or 0)


def bulk_files(catalog: Any, model: str, modality: str) -> list[tuple[str, int, np.ndarray]]:
    """(path, rows in the file, sorted live representation ids) of each Parquet file of a set, in path order."""
    files = catalog.db.execute("SELECT path, rows FROM bulk_files WHERE model = ? AND modality = ? ORDER BY path",
                               (model, modality)).fetchall()
    live: dict[str, list[int]] = {}
    for rep, file in catalog.db.execute("SELECT representation_id, file FROM bulk_vectors WHERE model = ? AND "
                                        "modality = ?", (model, modality)):
        live.setdefault(str(file), []).append(int(rep))
    return [(str(p), int(r), np.sort(np.array(live.get(str(p), []), dtype=np.int64))) for p, r in files]


class BulkCatalog:
    """A catalog whose vectors of ``model`` are written to Parquet files under ``folder`` (see the module docstring);
    ``folder`` None: read-only use (reads and index builds need only the paths the catalog records)."""

    def __init__(self, catalog: Any, model: str, folder: str | Path | None = None,
                 rows_per_file: int = ROWS_PER_FILE) -> None:
        self.catalog, self.model = catalog, model
        self.folder = None if folder is None else Path(folder).resolve()
        self.rows_per_file = rows_per_file
        self._pending: dict[int, np.ndarray] = {}
        self._weights: dict[str, str] = {}
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._claim()
            self.orphans_removed = self.remove_orphans()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.catalog, name)

    # -- writing ----------------------------------------------------------------------------------------
    def _claim(self) -> None:
        """Mark the folder as this catalog's; ``BulkFolderInUse`` when another catalog marked it first."""
        import json

        from index.persist import _write_bytes_atomic

        assert self.folder is not None
        marker = self.folder / MARKER
        mine = self.catalog.catalog_id
        if marker.is_file():
            try:
                owner = json.loads(marker.read_text()).get("catalog_id")
            except (OSError, ValueError, AttributeError):
                owner = None
            if owner != mine:
                raise BulkFolderInUse(f"the bulk folder {self.folder} belongs to another store (catalog {owner}); "
                                      "give each store its own --bulk folder")
            return
        _write_bytes_atomic(marker, json.dumps({"catalog_id": mine}).encode())

    def remove_orphans(self) -> int:
        """Delete Parquet files (and temp files) under the folder that no committed row names; returns how many."""
        assert self.folder is not None
        named = {str(r[0]) for r in self.catalog.db.execute("SELECT path FROM bulk_files")}
        gone = 0
        for path in self.folder.glob("*/*"):
            if path.is_file() and (TMP_MARK in path.name or (path.suffix == ".parquet" and str(path) not in named)):
                path.unlink()
                gone += 1
        return gone

    @contextmanager
    def atomic(self) -> Iterator[BulkCatalog]:
        """The catalog's transaction; the outermost one writes the collected vectors' Parquet files before it
        commits, and the rows naming them inside it."""
        outer = self.catalog._pending is None
        try:
            with self.catalog.atomic():
                yield self
                if outer and self._pending:
                    self._flush()
        finally:
            if outer:
                self._pending, self._weights = {}, {}

    def write_vectors(self, model: str, representation_ids: np.ndarray | list[int], vectors: np.ndarray,
                      weights: dict[str, str] | None = None) -> int:
        """Collect vectors of this model for the Parquet file written at commit (other models: the catalog's);
        ``weights`` (fingerprint per modality) is recorded on the vector set as the catalog does."""
        if model != self.model or self.folder is None:
            if weights:
                return self.catalog.write_vectors(model, representation_ids, vectors, weights=weights)
            return self.catalog.write_vectors(model, representation_ids, vectors)
        self._weights.update(weights or {})
        vectors = check_vectors(vectors)
        ids = check_ids(representation_ids, len(vectors))
        if len(np.unique(ids)) != len(ids):
            raise WrongShape("representation ids repeat within one write")
        with self.atomic():
            for i, v in zip(ids, vectors):
                self._pending[int(i)] = v
        return len(ids)

    def _flush(self) -> None:
        assert self.folder is not None
        gen = self.catalog._write_generation()
        ids = np.array(sorted(self._pending), dtype=np.int64)
        rows: dict[int, tuple] = {}
        for start in range(0, len(ids), 500):
            part = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(part))
            rows.update((int(r[0]), r[1:]) for r in self.catalog.db.execute(
                f"SELECT r.id, r.modality, r.kind, r.offset_seconds, r.item_id, i.uri FROM representations r "
                f"JOIN items i ON i.id = r.item_id WHERE r.id IN ({marks})", part))
        missing = [int(i) for i in ids if int(i) not in rows]
        if missing:
            raise ItemNotFound(f"no representation with id {missing[0]} ({len(missing)} missing)")
        for modality in sorted({rows[int(i)][0] for i in ids}):
            mine = np.array([i for i in ids if rows[int(i)][0] == modality], dtype=np.int64)
            vectors = np.stack([self._pending[int(i)] for i in mine])
            self.catalog._register_set(self.model, modality, vectors.shape[1], self._weights.get(modality))
            extra = {"modality": [modality] * len(mine), "kind": [rows[int(i)][1] for i in mine],
                     "offset": [float("nan") if rows[int(i)][2] is None else float(rows[int(i)][2]) for i in mine],
                     "item_id": [int(rows[int(i)][3]) for i in mine], "uri": [rows[int(i)][4] for i in mine]}
            with ParquetShardWriter(set_folder(self.folder, self.model, modality), vectors.shape[1],
                                    prefix=f"g{gen:010d}", rows_per_file=self.rows_per_file,
                                    meta={"model": self.model, "modality": modality, "generation": gen}) as writer:
                writer.write(mine, vectors, extra)
            at = 0
            for path in writer.files:
                n = int(self._parquet_rows(path))
                self.catalog.db.execute("INSERT INTO bulk_files (path, model, modality, dim, rows, generation, "
                                        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                        (str(path), self.model, modality, vectors.shape[1], n, gen, now()))
                self.catalog.db.conn.executemany(
                    """INSERT INTO bulk_vectors (representation_id, model, modality, file, generation)
                       VALUES (?, ?, ?, ?, ?) ON CONFLICT (representation_id, model) DO UPDATE SET
                         modality = excluded.modality, file = excluded.file, generation = excluded.generation""",
                    ((int(i), self.model, modality, str(path), gen) for i in mine[at : at + n]))
                at += n
            # a vector moved to Parquet leaves no older catalog copy behind
            self.catalog.db.conn.executemany("DELETE FROM vectors WHERE representation_id = ? AND model = ?",
                                             ((int(i), self.model) for i in mine))

    @staticmethod
    def _parquet_rows(path: Path) -> int:
        from index.parquet import shard_info

        return shard_info(path)["rows"]

    # -- reading ----------------------------------------------------------------------------------------
    def vector_sets(self) -> list[VectorSet]:
        """The catalog's vector sets with the bulk vectors counted in."""
        bulk = {(m, d): n for m, d, n in bulk_sets(self.catalog)}
        return [dataclasses.replace(s, count=s.count + bulk.get((s.model, s.modality), 0))
                for s in self.catalog.vector_sets()]

    def count_vectors(self, model: str, modality: str) -> int:
        """Vectors of a set, in the catalog and in Parquet."""
        n = self.catalog.count_vectors(model, modality)
        return n + sum(c for m, d, c in bulk_sets(self.catalog, model) if d == modality)

    def vector_ids(self, model: str, modality: str) -> np.ndarray:
        """Sorted ids of a set's vectors, in the catalog and in Parquet."""
        rows = self.catalog.db.execute("SELECT representation_id FROM bulk_vectors WHERE model = ? AND modality = ?",
                                       (model, modality)).fetchall()
        return np.union1d(self.catalog.vector_ids(model, modality), np.array([r[0] for r in rows], dtype=np.int64))

    def items_with_vectors(self, model: str, *, with_tokens: bool = False) -> set[int]:
        """Items with a vector of ``model`` in the catalog or in Parquet (``with_tokens``: and all their tokens)."""
        items = self.catalog.items_with_vectors(model, with_tokens=with_tokens)
        joined = "FROM bulk_vectors v JOIN representations r ON r.id = v.representation_id"
        bulk = {int(r[0]) for r in self.catalog.db.execute(f"SELECT DISTINCT r.item_id {joined} WHERE v.model = ?",
                                                           (model,))}
        if with_tokens:
            bulk -= {int(r[0]) for r in self.catalog.db.execute(
                f"SELECT DISTINCT r.item_id {joined} LEFT JOIN tokens t ON t.representation_id = v.representation_id "
                "AND t.model = v.model WHERE v.model = ? AND t.representation_id IS NULL", (model,))}
        return items | bulk

    def vectors_for(self, model: str, ids: np.ndarray) -> np.ndarray:
        """Vectors for these representation ids, in order, read from their Parquet files (or the catalog)."""
        ids = [int(i) for i in ids]
        where: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            where.update((int(r), str(f)) for r, f in self.catalog.db.execute(
                f"SELECT representation_id, file FROM bulk_vectors WHERE model = ? AND representation_id IN "
                f"({','.join('?' * len(part))})", [model, *part]))
        rest = [i for i in ids if i not in where]
        found: dict[int, np.ndarray] = {}
        if rest:
            found.update(zip(rest, self.catalog.vectors_for(model, np.array(rest, dtype=np.int64))))
        by_file: dict[str, set[int]] = {}
        for i, f in where.items():
            by_file.setdefault(f, set()).add(i)
        for path, wanted in by_file.items():
            try:
                for got, vectors in iter_shard(path):
                    for row, rep in enumerate(got.tolist()):
                        if rep in wanted:
                            found[rep] = vectors[row]
            except FileNotFoundError as exc:
                raise ItemNotFound(f"the Parquet file {path} holding {model} vectors is gone") from exc
        missing = [i for i in ids if i not in found]
        if missing:
            raise ItemNotFound(f"no {model} vector for representation {missing[0]} ({len(missing)} missing)")
        if not ids:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[i] for i in ids]).astype(np.float32, copy=False)

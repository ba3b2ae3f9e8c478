"""What made each vector set (a fingerprint of the weights, recorded beside its vectors) and the staging of a re-embed:
new vectors wait in ``staged_vectors`` (not searchable, no generation bump) until one transaction swaps a whole set."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Callable

import numpy as np
import sqlite_utils

from core.errors import WeightsChanged
from index.catalog_read import _id_chunks
from index.errors import DimensionMismatch, WrongShape
from index.validate import check_ids, check_vectors


BULK_REEMBED = ("`--reembed` does not re-embed a bulk store's Parquet vectors: ingest the files again into a new "
                "store with a new --bulk folder (`xmodal ingest PATHS --store NEW_DIR --bulk NEW_FOLDER`)")


class CatalogWeights:
    """Fingerprints per vector set and re-embed staging (mixed into ``Catalog``; uses its ``db`` and ``atomic``)."""

    db: sqlite_utils.Database
    atomic: Callable[[], AbstractContextManager]
    _write_generation: Callable[[], int]

    def vector_set_weights(self, model: str, modality: str) -> str | None:
        """The fingerprint of the weights that made a set's vectors (None: unknown, a set stored before it was kept)."""
        row = self.db.execute("SELECT weights FROM vector_sets WHERE model = ? AND modality = ?",
                              (model, modality)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def weights_of(self, model: str) -> dict[str, str | None]:
        """Every vector set of ``model``: modality -> fingerprint (one small read, cheap enough for every search)."""
        rows = self.db.execute("SELECT modality, weights FROM vector_sets WHERE model = ?", (model,)).fetchall()
        return {str(m): None if w is None else str(w) for m, w in rows}

    def set_vector_weights(self, model: str, modality: str, weights: str) -> None:
        """Record the fingerprint of an existing set (adopting an older store's); searchable state is unchanged."""
        with self.atomic():
            self.db.execute("UPDATE vector_sets SET weights = ? WHERE model = ? AND modality = ?",
                            (weights, model, modality))

    def _set_held(self, model: str, modality: str) -> str | None:
        """Where a set holds vectors: "vectors" (the catalog), "bulk_vectors" (a bulk store's Parquet files) or None."""
        for table in ("vectors", "bulk_vectors"):
            if self.db.execute(f"SELECT 1 FROM {table} WHERE model = ? AND modality = ? LIMIT 1",
                               (model, modality)).fetchone():
                return table
        return None

    def _check_set_weights(self, model: str, modality: str, stored: str | None, weights: str | None) -> None:
        """Refuse vectors of other weights into a set that holds some (in the catalog or in Parquet); an empty or
        unstamped set takes ``weights``."""
        if not weights or stored == weights:
            return
        held = self._set_held(model, modality)
        if stored is not None and held:
            fix = (BULK_REEMBED if held == "bulk_vectors" else "`xmodal ingest --reembed`")
            raise WeightsChanged(f"the {modality} vectors of {model} were made by weights {stored}, these by "
                                 f"{weights}: they are not mixed in one index ({fix})")
        self.db.execute("UPDATE vector_sets SET weights = ? WHERE model = ? AND modality = ?", (weights, model, modality))

    # ---- re-embed staging ---------------------------------------------------------------------------

    def clear_staged(self, model: str, modality: str, keep: str | None = None) -> int:
        """Drop a set's staged vectors (all, or those not made by ``keep``: a re-embed for weights since replaced)."""
        with self.atomic():
            return self.db.execute(
                "DELETE FROM staged_vectors WHERE model = ? AND modality = ? AND weights IS NOT ?",
                (model, modality, keep)).rowcount

    def staged_ids(self, model: str, modality: str, weights: str) -> set[int]:
        """Representation ids already staged for ``weights`` (a resumed re-embed skips them)."""
        rows = self.db.execute("SELECT representation_id FROM staged_vectors WHERE model = ? AND modality = ? "
                               "AND weights = ?", (model, modality, weights)).fetchall()
        return {int(r[0]) for r in rows}

    def stage_vectors(self, model: str, modality: str, weights: str, representation_ids: np.ndarray | list[int],
                      vectors: np.ndarray, tokens: list[np.ndarray | None] | None = None) -> int:
        """Keep re-embedded vectors (and token features) of one set aside until ``swap_staged``; committed now."""
        vectors = check_vectors(vectors)
        ids = check_ids(representation_ids, len(vectors))
        tokens = tokens if tokens is not None else [None] * len(ids)
        if len(tokens) != len(ids):
            raise WrongShape(f"{len(tokens)} token arrays for {len(ids)} vectors")
        rows = []
        for i, v, t in zip(ids, vectors, tokens):
            t = None if t is None else np.asarray(t)
            rows.append((int(i), model, modality, weights, vectors.shape[1], v.astype("<f4").tobytes(),
                         None if t is None else t.shape[0], None if t is None else t.shape[1],
                         None if t is None else t.astype("<f2").tobytes()))
        with self.atomic():  # no generation bump: nothing searchable changes
            self.db.conn.executemany(
                """INSERT INTO staged_vectors (representation_id, model, modality, weights, dim, vector, tokens_n,
                                              tokens_dim, tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (representation_id, model) DO UPDATE SET modality = excluded.modality,
                     weights = excluded.weights, dim = excluded.dim, vector = excluded.vector,
                     tokens_n = excluded.tokens_n, tokens_dim = excluded.tokens_dim, tokens = excluded.tokens""", rows)
        return len(rows)

    def unstaged(self, model: str, modality: str, weights: str) -> list[int]:
        """Ids of a set's current vectors with no staged replacement made by ``weights``, by id."""
        rows = self.db.execute(
            """SELECT v.representation_id FROM vectors v LEFT JOIN staged_vectors s
                 ON s.representation_id = v.representation_id AND s.model = v.model AND s.weights = ?
               WHERE v.model = ? AND v.modality = ? AND s.representation_id IS NULL ORDER BY 1""",
            (weights, model, modality)).fetchall()
        return [int(r[0]) for r in rows]

    def swap_staged(self, model: str, modality: str, weights: str) -> int:
        """One transaction: every vector of the set replaced by its staged one (tokens too), the set stamped with
        ``weights``, the staging emptied; ``WrongShape`` when some vector has no staged replacement (nothing
        changes then). Returns how many vectors were replaced."""
        with self.atomic():
            if self._set_held(model, modality) == "bulk_vectors":  # its Parquet vectors would keep the old weights
                raise WeightsChanged(f"the {modality} vectors of {model} are a bulk set: {BULK_REEMBED}")
            missing = self.unstaged(model, modality, weights)
            if missing:
                raise WrongShape(f"{len(missing)} {modality} vectors of {model} are not re-embedded yet "
                                 f"(representation {missing[0]} first): the set is not swapped")
            dims = {int(r[0]) for r in self.db.execute(
                "SELECT DISTINCT dim FROM staged_vectors WHERE model = ? AND modality = ? AND weights = ?",
                (model, modality, weights))}
            if len(dims) > 1:
                raise DimensionMismatch(f"staged {modality} vectors of {model} have dimensions {sorted(dims)}")
            gen = self._write_generation()
            joined = ("FROM staged_vectors s WHERE s.representation_id = vectors.representation_id "
                      "AND s.model = vectors.model AND s.weights = ?")
            count = self.db.execute(
                f"UPDATE vectors SET vector = s.vector, dim = s.dim, generation = ? {joined} "
                "AND vectors.model = ? AND vectors.modality = ?", (gen, weights, model, modality)).rowcount
            in_set = "SELECT representation_id FROM vectors WHERE model = ? AND modality = ?"
            self.db.execute(f"DELETE FROM tokens WHERE model = ? AND representation_id IN ({in_set})",
                            (model, model, modality))
            self.db.execute(
                f"""INSERT INTO tokens (representation_id, model, n, dim, data)
                    SELECT representation_id, model, tokens_n, tokens_dim, tokens FROM staged_vectors
                    WHERE model = ? AND modality = ? AND weights = ? AND tokens IS NOT NULL
                      AND representation_id IN ({in_set})""", (model, modality, weights, model, modality))
            sets = "UPDATE vector_sets SET weights = ?" + (", dim = ?" if dims else "")
            self.db.execute(sets + " WHERE model = ? AND modality = ?",
                            (weights, *dims, model, modality))
            self.db.execute("DELETE FROM staged_vectors WHERE model = ? AND modality = ?", (model, modality))
            return int(count)

    def representation_texts(self, representation_ids: list[int]) -> Iterator[tuple[int, str]]:
        """(id, stored text) of these representations, by id (a text representation is re-encoded from it)."""
        for part, marks in _id_chunks(sorted(representation_ids)):
            rows = self.db.execute(f"SELECT id, COALESCE(text, '') FROM representations WHERE id IN ({marks}) "
                                   "ORDER BY id", part).fetchall()
            yield from ((int(i), str(t)) for i, t in rows)

"""An rclip-shaped baseline: vectors as float32 blobs in SQLite, loaded into numpy, ``features @ query.T`` + argsort.

rclip (``rclip/db.py``, ``rclip/main.py``) stores one row per image with its vector as a blob, loads every
vector of the folder with ``np.frombuffer`` + ``np.stack`` on each search and ranks them all by a full sort of
the similarities. This module reproduces that shape so xmodal's index can be timed against it on the same vectors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

_SCHEMA = """CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, filepath TEXT NOT NULL, modified_at REAL, size INTEGER, vector BLOB NOT NULL)"""


def write_vectors(db: Path, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> int:
    """Store (ids, float32 vectors) chunks as rclip does, one blob per row; returns the row count."""
    con = sqlite3.connect(db)
    try:
        con.execute(_SCHEMA)
        for ids, vectors in chunks:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            con.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, 0, 0, ?)",
                            ((int(i), f"/images/{int(i):08d}.jpg", v.tobytes()) for i, v in zip(ids, vectors)))
            con.commit()
        return con.execute("SELECT count(*) FROM images").fetchone()[0]
    finally:
        con.close()


def count_vectors(db: Path) -> int:
    """Rows in an rclip-shaped database (0 when it does not exist)."""
    if not db.is_file():
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM images").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def load_features(db: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, features) read the way rclip reads them: every blob through ``np.frombuffer``, then ``np.stack``."""
    con = sqlite3.connect(db)
    try:
        ids, features = [], []
        for row_id, blob in con.execute("SELECT id, vector FROM images ORDER BY id"):
            ids.append(row_id)
            features.append(np.frombuffer(blob, np.float32))
    finally:
        con.close()
    if not features:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.array(ids, dtype=np.int64), np.stack(features)


def brute_force_top_k(features: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """rclip's ranking for one query: all similarities, a full descending argsort, the first ``k`` ids."""
    similarities = (features @ query.reshape(1, -1).T).ravel()
    return ids[np.argsort(-similarities, kind="stable")[:k]]

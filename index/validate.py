"""Check every vector and id array crossing into the index layer (DESIGN decision 1)."""

from __future__ import annotations

import numpy as np

from index.errors import (
    DimensionMismatch,
    NonFiniteVectors,
    NotUnitNorm,
    WrongDtype,
    WrongShape,
)

NORM_TOLERANCE = 1e-3


def check_vectors(vectors: np.ndarray, dim: int | None = None, *, tol: float = NORM_TOLERANCE) -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 (n, dim) array, or raise the specific error."""
    if not isinstance(vectors, np.ndarray):
        raise WrongDtype(f"vectors must be a numpy float32 array, got {type(vectors).__name__}")
    if vectors.dtype != np.float32:
        raise WrongDtype(f"vectors must be float32, got {vectors.dtype}")
    if vectors.ndim != 2:
        raise WrongShape(f"vectors must be 2-D (n, dim), got shape {vectors.shape}")
    if dim is not None and vectors.shape[1] != dim:
        raise DimensionMismatch(f"vectors have dimension {vectors.shape[1]}, expected {dim}")
    if vectors.shape[0] == 0:
        return np.ascontiguousarray(vectors)
    sq = np.einsum("ij,ij->i", vectors, vectors)
    # one comparison on the fast path: NaN and inf fail it too, and are told apart below
    if np.all((sq >= (1.0 - tol) ** 2) & (sq <= (1.0 + tol) ** 2)):
        return np.ascontiguousarray(vectors)
    nonfinite, off_norm = bad_rows(vectors, tol)
    if nonfinite.any():
        bad = np.flatnonzero(nonfinite)
        raise NonFiniteVectors(f"{len(bad)} vector(s) contain NaN or inf (first row {int(bad[0])})")
    if not off_norm.any():  # float32 rounding at the tolerance's edge: the float64 check accepts it
        return np.ascontiguousarray(vectors)
    worst = int(np.flatnonzero(off_norm)[0])
    raise NotUnitNorm(
        f"vector row {worst} has L2 norm {float(np.linalg.norm(vectors[worst].astype(np.float64))):.6g}; "
        f"vectors must be unit norm within {tol:g}"
    )


def bad_rows(vectors: np.ndarray, tol: float = NORM_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the rows with NaN/inf and of the finite rows whose L2 norm is off 1 by more than ``tol``."""
    nonfinite = ~np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(np.where(nonfinite[:, None], 0, vectors).astype(np.float64), axis=1)
    return nonfinite, ~nonfinite & (np.abs(norms - 1.0) > tol)


def check_ids(ids: np.ndarray | list[int], n: int | None = None) -> np.ndarray:
    """Return ids as a 1-D int64 array (matching ``n`` rows when given), or raise ``WrongShape``."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise WrongShape(f"ids must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise WrongDtype(f"ids must be integers, got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if n is not None and arr.shape[0] != n:
        raise WrongShape(f"{arr.shape[0]} ids for {n} vectors")
    return arr

"""Exceptions raised by the index layer (catalog and vector indexes)."""

from __future__ import annotations

from core.errors import XmodalError


class IndexStoreError(XmodalError):
    """Base of all index-layer errors."""

    exit_code = 5


class InvalidVectors(IndexStoreError, ValueError):
    """Vectors handed to the index layer break decision 1 (float32, 2-D, finite, unit norm, right dim)."""

    exit_code = 2


class WrongDtype(InvalidVectors):
    """Vectors are not float32."""


class WrongShape(InvalidVectors):
    """Vectors are not a 2-D (n, dim) array, or ids do not match the number of rows."""


class DimensionMismatch(InvalidVectors):
    """Vectors have a dimension other than the one of their vector set or index."""


class NonFiniteVectors(InvalidVectors):
    """Vectors contain NaN or infinity."""


class NotUnitNorm(InvalidVectors):
    """Vectors are not L2-normalised within tolerance."""


class CatalogNotFound(IndexStoreError):
    """No store (no ``catalog.db``) at the given path, and creating one was not asked for: only ingest creates."""

    exit_code = 2


class StoreEmpty(IndexStoreError):
    """The store exists but holds no vectors (of this model) yet: nothing to search until ``xmodal ingest``."""

    exit_code = 2


class StoreDamaged(IndexStoreError):
    """The store is in a state it cannot be used in; the message says what is wrong and what ``check --repair`` does."""


class CatalogCorrupt(StoreDamaged):
    """``catalog.db`` is not a readable xmodal catalog (garbage, 0 bytes, malformed pages, schema lost with its WAL)."""


class CatalogLostWrites(StoreDamaged):
    """The catalog holds nothing while its index files were built from it later: its writes were lost."""


class StoreReadOnly(StoreDamaged):
    """A read-only store cannot do what was asked (create, migrate, write)."""


class SettingsCorrupt(StoreDamaged):
    """The store's settings file (``xmodal.json``) is not a JSON object."""


class SchemaTooNew(IndexStoreError):
    """The catalog was written by a newer xmodal whose schema this version cannot read."""


class ItemNotFound(IndexStoreError, KeyError):
    """No item (or representation) with that id or uri exists in the catalog."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain message
        return str(self.args[0]) if self.args else "item not found"


class UnknownVectorSet(IndexStoreError, KeyError):
    """No vectors were ever written for that (model, modality) pair."""

    exit_code = 2

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown vector set"


class InvalidStatus(IndexStoreError, ValueError):
    """An item status or modality outside the allowed values."""

    exit_code = 2


class IndexCorrupt(IndexStoreError):
    """An index file is missing, truncated, unreadable or does not match its metadata."""


class UnsupportedIndexOperation(IndexStoreError):
    """The FAISS index type cannot do this (e.g. remove from HNSW); the store rebuilds instead."""


class InvalidIndexConfig(IndexStoreError, ValueError):
    """A factory string or index configuration FAISS cannot build."""

    exit_code = 2

"""Catalog (SQLite, source of truth) and FAISS vector indexes (rebuildable caches)."""

from index.errors import IndexStoreError

__all__ = ["IndexStoreError"]

"""Exceptions raised by the index layer (catalog and vector indexes)."""

from __future__ import annotations


class IndexStoreError(Exception):
    """Base of all index-layer errors."""

    exit_code = 5

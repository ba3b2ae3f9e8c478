"""Bulk ingest: the catalog sink with this model's vectors written to Parquet files (``index.bulk.BulkCatalog``).

Every commit of the pipeline (one transaction per batch) writes the batch's vectors as one Parquet file per vector
modality under the bulk folder, renamed into place before the transaction that names it commits; items,
representations, captions, failures, tokens and enrichments stay in the catalog as in a normal ingest. A file left by
a killed run that no committed row names is removed when the next bulk ingest opens the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from index import Store
from index.bulk import ROWS_PER_FILE, BulkCatalog, bulk_folders
from ingest.sink import CatalogSink


class BulkSink(CatalogSink):
    """``CatalogSink`` over a ``BulkCatalog``: same semantics, vectors of ``model`` in Parquet under ``folder``."""

    def __init__(self, store: Store, model: str, folder: str | Path, tokens: bool = False,
                 rows_per_file: int = ROWS_PER_FILE) -> None:
        self.bulk = BulkCatalog(store.catalog, model, folder, rows_per_file)
        super().__init__(store, model, tokens)
        self.catalog = self.bulk  # type: ignore[assignment]

    def _items_with_vectors(self) -> set[int]:
        return self.bulk.items_with_vectors(self.model, with_tokens=self.tokens)


def make_sink(store: Store, model: str, options: Any) -> CatalogSink:
    """The sink an ingest with ``options`` writes to: ``BulkSink`` when ``options.bulk`` names a folder. A store's
    vectors of one model are all in the catalog or all in Parquet: mixing them is refused (``InvalidInput``)."""
    from core.errors import InvalidInput

    folders = bulk_folders(store.catalog, model)
    if getattr(options, "bulk", None):
        held = [s.modality for s in store.catalog.vector_sets() if s.model == model and s.count]
        if held:
            raise InvalidInput(f"this store holds {model} vectors ({', '.join(held)}) in its catalog; bulk mode "
                               "(--bulk) needs a new store")
        return BulkSink(store, model, options.bulk, options.tokens)
    if folders:
        raise InvalidInput(f"this is a bulk store: its {model} vectors are in Parquet files under "
                           f"{', '.join(folders)}; ingest into it with --bulk {folders[0]}")
    return CatalogSink(store, model, options.tokens)

"""Catalog (SQLite, source of truth) and vector indexes (rebuildable caches) behind one backend interface.

Store layout: ``STORE/catalog.db`` (WAL) and ``STORE/indexes/<model>.<modality>.<backend>`` (``.faiss`` for the
default FAISS backend) with a JSON sidecar ``<model>.<modality>.json`` (backend, catalog id, generation and its lineage
token, index type, tuned parameters, reached recall, size, sha256). Backends (``VectorBackend``) are registered by
name in ``BACKENDS`` and chosen by ``IndexConfig.backend``: ``faiss`` and ``exact`` (NumPy brute force).
Every committed catalog transaction bumps ``generation`` and records a random token for it, so an index
proves which history of the catalog it reflects (a restored catalog re-reaching a generation has another token);
vector rows carry the generation that wrote them and
removals leave tombstones, so an index at generation g catches up by removing tombstoned and rewritten ids
and adding rows written after g. An index it cannot trust (missing, corrupt, another catalog, ahead of the
catalog, another history of it, wrong dimension or count) is rebuilt from the catalog. Only ingest creates a store;
a read-only one is opened without writing; damaged states raise ``StoreDamaged`` (exit 5) naming the repair.
"""

from index.backend import BACKENDS, VectorBackend, backend_class, register_backend
from index.backends.exact import ExactIndex
from index.backends.faiss_gpu import faiss_has_gpu
from index.backends.faiss_index import FaissIndex
from index.backends.faiss_types import choose_factory, nlist_for, train_size
from index.build import VectorSource, build_from_source, build_index
from index.catalog import Catalog
from index.check import CheckReport, Problem, check_store
from index.errors import (
    CatalogCorrupt,
    CatalogLostWrites,
    CatalogNotFound,
    DimensionMismatch,
    IndexCorrupt,
    IndexStoreError,
    InvalidIndexConfig,
    InvalidStatus,
    InvalidVectors,
    ItemNotFound,
    NonFiniteVectors,
    NotUnitNorm,
    SchemaTooNew,
    SettingsCorrupt,
    StoreDamaged,
    StoreEmpty,
    StoreReadOnly,
    UnknownVectorSet,
    UnsupportedIndexOperation,
    WrongDtype,
    WrongShape,
)
from index.exact import TopK, exact_search, neighbour_recall, tie_tolerant_recall
from index.config import IndexConfig, SearchParams
from index.persist import IndexMeta
from index.records import Changes, Hit, Item, Representation, VectorSet
from index.store import Store, SyncResult, open_store
from index.tuning import TuneResult, tune
from index.validate import check_vectors


__all__ = [
    "BACKENDS",
    "Catalog",
    "CatalogCorrupt",
    "CatalogLostWrites",
    "CatalogNotFound",
    "Changes",
    "CheckReport",
    "DimensionMismatch",
    "ExactIndex",
    "FaissIndex",
    "Hit",
    "IndexConfig",
    "IndexCorrupt",
    "IndexMeta",
    "IndexStoreError",
    "InvalidIndexConfig",
    "InvalidStatus",
    "InvalidVectors",
    "Item",
    "ItemNotFound",
    "NonFiniteVectors",
    "NotUnitNorm",
    "Problem",
    "Representation",
    "SchemaTooNew",
    "SearchParams",
    "SettingsCorrupt",
    "Store",
    "StoreDamaged",
    "StoreEmpty",
    "StoreReadOnly",
    "SyncResult",
    "TopK",
    "TuneResult",
    "UnknownVectorSet",
    "UnsupportedIndexOperation",
    "VectorBackend",
    "VectorSet",
    "VectorSource",
    "WrongDtype",
    "WrongShape",
    "backend_class",
    "build_from_source",
    "build_index",
    "check_store",
    "check_vectors",
    "choose_factory",
    "exact_search",
    "faiss_has_gpu",
    "neighbour_recall",
    "nlist_for",
    "open_store",
    "register_backend",
    "tie_tolerant_recall",
    "train_size",
    "tune",
]

from index.parquet import ParquetShardWriter, iter_shard, parquet_files, shard_info  # noqa: E402
from index.shard_server import ServerOptions, ShardServer  # noqa: E402
from index.shards import (  # noqa: E402
    LocalShards, ShardManifest, build_catalog_shards, build_shards, check_current, merge_topk, read_manifest,
    shard_folder, thread_mapper,
)

__all__ += ["LocalShards", "ParquetShardWriter", "ServerOptions", "ShardManifest", "ShardServer", "build_catalog_shards",
            "build_shards", "check_current", "iter_shard", "merge_topk", "parquet_files", "read_manifest",
            "shard_folder", "shard_info", "thread_mapper"]

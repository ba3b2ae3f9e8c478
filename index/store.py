"""A store folder: the catalog plus one cached vector index per (model, modality), kept in step on open."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from index.backend import VectorBackend, backend_class
from index.build import VectorSource, build_from_source
from index.catalog import Catalog
from index.errors import CatalogLostWrites, IndexCorrupt, SettingsCorrupt, StoreDamaged
from index.config import IndexConfig
from index.persist import index_paths, load_index, save_index, sidecars
from index.settings import read_settings, write_settings

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.db"


@dataclass
class _Open:
    index: VectorBackend
    generation: int
    built_n: int
    weights: str = ""  # what made the vectors it holds (the catalog's vector_sets.weights when built)


@dataclass(frozen=True)
class SyncResult:
    """What opening or syncing one index did: ``loaded``, ``caught-up``, ``rebuilt`` or ``current``."""

    model: str
    modality: str
    action: str
    generation: int
    ntotal: int
    reason: str = ""


class Store:
    """Owns the catalog and the index files under ``root``; ingest writes the catalog, queries call ``index()``."""

    def __init__(self, root: str | Path, *, device: str = "cpu", config: IndexConfig | None = None,
                 create: bool = True, read_only: bool | None = None) -> None:
        self.root = Path(root)
        self.device = device
        self.config = config or IndexConfig(backend=saved_backend(self.root))
        backend_class(self.config.backend)  # InvalidIndexConfig for a name no backend is registered under
        folder = self.root / "indexes"
        if folder.exists() and not folder.is_dir():
            raise StoreDamaged(f"{folder} is a file, not the folder of index files; `xmodal check --repair` moves it "
                               "aside (indexes.damaged-*) and rebuilds the indexes from the catalog")
        self.catalog = Catalog(self.root / CATALOG_NAME, create=create, read_only=read_only)
        self.read_only = self.catalog.read_only
        # a read-only store still searches: indexes are built in memory when the files cannot be used or written
        self.persist = not self.read_only and os.access(folder if folder.exists() else self.root, os.W_OK)
        if config is not None and self.persist and saved_backend(self.root) != config.backend:
            save_backend(self.root, config.backend)  # later opens without a config keep the chosen backend
        self._open: dict[tuple[str, str], _Open] = {}
        self.last_sync: dict[tuple[str, str], SyncResult] = {}
        if not create:
            try:
                self._refuse_lost_writes()
            except BaseException:
                self.catalog.close()
                raise

    def orphan_indexes(self) -> list[dict]:
        """Sidecars of index files whose vector set this catalog does not hold (catalog replaced or lost writes)."""
        held = {(s.model, s.modality) for s in self.catalog.vector_sets()}
        return [m for m in sidecars(self.root) if (m.get("model"), m.get("modality")) not in held]

    def _refuse_lost_writes(self) -> None:
        """An empty catalog beside index files built from it (or another one) lost its writes: an error, not ``ok``."""
        if self.catalog.vector_sets():
            return
        orphans = self.orphan_indexes()
        if orphans:
            built = max(int(m.get("generation") or 0) for m in orphans)
            raise CatalogLostWrites(
                f"the catalog in {self.root} holds no vectors (generation {self.catalog.generation}) but indexes/ "
                f"holds {len(orphans)} index file(s) built at generation {built}: the catalog lost its writes "
                "(catalog.db-wal deleted after a crash, or catalog.db replaced); `xmodal check --repair` removes the "
                "stale index files, then `xmodal ingest` your folders again")

    def close(self) -> None:
        """Close the catalog (indexes are already saved)."""
        self.catalog.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def index(self, model: str, modality: str) -> VectorBackend:
        """The index of a vector set, loaded or rebuilt, caught up to the catalog's current generation."""
        self.sync_one(model, modality)
        return self._open[(model, modality)].index

    def search(self, model: str, modality: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search a vector set's index (after catching it up): (scores, representation ids)."""
        return self.index(model, modality).search(queries, k)

    def sync(self) -> list[SyncResult]:
        """Bring every vector set's index up to date and saved."""
        return [self.sync_one(s.model, s.modality) for s in self.catalog.vector_sets()]

    def sync_one(self, model: str, modality: str) -> SyncResult:
        """Open (or rebuild) one index and catch it up; saves it when it changed."""
        key = (model, modality)
        current = self.catalog.generation
        opened = self._open.get(key)
        weights = self.catalog.vector_set_weights(model, modality) or ""
        if opened is not None and opened.weights != weights:  # re-embedded in place since it was opened
            return self.rebuild(model, modality, reason="its vectors were re-embedded with other weights")
        if opened is not None and opened.generation == current:
            return self._record(key, "current", opened)
        action = "loaded" if opened is None else "caught-up"
        if opened is None:
            opened, reason = self._load(model, modality, current)
            if opened is None:
                return self.rebuild(model, modality, reason=reason)
        before = opened.generation
        reason = self._catch_up(model, modality, opened)
        if reason:
            log.warning("%s/%s index: %s", model, modality, reason)
            return self.rebuild(model, modality, reason=reason)
        if opened.generation != before:
            action = "caught-up"
        self._open[key] = opened
        return self._record(key, action, opened)

    def _load(self, model: str, modality: str, current: int) -> tuple[_Open | None, str]:
        """The index file if it can be caught up, else None and why (logged as a warning unless it was never built)."""
        data_path, meta_path = index_paths(self.root, model, modality, self.config.backend)
        if not data_path.exists() and not meta_path.exists():
            return None, "no index file yet"
        dim = self.catalog.vector_dim(model, modality)
        try:
            index, meta = load_index(self.root, model, modality, self.device)
        except IndexCorrupt as exc:
            reason = str(exc)
        else:
            if meta.catalog_id != self.catalog.catalog_id:
                reason = f"index was built from another catalog ({meta.catalog_id})"
            elif meta.generation <= current and self.catalog.lineage(meta.generation) != meta.lineage:
                reason = (f"index was built at generation {meta.generation} of another history of this catalog "
                          "(catalog restored from a backup, or writes lost)")
            elif meta.dim != dim:
                reason = f"index dimension {meta.dim} differs from the catalog's {dim}"
            elif meta.generation > current:
                reason = f"index generation {meta.generation} is ahead of the catalog's {current} (catalog restored?)"
            elif meta.backend != self.config.backend:
                reason = f"index was built by the {meta.backend} backend, the store is set to {self.config.backend}"
            elif meta.weights != (weights := self.catalog.vector_set_weights(model, modality) or ""):
                reason = f"index was built from vectors of weights {meta.weights or 'unknown'}, the catalog's are {weights}"
            else:
                return _Open(index, meta.generation, meta.built_n, weights), ""
        expected = reason.startswith("index was built from vectors of weights")  # re-embedded, or stamped once
        (log.info if expected else log.warning)("%s/%s index unusable: %s", model, modality, reason)
        return None, reason

    def _record(self, key: tuple[str, str], action: str, opened: _Open, reason: str = "") -> SyncResult:
        result = SyncResult(key[0], key[1], action, opened.generation, opened.index.ntotal, reason)
        self.last_sync[key] = result
        return result

    def _outgrown(self, opened: _Open, n_now: int) -> bool:
        """An automatically chosen index type that no longer suits the corpus size (grew or shrank 4x)."""
        if self.config.factory:
            return False
        grew = n_now > 4 * max(opened.built_n, 1000) or 4 * n_now < opened.built_n
        if not grew:
            return False
        return backend_class(self.config.backend).choose_factory(n_now, opened.index.dim, self.config) != opened.index.factory

    def _catch_up(self, model: str, modality: str, opened: _Open) -> str:
        """Apply the catalog's changes since the index's generation; returns why a rebuild is needed instead."""
        with self.catalog.snapshot():
            changes = self.catalog.changes_since(model, modality, opened.generation)
            n_now = self.catalog.count_vectors(model, modality)
            if self._outgrown(opened, n_now):
                return f"corpus is now {n_now} vectors, index type chosen for {opened.built_n}"
            if len(changes.removed) and not opened.index.supports_remove:
                return f"{opened.index.factory!r} cannot remove ids"
            opened.index.remove(changes.removed)
            for ids, vectors in self.catalog.iter_vectors(model, modality, since=opened.generation):
                opened.index.add(ids, vectors)
        if opened.index.ntotal != n_now:  # cheap guard against silent wrong results
            return f"index holds {opened.index.ntotal} vectors, catalog {n_now} at generation {changes.generation}"
        if changes.generation > opened.generation and (len(changes.removed) or len(changes.upserted)):
            self._save(opened.index, model, modality, changes.generation, opened.built_n, opened.weights)
            log.info("caught up %s/%s to generation %d (-%d +%d)", model, modality, changes.generation,
                     len(changes.removed), len(changes.upserted))
        opened.generation = changes.generation
        return ""

    def rebuild(self, model: str, modality: str, reason: str = "asked") -> SyncResult:
        """Build a vector set's index from the catalog alone and save it."""
        log.info("building %s/%s index from the catalog: %s", model, modality, reason)
        cat = self.catalog
        with cat.snapshot():  # one consistent state for the whole streamed build
            generation, weights = cat.generation, cat.vector_set_weights(model, modality) or ""
            source = VectorSource(ids=cat.vector_ids(model, modality), dim=cat.vector_dim(model, modality),
                                  chunks=lambda: cat.iter_vectors(model, modality),
                                  fetch=lambda some: cat.vectors_for(model, some))
            index = build_from_source(source, self.config, device=self.device)
            self._save(index, model, modality, generation, len(source.ids), weights)
        opened = self._open[(model, modality)] = _Open(index, generation, len(source.ids), weights)
        return self._record((model, modality), "rebuilt", opened, reason)

    def _save(self, index: VectorBackend, model: str, modality: str, generation: int, built_n: int,
              weights: str = "") -> None:
        """Persist an index stamped with the catalog's identity and the token of ``generation`` (not when read-only)."""
        if not self.persist:
            log.info("read-only store: %s/%s index kept in memory only", model, modality)
            return
        save_index(index, self.root, model, modality, self.catalog.catalog_id, generation, built_n,
                   lineage=self.catalog.lineage(generation) or "", weights=weights)

    def forget(self, model: str, modality: str) -> None:
        """Drop a cached open index so the next access reads the file again."""
        self._open.pop((model, modality), None)


def saved_backend(root: str | Path) -> str:
    """The index backend the store at ``root`` was set to (``index_backend`` in xmodal.json), else the default."""
    try:
        name = read_settings(root).get("index_backend")
    except SettingsCorrupt:  # reported by `check`; searching still works with the default backend
        name = None
    return name if isinstance(name, str) and name else IndexConfig().backend


def save_backend(root: str | Path, backend: str) -> None:
    """Record ``backend`` as the store's index backend in xmodal.json, keeping the other settings."""
    try:
        settings = read_settings(root)
    except SettingsCorrupt:
        return  # never overwrite a damaged file: `check --repair` moves it aside first
    write_settings(root, {**settings, "index_backend": backend})


def open_store(path: str | Path, device: str = "cpu", config: IndexConfig | None = None, *,
               create: bool = True, read_only: bool | None = None) -> Store:
    """Open the store folder at ``path`` (``catalog.db`` and ``indexes/``); only ``create`` makes a missing one.

    ``read_only`` None: read-only when the files are not writable (nothing is written then, indexes stay in memory).
    """
    return Store(path, device=device, config=config, create=create, read_only=read_only)

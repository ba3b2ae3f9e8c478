"""Hydration kept per catalog state: a search's hits are read once per state (generation and lineage) and reused by
every later search that reads the same state inside one snapshot (a server's batch of searches)."""

from __future__ import annotations

from typing import Any

import numpy as np

HIT_CACHE = 10_000  # hydrated hits kept (a hit's text is capped, so a few MB at most)


class CachedHydration:
    """A catalog whose ``hydrate`` is answered from hits kept for one catalog state (generation and lineage).

    Every committed change bumps the catalog's generation, so a hit read at one state is valid until the
    next; ``pin`` is told the state each batch of searches reads (inside its snapshot). Everything else is the
    catalog's own. Used on one thread (the one that owns the catalog's connection).
    """

    def __init__(self, catalog: Any, size: int = HIT_CACHE) -> None:
        self._catalog = catalog
        self._size = size
        self._state: tuple[int, str | None] | None = None
        self._pinned = False
        self._hits: dict[int, Any] = {}
        self._kept: dict[Any, dict] = {}  # other per-state values by name (``kept``)
        self.hits = self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._catalog, name)

    def pin(self, generation: int) -> None:
        """The state the reads see until ``unpin`` (inside one snapshot): kept hits are dropped when it changed."""
        state = (generation, self._catalog.lineage(generation) if hasattr(self._catalog, "lineage") else None)
        if state != self._state:
            self._state, self._hits, self._kept = state, {}, {}
        self._pinned = True

    def kept(self, name: Any) -> dict | None:
        """A dict of values named ``name`` that stays valid while the pinned state does (None when none is pinned)."""
        return self._kept.setdefault(name, {}) if self._pinned else None

    def unpin(self) -> None:
        """Outside a snapshot the state is unknown: ``hydrate`` reads the catalog (the hits are kept for a later
        ``pin`` of the same state)."""
        self._pinned = False

    def hydrate(self, representation_ids: np.ndarray | list[int]) -> dict[int, Any]:
        """``Catalog.hydrate``, reading only the ids not kept yet (everything when no state is pinned)."""
        if not self._pinned:
            return self._catalog.hydrate(representation_ids)
        wanted = [int(i) for i in representation_ids if i >= 0]
        missing = [i for i in wanted if i not in self._hits]
        self.hits += len(wanted) - len(missing)
        self.misses += len(missing)
        if missing:
            if len(self._hits) + len(missing) > self._size:
                self._hits = {}
            self._hits.update(self._catalog.hydrate(missing))
        return {i: self._hits[i] for i in wanted if i in self._hits}


class CachedStore:
    """A store seen through ``CachedHydration`` (what the ``Engine``'s ``Searcher`` searches)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.catalog = CachedHydration(store.catalog)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

"""Pieces of the server's engine threads: the text-query queue of the encoder threads and a hydration cache."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Generic, TypeVar

import numpy as np

J = TypeVar("J")
HIT_CACHE = 10_000  # hydrated hits kept (a hit's text is capped, so a few MB at most)


class TextQueue(Generic[J]):
    """Jobs waiting for an encoder thread. A thread takes up to ``max_batch`` of them when no other thread is
    encoding, or when at least ``min_batch`` wait: a second core is used only for batches worth it (a forward
    pass has a fixed cost, ~12 ms for MiniLM on one core, so small batches on a busy machine lose more than
    they gain).
    """

    def __init__(self, max_batch: int, min_batch: int) -> None:
        self.max_batch, self.min_batch = max_batch, min_batch
        self._cond = threading.Condition()
        self._items: deque[J] = deque()
        self._busy = 0
        self._closed = False

    def put(self, job: J) -> None:
        """Queue a job (the caller stops queueing once it has closed the queue)."""
        with self._cond:
            self._items.append(job)
            self._cond.notify()

    def take(self) -> list[J] | None:
        """The next batch (waiting for one); None once closed and empty. Call ``done`` after encoding it."""
        with self._cond:
            while not (self._items and (self._busy == 0 or len(self._items) >= self.min_batch or self._closed)):
                if self._closed and not self._items:
                    return None
                self._cond.wait()
            batch = [self._items.popleft() for _ in range(min(self.max_batch, len(self._items)))]
            self._busy += 1
            return batch

    def done(self) -> None:
        """An encoder finished its batch: another may now take a small one."""
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def close(self) -> list[J]:
        """Wake every encoder thread to exit; returns the jobs still waiting (for the caller to refuse)."""
        with self._cond:
            self._closed = True
            left, self._items = list(self._items), deque()
            self._cond.notify_all()
            return left


class CachedHydration:
    """A catalog whose ``hydrate`` is answered from hits kept for one catalog state (generation and lineage).

    Every committed change bumps the catalog's generation, so a hit read at one state is valid until the
    next; ``pin`` is told the state each batch of searches reads (inside its snapshot). Everything else is the
    catalog's own. Used on the engine thread only.
    """

    def __init__(self, catalog: Any, size: int = HIT_CACHE) -> None:
        self._catalog = catalog
        self._size = size
        self._state: tuple[int, str | None] | None = None
        self._pinned = False
        self._hits: dict[int, Any] = {}
        self.hits = self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._catalog, name)

    def pin(self, generation: int) -> None:
        """The state the reads see until ``unpin`` (inside one snapshot): kept hits are dropped when it changed."""
        state = (generation, self._catalog.lineage(generation) if hasattr(self._catalog, "lineage") else None)
        if state != self._state:
            self._state, self._hits = state, {}
        self._pinned = True

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
    """A store seen through ``CachedHydration`` (what the engine thread's ``Searcher`` searches)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.catalog = CachedHydration(store.catalog)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

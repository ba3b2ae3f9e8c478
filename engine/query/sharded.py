"""Sharded search: a coordinator fans a query out to shard servers (Ray actors), waits at most a timeout, merges the
shards' top candidates, re-scores them exactly where the vectors are at hand (the catalog), and hands the ids to the
ONE search policy (``engine.query.policy``: fusion, filters, re-ranker, hydration), unchanged.

A shard whose replicas all fail or miss the deadline is left out and the answer is flagged ``partial`` (never an
error, never a hang); a failed replica is skipped by later queries while another replica of its shard is alive.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.query.policy import SearchPlan, SearchRequest, Searched, decide, execute
from engine.query.search import Result, Searcher
from index import ItemNotFound
from index.shards import merge_topk

log = logging.getLogger(__name__)
_INLINE_BYTES = 64 * 1024

Rescore = Callable[[np.ndarray], "np.ndarray | None"]  # candidate ids -> their exact vectors (None: not at hand)


@dataclass(frozen=True)
class FanOut:
    """One fanned-out search: merged (scores, ids), whether shards were missing and which, each answering shard's
    own milliseconds, the coordinator's total and whether the scores were re-scored exactly."""

    scores: np.ndarray
    ids: np.ndarray
    partial: bool
    missing: tuple[int, ...]
    shard_ms: Mapping[int, float]
    total_ms: float
    rescored: bool = False

    @property
    def coordinator_ms(self) -> float:
        """What the fan-out added over the slowest answering shard's own work."""
        return self.total_ms - max(self.shard_ms.values(), default=0.0)


@dataclass
class Coordinator:
    """Fans queries out to ``replicas[shard]`` (Ray actor handles of ``ShardServer``), one replica per shard per query
    in turn; ``timeout_s`` bounds every query; ``rescore`` gives exact vectors of candidate ids, in which case each
    shard is asked for ``k * fetch_factor`` candidates and the merged ones are re-scored exactly."""

    replicas: Sequence[Sequence[Any]]
    timeout_s: float = 2.0
    rescore: Rescore | None = None
    fetch_factor: int = 4
    _turn: list[Any] = field(default_factory=list, init=False)
    _dead: set[tuple[int, int]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        if not self.replicas or any(not row for row in self.replicas):
            raise ValueError("every shard needs at least one replica")
        self._turn = [itertools.cycle(range(len(row))) for row in self.replicas]

    def _order(self, shard: int) -> list[int]:
        """This shard's replicas to try for one query: the next in turn first, known-dead ones last."""
        n = len(self.replicas[shard])
        first = next(self._turn[shard])
        order = [(first + i) % n for i in range(n)]
        return sorted(order, key=lambda r: (shard, r) in self._dead)

    def search(self, queries: np.ndarray, k: int) -> FanOut:
        """Top ``k`` over every shard that answers within the timeout."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        start = time.perf_counter()
        deadline = start + self.timeout_s
        fetch = k * self.fetch_factor if self.rescore is not None else k
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        # one copy in the object store for big batches; a few queries travel inline with each call (cheaper)
        qref = ray.put(queries) if queries.nbytes > _INLINE_BYTES else queries
        tries = {s: self._order(s) for s in range(len(self.replicas))}
        pending: dict[Any, tuple[int, int]] = {}

        def submit(shard: int) -> None:
            if tries[shard]:
                r = tries[shard].pop(0)
                pending[self.replicas[shard][r].search.remote(qref, fetch)] = (shard, r)

        for shard in tries:
            submit(shard)
        replies: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        shard_ms: dict[int, float] = {}
        while pending:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=left)
            for ref in ready:
                shard, r = pending.pop(ref)
                try:
                    scores, ids, ms = ray.get(ref, timeout=max(0.0, deadline - time.perf_counter()))
                except (RayActorError, RayTaskError, GetTimeoutError) as exc:
                    log.warning("shard %d replica %d failed: %s", shard, r, type(exc).__name__)
                    self._dead.add((shard, r))
                    submit(shard)  # the next replica, while time is left
                    continue
                self._dead.discard((shard, r))
                replies[shard], shard_ms[shard] = (scores, ids), float(ms)
        for ref in pending:  # stragglers past the deadline: not waited for
            ray.cancel(ref)
        missing = tuple(s for s in range(len(self.replicas)) if s not in replies)
        if replies:
            scores, ids = merge_topk([replies[s] for s in sorted(replies)], fetch)
        else:
            scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
            ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores, ids, rescored = self._exact(queries, scores, ids, k)
        total = (time.perf_counter() - start) * 1000
        if missing:
            log.warning("partial results: shard(s) %s did not answer within %.1f s", list(missing), self.timeout_s)
        return FanOut(scores, ids, bool(missing), missing, shard_ms, total, rescored)

    def _exact(self, queries: np.ndarray, scores: np.ndarray, ids: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Re-score merged candidates with their exact vectors when at hand; else the shards' scores, cut to k."""
        if self.rescore is None or not (ids >= 0).any():
            return scores[:, :k], ids[:, :k], False
        out_s, out_i = [], []
        for q, row in zip(queries, ids):
            found = row[row >= 0]
            vectors = self.rescore(found)
            if vectors is None:
                return scores[:, :k], ids[:, :k], False
            out_s.append((vectors @ q)[None, :])
            out_i.append(found[None, :])
        parts = [merge_topk([(s, i)], k) for s, i in zip(out_s, out_i)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), True


def catalog_rescore(catalog: Any, model: str) -> Rescore:
    """Exact vectors of candidate ids from the catalog (None when one is not there, e.g. shards of bulk vectors)."""

    def rescore(ids: np.ndarray) -> np.ndarray | None:
        try:
            return catalog.vectors_for(model, ids)
        except ItemNotFound:
            return None

    return rescore


class ShardedStore:
    """A store whose searches of some vector sets go to shard coordinators; everything else (catalog, hydration,
    filters' reads, calibration samples) is the wrapped store's. Records every fan-out of the current search."""

    def __init__(self, store: Any, coordinators: Mapping[tuple[str, str], Coordinator]) -> None:
        self._store = store
        self.catalog = store.catalog
        self.coordinators = dict(coordinators)
        self.fanouts: list[tuple[str, FanOut]] = []  # (modality, fan-out) of the current search

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def search(self, model: str, modality: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The coordinator's merged top ``k`` for a sharded vector set, else the store's own index."""
        coordinator = self.coordinators.get((model, modality))
        if coordinator is None:
            return self._store.search(model, modality, queries, k)
        out = coordinator.search(queries, k)
        self.fanouts.append((modality, out))
        return out.scores, out.ids


@dataclass(frozen=True)
class ShardedSearched:
    """A sharded search's outcome: the policy's ``Searched`` and whether any shard was missing (and which)."""

    searched: Searched
    partial: bool
    missing: tuple[tuple[str, int], ...]  # (vector set modality, shard) of every shard that did not answer
    fanouts: tuple[FanOut, ...]

    @property
    def results(self) -> list[Result]:
        """The results, as single-machine search gives them."""
        return self.searched.results


class ShardedSearch:
    """The one search policy (plan, first stage, fusion, filters, re-ranker, hydration) over a ``ShardedStore``."""

    def __init__(self, store: ShardedStore, encoder: Any, model: str, reranker: Any = None,
                 calibrations: Any = None) -> None:
        self.store, self.encoder, self.model, self.reranker = store, encoder, model, reranker
        self.searcher = Searcher(store, model, calibrations)  # type: ignore[arg-type]

    def plan(self, request: SearchRequest) -> SearchPlan:
        """What ``request`` runs (``engine.query.policy.decide``)."""
        return decide(request, self.searcher.modalities(), self.reranker, self.model,
                      lambda: self.store.catalog.has_tokens(self.model))

    def run(self, request: SearchRequest, vector: np.ndarray | None = None) -> ShardedSearched:
        """Run ``request``; shards that did not answer make it ``partial``, never an error."""
        self.store.fanouts = []
        searched = execute(self.plan(request), request, self.encoder, self.searcher, self.reranker, vector)
        fanouts = tuple(self.store.fanouts)
        missing = tuple(sorted({(modality, s) for modality, f in fanouts for s in f.missing}))
        return ShardedSearched(searched, bool(missing), missing, tuple(f for _, f in fanouts))

"""One engine thread: every catalog, index and model call of the server runs on it; text queries are batched.

SQLite connections belong to the thread that made them, and torch and FAISS already use every core, so the
server owns exactly one ``Engine``, opened and used on one dedicated thread. Request handlers hand it jobs
and await their futures. Text queries waiting together are encoded in one batch (and remembered in a
small LRU cache, since a text's vector never depends on the catalog); each search then catches the indexes
up to the catalog's generation (``Store.index``), so files another process ingests or deletes show up
without a restart. A transient ``database is locked`` is retried with backoff.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from engine.engine import Engine
from engine.errors import RerankerUnavailable
from engine.query import DEFAULT_FUSION, Filters, QueryPart, Result, Searcher, encode_query
from engine.server_errors import is_busy

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIES = 8
BACKOFF_S = 0.02


@dataclass(frozen=True)
class SearchJob:
    """One search: query parts, targets (empty: all), k, filters, depth, fusion and re-ranking (None: preset default)."""

    parts: tuple[QueryPart, ...]
    targets: tuple[str, ...] = ()
    k: int = 10
    filters: Filters = field(default_factory=Filters)
    depth: int = 100
    fusion: str = DEFAULT_FUSION
    rerank: bool | None = None
    rerank_depth: int | None = None

    @property
    def text_only(self) -> str | None:
        """The text when the query is a single text part (batchable), else None."""
        if len(self.parts) == 1 and self.parts[0].modality == "text" and isinstance(self.parts[0].value, str):
            return self.parts[0].value
        return None


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    search: SearchJob | None = None
    call: Callable[[Engine], Any] | None = None
    outcome: tuple[bool, Any] | None = None  # (failed, result or exception), set on the engine thread


def _deliver(jobs: list[_Job]) -> None:
    """On the event loop: hand each job's outcome to its awaiting request (unless it gave up)."""
    for job in jobs:
        if not job.future.done():
            failed, value = job.outcome or (True, RuntimeError("the job was not run"))
            job.future.set_exception(value) if failed else job.future.set_result(value)


def set_compute_threads(n: int) -> None:
    """Intra-op threads of torch and FAISS (one OpenMP pool): one query at a time gains nothing from more.

    On a busy machine OpenMP's spinning threads make a 30-vector flat search take ~10 ms instead of ~0.1 ms.
    """
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


class EngineWorker:
    """Owns the engine on one thread; ``run`` and ``search`` are awaitable from the event loop."""

    def __init__(self, factory: Callable[[], Engine], max_batch: int = 32, cache_size: int = 1024,
                 threads: int | None = 1) -> None:
        self._factory = factory
        self.threads = threads
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="xmodal-engine", daemon=True)
        self._ready = threading.Event()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self.engine: Engine | None = None
        self.open_error: BaseException | None = None
        self.counters = {"searches": 0, "batches": 0, "batched_texts": 0, "cache_hits": 0, "retries": 0,
                         "reranked": 0, "rerank_skipped": 0}

    # ---- life cycle (any thread) ---------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Start the thread and wait until the engine is open (or failed to open: see ``open_error``)."""
        self._thread.start()
        self._ready.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish queued jobs, close the engine and join the thread."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout)

    # ---- from the event loop ------------------------------------------------------------------------

    async def run(self, call: Callable[[Engine], T]) -> T:
        """Run ``call(engine)`` on the engine thread."""
        return await self._submit(call=call)

    async def search(self, job: SearchJob) -> list[Result]:
        """Run one search on the engine thread (batched with other text queries waiting)."""
        return await self._submit(search=job)

    async def _submit(self, **what: Any) -> Any:
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), **what)
        self._jobs.put(job)
        return await job.future

    # ---- on the engine thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            if self.threads:
                set_compute_threads(self.threads)
            self.engine = self._factory()
            gc.collect()
            gc.freeze()  # the models' many long-lived objects leave the GC's view: no ~0.5 s full collections later
            self._searcher = Searcher(self.engine.store, self.engine.model)
        except BaseException as exc:  # noqa: BLE001  (reported by every job and by /health)
            self.open_error = exc
            log.error("engine failed to open: %s", exc)
        self._ready.set()
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            live = [j for j in jobs if j is not None and not j.future.cancelled()]  # a racy read: at worst wasted work
            self._run(live)
            self._finish(live)
            if None in jobs:
                break
        self._drain()
        if self.engine is not None:
            self.engine.close()

    def _drain(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.outcome = (True, RuntimeError("the server is shutting down"))
                self._finish([job])

    @staticmethod
    def _finish(jobs: list[_Job]) -> None:
        """Wake each event loop once per batch (not once per job) to deliver the outcomes."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, some in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, some)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    def _run(self, jobs: list[_Job]) -> None:
        if self.open_error is not None:
            for job in jobs:
                job.outcome = (True, self.open_error)
            return
        try:
            vectors = self._text_vectors([j.search.text_only for j in jobs if j.search and j.search.text_only])
        except Exception as exc:  # noqa: BLE001  (each job then encodes alone and reports its own error)
            log.warning("batched text encoding failed, encoding one by one: %s", exc)
            vectors = {}
        catalog = self.engine.store.catalog  # type: ignore[union-attr]
        try:
            with catalog.snapshot():  # one read transaction per batch: consistent, and cheaper per statement
                self._searcher.pinned_generation = self._retrying(lambda: catalog.generation)
                self._run_each(jobs, vectors)
        except Exception as exc:  # noqa: BLE001  (the snapshot failed: every job not run yet reports it)
            for job in jobs:
                job.outcome = job.outcome or (True, exc)
        finally:
            self._searcher.pinned_generation = None

    def _run_each(self, jobs: list[_Job], vectors: dict[str, np.ndarray]) -> None:
        for job in jobs:
            try:
                if job.search is not None:
                    result = self._retrying(lambda j=job.search: self._search(j, vectors))
                else:
                    result = self._retrying(lambda c=job.call: c(self.engine))
            except Exception as exc:  # noqa: BLE001  (the request's error handler maps it)
                job.outcome = (True, exc)
            else:
                job.outcome = (False, result)

    def _retrying(self, call: Callable[[], T]) -> T:
        for attempt in range(RETRIES):
            try:
                return call()
            except Exception as exc:
                if not is_busy(exc) or attempt == RETRIES - 1:
                    raise
                self.counters["retries"] += 1
                time.sleep(BACKOFF_S * 2 ** attempt)
        raise AssertionError("unreachable")

    def _text_vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Unit vectors of the distinct texts: cached ones reused, the rest encoded in one batch."""
        out: dict[str, np.ndarray] = {}
        missing = []
        for text in dict.fromkeys(t for t in texts if t.strip()):
            if text in self._cache:
                self._cache.move_to_end(text)
                out[text] = self._cache[text]
                self.counters["cache_hits"] += 1
            else:
                missing.append(text)
        if missing:
            encoded = self.engine.encoder.encode("text", missing)  # type: ignore[union-attr]
            self.counters["batches"] += 1
            self.counters["batched_texts"] += len(missing)
            for text, vector in zip(missing, encoded):
                out[text] = self._cache[text] = vector[None, :].astype(np.float32)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    def _search(self, job: SearchJob, text_vectors: dict[str, np.ndarray]) -> list[Result]:
        engine = self.engine
        targets = list(job.targets) or self._searcher.modalities()
        if engine.wants_rerank(job.parts, targets, job.rerank):  # type: ignore[union-attr]
            try:
                results = engine.reranked_search(job.parts, targets, job.k, job.filters, job.depth,  # type: ignore[union-attr]
                                                 job.fusion, job.rerank_depth, self._searcher)
            except RerankerUnavailable:
                if job.rerank:
                    raise
                self.counters["rerank_skipped"] += 1  # some candidates lack tokens: the default falls back
            else:
                self.counters["searches"] += 1
                self.counters["reranked"] += 1
                return results
        text = job.text_only
        if text is not None and text in text_vectors:
            vector = text_vectors[text]
        else:
            vector = encode_query(self.engine.encoder, job.parts)  # type: ignore[union-attr]
        self.counters["searches"] += 1
        return self._searcher.search(vector, job.parts[0].modality, targets, job.k, job.filters, job.depth,
                                     job.fusion)

"""The engine's threads: encoder threads batch text queries through the model; one engine thread does the rest.

SQLite connections belong to the thread that made them, so every catalog and index call runs on one
dedicated engine thread, which owns the server's ``Engine``. Text queries are encoded first, on their own
threads (torch releases the GIL, so encoding overlaps the engine thread's searches and the event loop's
HTTP work, and uses a second core): each encoder thread takes every text query waiting (up to
``max_batch``), encodes the distinct ones in one batch (a small LRU cache keeps recent vectors: a text's
vector never depends on the catalog) and hands the jobs on. The engine thread takes every job waiting,
reads one catalog snapshot for the batch and searches, catching the indexes up to the catalog's generation
(``Store.index``) so that files another process ingests or deletes show up without a restart. A transient
``database is locked`` is retried with backoff. ``stop`` is prompt: jobs not started yet get a 503.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from engine.api.facade import Engine
from engine.query import Result, SearchRequest
from engine.server.batching import TextQueue
from engine.server.errors import ApiError, is_busy
from engine.server.jobs import _Job, _finish, _take

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIES = 8
BACKOFF_S = 0.02
WARM_UP = ["warm up", "a longer warm-up query, padded beside the short one"]
SECOND_BATCH = 4  # a second encoder starts on this many waiting texts (ONNX Runtime: ~3.6 ms fixed per pass)
ENCODERS = 2  # measured on 2 cores (bench/results/serve-*.json): 2 threads beat 1 under 32 distinct clients


def set_compute_threads(n: int) -> None:
    """Intra-op threads of torch and FAISS (one OpenMP pool): one query at a time gains nothing from more.

    On a busy machine OpenMP's spinning threads make a 30-vector flat search take ~10 ms instead of ~0.1 ms.
    """
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)  # an OpenMP setting of the calling thread: each worker thread sets it


class EngineWorker:
    """Owns the engine; ``run`` and ``search`` are awaitable from the event loop.

    ``encoders``: threads that encode text queries (0: the engine thread encodes them itself, in its batch).
    """

    def __init__(self, factory: Callable[[], Engine], max_batch: int = 32, cache_size: int = 1024,
                 threads: int | None = 1, encoders: int = ENCODERS) -> None:
        self._factory = factory
        self.threads = threads
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._texts: TextQueue[_Job] = TextQueue(max_batch, min(max_batch, SECOND_BATCH))
        self._thread = threading.Thread(target=self._loop, name="xmodal-engine", daemon=True)
        self._encoders = [threading.Thread(target=self._encode_loop, name=f"xmodal-encode-{i}", daemon=True)
                          for i in range(encoders)]
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._admit = threading.Lock()
        self._lock = threading.Lock()  # the vector cache and the counters, shared by the encoder threads
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self.engine: Engine | None = None
        self.open_error: BaseException | None = None
        self.counters = {"searches": 0, "batches": 0, "batched_texts": 0, "cache_hits": 0, "retries": 0,
                         "reranked": 0, "rerank_skipped": 0, "shutdown_refused": 0,
                         "encode_cpu_ms": 0, "engine_cpu_ms": 0, "hits_cached": 0, "hits_read": 0}

    # ---- life cycle (any thread) ---------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Start the threads and wait until the engine is open (or failed to open: see ``open_error``)."""
        self._thread.start()
        self._ready.wait(timeout)
        if self.open_error is None:
            for thread in self._encoders:
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse queued jobs (503), let the running ones finish, close the engine and join the threads."""
        with self._admit:
            self._stopping.set()
        self._refuse_jobs(self._texts.close())
        deadline = time.monotonic() + timeout
        for thread in self._encoders:  # joined before the engine thread's sentinel: no job reaches it later
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(max(0.0, deadline - time.monotonic()))

    def stop_on_signals(self) -> None:
        """From now on SIGINT/SIGTERM first make every queued and new job a 503 at once, then run the handler
        that was there (uvicorn's, which lets requests in flight finish and then stops). Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)

            def refuse_then(signum: int, frame: Any, previous: Any = previous) -> None:
                if previous == signal.SIG_IGN:  # a signal the process ignores does not stop it
                    return
                self._stopping.set()  # no lock here: a handler must not wait on what the interrupted code holds
                if callable(previous):
                    previous(signum, frame)
                elif previous == signal.SIG_DFL:
                    signal.signal(signum, signal.SIG_DFL)
                    signal.raise_signal(signum)

            signal.signal(sig, refuse_then)

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called."""
        return self._stopping.is_set()

    # ---- from the event loop ------------------------------------------------------------------------

    async def run(self, call: Callable[[Engine], T]) -> T:
        """Run ``call(engine)`` on the engine thread."""
        return await self._submit(_Job(*self._new_future(), call=call), self._jobs)

    async def search(self, job: SearchRequest) -> list[Result]:
        """Run one search on the engine thread (a text query is encoded first, batched with the others waiting)."""
        encoded = bool(job.text_only and job.text_only.strip()) and job.rerank is not True \
            and any(t.is_alive() for t in self._encoders)
        return await self._submit(_Job(*self._new_future(), search=job), self._texts if encoded else self._jobs)

    @staticmethod
    def _new_future() -> tuple[asyncio.AbstractEventLoop, asyncio.Future]:
        loop = asyncio.get_running_loop()
        return loop, loop.create_future()

    async def _submit(self, job: _Job, where: queue.SimpleQueue | TextQueue) -> Any:
        with self._admit:  # no job enters a queue once ``stop`` has begun draining them
            if self._stopping.is_set():
                raise self._shutdown_error()
            where.put(job)
        return await job.future

    # ---- on the encoder threads ---------------------------------------------------------------------

    def _encode_loop(self) -> None:
        if self.threads:
            set_compute_threads(self.threads)
        while (jobs := self._texts.take()) is not None:
            start = time.thread_time()
            try:
                live = [j for j in jobs if not j.future.cancelled()]  # a racy read: at worst wasted work
                if self._stopping.is_set():
                    self._refuse_jobs(live)
                    continue
                try:
                    vectors = self._text_vectors([j.search.text_only for j in live])  # type: ignore[union-attr]
                except Exception as exc:  # noqa: BLE001  (each job is then encoded alone and reports its own error)
                    log.warning("batched text encoding failed, encoding one by one: %s", exc)
                    vectors = {}
                for job in live:
                    job.vector = vectors.get(job.search.text_only)  # type: ignore[union-attr]
                    self._jobs.put(job)
            finally:
                self._texts.done()
                self._add_cpu("encode_cpu_ms", start)

    def _text_vectors(self, texts: list[str | None]) -> dict[str, np.ndarray]:
        """Unit vectors of the distinct texts: cached ones reused, the rest encoded in one batch."""
        out: dict[str, np.ndarray] = {}
        missing = []
        with self._lock:
            for text in dict.fromkeys(t for t in texts if t and t.strip()):
                if text in self._cache:
                    self._cache.move_to_end(text)
                    out[text] = self._cache[text]
                    self.counters["cache_hits"] += 1
                else:
                    missing.append(text)
        if not missing:
            return out
        encoded = self.engine.encoder.encode("text", missing, query=True)  # type: ignore[union-attr]
        with self._lock:
            self.counters["batches"] += 1
            self.counters["batched_texts"] += len(missing)
            for text, vector in zip(missing, encoded):
                out[text] = self._cache[text] = vector[None, :].astype(np.float32)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    # ---- on the engine thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            if self.threads:
                set_compute_threads(self.threads)
            self.engine = self._factory()
            self._warm_up(self.engine)
            gc.collect()
            gc.freeze()  # the models' many long-lived objects leave the GC's view: no ~0.5 s full collections later
        except BaseException as exc:  # noqa: BLE001  (reported by every job and by /health)
            self.open_error = exc
            log.error("engine failed to open: %s", exc)
        self._ready.set()
        while True:
            jobs, stop = _take(self._jobs, self.max_batch)
            live = [j for j in jobs if not j.future.cancelled()]
            if self._stopping.is_set():
                self._refuse_jobs(live)
            elif live:
                start = time.thread_time()
                try:
                    self._run(live)
                except Exception as exc:  # noqa: BLE001  (a bug must not end the thread and leave every later job waiting)
                    log.exception("a batch of searches failed")
                    for job in live:
                        job.outcome = job.outcome or (True, exc)
                _finish(live)
                self._add_cpu("engine_cpu_ms", start)
            if stop:
                break
        self._refuse(self._jobs)
        if self.engine is not None:
            self.engine.close()

    @staticmethod
    def _warm_up(engine: Engine) -> None:
        """Encode a text query once before the server answers: the text tower's query session (ONNX Runtime: 1-5 s to
        open or export) is built now, not by the first requests. A failure only means the first query pays (or
        reports) it."""
        start = time.perf_counter()
        try:
            engine.encoder.encode("text", WARM_UP, query=True)
        except Exception as exc:  # noqa: BLE001  (no text tower, missing weights: that query's error, later)
            log.info("no text query warm-up: %s: %s", type(exc).__name__, exc)
        else:
            log.info("text query encoder warmed up in %.2f s", time.perf_counter() - start)

    def _add_cpu(self, counter: str, start: float) -> None:
        with self._lock:
            self.counters[counter] += round(1000 * (time.thread_time() - start))

    def _shutdown_error(self) -> ApiError:
        return ApiError(503, "the server is shutting down", {"Retry-After": "5"})

    def _refuse_jobs(self, jobs: list[_Job]) -> None:
        for job in jobs:
            job.outcome = (True, self._shutdown_error())
        with self._lock:
            self.counters["shutdown_refused"] += len(jobs)
        _finish(jobs)

    def _refuse(self, jobs: queue.SimpleQueue) -> None:
        """Fail every job still queued (the server is stopping)."""
        left = []
        while True:
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                left.append(job)
        self._refuse_jobs(left)

    def _run(self, jobs: list[_Job]) -> None:
        if self.open_error is not None:
            for job in jobs:
                job.outcome = (True, self.open_error)
            return
        vectors: dict[str, np.ndarray] = {}
        inline = [j.search.text_only for j in jobs if j.search and j.vector is None and j.search.text_only]
        if inline:  # no encoder threads (or their batch failed): encode here, in one batch
            try:
                vectors = self._text_vectors(inline)
            except Exception as exc:  # noqa: BLE001  (each job then encodes alone and reports its own error)
                log.warning("batched text encoding failed, encoding one by one: %s", exc)
        engine = self.engine
        catalog = engine.store.catalog  # type: ignore[union-attr]
        try:
            with catalog.snapshot():  # one read transaction per batch: consistent, and cheaper per statement
                with engine.pinned(self._retrying(lambda: catalog.generation)):  # type: ignore[union-attr]
                    self._run_each(jobs, vectors)
        except Exception as exc:  # noqa: BLE001  (the snapshot failed: every job not run yet reports it)
            for job in jobs:
                job.outcome = job.outcome or (True, exc)
        finally:
            self.counters["hits_cached"], self.counters["hits_read"] = engine.hydration_counts()  # type: ignore[union-attr]

    def _run_each(self, jobs: list[_Job], vectors: dict[str, np.ndarray]) -> None:
        for job in jobs:
            if self._stopping.is_set():  # checked between jobs: a long batch does not hold up shutdown
                job.outcome = (True, self._shutdown_error())
                with self._lock:
                    self.counters["shutdown_refused"] += 1
                continue
            try:
                if job.search is not None:
                    result = self._retrying(lambda j=job: self._search(j.search, j.vector, vectors))
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

    def _search(self, job: SearchRequest, vector: np.ndarray | None,
                text_vectors: dict[str, np.ndarray]) -> list[Result]:
        """One search of the batch through the engine's search policy, with the text's vector when already encoded."""
        text = job.text_only
        if vector is None and text is not None and text in text_vectors:
            vector = text_vectors[text]
        searched = self.engine.search_encoded(job, vector)  # type: ignore[union-attr]
        if not searched.plan.matchable:  # the requested kinds and the modality filter exclude each other
            return searched.results
        self.counters["searches"] += 1
        self.counters["reranked"] += searched.reranked
        self.counters["rerank_skipped"] += searched.skipped is not None  # some candidates lack tokens: fell back
        return searched.results

"""The server's engine threads: the encoder queue's batching rule, the per-state hydration cache, results equal to
``Engine.search`` through the encoder threads, and a prompt stop (queued jobs refused) in-process and over SIGTERM."""

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from engine.api.facade import Engine
from engine.query.hydration import CachedHydration
from engine.server.batching import TextQueue
from engine.server.errors import ApiError
from engine.server.worker import EngineWorker
from engine.query import QueryPart, SearchRequest

ROOT = Path(__file__).resolve().parents[3]
QUERIES = ["a red square", "a blue circle", "a dog barking", "rain on a roof", "the number seven", "green leaves"]


@pytest.fixture(scope="module")
def store(tiny_store) -> Path:
    return tiny_store.store  # the session's store: read only (a test that deletes uses tiny_store_copy)


def _taker(queue: TextQueue, out: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append(queue.take()), daemon=True)
    thread.start()
    return thread


def test_text_queue_second_encoder_waits_for_a_half_full_batch():
    queue: TextQueue[int] = TextQueue(max_batch=8, min_batch=4)
    queue.put(1)
    assert queue.take() == [1]  # nobody busy: even one job is taken
    queue.put(2)
    queue.put(3)
    second: list = []
    thread = _taker(queue, second)
    thread.join(0.3)
    assert thread.is_alive() and not second  # one encoder busy, 2 < 4 waiting: the second one waits
    queue.put(4)
    queue.put(5)
    thread.join(2)
    assert second == [[2, 3, 4, 5]]
    for i in range(6, 20):
        queue.put(i)
    assert queue.take() == list(range(6, 14))  # at most max_batch
    queue.done()
    queue.done()
    queue.put(99)
    assert queue.take() == list(range(14, 20)) + [99]


def test_text_queue_close_wakes_every_taker_and_returns_what_waited():
    queue: TextQueue[int] = TextQueue(max_batch=8, min_batch=4)
    queue.put(1)
    assert queue.take() == [1]
    queue.put(2)
    got: list = []
    threads = [_taker(queue, got) for _ in range(3)]
    time.sleep(0.2)
    left = queue.close()
    for thread in threads:
        thread.join(2)
        assert not thread.is_alive()
    assert sorted(left + [j for batch in got if batch for j in batch]) == [2]  # taken by one, or handed back
    assert got.count(None) >= 2


def test_cached_hydration_follows_the_catalog_state(tiny_store_copy):
    with Engine.open(tiny_store_copy.store, "tiny-random") as engine:
        catalog = engine.store.catalog
        cached = CachedHydration(catalog)
        ids = [r.id for item in catalog.items(status="ok") for r in catalog.representations_of(item.id)]
        assert cached.hydrate(ids) == catalog.hydrate(ids) and cached.hits == cached.misses == 0  # not pinned
        with catalog.snapshot():
            cached.pin(catalog.generation)
            first = cached.hydrate(ids + [-1])
            again = cached.hydrate(list(reversed(ids)))
            cached.unpin()
        assert first == again == catalog.hydrate(ids)
        assert (cached.misses, cached.hits) == (len(ids), len(ids))
        gone = [i for i in ids if first[i].item_id == first[ids[0]].item_id]
        with catalog.atomic():
            catalog.mark_deleted(first[ids[0]].item_id)  # its representations go with it
        assert set(cached.hydrate(ids)) == set(ids) - set(gone)  # unpinned: read through
        with catalog.snapshot():
            cached.pin(catalog.generation)  # a new state: what was kept is dropped
            assert set(cached.hydrate(ids)) == set(ids) - set(gone)
            cached.unpin()
        assert cached.misses == 2 * len(ids)


async def _searches(worker: EngineWorker, texts: list[str]) -> list:
    return await asyncio.gather(*(worker.search(SearchRequest((QueryPart("text", t),), k=5)) for t in texts))


@pytest.mark.parametrize("encoders", [0, 2])
def test_worker_results_equal_engine_search(store, encoders):
    texts = QUERIES * 5
    with Engine.open(store, "tiny-random") as engine:
        expected = {t: engine.search(t, k=5) for t in QUERIES}
    worker = EngineWorker(lambda: Engine.open(store, "tiny-random"), encoders=encoders)
    worker.start()
    try:
        got = asyncio.run(_searches(worker, texts))
    finally:
        worker.stop()
    for text, results in zip(texts, got):  # batched encoding differs from one-by-one in the last float bits
        assert [r.item_id for r in results] == [r.item_id for r in expected[text]]
        assert [r.score for r in results] == pytest.approx([r.score for r in expected[text]], abs=1e-4)
    assert worker.counters["searches"] == len(texts)
    assert worker.counters["batched_texts"] + worker.counters["cache_hits"] >= len(QUERIES)
    assert worker.counters["hits_cached"] > 0  # the same few representations: hydrated once per catalog state


def test_text_encoder_is_warmed_up_before_the_worker_answers(store):
    calls: list = []

    def opened() -> Engine:
        engine = Engine.open(store, "tiny-random")
        real = engine.encoder.encode
        engine.encoder.encode = lambda modality, texts, **kw: calls.append(  # type: ignore[method-assign]
            (modality, len(texts), kw.get("query"), threading.current_thread().name)) or real(modality, texts, **kw)
        return engine

    worker = EngineWorker(opened)
    worker.start()
    try:
        assert calls == [("text", 2, True, "xmodal-engine")] and worker.open_error is None  # before start returned
        assert worker.counters["batched_texts"] == 0  # the warm-up is no query: nothing counted, nothing cached
        asyncio.run(_searches(worker, QUERIES[:1]))
    finally:
        worker.stop()
    assert len(calls) == 2


class _NoText:
    """An encoder that cannot encode anything (the rest is the real one's)."""

    def __init__(self, real) -> None:
        self.real = real

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def encode(self, *args, **kwargs):
        raise RuntimeError("no text tower here")


def test_a_failed_warm_up_does_not_stop_the_server(store):
    def opened() -> Engine:
        engine = Engine.open(store, "tiny-random")
        engine.encoder = _NoText(engine.encoder)  # type: ignore[assignment]
        return engine

    worker = EngineWorker(opened, encoders=0)
    worker.start()
    try:
        assert worker.open_error is None
        assert asyncio.run(worker.run(lambda e: e.store.catalog.generation)) >= 0
    finally:
        worker.stop()


def test_an_unexpected_error_fails_its_batch_not_the_engine_thread(store):
    worker = EngineWorker(lambda: Engine.open(store, "tiny-random"), encoders=0)
    worker.start()
    try:
        real = worker.engine.hydration_counts
        worker.engine.hydration_counts = lambda: 1 / 0  # type: ignore[method-assign]  (after every batch)
        assert asyncio.run(asyncio.wait_for(worker.run(lambda e: 1), 10)) == 1  # its job had its answer already
        assert asyncio.run(asyncio.wait_for(worker.run(lambda e: 2), 10)) == 2  # the thread still answers
        worker.engine.hydration_counts = real  # type: ignore[method-assign]
        assert asyncio.run(asyncio.wait_for(worker.run(lambda e: 3), 10)) == 3
    finally:
        worker.stop()


def test_stop_refuses_queued_jobs_promptly(store):
    worker = EngineWorker(lambda: Engine.open(store, "tiny-random"))
    worker.start()
    outcomes: list = []

    async def flood() -> None:
        async def slow() -> None:
            try:
                outcomes.append(await worker.run(lambda e: time.sleep(0.02)))
            except ApiError as exc:
                outcomes.append(exc.status)

        async def text(t: str) -> None:
            try:
                outcomes.append(len(await worker.search(SearchRequest((QueryPart("text", t),)))))
            except ApiError as exc:
                outcomes.append(exc.status)

        tasks = [slow() for _ in range(500)] + [text(f"query {i}") for i in range(100)]  # ~10 s of queued work
        loop = asyncio.get_running_loop()
        stopped = loop.run_in_executor(None, lambda: (time.sleep(0.3), time.monotonic(), worker.stop(),
                                                      time.monotonic()))
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        _, begun, _, ended = await stopped
        assert ended - begun < 2.0

    asyncio.run(flood())
    assert len(outcomes) == 600
    assert outcomes.count(503) >= 400  # refused, not run: the engine thread checks the stop flag between jobs
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("xmodal-"))
    assert worker.counters["shutdown_refused"] == outcomes.count(503)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


SLOW_SEARCH = """
import time
from engine.query.search import Searcher
_search = Searcher.search
def slow(self, *args, **kwargs):
    time.sleep(0.05)  # a slow machine or a large store: each search 50 ms
    return _search(self, *args, **kwargs)
Searcher.search = slow
"""


@pytest.mark.slow
def test_sigterm_stops_a_flooded_server_within_seconds(store, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SLOW_SEARCH)
    port = _free_port()
    env = {**os.environ, "XMODAL_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--store", str(store), "--port", str(port)],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limit_memory)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("server did not start")
        statuses: list[int | str] = []

        async def flood() -> None:
            limits = httpx.Limits(max_connections=300)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
                async def one(i: int) -> None:
                    try:
                        statuses.append((await client.post("/search", json={"text": f"q {i}"})).status_code)
                    except httpx.HTTPError as exc:
                        statuses.append(type(exc).__name__)

                await asyncio.gather(*(one(i) for i in range(300)))  # 300 x 50 ms: 15 s of queued searches

        flooding = threading.Thread(target=lambda: asyncio.run(flood()), daemon=True)
        flooding.start()
        deadline = time.monotonic() + 60
        while statuses.count(200) < 5 and time.monotonic() < deadline:  # all connected, the queue is full
            time.sleep(0.05)
        assert statuses.count(200) >= 5, statuses[:5]
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
            tail = (tmp_path / "server.log").read_text()[-3000:]
            raise AssertionError(f"no exit 20 s after SIGTERM: {tail}") from None
        took = time.monotonic() - sent
        flooding.join(30)
        print(f"SIGTERM to exit: {took:.2f} s; statuses: {statuses.count(200)} x 200, {statuses.count(503)} x 503")
        assert took < 10.0, f"SIGTERM took {took:.1f} s"
        assert 200 in statuses and len(statuses) == 300
        assert statuses.count(200) < 250  # the queue was not worked through before exiting
        assert statuses.count(503) > 0 and set(statuses) <= {200, 503}  # refused with a status, not dropped
        assert "Traceback" not in (tmp_path / "server.log").read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)

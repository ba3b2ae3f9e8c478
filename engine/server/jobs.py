"""Jobs between the event loop and the engine's threads: a search request or a call, and how outcomes are handed back."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.api.facade import Engine
from engine.query import SearchRequest


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    search: SearchRequest | None = None
    call: Callable[[Engine], Any] | None = None
    vector: np.ndarray | None = None  # a text query's vector, from an encoder thread
    outcome: tuple[bool, Any] | None = None  # (failed, result or exception), set on a worker thread


def _deliver(jobs: list[_Job]) -> None:
    """On the event loop: hand each job's outcome to its awaiting request (unless it gave up)."""
    for job in jobs:
        if not job.future.done():
            failed, value = job.outcome or (True, RuntimeError("the job was not run"))
            job.future.set_exception(value) if failed else job.future.set_result(value)


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


def _take(jobs: queue.SimpleQueue, limit: int) -> tuple[list[_Job], bool]:
    """The next job (waiting for it) and every other one already queued, up to ``limit``; and whether a stop
    sentinel (None) was among them."""
    first = jobs.get()
    if first is None:
        return [], True
    taken, stop = [first], False
    while len(taken) < limit:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        if job is None:
            stop = True
            break
        taken.append(job)
    return taken, stop

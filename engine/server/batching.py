"""The text-query queue of the server's encoder threads."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

J = TypeVar("J")


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

"""Decode worker processes: one file at a time each, a time limit per file, and no worker outliving its parent.

A worker that makes no progress within the time limit (a whole image; one audio window) is killed and replaced (its file fails with "decode timed out"); a worker that dies
(a crash in a decoder, the kernel's OOM killer) fails only its file. Workers ask the kernel to kill them when the
parent dies (Linux ``PR_SET_PDEATHSIG``) and also watch their parent id, so a ``kill -9`` leaves none behind.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Iterable, Iterator

from ingest.decode import DecodeSettings
from ingest.work import Decoded, FileTask, Handler, Preprocessors, init_worker, process, run_handler

_PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` does: the kernel's parent-death signal where there is one, and a
    thread that polls the parent id everywhere (it also covers a parent that died before this call)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="xmodal-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _worker_main(conn: Connection, parent_pid: int, pre: Preprocessors, settings: DecodeSettings,
                 handler: Handler) -> None:
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the workers
    init_worker(pre, settings)
    from ingest import work  # the decode loop reports progress (one audio window done) through work._state
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        seq, task = message
        work._state["beat"] = lambda seq=seq: conn.send((seq, None))
        conn.send((seq, run_handler(handler, task, pre, settings)))  # a decoder bug fails its file, not the worker


@dataclass
class _Slot:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    seq: int | None = None
    task: FileTask | None = None
    deadline: float = 0.0


class DecodePool:
    """``workers`` decode processes fed one task at a time; ``map`` yields results in task order (the ``"local"``
    ingest runner, ingest.runner)."""

    def __init__(self, workers: int, pre: Preprocessors, settings: DecodeSettings,
                 handler: Handler = process) -> None:
        self.pre, self.settings, self.handler = pre, settings, handler
        self.context = multiprocessing.get_context("fork")  # preprocessors need not pickle
        self.slots = [self._start() for _ in range(max(1, workers))]

    def _start(self) -> _Slot:
        parent, child = self.context.Pipe()
        proc = self.context.Process(target=_worker_main, name="xmodal-decode", daemon=True,
                                    args=(child, os.getpid(), self.pre, self.settings, self.handler))
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [s.process.pid for s in self.slots if s.process.pid is not None]

    def _replace(self, slot: _Slot) -> None:
        self._stop(slot, kill=True)
        self.slots[self.slots.index(slot)] = self._start()

    @staticmethod
    def _stop(slot: _Slot, kill: bool) -> None:
        if kill and slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)
        slot.conn.close()

    def map(self, tasks: Iterable[FileTask], prefetch: int) -> Iterator[Decoded]:
        """Decode every task; at most ``prefetch`` results wait (in flight or done out of order) at a time."""
        todo = deque(tasks)
        done: dict[int, Decoded] = {}
        issued = yielded = 0
        while todo or yielded < issued:
            for slot in self.slots:
                if slot.seq is None and todo and issued - yielded < max(prefetch, len(self.slots)):
                    slot.seq, slot.task = issued, todo.popleft()
                    slot.deadline = time.monotonic() + self.settings.timeout_s
                    slot.conn.send((slot.seq, slot.task))
                    issued += 1
            while yielded in done:
                yield done.pop(yielded)
                yielded += 1
            if yielded < issued:
                self._collect(done)

    def _collect(self, done: dict[int, Decoded]) -> None:
        """Wait for the next answer, worker death or time-out among the busy workers."""
        busy = [s for s in self.slots if s.seq is not None]
        timeout = max(0.0, min(s.deadline for s in busy) - time.monotonic())
        ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout)
        for slot in busy:
            seq, task = slot.seq, slot.task
            assert seq is not None and task is not None
            if slot.conn in ready or slot.process.sentinel in ready:
                try:
                    got, result = slot.conn.recv()
                    if result is None:  # progress: the time limit counts from here
                        slot.deadline = time.monotonic() + self.settings.timeout_s
                    else:
                        done[got] = result
                        slot.seq = slot.task = None
                    continue
                except (EOFError, OSError):
                    slot.process.join(timeout=5)
                    code = slot.process.exitcode
                    how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    done[seq] = Decoded(task, error=f"the decode worker died ({how}) on this file")
            elif time.monotonic() >= slot.deadline:
                done[seq] = Decoded(task, error=f"decode timed out (no progress for {self.settings.timeout_s:g} s)")
            else:
                continue
            self._replace(slot)

    def close(self) -> None:
        """Stop the workers: ask idle ones to exit, kill busy or slow ones."""
        for slot in self.slots:
            if slot.seq is None:
                try:
                    slot.conn.send(None)
                except OSError:
                    pass
        deadline = time.monotonic() + 2
        for slot in self.slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()) if slot.seq is None else 0)
            self._stop(slot, kill=True)

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

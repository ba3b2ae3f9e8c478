"""The ``"ray"`` ingest runner: decoding as Ray CPU tasks, encoding in a pool of Ray actors, results back in order.

Each file is one decode task (``work.process`` in a Ray worker, one CPU). Given ``RunnerSpec.encoding`` the decoded
files go, ``batch_size`` at a time and straight from the decoding worker, to one of ``workers`` encoder actors (each
holds one copy of the embedder, sent once through the object store; ``num_gpus=1`` each where the cluster has
GPUs), which embed their representations with the same ``Encoding`` as the local pipeline and send back ``Encoded``
files: vectors, no tensors. Without an encoding the runner only decodes. Either way the driver yields results in
task order to the pipeline, whose sink stays the single writer of the catalog.

Failures stay per file: a decoder that raises fails its file (``work.run_handler``); a decode worker that dies is
retried once by Ray, then fails its file; a file that makes no progress for ``timeout_s`` while nothing else
finishes is cancelled (its worker killed) and fails as timed out; an encoder actor that dies is restarted by Ray and
its batch retried. ``close`` cancels what is in flight, kills the actors and stops a Ray instance it started.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ingest.errors import IngestError
from ingest.runner import Encoded, RunnerSpec
from ingest.work import Decoded, FileTask, init_worker, run_handler

POLL_S = 0.05  # how long the driver waits on one thing before checking the others
WARM_HOLD_S = 0.5
DECODE_RETRIES = 1  # a worker killed under a file gets one more try; a file that kills it twice fails
ACTOR_RESTARTS = 2


def _decode(shared: tuple, task: FileTask) -> Decoded:
    """One file, in a Ray worker: read, hash, decode, preprocess (``work.process`` or the spec's handler)."""
    handler, pre, settings = shared
    init_worker(pre, settings)
    return run_handler(handler, task, pre, settings)


def _warm(shared: tuple) -> int:
    """Start a worker and load what decoding needs (``shared``: the preprocessors' modules, torch, the decoders),
    so that time limits count decoding alone."""
    import os

    init_worker(shared[1], shared[2])
    time.sleep(WARM_HOLD_S)  # held briefly, so the next warm-up task lands on another CPU
    return os.getpid()


def _reason(exc: BaseException) -> str:
    """A failed Ray task's reason, in the words of the local runner where they mean the same."""
    import ray.exceptions as rex

    if isinstance(exc, rex.TaskCancelledError):
        return "decode cancelled"
    if isinstance(exc, (rex.WorkerCrashedError, rex.NodeDiedError)):
        return "the decode worker died on this file"
    if isinstance(exc, rex.OutOfMemoryError):
        return "the decode worker ran out of memory on this file"
    return f"decode failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


class EncoderActor:
    """One embedder in a Ray actor: fetches decoded files from the object store and encodes them in batches."""

    def __init__(self, encoding: Any, threads: int) -> None:
        import ray
        import torch

        torch.set_num_threads(max(1, threads))
        if ray.get_gpu_ids() and hasattr(encoding.embedder, "to"):
            encoding.embedder.to("cuda")  # the copy this actor was sent, onto the GPU Ray gave it
        self.encoding = encoding

    def pid(self) -> int:
        """This actor's process id (tests kill it)."""
        import os

        return os.getpid()

    def encode(self, entries: list[tuple[FileTask, Any]], batch_size: int) -> list[Decoded]:
        """Fetch each (task, decode ref) and encode every good file's representations; ``Encoded`` files back,
        failures as they came (a decode that failed in Ray fails its file here, with its reason)."""
        import ray

        files: list[Decoded] = []
        for task, ref in entries:
            try:
                files.append(ray.get(ref))
            except Exception as exc:  # a decode worker that died twice, a cancelled task
                files.append(Decoded(task, error=_reason(exc)))
        return encode_files(self.encoding, files, batch_size)


def encode_files(encoding: Any, files: list[Decoded], batch_size: int) -> list[Decoded]:
    """Good files' representations embedded ``batch_size`` at a time per modality, in file order (as the local
    pipeline batches them); those files come back ``Encoded``, their tensors dropped."""
    import numpy as np

    todo = [d for d in files if not d.error and not d.unchanged and d.reps]
    rows: dict[str, list[tuple[int, int]]] = {}
    for f, d in enumerate(todo):
        for r, rep in enumerate(d.reps):
            rows.setdefault(rep.modality, []).append((f, r))
    vectors: list[list[Any]] = [[None] * len(d.reps) for d in todo]
    tokens: list[list[Any]] = [[None] * len(d.reps) for d in todo]
    size = max(1, batch_size)
    for modality, where in rows.items():
        for start in range(0, len(where), size):
            part = where[start : start + size]
            got, toks = encoding.embed_reps(modality, [todo[f].reps[r] for f, r in part])
            for (f, r), vector, token in zip(part, got, toks, strict=True):
                vectors[f][r], tokens[f][r] = vector, token
    encoded = {}
    for f, d in enumerate(todo):
        for rep in d.reps:
            rep.batch = None
        encoded[id(d)] = Encoded(d.task, d.sha256, d.modality, d.reps, d.error, d.unchanged, d.note,
                                 vectors=np.stack(vectors[f]).astype(np.float32, copy=False),
                                 tokens=tokens[f] if encoding.tokens else None)
    return [encoded.get(id(d), d) for d in files]


class _Progress:
    """When a decode last finished (or work arrived with none running): a decode is declared hung only when
    nothing at all finished for ``timeout_s`` -- a slow file beside busy ones is not."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s, self.last = timeout_s, time.monotonic()
        self.done: set[Any] = set()
        self.running = 0

    def submitted(self) -> None:
        """A decode was submitted (the clock starts if none was running)."""
        if self.running == 0:
            self.last = time.monotonic()
        self.running += 1

    def finished(self, ref: Any) -> bool:
        """Whether the decode ``ref`` finished (as last seen by ``hung``)."""
        return ref in self.done

    def hung(self, refs: list[Any]) -> bool:
        """Note which of ``refs`` finished; True when some are unfinished and none finished for ``timeout_s``."""
        import ray

        waiting = [r for r in refs if r not in self.done]
        if not waiting:
            return False
        ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0, fetch_local=False)
        if ready:
            self.done.update(ready)
            self.running -= len(ready)
            self.last = time.monotonic()
            return False
        return time.monotonic() - self.last > self.timeout_s

    def forget(self, ref: Any) -> None:
        """``ref`` is handled (yielded or failed); stop tracking it."""
        if ref in self.done:
            self.done.discard(ref)
        else:
            self.running -= 1
        if self.running == 0:
            self.last = time.monotonic()

    def reason(self) -> str:
        """Why a hung decode's file failed; the clock restarts."""
        self.last = time.monotonic()
        return f"decode timed out (no progress for {self.timeout_s:g} s)"


@dataclass
class _Chunk:
    """Up to ``batch_size`` consecutive tasks: their decode refs, then the encode call's ref."""

    tasks: list[FileTask] = field(default_factory=list)
    refs: list[Any] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # index -> reason, decided by the driver (time-outs)
    result: Any = None
    actor: int = -1
    tries: int = 0
    closed: bool = False


class RayRunner:
    """Decodes (and, given an encoding, encodes) on Ray; see the module docstring. ``workers``: encoder actors
    (0: one per GPU, else one)."""

    def __init__(self, spec: RunnerSpec) -> None:
        from ingest.ray_local import attached

        self.spec = spec
        self._stack = contextlib.ExitStack()
        self._inflight: set[Any] = set()
        self.actors: list[Any] = []
        self._load: list[int] = []
        try:
            self._stack.enter_context(attached(spec.address))
            self._start()
        except BaseException:
            self._stack.close()
            raise

    def _start(self) -> None:
        import ray

        self._shared = ray.put((self.spec.handler, self.spec.preprocessors, self.spec.settings))
        self._decode = ray.remote(_decode).options(num_cpus=1, max_retries=DECODE_RETRIES)
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        # a worker's first start (imports) is paid here, not inside the first files' time limit
        warm = ray.remote(_warm).options(num_cpus=1)
        self.decode_pids = ray.get([warm.remote(self._shared) for _ in range(max(1, cpus))])
        if self.spec.encoding is None:
            return
        n = self.spec.workers if self.spec.workers > 0 else max(1, gpus)
        if not gpus and cpus < n + 1:
            raise IngestError(f"the Ray cluster has {cpus} CPU(s): {n} encoder actor(s) and the decode tasks need "
                              f"at least {n + 1} (fewer --workers, or more nodes)")
        options: dict[str, Any] = dict(num_cpus=1, max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS)
        if gpus:
            options["num_gpus"] = 1
        actor = ray.remote(EncoderActor).options(**options)
        self._encoding = ray.put(self.spec.encoding)  # held while the actors live: a restart is built from it
        self.actors = [actor.remote(self._encoding, 1) for _ in range(n)]
        self._load = [0] * n
        self.encoder_pids()  # built and ready before the first file is sent

    # -- decoding only -------------------------------------------------------------------------------
    def _decoded(self, todo: deque[FileTask], limit: int) -> Iterator[Decoded]:
        import ray

        window: deque[tuple[FileTask, Any]] = deque()
        clock = _Progress(self.spec.settings.timeout_s)
        while todo or window:
            while todo and len(window) < limit:
                task = todo.popleft()
                window.append((task, self._submit(task)))
                clock.submitted()
            task, ref = window[0]
            ready, _ = ray.wait([ref], timeout=POLL_S, fetch_local=True)
            if not ready:
                if not clock.hung([r for _, r in window]):
                    continue
                ray.cancel(ref, force=True)
            window.popleft()
            self._inflight.discard(ref)
            clock.forget(ref)
            if not ready:
                yield Decoded(task, error=clock.reason())
                continue
            try:
                yield ray.get(ref)
            except Exception as exc:
                yield Decoded(task, error=_reason(exc))

    def _submit(self, task: FileTask) -> Any:
        ref = self._decode.remote(self._shared, task)
        self._inflight.add(ref)
        return ref

    # -- decoding and encoding ------------------------------------------------------------------------
    def _encoded(self, todo: deque[FileTask], limit: int) -> Iterator[Decoded]:
        import ray

        size = max(1, min(self.spec.batch_size, limit))
        chunks: deque[_Chunk] = deque()
        clock = _Progress(self.spec.settings.timeout_s)
        files = 0  # submitted, not yet yielded
        while todo or chunks:
            while todo and files < limit:
                if not chunks or chunks[-1].closed:
                    chunks.append(_Chunk())
                chunk, task = chunks[-1], todo.popleft()
                chunk.tasks.append(task)
                chunk.refs.append(self._submit(task))
                clock.submitted()
                files += 1
                chunk.closed = len(chunk.tasks) >= size or not todo
            chunks[-1].closed = True  # the window is full or the tasks are all out: encode what it holds
            decoding = [r for c in chunks if c.result is None for i, r in enumerate(c.refs) if i not in c.failed]
            if clock.hung(decoding):
                self._give_up(chunks, clock)
            for chunk in chunks:
                decoded = all(i in chunk.failed or clock.finished(r) for i, r in enumerate(chunk.refs))
                if chunk.result is None and decoded:
                    self._send(chunk)
            head = chunks[0]
            watch = [r for r in decoding if not clock.finished(r)] + ([head.result] if head.result is not None else [])
            ready, _ = ray.wait(watch, num_returns=1, timeout=POLL_S, fetch_local=False) if watch else ([], [])
            if head.result is not None and head.result in ready:
                chunks.popleft()
                files -= len(head.tasks)
                for ref in head.refs:
                    self._inflight.discard(ref)
                    clock.forget(ref)
                yield from self._collect(head)

    def _give_up(self, chunks: deque[_Chunk], clock: _Progress) -> None:
        """Nothing finished for ``timeout_s``: the oldest unfinished decode is hung; cancel it, fail its file."""
        import ray

        for chunk in chunks:
            for i, ref in enumerate(chunk.refs):
                if chunk.result is None and i not in chunk.failed and not clock.finished(ref):
                    ray.cancel(ref, force=True)
                    self._inflight.discard(ref)
                    chunk.failed[i] = clock.reason()
                    return

    def _send(self, chunk: _Chunk) -> None:
        """Hand a decoded chunk to the least busy encoder actor (the refs travel, not the data)."""
        entries = [(t, r) for i, (t, r) in enumerate(zip(chunk.tasks, chunk.refs)) if i not in chunk.failed]
        chunk.actor = min(range(len(self.actors)), key=self._load.__getitem__)
        self._load[chunk.actor] += 1
        chunk.tries += 1
        chunk.result = self.actors[chunk.actor].encode.remote(entries, self.spec.batch_size)

    def _collect(self, chunk: _Chunk) -> Iterator[Decoded]:
        import ray

        self._load[chunk.actor] -= 1
        for ref in chunk.refs:
            self._inflight.discard(ref)
        try:
            got = iter(ray.get(chunk.result))
        except Exception as exc:  # the actor died past its restarts, or the embedder raised
            if chunk.tries <= ACTOR_RESTARTS and isinstance(exc, ray.exceptions.RayActorError):
                chunk.result = None
                self._send(chunk)
                yield from self._collect(chunk)
                return
            reason = f"encoding failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            got = iter([Decoded(t, error=reason) for i, t in enumerate(chunk.tasks) if i not in chunk.failed])
        for i, task in enumerate(chunk.tasks):
            yield Decoded(task, error=chunk.failed[i]) if i in chunk.failed else next(got)

    # -- the Runner protocol ---------------------------------------------------------------------------
    def map(self, tasks: Iterable[FileTask], prefetch: int) -> Iterator[Decoded]:
        """Decode (and encode) ``tasks``; results in task order, at most ``max(prefetch, workers)`` files ahead."""
        todo = deque(tasks)
        limit = max(1, prefetch, self.spec.workers)
        if self.spec.encoding is None:
            return self._decoded(todo, limit)
        return self._encoded(todo, limit)

    def encoder_pids(self) -> list[int]:
        """Process ids of the encoder actors."""
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        """Cancel every decode in flight, kill the encoder actors, stop a Ray instance this runner started."""
        try:
            import ray

            if ray.is_initialized():
                for ref in list(self._inflight):  # queued ones dropped, running ones interrupted: workers stay
                    with contextlib.suppress(Exception):
                        ray.cancel(ref)
                for actor in self.actors:
                    with contextlib.suppress(Exception):
                        ray.kill(actor, no_restart=True)
            self._inflight.clear()
            self.actors = []
        finally:
            self._stack.close()

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ray_runner(spec: RunnerSpec) -> RayRunner:
    """The Ray runner (``RUNNERS["ray"]``): attaches to ``spec.address``, to the Ray this process is already
    connected to, or starts a local instance sized to this machine."""
    return RayRunner(spec)

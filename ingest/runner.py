"""Ingest runners: where files are read and decoded, chosen by name.

``"local"`` is the decode worker pool on this machine (``ingest.pool.DecodePool``; ``workers=0`` decodes in this
process), ``"inline"`` always decodes in this process (tests, debugging, a profiler). A new runner -- one on a
cluster, say -- is one module with a factory taking a ``RunnerSpec``, named in ``RUNNERS``; every runner must pass
tests/ingest/test_runner_contract.py.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol

from ingest.decode import DecodeSettings
from ingest.errors import IngestError
from ingest.work import Decoded, FileTask, Handler, Preprocessors, process, run_handler

if TYPE_CHECKING:  # torch: not for a runner's name
    from ingest.encoding import Encoding

DEFAULT_RUNNER = "local"


class Runner(Protocol):
    """Decodes file tasks into ``Decoded`` results, streaming.

    The contract: ``map`` yields one result per task, in task order; a file that fails (a decode error, a decoder
    that raises, crashes or hangs where the runner can tell) is a ``Decoded`` with its ``error``, never an exception
    nor the end of the other files; no more than ``prefetch`` results (plus one per worker) are decoded ahead of the
    consumer; ``close`` -- also on leaving a ``with`` block, finished or not -- stops everything the runner started.
    """

    def map(self, tasks: Iterable[FileTask], prefetch: int) -> Iterator[Decoded]:
        """Decode ``tasks``, yielding their results in order, at most ``prefetch`` ahead."""
        ...

    def close(self) -> None:
        """Stop every worker this runner started."""
        ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class RunnerSpec:
    """What a runner is built from: its worker count (what a worker is, is the runner's), the model's
    preprocessors per modality, the decode limits, and the per-file function (``work.process``; tests swap it)."""

    workers: int
    preprocessors: Preprocessors
    settings: DecodeSettings = DecodeSettings()
    handler: Handler = process
    encoding: Encoding | None = None  # a runner that also encodes (ray) encodes with it and yields ``Encoded``
    batch_size: int = 32  # rows per encoder batch, for a runner that encodes
    address: str | None = None  # a cluster's address (ray); None: a local instance sized to this machine


@dataclass
class Encoded(Decoded):
    """A decoded file that the runner also encoded (given ``RunnerSpec.encoding``): one vector per representation,
    in order, and token features when the encoding asks for them; the pipeline commits it without encoding again."""

    vectors: Any = None  # float32 (len(reps), dim), L2-normalised
    tokens: list[Any] | None = None


RunnerFactory = Callable[[RunnerSpec], Runner]


class InlineRunner:
    """Decodes each task in this process when the consumer asks for it (nothing read ahead). A decoder that raises
    fails its file; there is no time limit and no shelter from a decoder that kills the process."""

    def __init__(self, spec: RunnerSpec) -> None:
        self.spec = spec

    def map(self, tasks: Iterable[FileTask], prefetch: int) -> Iterator[Decoded]:
        """Decode ``tasks`` one at a time, as they are asked for (``prefetch`` is not needed)."""
        for task in tasks:
            yield run_handler(self.spec.handler, task, self.spec.preprocessors, self.spec.settings)

    def close(self) -> None:
        """Nothing to stop."""

    def __enter__(self) -> InlineRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def local_runner(spec: RunnerSpec) -> Runner:
    """The worker-process pool; with ``workers <= 0``, decoding in this process (what ``--workers 0`` has meant)."""
    if spec.workers <= 0:
        return InlineRunner(spec)
    from ingest.pool import DecodePool

    return DecodePool(spec.workers, spec.preprocessors, spec.settings, spec.handler)


# name -> factory, or "module:attribute" of one, imported only when that runner is chosen (a cluster runner's
# imports are heavy); registry as data, nothing is built at import time.
RUNNERS: dict[str, str | RunnerFactory] = {
    "local": local_runner,
    "inline": InlineRunner,
    "ray": "ingest.ray_runner:ray_runner",
}


def register_runner(name: str, factory: str | RunnerFactory) -> None:
    """Make ``name`` choosable: ``factory`` builds the runner from a ``RunnerSpec`` (or is "module:attribute")."""
    RUNNERS[name] = factory


def runner_names() -> tuple[str, ...]:
    """The names a runner can be chosen by."""
    return tuple(sorted(RUNNERS))


def runner_factory(name: str) -> RunnerFactory:
    """The factory of the runner called ``name``; ``IngestError`` naming the known ones if there is none."""
    found = RUNNERS.get(name)
    if found is None:
        raise IngestError(f"unknown ingest runner {name!r}; known: {', '.join(runner_names())}")
    if isinstance(found, str):
        module, _, attribute = found.partition(":")
        found = getattr(importlib.import_module(module), attribute)
    return found


def open_runner(name: str, spec: RunnerSpec) -> Runner:
    """A started runner called ``name``, built from ``spec``; use it in a ``with`` block so it is closed."""
    return runner_factory(name)(spec)

"""Batching: decoded files' representations gathered into per-modality batches of a fixed size; a file is
``Completed`` once every one of its representations has its vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ingest.sink_protocol import Completed
from ingest.work import Decoded, RepPayload


@dataclass
class _Pending:
    """A file being encoded: its vectors (and token features) so far, and how many representations are left."""

    decoded: Decoded
    vectors: list[np.ndarray | None]
    tokens: list[np.ndarray | None]
    left: int


@dataclass
class Batch:
    """Representations of one modality to embed together, each with the file it belongs to."""

    modality: str
    entries: list[tuple[_Pending, int]]

    @property
    def reps(self) -> list[RepPayload]:
        """The representations, in batch order."""
        return [pending.decoded.reps[i] for pending, i in self.entries]


class Batches:
    """Per-modality buffers of representations waiting for the embedder; ``size`` of them make a batch."""

    def __init__(self, size: int, tokens: bool = False) -> None:
        self.size, self.tokens = max(1, size), tokens
        self._buffers: dict[str, list[tuple[_Pending, int]]] = {}

    def add(self, decoded: Decoded) -> Iterator[Batch]:
        """Queue a file's representations, yielding each batch the moment it fills (before the file's next
        representation is queued); iterate to the end, embedding and ``fill``-ing each batch as it comes."""
        n = len(decoded.reps)
        pending = _Pending(decoded, [None] * n, [None] * n, n)
        for i, rep in enumerate(decoded.reps):
            buffer = self._buffers.setdefault(rep.modality, [])
            buffer.append((pending, i))
            if len(buffer) >= self.size:
                yield Batch(rep.modality, self._buffers.pop(rep.modality))

    def waiting(self) -> list[str]:
        """The modalities with representations queued, oldest buffer first."""
        return list(self._buffers)

    def take(self, modality: str) -> Batch | None:
        """What is queued for ``modality`` as a (possibly short) batch, or None when nothing is."""
        entries = self._buffers.pop(modality, [])
        return Batch(modality, entries) if entries else None

    def fill(self, batch: Batch, vectors: np.ndarray, tokens: Sequence[np.ndarray | None]) -> list[Completed]:
        """Give a batch its vectors (rows in batch order) and token features; returns the files now complete.
        The representations' tensors are freed once encoded."""
        completed = []
        for (pending, i), vector, token in zip(batch.entries, vectors, tokens, strict=True):
            pending.vectors[i] = vector
            pending.tokens[i] = token
            pending.decoded.reps[i].batch = None
            pending.left -= 1
            if pending.left == 0:
                d = pending.decoded
                completed.append(Completed(d.task.uri, d.sha256, d.modality or "", d.reps, np.stack(pending.vectors),
                                           task=d.task, tokens=pending.tokens if self.tokens else None))
        return completed

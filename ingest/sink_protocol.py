"""What the pipeline asks of the catalog and hands it: ``Known`` rows, ``Completed`` items, ``Annotation``s, and
the ``Sink`` protocol (``ingest.sink.CatalogSink`` is the implementation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ingest.sources import Listing, TextRecord
from ingest.work import Decoded, FileTask, RepPayload


@dataclass(frozen=True)
class Known:
    """What the catalog holds for a uri: size, mtime, hash, status, and whether this model's vectors exist."""

    item_id: int
    size: int
    mtime: float
    sha256: str
    status: str
    has_vectors: bool
    error: str | None = None


@dataclass
class Completed:
    """A fully encoded item, ready to commit: its task or record, hash, modality, representations and vectors."""

    uri: str
    sha256: str
    modality: str
    reps: list[RepPayload]
    vectors: np.ndarray
    task: FileTask | None = None
    record: TextRecord | None = None
    tokens: list[np.ndarray] | None = None


@dataclass
class Annotation:
    """A listing's captions and metadata for an item already stored, with vectors (and tokens) for ``texts``: the
    captions its source lists that the item does not hold from that source yet."""

    listing: Listing
    texts: list[str]
    vectors: np.ndarray | None = None
    tokens: list[np.ndarray] | None = None


@dataclass
class AnnotateCounts:
    """What applying annotations changed: captions added and removed, items whose metadata changed, items changed."""

    captions_added: int = 0
    captions_removed: int = 0
    metadata_updated: int = 0
    items: int = 0


class Sink(Protocol):
    """Where ingest writes: the catalog (source of truth) and the indexes derived from it."""

    def lookup(self, uri: str) -> Known | None: ...
    def find_sha(self, sha256: str) -> int | None: ...
    def commit(self, done: list[Completed], failed: list[Decoded], touched: list[Decoded],
               copied: list[tuple[Decoded, int]]) -> None: ...
    def annotation_need(self, listing: Listing) -> list[str] | None: ...
    def annotate(self, annotations: list[Annotation]) -> AnnotateCounts: ...
    def drop_unlisted(self, sources: list[str], listed: set[tuple[str | None, str]]) -> int: ...
    def delete_missing(self, roots: list[str], seen: set[str]) -> int: ...

"""Enrichment: representations a model makes from a stored file's content (speech transcripts, text in images).

After the files are in, each enabled ``Enricher`` reads the ok items it has not read at its current version and
content (``Catalog.enrich_todo``), through the media readers of ``ingest.enrich_media``; its text segments are
embedded by the text tower and committed one transaction per batch (the item's older segments from that enricher
replaced, a record of the run kept even when nothing was found), so a rerun continues where a crash stopped and
never enriches an item twice for nothing. An enricher that fails on a file fails that enrichment alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from core.errors import XmodalError
from index.enrichments import EnrichTodo
from ingest.decode import DecodeSettings
from ingest.encoding import Encoding
from ingest.errors import DecodeError
from ingest.enrich_media import MEDIA_READERS, readable_modalities
from ingest.files import uri_path


@dataclass(frozen=True)
class Segment:
    """A piece of text found in a file, and where: seconds from the start of the media (None for a still image)."""

    text: str
    start: float | None = None
    end: float | None = None


class Enricher(Protocol):
    """Turns decoded media into text segments: ``name`` is its switch ("transcribe"), ``kind`` the representation
    kind it stores ("transcript"), ``reads`` the media it takes ("audio": 16 kHz mono ``AudioClip`` pieces with their
    offsets; "image": RGB images with their offsets or None), ``version`` what redoes items made by another."""

    name: str
    kind: str
    reads: str
    version: str

    def segments(self, media: Iterable[tuple[float | None, Any]]) -> list[Segment]:
        """The text found in ``media``, with absolute times; ``DecodeError`` for input it cannot read."""
        ...


@dataclass
class Enriched:
    """One item's enrichment, ready to commit: its segments and their vectors, or the reason it failed."""

    todo: EnrichTodo
    enricher: Enricher
    segments: list[Segment] = field(default_factory=list)
    vectors: np.ndarray | None = None
    tokens: list[np.ndarray] | None = None
    error: str | None = None


@dataclass
class EnrichCounts:
    """What one enricher did in one run: items read, items with text, segments stored, failures (uri, reason)."""

    items: int = 0
    with_text: int = 0
    segments: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


class EnrichSink(Protocol):
    """The catalog side of enrichment (``ingest.sink.CatalogSink``)."""

    def enrich_todo(self, name: str, version: str, modalities: Sequence[str]) -> list[EnrichTodo]: ...
    def enrich_commit(self, done: list[Enriched]) -> None: ...


def _read(enricher: Enricher, todo: EnrichTodo, settings: DecodeSettings) -> Enriched:
    reader = MEDIA_READERS[(todo.modality, enricher.reads)]
    try:
        found = enricher.segments(reader(uri_path(todo.uri), settings))
    except DecodeError as exc:
        return Enriched(todo, enricher, error=exc.reason)
    except (XmodalError, OSError, ValueError, RuntimeError) as exc:
        return Enriched(todo, enricher, error=f"{enricher.name} failed: {type(exc).__name__}: {exc}")
    kept = [s for s in found if s.text.strip()]
    return Enriched(todo, enricher, segments=kept)


def enrich(enrichers: Sequence[Enricher], sink: EnrichSink, encoding: Encoding, settings: DecodeSettings,
           batch_size: int = 32, on_item: Callable[[str, int, int], None] | None = None) -> dict[str, EnrichCounts]:
    """Run each enricher over the items it has not read yet; returns counts per enricher name."""
    counts: dict[str, EnrichCounts] = {}
    for enricher in enrichers:
        c = counts[enricher.name] = EnrichCounts()
        start = time.perf_counter()
        todo = sink.enrich_todo(enricher.name, enricher.version, readable_modalities(enricher.reads))
        queue: list[Enriched] = []
        for n, item in enumerate(todo, 1):
            done = _read(enricher, item, settings)
            c.items += 1
            if done.error:
                c.failures.append((item.uri, done.error))
            c.with_text += bool(done.segments)
            c.segments += len(done.segments)
            queue.append(done)
            if len(queue) >= batch_size or sum(len(q.segments) for q in queue) >= batch_size:
                _commit(queue, sink, encoding, batch_size)
                queue = []
            if on_item is not None:
                on_item(enricher.name, n, len(todo))
        _commit(queue, sink, encoding, batch_size)
        c.seconds = time.perf_counter() - start
    return counts


def _commit(queue: list[Enriched], sink: EnrichSink, encoding: Encoding, batch_size: int) -> None:
    if not queue:
        return
    vectors, tokens = encoding.embed_texts([s.text for q in queue for s in q.segments], batch_size)
    at = 0
    for q in queue:
        n = len(q.segments)
        q.vectors = vectors[at : at + n]
        q.tokens = list(tokens[at : at + n]) if encoding.tokens else None
        at += n
    sink.enrich_commit(queue)

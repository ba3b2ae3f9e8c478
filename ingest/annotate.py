"""Captions and metadata from listings onto items already stored: only captions new to an item are embedded."""

from __future__ import annotations

from typing import Iterable

from ingest.encoding import Encoding
from ingest.sink_protocol import AnnotateCounts, Annotation, Sink
from ingest.sources import Listing


def annotate(listings: Iterable[Listing], sink: Sink, encoding: Encoding, batch_size: int) -> AnnotateCounts:
    """Apply listings after the files are in: new captions go through the text tower (never the item's media); one
    transaction per batch of listings or captions, so a rerun recomputes what is left from the catalog."""
    total = AnnotateCounts()
    queue: list[Annotation] = []
    for listing in listings:
        texts = sink.annotation_need(listing)
        if texts is None:
            continue
        queue.append(Annotation(listing, texts))
        if len(queue) >= batch_size or sum(len(a.texts) for a in queue) >= batch_size:
            _add(total, _apply(queue, sink, encoding, batch_size))
            queue = []
    _add(total, _apply(queue, sink, encoding, batch_size))
    return total


def _apply(queue: list[Annotation], sink: Sink, encoding: Encoding, batch_size: int) -> AnnotateCounts:
    if not queue:
        return AnnotateCounts()
    vectors, tokens = encoding.embed_texts([t for a in queue for t in a.texts], batch_size)
    at = 0
    for a in queue:
        a.vectors = vectors[at : at + len(a.texts)]
        a.tokens = tokens[at : at + len(a.texts)] if encoding.tokens else None  # type: ignore[assignment]
        at += len(a.texts)
    return sink.annotate(queue)


def _add(total: AnnotateCounts, counts: AnnotateCounts) -> None:
    total.captions_added += counts.captions_added
    total.captions_removed += counts.captions_removed
    total.metadata_updated += counts.metadata_updated
    total.items += counts.items

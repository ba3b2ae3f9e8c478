"""The catalog side of ingest: plan lookups, per-batch commits, duplicate copies and deletions, for one model."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from core.modalities import modality_of_path
from index import Store
from index.enrichments import EnrichTodo, enrich_source
from ingest.enrich import Enriched
from ingest.files import file_uri, path_uri
from ingest.sink_protocol import Annotation, AnnotateCounts, Completed, Known
from ingest.sources import Listing
from ingest.work import Decoded, RepPayload


def _guess_modality(uri: str) -> str:
    return modality_of_path(uri.split("#", 1)[0]) or "text"


def _rep_key(kind: str, modality: str, offset: float | None, text: str | None) -> tuple:
    return (kind, modality, None if offset is None else round(float(offset), 3), text)


class CatalogSink:
    """Writes one model's ingest results into a store's catalog; indexes catch up from it afterwards."""

    def __init__(self, store: Store, model: str, tokens: bool = False) -> None:
        self.store, self.catalog, self.model, self.tokens = store, store.catalog, model, tokens
        self.weights: dict[str, str] = {}  # fingerprint per modality of the weights encoding now (set by the engine)
        self._with_vectors = self._items_with_vectors()

    def _write_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Write vectors, stamping their sets with ``weights`` when known (the catalog refuses other weights')."""
        if self.weights:
            self.catalog.write_vectors(self.model, ids, vectors, weights=self.weights)
        else:
            self.catalog.write_vectors(self.model, ids, vectors)

    def _items_with_vectors(self) -> set[int]:
        """Items encoded for this model (and, when tokens are wanted, with every representation's tokens)."""
        # with tokens wanted, items ingested before the preset had a re-ranker get encoded again, with tokens
        return self.catalog.items_with_vectors(self.model, with_tokens=self.tokens)

    def lookup(self, uri: str) -> Known | None:
        """What the catalog knows of ``uri`` for this model."""
        item = self.catalog.item_by_uri(uri)
        if item is None:
            return None
        return Known(item.id, -1 if item.size is None else item.size, -1.0 if item.mtime is None else item.mtime,
                     item.sha256 or "", item.status, item.id in self._with_vectors, item.error)

    def find_sha(self, sha256: str) -> int | None:
        """An ok item with this content and this model's vectors, if any (its vectors can be copied)."""
        for item in self.catalog.items_by_sha256(sha256):
            if item.id in self._with_vectors:
                return item.id
        return None

    def _write_item(self, uri: str, modality: str, sha256: str, size: int | None, mtime: float | None,
                    metadata: dict | None, reps: list[tuple], vectors: np.ndarray,
                    tokens: list[np.ndarray] | None = None) -> int:
        """Upsert an item and its own representations, reusing identical ones (other models' vectors stay); captions
        that manifests gave and metadata keys the file's source does not set are kept."""
        previous = self.catalog.item_by_uri(uri)
        merged = {**(previous.metadata if previous else {}), **(metadata or {})}
        item_id = self.catalog.upsert_item(uri, modality, sha256=sha256, size=size, mtime=mtime, metadata=merged)
        if previous and previous.sha256 != sha256:
            self.catalog.drop_enrichments(item_id)  # transcripts or OCR of the old content
        own = [r for r in self.catalog.representations_of(item_id) if r.source is None]
        existing = {_rep_key(r.kind, r.modality, r.offset_seconds, r.text): r.id for r in own}
        wanted = [_rep_key(*rep) for rep in reps]
        if not (previous and previous.sha256 == sha256 and set(wanted) <= set(existing)):
            self.catalog.remove_representation_ids([r.id for r in own])
            existing = {key: self.catalog.add_representation(item_id, key[0], key[1], offset_seconds=key[2], text=key[3])
                        for key in wanted}
        rep_ids = np.array([existing[k] for k in wanted], dtype=np.int64)
        self._write_vectors(rep_ids, vectors)
        if tokens is not None:
            self.catalog.write_tokens(self.model, rep_ids, tokens)
        self._with_vectors.add(item_id)
        return item_id

    @staticmethod
    def _reps(payloads: list[RepPayload]) -> list[tuple]:
        return [(p.kind, p.modality, p.offset, p.text) for p in payloads]

    def commit(self, done: list[Completed], failed: list[Decoded], touched: list[Decoded],
               copied: list[tuple[Decoded, int]]) -> None:
        """One transaction: encoded items, failures with reasons, unchanged content with new mtimes, copies."""
        with self.catalog.atomic():
            for c in done:
                task, record = c.task, c.record
                size = task.size if task else len(record.text.encode("utf-8"))  # type: ignore[union-attr]
                meta = dict((task.metadata if task else record.metadata) or {})  # type: ignore[union-attr]
                self._write_item(c.uri, c.modality, c.sha256, size, task.mtime if task else None, meta,
                                 self._reps(c.reps), c.vectors, c.tokens)
            for d in failed:
                previous = self.catalog.item_by_uri(d.task.uri)
                item_id = self.catalog.upsert_item(d.task.uri, d.modality or _guess_modality(d.task.uri),
                                                   sha256=d.sha256 or None, size=d.task.size, mtime=d.task.mtime,
                                                   metadata={**(previous.metadata if previous else {}),
                                                             **(d.task.metadata or {})})
                self.catalog.mark_failed(item_id, d.error or "unknown error")
                self._with_vectors.discard(item_id)
            for d in touched:
                item = self.catalog.item_by_uri(d.task.uri)
                self.catalog.upsert_item(d.task.uri, item.modality if item else _guess_modality(d.task.uri),
                                         sha256=d.sha256, size=d.task.size, mtime=d.task.mtime,
                                         metadata=item.metadata if item else None)
            for d, source_id in copied:  # the twin's own representations; captions belong to their item
                source = [r for r in self.catalog.representations_of(source_id)
                          if r.source is None and r.kind != "caption"]
                ids = np.array([r.id for r in source], dtype=np.int64)
                vectors = self.catalog.vectors_for(self.model, ids)
                stored = self.catalog.tokens_for(self.model, ids)
                tokens = [stored[int(i)] for i in ids] if len(stored) == len(ids) else None
                item_id = self._write_item(d.task.uri, self.catalog.item(source_id).modality, d.sha256, d.task.size,
                                           d.task.mtime, dict(d.task.metadata or {}),
                                           [(r.kind, r.modality, r.offset_seconds, r.text) for r in source], vectors,
                                           tokens)
                self._copy_enrichments(source_id, item_id, d.sha256)

    def _copy_enrichments(self, source_id: int, item_id: int, sha256: str) -> None:
        """Give a twin the transcripts and OCR its identical content already has (no model runs again)."""
        reps = self.catalog.representations_of(source_id)
        for row in self.catalog.enrichments_of(source_id):
            if row.sha256 != sha256:
                continue
            mine = [r for r in reps if r.source == enrich_source(row.name)]
            ids = np.array([r.id for r in mine], dtype=np.int64)
            new = self.catalog.replace_enrichment(item_id, row.name, mine[0].kind if mine else "", row.version,
                                                  sha256, [(r.offset_seconds, r.end_seconds, r.text or "")
                                                           for r in mine], row.error)
            if new:
                self._write_vectors(new, self.catalog.vectors_for(self.model, ids))
                stored = self.catalog.tokens_for(self.model, ids)
                if len(stored) == len(ids):
                    self.catalog.write_tokens(self.model, new, [stored[int(i)] for i in ids])

    def enrich_todo(self, name: str, version: str, modalities: Sequence[str]) -> list[EnrichTodo]:
        """Ok items of this model an enricher has not read at ``version`` and their current content."""
        return [t for t in self.catalog.enrich_todo(name, version, modalities) if t.item_id in self._with_vectors]

    def enrich_commit(self, done: list[Enriched]) -> None:
        """One transaction: each item's segments from its enricher replace the older ones, with their vectors; an item
        whose content changed meanwhile is left for the next run."""
        with self.catalog.atomic():
            for e in done:
                item = self.catalog.item(e.todo.item_id)
                if item.status != "ok" or item.sha256 != e.todo.sha256:
                    continue
                ids = self.catalog.replace_enrichment(item.id, e.enricher.name, e.enricher.kind, e.enricher.version,
                                                      e.todo.sha256, [(s.start, s.end, s.text) for s in e.segments],
                                                      e.error)
                if ids:
                    self._write_vectors(ids, e.vectors)  # type: ignore[arg-type]
                    if e.tokens is not None:
                        self.catalog.write_tokens(self.model, ids, e.tokens)

    def annotation_need(self, listing: Listing) -> list[str] | None:
        """The caption texts a listing needs vectors for ([] when only removals or metadata change), or None when
        it changes nothing (or its item is not an ok item of this model)."""
        item = self.catalog.item_by_uri(listing.uri)
        if item is None or item.status != "ok" or item.id not in self._with_vectors:
            return None
        texts: list[str] = []
        stale = False
        if listing.captions is not None:
            captions = [r for r in self.catalog.representations_of(item.id) if r.kind == "caption"]
            held = {r.text for r in captions if r.source == listing.source}
            texts = [t for t in listing.captions if t not in held]
            stale = any(r.source == listing.source and r.text not in listing.captions for r in captions)
        meta = bool(listing.metadata) and {**item.metadata, **(listing.metadata or {})} != item.metadata
        return texts if texts or stale or meta else None

    def annotate(self, annotations: list[Annotation]) -> AnnotateCounts:
        """One transaction: each listing's new captions added (with the vectors given), the captions its source no
        longer lists removed, captions stored before sources were recorded claimed, metadata merged."""
        counts = AnnotateCounts()
        with self.catalog.atomic():
            for note in annotations:
                item = self.catalog.item_by_uri(note.listing.uri)
                if item is None or item.status != "ok":
                    continue
                added, removed = self._captions(item.id, note) if note.listing.captions is not None else (0, 0)
                merged = {**item.metadata, **(note.listing.metadata or {})}
                if merged != item.metadata:
                    self.catalog.set_metadata(item.id, merged)
                    counts.metadata_updated += 1
                counts.captions_added += added
                counts.captions_removed += removed
                counts.items += bool(added or removed or merged != item.metadata)
        return counts

    def _captions(self, item_id: int, note: Annotation) -> tuple[int, int]:
        listing = note.listing
        captions = [r for r in self.catalog.representations_of(item_id) if r.kind == "caption"]
        wanted = set(listing.captions or ())
        held = {r.text for r in captions if r.source == listing.source}
        legacy = {r.text: r.id for r in captions if r.source is None}
        given = {t: i for i, t in enumerate(note.texts)}
        new_ids, rows = [], []
        for text in dict.fromkeys(listing.captions or ()):
            if text in held:
                continue
            if text in legacy and listing.source is not None:
                self.catalog.set_representation_source(legacy.pop(text), listing.source)
                continue
            new_ids.append(self.catalog.add_representation(item_id, "caption", "text", text=text, source=listing.source))
            rows.append(given[text])
        stale = [r.id for r in captions if r.source == listing.source and r.text not in wanted]
        self.catalog.remove_representation_ids(stale)
        if new_ids:
            ids = np.array(new_ids, dtype=np.int64)
            self._write_vectors(ids, note.vectors[rows])
            if note.tokens is not None:
                self.catalog.write_tokens(self.model, ids, [note.tokens[i] for i in rows])
        return len(new_ids), len(stale)

    def drop_unlisted(self, sources: list[str], listed: set[tuple[str | None, str]]) -> int:
        """Remove the captions each scanned source gave to files it no longer lists; returns how many went."""
        stale = [rep for source in sources for rep, uri in self.catalog.captions_from(source)
                 if (source, uri) not in listed]
        if stale:
            with self.catalog.atomic():
                self.catalog.remove_representation_ids(stale)
        return len(stale)

    def delete_missing(self, roots: list[str], seen: set[str]) -> int:
        """Mark deleted the items under a scanned folder (or from a scanned manifest) that are no longer there."""
        prefixes = [path_uri(r.rstrip(os.sep)) + (os.sep if os.path.isdir(r) else "#") for r in roots]
        # below a folder, a file whose name is not UTF-8 has a file:// uri (ingest.files.path_uri)
        prefixes += [file_uri(r.rstrip(os.sep)) + "/" for r in roots if os.path.isdir(r)]
        gone = [item for item in self.catalog.items()
                if item.status != "deleted" and item.uri not in seen and any(item.uri.startswith(p) for p in prefixes)]
        with self.catalog.atomic():
            for item in gone:
                self.catalog.mark_deleted(item.id)
                self._with_vectors.discard(item.id)
        return len(gone)

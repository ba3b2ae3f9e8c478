"""The ingest pipeline: plan against the catalog, decode in workers, encode in batches, commit per batch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from ingest.embedder import Embedder
from ingest.decode import DecodeSettings
from ingest.sources import Listing, Scan, TextRecord
from ingest.pool import DecodePool
from ingest.work import Decoded, FileTask, RepPayload, process, text_reps


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest: batch size, worker processes (0 = in-process), precision, retries, decode limits, and
    whether to store the re-ranker's token features (on when the preset has a re-ranker)."""

    batch_size: int = 32
    workers: int = 1
    precision: str = "fp32"
    retry_failed: bool = False
    prefetch_batches: int = 4
    decode: DecodeSettings = DecodeSettings()
    tokens: bool = False


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


@dataclass
class IngestSummary:
    """Counts and failures of one ingest run; ``failures`` lists (uri, reason); ``skipped`` counts the files a
    folder walk passed over (unsupported type, excluded, ...) by reason."""

    seen: int = 0
    added: int = 0
    unchanged: int = 0
    skipped_failed: int = 0
    touched: int = 0
    reused: int = 0
    failed: int = 0
    deleted: int = 0
    representations: int = 0
    captions_added: int = 0  # captions and metadata from manifests and caption files, also onto unchanged files
    captions_removed: int = 0
    metadata_updated: int = 0
    annotated: int = 0  # items whose captions or metadata changed that way
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (uri, caveat) of files ingested only in part


@dataclass
class _Pending:
    decoded: Decoded
    vectors: list[np.ndarray | None]
    left: int
    tokens: list[np.ndarray | None] = field(default_factory=list)


class Pipeline:
    """Runs one ingest: ``run(scan)`` plans, decodes, encodes and commits, calling ``on_progress`` as it goes."""

    def __init__(self, encoder: Embedder, sink: Sink, options: IngestOptions = IngestOptions(),
                 on_progress: Callable[[IngestSummary, int], None] | None = None) -> None:
        self.encoder, self.sink, self.options = encoder, sink, options
        self.on_progress = on_progress or (lambda summary, total: None)
        self.summary = IngestSummary()
        self._buffers: dict[str, list[tuple[_Pending, int]]] = {}
        self._ready: list[Completed] = []
        self._failed: list[Decoded] = []
        self._touched: list[Decoded] = []
        self._copied: list[tuple[Decoded, int]] = []
        self._parked: dict[str, list[Decoded]] = {}
        self._in_run: dict[str, str] = {}
        self._record_listings: list[Listing] = []  # unchanged text records whose row's metadata may have changed

    # -- planning ----------------------------------------------------------------------------------
    def _plan(self, scan: Scan) -> tuple[list[FileTask], list[TextRecord]]:
        tasks, records = [], []
        for task in scan.files:
            known = self.sink.lookup(task.uri)
            if known and known.size == task.size and known.mtime == task.mtime:
                if known.status == "ok" and known.has_vectors:
                    self.summary.unchanged += 1
                    continue
                if known.status == "failed" and not self.options.retry_failed:
                    self.summary.skipped_failed += 1
                    self.summary.failures.append((task.uri, f"failed before, unchanged since: {known.error}"))
                    continue
            good = known is not None and known.status == "ok" and known.has_vectors
            tasks.append(FileTask(**{**task.__dict__, "known_sha256": known.sha256 if good else None}))
        for record in scan.records:
            known = self.sink.lookup(record.uri)
            if known and known.sha256 == record.sha256 and known.status == "ok" and known.has_vectors:
                self.summary.unchanged += 1
                if record.metadata:
                    self._record_listings.append(Listing(record.uri, None, None, record.metadata))
            else:
                records.append(record)
        return tasks, records

    # -- decoding ----------------------------------------------------------------------------------
    def _decoded(self, tasks: list[FileTask]) -> Iterator[Decoded]:
        pre = {m: self.encoder.preprocessor(m) for m in self.encoder.modalities if m != "text"}
        if self.options.workers <= 0:
            for task in tasks:
                yield process(task, pre, self.options.decode)
            return
        limit = max(1, self.options.prefetch_batches * self.options.batch_size)
        with DecodePool(self.options.workers, pre, self.options.decode) as pool:
            yield from pool.map(tasks, limit)

    # -- batching and encoding ---------------------------------------------------------------------
    def _accept(self, decoded: Decoded) -> None:
        self.summary.seen += 1
        if decoded.note and not decoded.error:
            self.summary.notes.append((decoded.task.uri, decoded.note))
        if decoded.error:
            self._failed.append(decoded)
        elif decoded.unchanged:
            self._touched.append(decoded)
        elif decoded.sha256 in self._in_run:
            self._parked.setdefault(decoded.sha256, []).append(decoded)
        elif (source := self.sink.find_sha(decoded.sha256)) is not None:
            self._copied.append((decoded, source))
        else:
            self._encode(decoded)

    def _encode(self, decoded: Decoded) -> None:
        """Queue a decoded file's representations for encoding; its content is now in this run."""
        self._in_run[decoded.sha256] = decoded.task.uri
        pending = _Pending(decoded, [None] * len(decoded.reps), len(decoded.reps), [None] * len(decoded.reps))
        for i, rep in enumerate(decoded.reps):
            buffer = self._buffers.setdefault(rep.modality, [])
            buffer.append((pending, i))
            if len(buffer) >= self.options.batch_size:
                self._flush(rep.modality)

    def _flush(self, modality: str) -> None:
        entries = self._buffers.pop(modality, [])
        if not entries:
            return
        reps = [p.decoded.reps[i] for p, i in entries]
        if modality == "text":
            batch = self.encoder.preprocess("text", [r.text for r in reps])
        else:
            batch = {k: torch.cat([r.batch[k] for r in reps]) for k in reps[0].batch}
        vectors, tokens = self._embed(modality, batch)
        for (pending, i), vector, token in zip(entries, vectors, tokens):
            pending.vectors[i] = vector
            pending.tokens[i] = token
            pending.decoded.reps[i].batch = None  # free the tensors once encoded
            pending.left -= 1
            if pending.left == 0:
                d = pending.decoded
                self._ready.append(Completed(d.task.uri, d.sha256, d.modality or "", d.reps, np.stack(pending.vectors),
                                             task=d.task, tokens=pending.tokens if self.options.tokens else None))
        self._commit()

    def _embed(self, modality: str, batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, list]:
        """Vectors, and token features when asked (one tower pass either way)."""
        if self.options.tokens:
            return self.encoder.embed_with_tokens(modality, batch, self.options.precision)
        vectors = self.encoder.embed(modality, batch, self.options.precision)
        return vectors, [None] * len(vectors)

    def _commit(self) -> None:
        if not (self._ready or self._failed or self._touched or self._copied):
            return
        self.sink.commit(self._ready, self._failed, self._touched, self._copied)
        s = self.summary
        s.added += len(self._ready)
        s.representations += sum(len(c.reps) for c in self._ready)
        s.failed += len(self._failed)
        s.failures += [(d.task.uri, d.error or "") for d in self._failed]
        s.touched += len(self._touched)
        s.reused += len(self._copied)
        # Files whose content was being encoded under another path copy its vectors once those are committed;
        # content committed is no longer "in the run", so later twins find it in the catalog instead.
        twins = [twin for done in self._ready for twin in self._parked.pop(done.sha256, [])]
        for done in self._ready:
            self._in_run.pop(done.sha256, None)
        self._ready, self._failed, self._touched = [], [], []
        self._copied = []
        for twin in twins:
            source = self.sink.find_sha(twin.sha256)
            if source is not None:
                self._copied.append((twin, source))
            else:  # never silently dropped: encode it itself
                self._encode(twin)
        if self._copied:
            self._commit()

    def _records(self, records: list[TextRecord]) -> None:
        size = self.options.batch_size
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            reps = [self._record_reps(r) for r in chunk]  # a long record becomes passages, like a long file
            flat = [rep.text for group in reps for rep in group]
            vectors, tokens = [], []
            for at in range(0, len(flat), size):
                v, t = self._embed("text", self.encoder.preprocess("text", flat[at : at + size]))
                vectors.append(v)
                tokens += list(t)
            stacked, at = np.concatenate(vectors), 0
            for r, group in zip(chunk, reps):
                part = slice(at, at + len(group))
                self._ready.append(Completed(r.uri, r.sha256, "text", group, stacked[part], record=r,
                                             tokens=tokens[part] if self.options.tokens else None))
                at += len(group)
            self.summary.seen += len(chunk)
            self._commit()

    def _record_reps(self, record: TextRecord) -> list[RepPayload]:
        reps, note = text_reps(record.text, self.options.decode.passages)
        if note:
            self.summary.notes.append((record.uri, note))
        return reps or [RepPayload("text", "text", text=record.text)]

    # -- captions and metadata onto stored items ----------------------------------------------------
    def _annotate(self, listings: list[Listing]) -> None:
        """Apply listings after the files are in: only captions new to an item are embedded (text tower), never
        its media; one transaction per batch, and a rerun recomputes what is left from the catalog."""
        queue: list[Annotation] = []
        for listing in listings:
            texts = self.sink.annotation_need(listing)
            if texts is None:
                continue
            queue.append(Annotation(listing, texts))
            if len(queue) >= self.options.batch_size or sum(len(a.texts) for a in queue) >= self.options.batch_size:
                self._apply(queue)
                queue = []
        self._apply(queue)

    def _apply(self, queue: list[Annotation]) -> None:
        if not queue:
            return
        flat = [t for a in queue for t in a.texts]
        vectors, tokens = np.zeros((0, 0), dtype=np.float32), []
        if flat:
            parts = [self._embed("text", self.encoder.preprocess("text", flat[i : i + self.options.batch_size]))
                     for i in range(0, len(flat), self.options.batch_size)]
            vectors, tokens = np.concatenate([v for v, _ in parts]), [t for _, ts in parts for t in ts]
        at = 0
        for a in queue:
            a.vectors = vectors[at : at + len(a.texts)]
            a.tokens = tokens[at : at + len(a.texts)] if self.options.tokens else None
            at += len(a.texts)
        counts = self.sink.annotate(queue)
        s = self.summary
        s.captions_added += counts.captions_added
        s.captions_removed += counts.captions_removed
        s.metadata_updated += counts.metadata_updated
        s.annotated += counts.items

    def run(self, scan: Scan) -> IngestSummary:
        """Ingest everything in ``scan``; returns the summary (failures are counted, never raised)."""
        start = time.perf_counter()
        tasks, records = self._plan(scan)
        total = len(tasks) + len(records)
        self.summary.skipped = dict(sorted(scan.skipped.items()))
        for uri, reason in scan.errors:
            self.summary.failed += 1
            self.summary.failures.append((uri, reason))
        for decoded in self._decoded(tasks):
            self._accept(decoded)
            if len(self._failed) + len(self._touched) + len(self._copied) >= self.options.batch_size:
                self._commit()
            self.on_progress(self.summary, total)
        while self._buffers:  # flushing commits, which may queue twins whose source vanished
            for modality in list(self._buffers):
                self._flush(modality)
        self._commit()
        self._records(records)
        self._annotate([*scan.listings, *self._record_listings])
        self.summary.captions_removed += self.sink.drop_unlisted(scan.sources, {(l.source, l.uri) for l in scan.listings})
        seen = {t.uri for t in scan.files} | {r.uri for r in scan.records}
        self.summary.deleted = self.sink.delete_missing(scan.roots, seen)
        self.summary.seconds = time.perf_counter() - start
        self.on_progress(self.summary, total)
        return self.summary

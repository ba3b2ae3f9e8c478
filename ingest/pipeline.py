"""The ingest pipeline: plan against the catalog, decode with a runner, encode in batches, commit per batch.

The parts live apart and are tested apart: ``plan`` (what needs work), ``runner`` (decoding), ``batching``,
``twins`` (content already in flight), ``commits`` (one transaction per batch), ``annotate`` (captions onto stored
items); ``Pipeline`` routes each decoded file between them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from ingest.annotate import annotate
from ingest.batching import Batch, Batches
from ingest.commits import Commits
from ingest.decode import DecodeSettings
from ingest.embedder import Embedder
from ingest.enrich import EnrichSink, Enricher, enrich
from ingest.encoding import Encoding
from ingest.plan import plan
from ingest.runner import DEFAULT_RUNNER, Encoded, RunnerSpec, runner_factory
from ingest.sink_protocol import AnnotateCounts, Annotation, Completed, Known, Sink
from ingest.sources import Scan, TextRecord
from ingest.summary import IngestSummary
from ingest.twins import Twins
from ingest.work import Decoded, FileTask, RepPayload, text_reps

__all__ = [
    "AnnotateCounts", "Annotation", "Completed", "IngestOptions", "IngestSummary", "Known", "Pipeline", "Sink",
]


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest: batch size, the runner (by name, ``ingest.runner.RUNNERS``) and its workers (for ``"local"``,
    0 = in-process), precision, retries, decode limits, and whether to store the re-ranker's token features (on
    when the preset has a re-ranker)."""

    batch_size: int = 32
    workers: int = 1
    precision: str = "fp32"
    retry_failed: bool = False
    prefetch_batches: int = 4
    decode: DecodeSettings = DecodeSettings()
    tokens: bool = False
    runner: str = DEFAULT_RUNNER
    address: str | None = None  # the Ray cluster for runner "ray" (None: a local instance sized to this machine)
    bulk: str | None = None  # bulk mode: this model's vectors go to Parquet files in this folder (ingest.bulk)


class Pipeline:
    """Runs one ingest: ``run(scan)`` plans, decodes, encodes and commits, calling ``on_progress`` as it goes."""

    def __init__(self, encoder: Embedder, sink: Sink, options: IngestOptions = IngestOptions(),
                 on_progress: Callable[[IngestSummary, int], None] | None = None,
                 enrichers: Sequence[Enricher] = ()) -> None:
        self.encoder, self.sink, self.options, self.enrichers = encoder, sink, options, tuple(enrichers)
        self.on_progress = on_progress or (lambda summary, total: None)
        self.runner = runner_factory(options.runner)  # an unknown name fails before any file is read
        self.summary = IngestSummary()
        self.encoding = Encoding(encoder, options.precision, options.tokens)
        self.batches = Batches(options.batch_size, options.tokens)
        self.commits = Commits(sink, self.summary)
        self.twins = Twins()

    # -- decoding ----------------------------------------------------------------------------------
    def _decoded(self, tasks: list[FileTask]) -> Iterator[Decoded]:
        pre = {m: self.encoder.preprocessor(m) for m in self.encoder.modalities if m != "text"}
        limit = max(1, self.options.prefetch_batches * self.options.batch_size)
        with self.runner(RunnerSpec(self.options.workers, pre, self.options.decode, encoding=self.encoding,
                                    batch_size=self.options.batch_size, address=self.options.address)) as runner:
            yield from runner.map(tasks, limit)

    # -- routing one decoded file ------------------------------------------------------------------
    def _accept(self, decoded: Decoded) -> None:
        self.summary.seen += 1
        if decoded.note and not decoded.error:
            self.summary.notes.append((decoded.task.uri, decoded.note))
        if decoded.error:
            self.commits.failed.append(decoded)
        elif decoded.unchanged:
            self.commits.touched.append(decoded)
        elif self.twins.in_flight(decoded.sha256):
            self.twins.park(decoded)
        elif (source := self.sink.find_sha(decoded.sha256)) is not None:
            self.commits.copied.append((decoded, source))
        else:
            self._encode(decoded)

    def _encode(self, decoded: Decoded) -> None:
        """Queue a decoded file's representations for encoding; its content is now in this run."""
        self.twins.claim(decoded)
        if isinstance(decoded, Encoded):  # the runner encoded it (ingest.ray_runner's actors): complete as it is
            self.commits.done.append(Completed(decoded.task.uri, decoded.sha256, decoded.modality or "", decoded.reps,
                                               decoded.vectors, task=decoded.task, tokens=decoded.tokens))
            return
        for batch in self.batches.add(decoded):
            self._embed(batch)

    def _embed(self, batch: Batch) -> None:
        vectors, tokens = self.encoding.embed_reps(batch.modality, batch.reps)
        self.commits.done += self.batches.fill(batch, vectors, tokens)
        self._commit()

    def _commit(self) -> None:
        """Commit what waits; twins of the content just committed copy its vectors (or, should it be gone, are
        encoded themselves: never silently dropped)."""
        if self.commits.empty():
            return
        done = self.commits.flush()
        for twin in self.twins.release(c.sha256 for c in done):
            source = self.sink.find_sha(twin.sha256)
            if source is not None:
                self.commits.copied.append((twin, source))
            else:
                self._encode(twin)
        if self.commits.copied:
            self._commit()

    def _drain(self) -> None:
        """Embed every short batch left; flushing commits, which may queue twins whose source vanished."""
        while self.batches.waiting():
            for modality in self.batches.waiting():
                batch = self.batches.take(modality)
                if batch is not None:
                    self._embed(batch)

    # -- text records --------------------------------------------------------------------------------
    def _records(self, records: list[TextRecord]) -> None:
        size = self.options.batch_size
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            reps = [self._record_reps(r) for r in chunk]  # a long record becomes passages, like a long file
            vectors, tokens = self.encoding.embed_texts([rep.text or "" for group in reps for rep in group], size)
            at = 0
            for r, group in zip(chunk, reps):
                part = slice(at, at + len(group))
                self.commits.done.append(Completed(r.uri, r.sha256, "text", group, vectors[part], record=r,
                                                   tokens=tokens[part] if self.options.tokens else None))
                at += len(group)
            self.summary.seen += len(chunk)
            self._commit()

    def _record_reps(self, record: TextRecord) -> list[RepPayload]:
        reps, note = text_reps(record.text, self.options.decode.passages)
        if note:
            self.summary.notes.append((record.uri, note))
        return reps or [RepPayload("text", "text", text=record.text)]

    def _enrich(self) -> None:
        """Transcripts, OCR...: the enabled enrichers over every item they have not read (also older items)."""
        if self.enrichers:
            sink: EnrichSink = self.sink  # type: ignore[assignment]
            self.summary.enriched = enrich(self.enrichers, sink, self.encoding, self.options.decode,
                                           self.options.batch_size)

    def enrich_only(self) -> IngestSummary:
        """Run only the enrichers, over the items already stored (no folder is scanned, nothing is deleted)."""
        start = time.perf_counter()
        self._enrich()
        self.summary.seconds = time.perf_counter() - start
        return self.summary

    def run(self, scan: Scan) -> IngestSummary:
        """Ingest everything in ``scan``; returns the summary (failures are counted, never raised)."""
        start = time.perf_counter()
        todo = plan(scan, self.sink, self.summary, self.options.retry_failed)
        total = len(todo.tasks) + len(todo.records)
        self.summary.skipped = dict(sorted(scan.skipped.items()))
        for uri, reason in scan.errors:
            self.summary.failed += 1
            self.summary.failures.append((uri, reason))
        for decoded in self._decoded(todo.tasks):
            self._accept(decoded)
            if self.commits.unencoded() + len(self.commits.done) >= self.options.batch_size:
                self._commit()
            self.on_progress(self.summary, total)
        self._drain()
        self._commit()
        self._records(todo.records)
        counts = annotate([*scan.listings, *todo.record_listings], self.sink, self.encoding, self.options.batch_size)
        s = self.summary
        s.captions_added += counts.captions_added
        s.captions_removed += counts.captions_removed
        s.metadata_updated += counts.metadata_updated
        s.annotated += counts.items
        s.captions_removed += self.sink.drop_unlisted(scan.sources, {(l.source, l.uri) for l in scan.listings})
        seen = {t.uri for t in scan.files} | {r.uri for r in scan.records}
        s.deleted = self.sink.delete_missing(scan.roots, seen)
        self._enrich()
        s.seconds = time.perf_counter() - start
        self.on_progress(s, total)
        return s

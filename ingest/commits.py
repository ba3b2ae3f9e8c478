"""Commits: finished work collected for the sink and written one transaction at a time, counted in the summary."""

from __future__ import annotations

from ingest.sink_protocol import Completed, Sink
from ingest.summary import IngestSummary
from ingest.work import Decoded


class Commits:
    """Work waiting for the sink: encoded items, failures, unchanged files (new mtimes) and copies of stored twins.

    ``flush`` writes whatever waits in one ``Sink.commit`` -- a batch is in the catalog whole or not at all, so a
    killed ingest resumes from the last flush -- and adds it to the summary.
    """

    def __init__(self, sink: Sink, summary: IngestSummary) -> None:
        self.sink, self.summary = sink, summary
        self.done: list[Completed] = []
        self.failed: list[Decoded] = []
        self.touched: list[Decoded] = []
        self.copied: list[tuple[Decoded, int]] = []

    def unencoded(self) -> int:
        """How many waiting entries needed no encoding (failures, touches, copies): the pipeline bounds these."""
        return len(self.failed) + len(self.touched) + len(self.copied)

    def empty(self) -> bool:
        """Whether nothing waits."""
        return not (self.done or self.failed or self.touched or self.copied)

    def flush(self) -> list[Completed]:
        """Commit everything waiting in one transaction; returns the encoded items it committed."""
        if self.empty():
            return []
        done, failed, touched, copied = self.done, self.failed, self.touched, self.copied
        self.sink.commit(done, failed, touched, copied)
        s = self.summary
        s.added += len(done)
        s.representations += sum(len(c.reps) for c in done)
        s.failed += len(failed)
        s.failures += [(d.task.uri, d.error or "") for d in failed]
        s.touched += len(touched)
        s.reused += len(copied)
        self.done, self.failed, self.touched, self.copied = [], [], [], []
        return done

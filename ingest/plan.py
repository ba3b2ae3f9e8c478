"""Planning: which scanned files and records need work, against what the catalog already holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.sink_protocol import Sink
from ingest.sources import Listing, Scan, TextRecord
from ingest.summary import IngestSummary
from ingest.work import FileTask


@dataclass
class Plan:
    """The files to decode (with the stored hash when their vectors exist), the text records to encode, and the
    metadata of unchanged records (their row may still need it merged)."""

    tasks: list[FileTask] = field(default_factory=list)
    records: list[TextRecord] = field(default_factory=list)
    record_listings: list[Listing] = field(default_factory=list)


def plan(scan: Scan, sink: Sink, summary: IngestSummary, retry_failed: bool = False) -> Plan:
    """What to do for ``scan``: a file whose size and mtime are unchanged is skipped when it is stored with vectors
    (or failed before, unless ``retry_failed``); a record is skipped when its hash is; skips count in ``summary``."""
    out = Plan()
    for task in scan.files:
        known = sink.lookup(task.uri)
        if known and known.size == task.size and known.mtime == task.mtime:
            if known.status == "ok" and known.has_vectors:
                summary.unchanged += 1
                continue
            if known.status == "failed" and not retry_failed:
                summary.skipped_failed += 1
                summary.failures.append((task.uri, f"failed before, unchanged since: {known.error}"))
                continue
        good = known is not None and known.status == "ok" and known.has_vectors
        out.tasks.append(FileTask(**{**task.__dict__, "known_sha256": known.sha256 if good else None}))
    for record in scan.records:
        known = sink.lookup(record.uri)
        if known and known.sha256 == record.sha256 and known.status == "ok" and known.has_vectors:
            summary.unchanged += 1
            if record.metadata:
                out.record_listings.append(Listing(record.uri, None, None, record.metadata))
        else:
            out.records.append(record)
    return out

"""What one ingest run did: the counts and failures the CLI prints and the progress bar shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.enrich import EnrichCounts


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
    enriched: dict[str, EnrichCounts] = field(default_factory=dict)  # per enricher name (transcribe, ocr)
    reembedded: int = 0  # stored vectors re-embedded in place with new weights (--reembed)

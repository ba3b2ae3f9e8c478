"""A rich progress bar for ingest: files/s, ETA and ok/unchanged/failed counts, on stderr."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ingest.summary import IngestSummary


class IngestProgress:
    """Context manager whose ``update(summary, total)`` is the pipeline's ``on_progress`` callback."""

    def __init__(self, enabled: bool = True) -> None:
        self.console = Console(file=sys.stderr)
        self.enabled = enabled and self.console.is_terminal
        self.progress = Progress(
            TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]:.1f} files/s"),
            TextColumn("ok {task.fields[ok]} · unchanged {task.fields[same]} · failed {task.fields[failed]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, disable=not self.enabled,
        )
        self.task = self.progress.add_task("ingest", total=None, rate=0.0, ok=0, same=0, failed=0)

    def __enter__(self) -> "IngestProgress":
        self.progress.start()
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()

    def update(self, summary: IngestSummary, total: int) -> None:
        """Show the counts so far."""
        elapsed = self.progress.tasks[0].elapsed or 1e-9
        self.progress.update(
            self.task, total=total, completed=summary.seen, rate=summary.seen / elapsed,
            ok=summary.added + summary.reused + summary.touched, same=summary.unchanged, failed=summary.failed,
        )

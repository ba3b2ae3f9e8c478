"""Exceptions of the bench commands; ``xmodal bench`` maps them to messages and exit codes like every engine error."""

from __future__ import annotations

from engine import XmodalError


class BenchError(XmodalError):
    """A benchmark stage failed (a child process exited non-zero, or wrote no results)."""

    exit_code = 1


class InvalidBenchArgs(BenchError, ValueError):
    """A benchmark was asked for nonsense (an unparseable size, an unknown stage)."""

    exit_code = 2


class PeerUnavailable(BenchError):
    """A peer tool cannot be installed or run here; its comparison is skipped with this message."""


class MarkersNotFound(BenchError):
    """The README lacks the ``<!-- figures:begin -->`` / ``<!-- figures:end -->`` markers."""

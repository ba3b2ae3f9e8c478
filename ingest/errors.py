"""Exceptions raised by the ingest layer."""

from __future__ import annotations

from pathlib import Path

from core.errors import XmodalError


class IngestError(XmodalError):
    """Base of all ingest errors."""

    exit_code = 6


class DecodeError(IngestError):
    """One file could not be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ManifestError(IngestError, ValueError):
    """A manifest or captions file is malformed; ``path`` and ``line`` (1-based, or None) say where."""

    exit_code = 2

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")

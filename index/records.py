"""Plain records returned by the catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Item:
    """One file or text record."""

    id: int
    uri: str
    modality: str
    sha256: str | None
    size: int | None
    mtime: float | None
    status: str
    error: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    generation: int = 0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Item:
        """Build from an ``items`` row (metadata JSON decoded)."""
        return cls(**{**row, "metadata": json.loads(row["metadata"] or "{}")})


@dataclass(frozen=True)
class Representation:
    """One searchable view of an item: the image, its caption, an audio segment..."""

    id: int
    item_id: int
    kind: str
    modality: str
    offset_seconds: float | None
    text: str | None
    generation: int = 0
    source: str | None = None  # the manifest or caption file that gave a caption (None: the file itself)
    end_seconds: float | None = None  # where a timed representation (a transcript segment) ends


@dataclass(frozen=True)
class Hit:
    """What the query layer needs to turn a representation id (a FAISS id) into a result."""

    representation_id: int
    item_id: int
    uri: str
    item_modality: str
    kind: str
    modality: str
    offset_seconds: float | None
    text: str | None
    status: str
    metadata: dict[str, Any] = field(default_factory=dict)
    end_seconds: float | None = None


@dataclass(frozen=True)
class VectorSet:
    """All vectors of one model for one modality: one FAISS index."""

    model: str
    modality: str
    dim: int
    count: int
    weights: str | None = None  # fingerprint of the weights that made the vectors (None: unknown)


@dataclass(frozen=True)
class Changes:
    """What an index at some generation must do to reach the catalog's generation."""

    since: int
    generation: int
    removed: np.ndarray  # ids to remove (tombstoned, or rewritten and re-added below)
    upserted: np.ndarray  # ids whose current vectors must be (re-)added

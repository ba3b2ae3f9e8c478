"""What a search covers: ``targets`` are the kinds of *result* item; ``indexes`` the raw vector sets searched.

A user asking for images wants image items however they match (their pixels, captions, OCR lines), so targets
only filter items by modality while every index is searched. ``indexes`` keeps the per-index choice that
benchmarks measuring one direction (text->image vectors alone) need.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from core.errors import InvalidInput
from core.modalities import MODALITIES as KINDS
from engine.query.search import Filters


def _checked(values: Sequence[str] | None, what: str) -> list[str]:
    found = list(dict.fromkeys(values or ()))
    unknown = [v for v in found if v not in KINDS]
    if unknown:
        raise InvalidInput(f"{what} must be among {', '.join(KINDS)}; got {', '.join(map(repr, unknown))}")
    return found


def plan_search(available: Sequence[str], targets: Sequence[str] | None, indexes: Sequence[str] | None,
                filters: Filters) -> tuple[list[str], Filters] | None:
    """The indexes to search and the filters that keep only the requested result kinds; None when nothing can
    match (the requested kinds and ``filters.modalities`` do not overlap)."""
    kinds = _checked(targets, "targets")
    chosen = _checked(indexes, "indexes")
    searched = [m for m in (chosen or available) if m in available]
    if not kinds:
        return searched, filters
    if filters.modalities:
        kinds = [m for m in kinds if m in filters.modalities]
        if not kinds:
            return None
    return searched, dataclasses.replace(filters, modalities=tuple(kinds))

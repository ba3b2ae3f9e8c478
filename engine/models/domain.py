"""Telling the user when their files are outside what a preset was made for (``Preset.domain``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from engine.models.presets import Preset, list_presets

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".heic", ".heif", ".webp", ".tif", ".tiff"})
SCAN_LIMIT = 5000  # entries looked at before giving up: the note must not cost a second walk of a large tree


def _looks_like_photos(paths: Iterable[str | Path], limit: int) -> bool:
    """Whether any of the first ``limit`` files under ``paths`` has a camera/photo file suffix."""
    seen = 0
    for path in paths:
        path = Path(path)
        if path.suffix.lower() in PHOTO_SUFFIXES:
            return True
        if not path.is_dir():
            continue
        for _, _, files in os.walk(path):
            for name in files:
                if os.path.splitext(name)[1].lower() in PHOTO_SUFFIXES:
                    return True
                seen += 1
                if seen >= limit:
                    return False
    return False


def photo_note(preset: Preset, paths: Iterable[str | Path], limit: int = SCAN_LIMIT) -> str | None:
    """One line for a user ingesting photos with a preset whose image tower is not made for them, else None."""
    if preset.handles_photos or "image" not in preset.towers or not _looks_like_photos(paths, limit):
        return None
    real = [p.name for p in list_presets() if p.domain.get("photos") and not p.random_weights]
    what = preset.domain.get("image", "not photographs")
    hint = f"use --preset {real[0]} for photos (`xmodal models` shows what each preset is for)" if real else \
        "no installed preset is made for photos (`xmodal models`)"
    return f"note: {preset.name}'s image tower knows {what.split(';')[0]}, not photos: {hint}"

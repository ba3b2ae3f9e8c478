"""Queries: text, an image (path, bytes or PIL), an audio clip (path, bytes or array), or a weighted mix."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import InvalidInput
from engine.models import AudioClip, Encoder


@dataclass(frozen=True)
class QueryPart:
    """One part of a query: its modality, its value, and its weight in the mix."""

    modality: str
    value: Any
    weight: float = 1.0


def _image(value: Any) -> Image.Image:
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    try:
        raw = value if isinstance(value, bytes) else Path(value).read_bytes()
        with Image.open(io.BytesIO(raw)) as image:
            image.seek(0)
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"query image could not be read: {exc}") from exc


def _audio(value: Any) -> AudioClip:
    if isinstance(value, AudioClip):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return AudioClip(np.asarray(value[0], dtype=np.float32), int(value[1]))
    try:
        raw = value if isinstance(value, bytes) else Path(value).read_bytes()
        samples, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        raise InvalidInput(f"query audio could not be read: {exc}") from exc
    if len(samples) == 0:
        raise InvalidInput("query audio has no samples")
    return AudioClip(samples.mean(axis=1), int(rate))


def as_parts(query: Any) -> list[QueryPart]:
    """Normalise a query: a str is text; a PIL image is an image; an ``AudioClip`` is audio; a list mixes parts."""
    if isinstance(query, QueryPart):
        return [query]
    if isinstance(query, str):
        return [QueryPart("text", query)]
    if isinstance(query, Image.Image):
        return [QueryPart("image", query)]
    if isinstance(query, AudioClip):
        return [QueryPart("audio", query)]
    if isinstance(query, Sequence) and query and all(isinstance(p, QueryPart) for p in query):
        return list(query)
    raise InvalidInput("a query is text, a PIL image, an AudioClip, a QueryPart, or a list of QueryParts")


def encode_query(encoder: Encoder, parts: Sequence[QueryPart]) -> np.ndarray:
    """One unit vector (1, dim): the weighted sum of the parts' vectors, renormalised."""
    if not parts:
        raise InvalidInput("empty query")
    total = np.zeros((1, encoder.dim), dtype=np.float32)
    for part in parts:
        if part.modality == "text":
            if not isinstance(part.value, str) or not part.value.strip():
                raise InvalidInput("text query is empty")
            value: Any = part.value
        elif part.modality == "image":
            value = _image(part.value)
        elif part.modality == "audio":
            value = _audio(part.value)
        else:
            raise InvalidInput(f"unknown query modality {part.modality!r}")
        total += part.weight * encoder.encode(part.modality, [value])
    norm = float(np.linalg.norm(total))
    if norm == 0.0 or not np.isfinite(norm):
        raise InvalidInput("the query's weighted parts cancel out")
    return total / norm

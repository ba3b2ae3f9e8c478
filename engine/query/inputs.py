"""Queries: text, an image (path, bytes or PIL), an audio clip (path, bytes or array), or a weighted mix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from core.errors import InvalidInput
from engine.models import AudioClip, Encoder
from ingest.decode import DecodeSettings, decode_audio, decode_image
from ingest.errors import DecodeError

# A query is a short example, not a recording to index: a long or many-channel upload (a 660 KB FLAC can decode to
# minutes of 8-channel 192 kHz audio) is refused from its header instead of holding the engine thread.
MAX_QUERY_AUDIO_S = 120.0
QUERY_DECODE = DecodeSettings(max_audio_s=MAX_QUERY_AUDIO_S, max_audio_samples=int(MAX_QUERY_AUDIO_S * 48_000 * 2),
                              max_audio_bytes=64 << 20, max_image_bytes=64 << 20)


@dataclass(frozen=True)
class QueryPart:
    """One part of a query: its modality, its value, and its weight in the mix."""

    modality: str
    value: Any
    weight: float = 1.0


def _read(value: Any, what: str) -> bytes:
    try:
        return value if isinstance(value, bytes) else Path(value).read_bytes()
    except (OSError, TypeError, ValueError) as exc:
        raise InvalidInput(f"query {what} could not be read: {exc}") from exc


def _image(value: Any) -> Image.Image:
    """A query image decoded exactly as ingest decodes files (EXIF, modes, first frame, bomb guard)."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    try:
        return decode_image(_read(value, "image"), "query image", QUERY_DECODE)
    except DecodeError as exc:
        raise InvalidInput(f"query image could not be read: {exc.reason}") from exc


def _audio(value: Any) -> AudioClip:
    """A query clip decoded exactly as ingest decodes files (mono, non-empty, finite)."""
    if isinstance(value, AudioClip):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return AudioClip(np.asarray(value[0], dtype=np.float32), int(value[1]))
    try:
        return decode_audio(_read(value, "audio"), "query audio", QUERY_DECODE)
    except DecodeError as exc:
        raise InvalidInput(f"query audio could not be read: {exc.reason}") from exc


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


def _value(part: QueryPart) -> Any:
    """A part's value decoded and checked for its modality."""
    if part.modality == "text":
        if not isinstance(part.value, str) or not part.value.strip():
            raise InvalidInput("text query is empty")
        return part.value
    if part.modality == "image":
        return _image(part.value)
    if part.modality == "audio":
        return _audio(part.value)
    raise InvalidInput(f"unknown query modality {part.modality!r}")


def _combine(total: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(total))
    if norm == 0.0 or not np.isfinite(norm):
        raise InvalidInput("the query's weighted parts cancel out")
    return total / norm


def heaviest_part(parts: Sequence[QueryPart]) -> QueryPart:
    """The part with the largest absolute weight (the first of ties): whose tokens the re-ranker reads."""
    return max(parts, key=lambda p: abs(p.weight))


def encode_query(encoder: Encoder, parts: Sequence[QueryPart]) -> np.ndarray:
    """One unit vector (1, dim): the weighted sum of the parts' vectors, renormalised."""
    if not parts:
        raise InvalidInput("empty query")
    total = np.zeros((1, encoder.dim), dtype=np.float32)
    for part in parts:
        total += part.weight * encoder.encode(part.modality, [_value(part)])
    return _combine(total)


def encode_query_with_tokens(encoder: Encoder, parts: Sequence[QueryPart]) -> tuple[np.ndarray, str, np.ndarray]:
    """The query vector as ``encode_query`` gives it, plus the modality and float16 token features of its
    heaviest part (what the re-ranker attends over), from the same tower passes."""
    if not parts:
        raise InvalidInput("empty query")
    total = np.zeros((1, encoder.dim), dtype=np.float32)
    heaviest = heaviest_part(parts)
    tokens = None
    for part in parts:
        vector, part_tokens = encoder.embed_with_tokens(part.modality, encoder.preprocess(part.modality, [_value(part)]))
        total += part.weight * vector
        if part is heaviest:
            tokens = part_tokens[0]
    return _combine(total), heaviest.modality, tokens

"""What an enricher reads: a stored file decoded again, as 16 kHz mono audio pieces or RGB images, within limits.

Readers are registered per (item modality, what the enricher reads): an audio file gives audio, an image file an
image; a new modality (video) registers readers for its soundtrack and frames.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterator

import numpy as np

from core.media import AudioClip
from ingest.decode import DecodeSettings, decode_image, iter_audio_blocks
from ingest.files import open_regular, read_capped

ENRICH_RATE = 16_000  # Hz: what speech models take
ENRICH_PIECE_SECONDS = 600.0  # the longest audio piece handed to an enricher at once (memory stays bounded)

Reader = Callable[[str, DecodeSettings], Iterator[tuple[float | None, Any]]]
MEDIA_READERS: dict[tuple[str, str], Reader] = {}


def register_reader(modality: str, reads: str, reader: Reader) -> None:
    """Let enrichers that read ``reads`` ("audio", "image") run on items of ``modality``."""
    MEDIA_READERS[(modality, reads)] = reader


def readable_modalities(reads: str) -> tuple[str, ...]:
    """The item modalities some reader turns into ``reads`` media."""
    return tuple(m for m, r in MEDIA_READERS if r == reads)


def to_enrich_rate(clip: AudioClip) -> np.ndarray:
    """Mono float32 samples at ``ENRICH_RATE``."""
    samples = clip.samples if clip.samples.ndim == 1 else clip.samples.mean(axis=1)
    samples = np.asarray(samples, dtype=np.float32)
    if clip.sample_rate == ENRICH_RATE:
        return samples
    import soxr

    return np.asarray(soxr.resample(samples, clip.sample_rate, ENRICH_RATE), dtype=np.float32)


def audio_pieces(blocks: Iterator[AudioClip], piece_s: float = ENRICH_PIECE_SECONDS
                 ) -> Iterator[tuple[float, AudioClip]]:
    """Join decoded blocks into 16 kHz mono pieces of at most ``piece_s`` seconds, each with its start offset."""
    size = int(piece_s * ENRICH_RATE)
    held: list[np.ndarray] = []
    count = start = 0
    for block in blocks:
        part = to_enrich_rate(block)
        held.append(part)
        count += len(part)
        while count >= size:
            joined = np.concatenate(held)
            yield start / ENRICH_RATE, AudioClip(joined[:size].copy(), ENRICH_RATE)
            start += size
            held, count = [joined[size:]], count - size
    if count:
        yield start / ENRICH_RATE, AudioClip(np.concatenate(held), ENRICH_RATE)


def _audio_file(path: str, settings: DecodeSettings) -> Iterator[tuple[float | None, Any]]:
    fd, _ = open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            yield from audio_pieces(iter_audio_blocks(handle, path, settings, block_s=30.0))
    finally:
        os.close(fd)


def _image_file(path: str, settings: DecodeSettings) -> Iterator[tuple[float | None, Any]]:
    fd, _ = open_regular(path)
    try:
        data = read_capped(fd, settings.max_image_bytes, path)
    finally:
        os.close(fd)
    full = dataclasses.replace(settings, image_draft_size=None)  # reading text needs the full resolution
    yield None, decode_image(data, path, full)


register_reader("audio", "audio", _audio_file)
register_reader("image", "image", _image_file)

"""Audio clips as arrays: one type, mono downmix and library resampling (soxr)."""

from __future__ import annotations

import numpy as np
import soxr

from core.errors import InvalidInput
from core.media import AudioClip


def as_clip(value: object) -> AudioClip:
    """Accept an ``AudioClip`` or an ``(array, sample_rate)`` pair."""
    if isinstance(value, AudioClip):
        clip = value
    elif isinstance(value, tuple) and len(value) == 2:
        clip = AudioClip(np.asarray(value[0]), int(value[1]))
    else:
        raise InvalidInput(f"audio input must be an AudioClip or (samples, sample_rate), got {type(value).__name__}")
    if clip.samples.ndim not in (1, 2) or clip.samples.shape[0] == 0:
        raise InvalidInput(f"audio samples must be a non-empty (n,) or (n, channels) array, got {clip.samples.shape}")
    if clip.sample_rate <= 0:
        raise InvalidInput(f"sample rate must be positive, got {clip.sample_rate}")
    return clip


def mono_at(clip: AudioClip, rate: int) -> np.ndarray:
    """Downmix to mono float32 and resample to ``rate`` with soxr."""
    samples = np.asarray(clip.samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if not np.all(np.isfinite(samples)):
        raise InvalidInput("audio samples contain NaN or inf")
    if clip.sample_rate != rate:
        samples = soxr.resample(samples, clip.sample_rate, rate, quality="HQ").astype(np.float32)
    return samples


def center_window(samples: np.ndarray, length: int) -> np.ndarray:
    """Deterministic centre crop to ``length`` samples (no-op when shorter)."""
    if len(samples) <= length:
        return samples
    start = (len(samples) - length) // 2
    return samples[start : start + length]

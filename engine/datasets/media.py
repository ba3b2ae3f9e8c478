"""Lazy media sources and their decoding; stable hash splits; where the shared corpora live."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from core.media import AudioClip

ImageSource = Path | Image.Image | Callable[[], Image.Image]
AudioSource = Path | AudioClip | Callable[[], AudioClip]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})


def decode_image(source: ImageSource) -> Image.Image:
    """An RGB PIL image from a path, an image or a zero-argument callable returning one."""
    if isinstance(source, (str, Path)):
        with Image.open(source) as image:
            return image.convert("RGB")
    image = source if isinstance(source, Image.Image) else source()
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_audio(source: AudioSource) -> AudioClip:
    """An ``AudioClip`` (float32) from a file path (via soundfile), a clip or a callable returning one."""
    if isinstance(source, (str, Path)):
        samples, rate = soundfile.read(str(source), dtype="float32", always_2d=False)
        return AudioClip(np.ascontiguousarray(samples), int(rate))
    return source if isinstance(source, AudioClip) else source()


def modality_of(path: str | Path) -> str | None:
    """``"image"`` or ``"audio"`` from a file suffix, None when unknown."""
    suffix = Path(str(path)).suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None


def hash_split(key: str, val_fraction: float = 0.0, test_fraction: float = 0.0, salt: str = "") -> str:
    """``"train"``, ``"val"`` or ``"test"`` from a stable hash of ``key``: the same key always lands in the same split."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def shared_data_dir() -> Path | None:
    """``$XMODAL_SHARED_DATA`` or ``<repo>/../shared/data``, None when that folder does not exist."""
    env = os.environ.get("XMODAL_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return root if root.is_dir() else None

"""Lazy media sources, decoded by ingest's decoder (one decoder, one extension table); stable hash splits; where
the shared corpora live."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from core.media import AudioClip
from core.modalities import extensions, modality_of_path
from ingest import decode

ImageSource = Path | Image.Image | Callable[[], Image.Image]
AudioSource = Path | AudioClip | Callable[[], AudioClip]

IMAGE_SUFFIXES = extensions("image")
AUDIO_SUFFIXES = extensions("audio")
# Full-resolution JPEG decoding (no reduced-DCT draft): the datasets' images and the figures measured on them stay
# exactly what they were before the decoders were merged.
_SETTINGS = decode.DecodeSettings(image_draft_size=None)


def decode_image(source: ImageSource) -> Image.Image:
    """An RGB PIL image from a path (ingest's decoder), an image or a zero-argument callable returning one."""
    if isinstance(source, (str, Path)):
        return decode.decode_image(Path(source).read_bytes(), source, _SETTINGS)
    image = source if isinstance(source, Image.Image) else source()
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_audio(source: AudioSource) -> AudioClip:
    """A mono float32 ``AudioClip`` from a file path (ingest's decoder), a clip or a callable returning one."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as file:
            return decode.decode_audio(file, source, _SETTINGS)
    return source if isinstance(source, AudioClip) else source()


def modality_of(path: str | Path) -> str | None:
    """``"image"`` or ``"audio"`` from a file suffix (the registry's table), None for anything else."""
    found = modality_of_path(path)
    return found if found in ("image", "audio") else None


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

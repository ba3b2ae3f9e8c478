"""Handwritten digits from scikit-learn, and the tri-modal digits set: FSDD speech + digit images + digit words."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from engine.datasets.audio import FsddSplit, digit_texts, load_fsdd
from engine.datasets.base import Dataset, Record, merge


def digit_image(pixels: bytes, size: int) -> Image.Image:
    """One 8x8 sklearn digit (values 0..16, as bytes) as a ``size`` x ``size`` RGB image: dark ink on white."""
    gray = 255 - np.frombuffer(pixels, dtype=np.uint8).reshape(8, 8).astype(np.uint16) * 255 // 16
    return Image.fromarray(gray.astype(np.uint8), "L").resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def load_sklearn_digits(test_fraction: float = 0.25, seed: int = 0, size: int = 32, name: str = "digits") -> Dataset:
    """scikit-learn's 1,797 handwritten digits, upscaled lazily to ``size`` px; seeded stratified train/test split."""
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    data = load_digits()
    labels = data.target.astype(int)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        test[rng.permutation(members)[: round(test_fraction * len(members))]] = True
    pixels = data.images.astype(np.uint8)
    records = tuple(
        Record(f"{name}:{i}", "test" if test[i] else "train", str(labels[i]),
               image=partial(digit_image, pixels[i].tobytes(), size), meta={"index": i})
        for i in range(len(labels))
    )
    return Dataset(name, records, {str(d): digit_texts(d) for d in range(10)}, protocol="class")


def load_digits_trimodal(fsdd_root: str | Path, test_speakers: tuple[str, ...] = ("nicolas", "theo"),
                         test_fraction: float = 0.25, seed: int = 0, size: int = 32, name: str = "digits3") -> Dataset:
    """FSDD speech (held-out speakers), sklearn digit images and digit words, one class per digit."""
    speech = load_fsdd(fsdd_root, FsddSplit(by="speakers", test_speakers=test_speakers), name=f"{name}-speech")
    images = load_sklearn_digits(test_fraction, seed, size, name=f"{name}-image")
    return merge(name, speech, images, protocol="class")

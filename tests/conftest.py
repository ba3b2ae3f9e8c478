"""Shared fixtures: tiny models built once per session, seeded media, no network."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("XMODAL_OFFLINE", "1")  # tests never download
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_encoder():
    """The tiny-random preset on CPU, built once."""
    from engine.models import load_encoder

    return load_encoder("tiny-random", device="cpu")


@pytest.fixture(scope="session")
def sample_media():
    """A few seeded images, texts and audio clips of varied sizes and rates."""
    from engine.models import AudioClip

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in [(64, 64), (120, 80), (30, 200)]
    ] + [Image.new("L", (50, 50), 128), Image.new("RGBA", (40, 60), (10, 20, 30, 128))]
    texts = ["a red square above a blue circle", "a dog barking", "", "雨の音", "x" * 500]
    t = np.arange(16000 * 2) / 16000
    audio = [
        AudioClip(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000),
        AudioClip(rng.standard_normal((8000 * 3, 2)).astype(np.float32) * 0.1, 8000),
        (rng.standard_normal(44100 * 12).astype(np.float32) * 0.1, 44100),
        (np.zeros(100, dtype=np.float32), 48000),
    ]
    return {"image": images, "text": texts, "audio": audio}

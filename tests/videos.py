"""Tiny generated videos for the video tests: known shots and a tone at known seconds (160x120, 4 fps, 9 s)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from core.media import AudioClip
from engine.datasets.videos import Shot, Sound

RATE = 16_000


def picture(seed: int) -> Image.Image:
    """A picture of a few large shapes (what a compressed 160x120 frame keeps)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (320, 240), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, 260)), int(rng.integers(0, 180))
        box = (x, y, x + int(rng.integers(40, 120)), y + int(rng.integers(40, 120)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return image


def tone(seconds: float, hz: float = 440.0) -> AudioClip:
    """A sine tone at half scale."""
    t = np.arange(int(seconds * RATE)) / RATE
    return AudioClip((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32), RATE)


# 0-3 s a still red shot, 3-6 s a still picture, 6-9 s a pan over another picture; a 1 s tone at 4 s.
SHOTS = [Shot(3, colour=(200, 0, 0)), Shot(3, picture(1)), Shot(3, picture(2), moving=True)]
SOUNDS = [Sound(4.0, tone(1.0))]
FRAME_TIMES = [0.0, 3.0, 6.0, 7.0, 8.0]  # the frames kept: one per still shot, one per second of the pan

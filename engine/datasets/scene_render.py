"""Render synthetic scenes: images with PIL (supersampled), sounds by additive synthesis (one note per shape)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from core.media import AudioClip

if TYPE_CHECKING:
    from engine.datasets.synthetic import Scene

RGB = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230),
    "yellow": (235, 215, 50), "purple": (150, 60, 200), "orange": (245, 140, 30),
}
# Colour -> pitch (Hz, C major-ish from C4); shape -> timbre as harmonic amplitudes (sine, square, triangle, saw).
PITCH = {"red": 261.63, "orange": 293.66, "yellow": 329.63, "green": 392.00, "blue": 440.00, "purple": 523.25}
TIMBRE = {
    "circle": {1: 1.0},
    "square": {1: 1.0, 3: 1 / 3, 5: 1 / 5, 7: 1 / 7},
    "triangle": {1: 1.0, 3: -1 / 9, 5: 1 / 25, 7: -1 / 49},
    "diamond": {k: 1 / k for k in range(1, 7)},
}
SUPERSAMPLE = 4
BACKGROUND = (28, 28, 32)


def render_image(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as a ``size`` x ``size`` RGB image: shapes in a 3x3 grid with jitter, on a dark background."""
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(image)
    cell = big / 3
    for shape in scene.objects:
        radius = cell * (0.42 if shape.size == "large" else 0.22)
        slack = cell / 2 - radius
        cx = (shape.col + 0.5) * cell + shape.dx * slack
        cy = (shape.row + 0.5) * cell + shape.dy * slack
        fill = tuple(int(np.clip(c + t, 0, 255)) for c, t in zip(RGB[shape.colour], shape.tint))
        if shape.shape == "circle":
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
        elif shape.shape == "square":
            side = radius * 0.88
            draw.rectangle((cx - side, cy - side, cx + side, cy + side), fill=fill)
        elif shape.shape == "triangle":
            draw.polygon([(cx, cy - radius), (cx + radius, cy + radius * 0.8), (cx - radius, cy + radius * 0.8)], fill=fill)
        else:
            draw.polygon([(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)], fill=fill)
    return image.reduce(SUPERSAMPLE)


def render_audio(scene: Scene, sample_rate: int = 16_000, seconds: float = 1.0) -> AudioClip:
    """The scene as mono float32 sound: one note per shape in reading order; colour = pitch, shape = timbre, size = length and loudness."""
    n = round(sample_rate * seconds)
    out = np.zeros(n, dtype=np.float32)
    slot = n // len(scene.objects)
    for i, shape in enumerate(scene.objects):
        length = int(slot * (0.9 if shape.size == "large" else 0.45))
        t = np.arange(length, dtype=np.float32) / np.float32(sample_rate)
        phase = np.float32(2 * np.pi * PITCH[shape.colour]) * t
        note = sum(np.float32(a) * np.sin(k * phase) for k, a in TIMBRE[shape.shape].items())
        attack = np.minimum(1.0, t / 0.01)
        envelope = attack * np.exp(-3.0 * t / max(t[-1], 1e-3))
        gain = 0.4 if shape.size == "large" else 0.25
        out[i * slot : i * slot + length] = (gain * envelope * note).astype(np.float32)
    return AudioClip(out, sample_rate)

"""Media types every layer shares: decoded audio as an array and its sample rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio: samples shaped (n,) or (n, channels), and their sample rate in Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)

"""Small towers trained here, on CPU, in minutes: a log-mel audio CNN and a compact image CNN."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import open_clip
import torch
from torch import nn

from engine.models.preprocess import ImagePreprocessor, LogMel
from engine.models.serialize import load_config, load_state, save_module
from engine.models.towers.base import Tower


def _conv_stack(in_ch: int, channels: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for out_ch in channels:
        layers += [
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        in_ch = out_ch
    return nn.Sequential(*layers)


class _SmallTower(Tower):
    """Shared save/load and pooled-CNN forward for the small towers."""

    config_type: type

    def __init__(self, config: Any, in_channels: int) -> None:
        super().__init__()
        self.config = config
        self.out_dim = config.out_dim
        self.features = _conv_stack(in_channels, config.channels)
        self.proj = nn.Linear(2 * config.channels[-1], config.out_dim)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.proj(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors``."""
        return save_module(self, {"type": type(self).__name__, **asdict(self.config)}, directory)

    @classmethod
    def load(cls, directory: str | Path) -> "_SmallTower":
        """Load a tower saved with ``save``."""
        raw = load_config(directory)
        raw.pop("type", None)
        raw["channels"] = tuple(raw["channels"])
        tower = cls(cls.config_type(**raw))
        tower.load_state_dict(load_state(directory))
        return tower.eval()


@dataclass(frozen=True)
class SmallAudioConfig:
    """Log-mel front end and CNN widths of ``SmallAudioCNN``."""

    sample_rate: int = 16_000
    n_mels: int = 64
    n_fft: int = 512
    hop_length: int = 160
    clip_seconds: float = 5.0
    channels: tuple[int, ...] = (32, 64, 128, 256)
    out_dim: int = 256


class SmallAudioCNN(_SmallTower):
    """A compact CNN over log-mel spectrograms (transformers' audio_utils front end)."""

    modality = "audio"
    config_type = SmallAudioConfig

    def __init__(self, config: SmallAudioConfig = SmallAudioConfig()) -> None:
        super().__init__(config, in_channels=1)
        self.input_norm = nn.BatchNorm2d(1)
        self.preprocessor = LogMel(
            config.sample_rate, config.n_mels, config.n_fft, config.hop_length, config.clip_seconds
        )

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """(n_mels, frames) log-mel of a mono clip at the tower's rate."""
        return self.preprocessor.log_mel(samples)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._pool(self.input_norm(batch["mel"]))


@dataclass(frozen=True)
class SmallImageConfig:
    """Input size and CNN widths of ``SmallImageCNN``."""

    image_size: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 256)
    out_dim: int = 256


class SmallImageCNN(_SmallTower):
    """A compact image CNN behind open_clip's eval transform at a small resolution."""

    modality = "image"
    config_type = SmallImageConfig

    def __init__(self, config: SmallImageConfig = SmallImageConfig()) -> None:
        super().__init__(config, in_channels=3)
        self.transform = open_clip.image_transform(config.image_size, is_train=False)
        self.preprocessor = ImagePreprocessor(self.transform)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._pool(batch["pixels"])

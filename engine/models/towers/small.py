"""Small towers trained here, on CPU, in minutes: a log-mel audio CNN and a compact image CNN."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import open_clip
import torch
from torch import nn

from core.errors import RerankerUnavailable
from engine.models.preprocess import ImagePreprocessor, LogMel
from engine.models.presets import TowerSpec
from engine.models.serialize import load_config, load_state, save_module
from engine.models.towers.base import Tower, TowerOutput, all_valid
from engine.models.weights import resolve


def _conv_stack(in_ch: int, channels: Sequence[int], convs_per_block: int = 2, dims: int = 2,
                pool_size: int | tuple[int, ...] = 2) -> nn.Sequential:
    """Blocks of (conv 3, batch norm, ReLU) x ``convs_per_block`` then a max pool (2x by default), in 2-D or 1-D."""
    conv, norm, pool = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d) if dims == 2 else (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d)
    layers: list[nn.Module] = []
    for out_ch in channels:
        for _ in range(convs_per_block):
            layers += [conv(in_ch, out_ch, 3, padding=1, bias=False), norm(out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        layers.append(pool(pool_size))
    return nn.Sequential(*layers)


def _columns(frames: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A float mask broadcastable to ``like``: 1 on each row's first ``frames`` positions of the last axis."""
    keep = (torch.arange(like.shape[-1], device=frames.device)[None, :] < frames[:, None]).to(like.dtype)
    return keep.reshape(len(frames), *([1] * (like.dim() - 2)), like.shape[-1])


class _SmallTower(Tower):
    """Shared save/load and pooled-CNN forward for the small towers."""

    config_type: type

    def __init__(self, config: Any, in_channels: int, dims: int = 2) -> None:
        super().__init__()
        self.config = config
        self.out_dim = config.out_dim
        self.features = _conv_stack(in_channels, config.channels, config.convs_per_block, dims)
        self.proj = nn.Linear(2 * config.channels[-1], config.out_dim)

    def _run(self, x: torch.Tensor, frames: torch.Tensor | None, with_tokens: bool) -> TowerOutput:
        """Mean and max over the final map, whose positions are the tokens; with ``frames`` (n,), positions past each
        row's real frames are zeroed after every layer and left out of the pooling and the tokens, so a clip encodes
        the same alone or padded in a batch."""
        if frames is None:
            x = self.features(x)
            dims = tuple(range(2, x.dim()))
            pooled = self.proj(torch.cat([x.mean(dim=dims), x.amax(dim=dims)], dim=1))
            keep = None
        else:
            x, frames = self.masked_features(x, frames)
            dims = tuple(range(2, x.dim()))
            keep = _columns(frames, x).bool()
            mean = x.sum(dim=dims) / (frames[:, None] * (x[0, 0].numel() // x.shape[-1])).to(x.dtype)
            peak = x.masked_fill(~keep, float("-inf")).amax(dim=dims)
            pooled = self.proj(torch.cat([mean, peak], dim=1))
        if not with_tokens:
            return TowerOutput(pooled)
        tokens = x.flatten(2).transpose(1, 2)  # (n, positions, C), row-major over the map
        mask = all_valid(tokens) if keep is None else keep.expand(-1, 1, *x.shape[2:]).flatten(1)
        return TowerOutput(pooled, tokens, mask)

    def masked_features(self, x: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The final feature map with positions past each row's real ``frames`` zeroed after every layer, and
        each row's frame count on that map (at least 1)."""
        x = x * _columns(frames, x)
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d)):
                frames = (frames + 1) // 2
            if isinstance(layer, (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d)):
                x = x * _columns(frames, x)
        return x, frames.clamp(1, x.shape[-1])

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors``."""
        return save_module(self, {"type": type(self).__name__, **asdict(self.config)}, directory)

    @classmethod
    def load(cls, directory: str | Path, random_weights: bool = False) -> "_SmallTower":
        """Load a tower saved with ``save`` (with ``random_weights``, only its architecture)."""
        raw = load_config(directory)
        raw.pop("type", None)
        tower = cls(cls.config_type(**raw))
        if not random_weights:
            tower.load_state_dict(load_state(directory))
        return tower.eval()


@dataclass(frozen=True)
class SmallAudioConfig:
    """Log-mel front end and CNN widths of ``SmallAudioCNN``; ``temporal`` convolves over time only, mel bins as channels.

    ``freq_stem`` (temporal only; empty = none): channels of 2-D (conv 3x3, batch norm, ReLU) blocks over (mel, time)
    before the temporal stack, each followed by a max pool of ``freq_pool`` over frequency only (time keeps its
    resolution); their (channel, band) outputs become the temporal stack's input channels. The shared 2-D kernels
    respond alike to a pattern a few mel bins higher or lower (a different speaker's formants), which convolving
    with the mel bins as channels cannot.
    """

    sample_rate: int = 16_000
    n_mels: int = 64
    n_fft: int = 512
    hop_length: int = 160
    clip_seconds: float = 5.0
    channels: tuple[int, ...] = (32, 64, 128, 256)
    out_dim: int = 256
    convs_per_block: int = 2
    temporal: bool = False
    freq_stem: tuple[int, ...] = ()
    freq_pool: int = 2

    def __post_init__(self) -> None:
        for name in ("channels", "freq_stem"):  # JSON lists from a preset's or a saved tower's config
            object.__setattr__(self, name, tuple(getattr(self, name)))


class SmallAudioCNN(_SmallTower):
    """A compact CNN over log-mel spectrograms (transformers' audio_utils front end): 2-D, or 1-D over time.

    The 1-D (``temporal``) form treats the mel bins as input channels, as keyword-spotting nets such as
    TC-ResNet do: on a CPU it trains several times faster than the 2-D form at more width.
    """

    modality = "audio"
    config_type = SmallAudioConfig

    def __init__(self, config: SmallAudioConfig = SmallAudioConfig()) -> None:
        temporal = config.temporal
        if config.freq_stem and not temporal:
            raise ValueError("freq_stem needs temporal=True")
        bands = config.n_mels
        for _ in config.freq_stem:
            bands //= config.freq_pool
        in_channels = (config.freq_stem[-1] * bands if config.freq_stem else config.n_mels) if temporal else 1
        super().__init__(config, in_channels=in_channels, dims=1 if temporal else 2)
        if config.freq_stem:
            self.stem = _conv_stack(1, config.freq_stem, 1, dims=2, pool_size=(config.freq_pool, 1))
        self.input_norm = nn.BatchNorm1d(config.n_mels) if temporal else nn.BatchNorm2d(1)
        self.preprocessor = LogMel(
            config.sample_rate, config.n_mels, config.n_fft, config.hop_length, config.clip_seconds
        )

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """(n_mels, frames) log-mel of a mono clip at the tower's rate."""
        return self.preprocessor.log_mel(samples)

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        """Features of a batch of log-mels; with ``frames``, padding columns are cut and left out of the pooling.
        Tokens (the temporal form only) are the final map's time steps."""
        if with_tokens and not self.config.temporal:
            raise RerankerUnavailable("token features need the temporal (1-D) small audio CNN")
        mel = batch["mel"][:, 0] if self.config.temporal else batch["mel"]
        frames = batch.get("frames")
        if frames is None:
            return self._run(self._stem(self.input_norm(mel)), None, with_tokens)
        step = 2 ** len(self.config.channels)
        width = max(step, -(-int(frames.max()) // step) * step)
        if width > mel.shape[-1]:
            mel = torch.nn.functional.pad(mel, (0, width - mel.shape[-1]))
        return self._run(self.input_norm(mel[..., :width]), frames.clamp(min=1), with_tokens)

    def masked_features(self, x: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``_SmallTower.masked_features``, after the frequency stem when there is one."""
        return super().masked_features(self._stem(x, frames), frames)

    def _stem(self, mel: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """The temporal stack's input: the normalised log-mel itself, or with ``freq_stem`` its 2-D stem's
        (channel x band, time) map, padding columns zeroed after every layer."""
        if not self.config.freq_stem:
            return mel
        x = mel[:, None]
        if frames is not None:
            x = x * _columns(frames, x)
        for layer in self.stem:
            x = layer(x)
            if frames is not None and isinstance(layer, nn.ReLU):
                x = x * _columns(frames, x)
        return x.flatten(1, 2)


@dataclass(frozen=True)
class SmallImageConfig:
    """Input size and CNN widths of ``SmallImageCNN``."""

    image_size: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 256)
    out_dim: int = 256
    convs_per_block: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))  # a JSON list from a config


class SmallImageCNN(_SmallTower):
    """A compact image CNN behind open_clip's eval transform at a small resolution."""

    modality = "image"
    config_type = SmallImageConfig

    def __init__(self, config: SmallImageConfig = SmallImageConfig()) -> None:
        super().__init__(config, in_channels=3)
        self.transform = open_clip.image_transform(config.image_size, is_train=False)
        self.preprocessor = ImagePreprocessor(self.transform)

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        """Features of a batch of images; tokens are the final map's grid positions."""
        return self._run(batch["pixels"], None, with_tokens)


def _build(cls: type[_SmallTower], spec: TowerSpec, random_weights: bool) -> Tower:
    if random_weights:
        return cls(cls.config_type(**dict(spec.config or {})))
    return cls.load(resolve(spec.source).path)


def build_audio(spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> Tower:
    """The ``small_audio_cnn`` kind: a saved tower, or one of the spec's ``config`` with random weights."""
    return _build(SmallAudioCNN, spec, random_weights)


def build_image(spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> Tower:
    """The ``small_image_cnn`` kind: a saved tower, or one of the spec's ``config`` with random weights."""
    return _build(SmallImageCNN, spec, random_weights)

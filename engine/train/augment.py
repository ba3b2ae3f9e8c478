"""Cheap label-preserving augmentations for training batches: log-mel crops, gain, pitch shifts and masks; pixel shifts."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    """How hard to perturb: the log-mel crop width (0 = none), gain range in dB, mel-bin shift, mask sizes, pixel shift."""

    crop_frames: int = 0
    gain_db: float = 6.0
    mel_shift: int = 2
    time_mask: float = 0.1
    freq_mask: float = 0.1
    pixel_shift: int = 3


def _int(high: int, gen: torch.Generator, low: int = 0) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=gen)) if high > low else low


def crop_mel(mel: torch.Tensor, frames: torch.Tensor, width: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random window of ``width`` columns inside each clip's real frames (shorter clips keep their start)."""
    width = min(width, mel.shape[3])
    out = torch.empty(*mel.shape[:3], width, dtype=mel.dtype)
    for i, n in enumerate(frames.tolist()):
        start = _int(max(0, n - width), gen)
        out[i] = mel[i, :, :, start : start + width]
    return out, frames.clamp(max=width)


def augment_mel(mel: torch.Tensor, frames: torch.Tensor | None, config: AugmentConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crop (when ``config.crop_frames``), then per clip: gain, a mel-bin shift, one time and one frequency mask."""
    if frames is not None and config.crop_frames:
        mel, frames = crop_mel(mel, frames, config.crop_frames, gen)
    else:
        mel = mel.clone()
    n, _, bins, width = mel.shape
    gains = (torch.rand(n, generator=gen) * 2 - 1) * config.gain_db
    mel += gains[:, None, None, None]
    rows = torch.arange(bins)
    for i in range(n):
        real = int(frames[i]) if frames is not None else width
        shift = _int(config.mel_shift, gen, -config.mel_shift)
        if shift:
            mel[i] = mel[i][:, (rows - shift).clamp(0, bins - 1), :]
        fill = mel[i, :, :, :real].mean()
        t_len, f_len = _int(int(real * config.time_mask), gen), _int(int(bins * config.freq_mask), gen)
        t0, f0 = _int(max(0, real - t_len), gen), _int(bins - f_len, gen)
        mel[i, :, :, t0 : t0 + t_len] = fill
        mel[i, :, f0 : f0 + f_len, :real] = fill
    return mel, frames


def augment(batch: dict[str, torch.Tensor], config: AugmentConfig, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A perturbed copy of a tower-input batch; feature batches of frozen towers pass through unchanged."""
    out = dict(batch)
    if "mel" in batch:
        out["mel"], frames = augment_mel(batch["mel"], batch.get("frames"), config, gen)
        if frames is not None:
            out["frames"] = frames
    if "pixels" in batch and config.pixel_shift:
        dx, dy = (_int(config.pixel_shift, gen, -config.pixel_shift) for _ in range(2))
        out["pixels"] = torch.roll(batch["pixels"], shifts=(dy, dx), dims=(2, 3))
    return out

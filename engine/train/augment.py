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


def _ints(high: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One uniform integer in [0, high_i] per row."""
    return (torch.rand(len(high), generator=gen) * (high.clamp(min=0) + 1)).long().clamp(max=high.clamp(min=0))


def crop_mel(mel: torch.Tensor, frames: torch.Tensor, width: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random window of ``width`` columns inside each clip's real frames (shorter clips keep their start)."""
    width = min(width, mel.shape[-1])
    start = _ints(frames - width, gen)
    columns = (start[:, None] + torch.arange(width)[None, :]).clamp(max=mel.shape[-1] - 1)
    index = columns[:, None, None, :].expand(mel.shape[0], mel.shape[1], mel.shape[2], width)
    return torch.gather(mel, 3, index), frames.clamp(max=width)


def augment_mel(mel: torch.Tensor, frames: torch.Tensor | None, config: AugmentConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crop (when ``config.crop_frames``), then per clip: gain, a mel-bin shift, one time and one frequency mask."""
    if frames is not None and config.crop_frames:
        mel, frames = crop_mel(mel, frames, config.crop_frames, gen)
    n, channels, bins, width = mel.shape
    real = frames if frames is not None else torch.full((n,), width)
    gains = (torch.rand(n, generator=gen) * 2 - 1) * config.gain_db
    mel = mel + gains[:, None, None, None]
    if config.mel_shift:
        shift = _ints(torch.full((n,), 2 * config.mel_shift), gen) - config.mel_shift
        rows = (torch.arange(bins)[None, :] - shift[:, None]).clamp(0, bins - 1)
        mel = torch.gather(mel, 2, rows[:, None, :, None].expand(n, channels, bins, width))
    cols, bin_ids = torch.arange(width)[None, :], torch.arange(bins)[None, :]
    inside = (cols < real[:, None]).to(mel.dtype)[:, None, None, :]
    fill = (mel * inside).sum(dim=(1, 2, 3)) / (real.clamp(min=1) * bins * channels)
    t_len = _ints((real * config.time_mask).long(), gen)
    t0 = _ints(real - t_len, gen)
    f_len = _ints(torch.full((n,), int(bins * config.freq_mask)), gen)
    f0 = _ints(bins - f_len, gen)
    in_time = (cols >= t0[:, None]) & (cols < (t0 + t_len)[:, None])
    in_freq = (bin_ids >= f0[:, None]) & (bin_ids < (f0 + f_len)[:, None])
    masked = in_time[:, None, None, :] | (in_freq[:, None, :, None] & (cols < real[:, None])[:, None, None, :])
    return torch.where(masked, fill[:, None, None, None], mel), frames


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

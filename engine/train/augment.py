"""Cheap label-preserving augmentations for training batches: log-mel crops, speed, gain, pitch shifts, channel
colour (spectral tilt, added noise floor) and masks; pixel shifts."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    """How hard to perturb: the log-mel crop width (0 = none), gain range in dB, mel-bin shift, mask sizes, pixel shift.

    The channel perturbations default to off: ``speed`` (0.1 = each clip played 0.9-1.1x as fast, by resampling
    its frames), ``tilt_db`` (a linear spectral tilt of up to that many dB from the lowest to the highest mel
    bin, as a different microphone would add) and ``noise_db`` ``(low, high)``: a coloured noise floor added
    ``low`` to ``high`` dB below each clip's loudest bin ((0, 0) = none); ``lowpass_db``: the bins above a random
    cut-off (drawn from ``lowpass_band``, as fractions of the bins) lowered by up to that many dB, as recording
    devices' differing roll-offs below their Nyquist frequency would.
    """

    crop_frames: int = 0
    gain_db: float = 6.0
    mel_shift: int = 2
    time_mask: float = 0.1
    freq_mask: float = 0.1
    pixel_shift: int = 3
    speed: float = 0.0
    tilt_db: float = 0.0
    noise_db: tuple[float, float] = (0.0, 0.0)
    lowpass_db: float = 0.0
    lowpass_band: tuple[float, float] = (0.5, 0.8)


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


def change_speed(mel: torch.Tensor, frames: torch.Tensor, factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's real frames resampled (linear interpolation in time) to play ``factor`` (n,) times as fast."""
    width = mel.shape[-1]
    new_frames = (frames.to(factor.dtype) / factor).round().long().clamp(1, width)
    source = torch.arange(width, dtype=factor.dtype)[None, :] * factor[:, None]
    source = torch.minimum(source, (frames - 1).clamp(min=0).to(factor.dtype)[:, None])
    low = source.floor().long()
    high = (low + 1).clamp(max=width - 1)
    weight = (source - low.to(source.dtype))[:, None, None, :]
    expand = (mel.shape[0], mel.shape[1], mel.shape[2], width)
    out = torch.gather(mel, 3, low[:, None, None, :].expand(expand)) * (1 - weight) \
        + torch.gather(mel, 3, high[:, None, None, :].expand(expand)) * weight
    floor = mel.amin(dim=(1, 2, 3), keepdim=True)
    return torch.where((torch.arange(width)[None, :] < new_frames[:, None])[:, None, None, :], out, floor), new_frames


def colour_channel(mel: torch.Tensor, real: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """A random spectral tilt and a random coloured noise floor per clip, on dB log-mels."""
    n, _, bins, width = mel.shape
    position = torch.linspace(-0.5, 0.5, bins)[None, None, :, None]
    if config.tilt_db:
        mel = mel + ((torch.rand(n, generator=gen) * 2 - 1) * config.tilt_db)[:, None, None, None] * position
    low, high = config.noise_db
    if high > 0:
        inside = (torch.arange(width)[None, :] < real[:, None])[:, None, None, :]
        peak = mel.masked_fill(~inside, float("-inf")).amax(dim=(1, 2, 3))
        level = peak - (low + torch.rand(n, generator=gen) * (high - low))
        colour = ((torch.rand(n, generator=gen) * 2 - 1) * 20.0)[:, None, None, None] * position
        noise = level[:, None, None, None] + colour + torch.randn(mel.shape, generator=gen) * 3.0
        to_nepers = torch.log(torch.tensor(10.0)) / 10
        mel = torch.where(inside, torch.logaddexp(mel * to_nepers, noise * to_nepers) / to_nepers, mel)
    return mel


def low_pass(mel: torch.Tensor, depth_db: float, band: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """Each clip's bins above a random cut-off (a fraction of the bins drawn from ``band``) lowered by up to
    ``depth_db`` (a random depth per clip, over a 3-bin ramp), never below the clip's floor."""
    n, _, bins, _ = mel.shape
    cut = (band[0] + torch.rand(n, generator=gen) * (band[1] - band[0])) * bins
    depth = torch.rand(n, generator=gen) * depth_db
    ramp = ((torch.arange(bins)[None, :] - cut[:, None]) / 3).clamp(0, 1)
    floor = mel.amin(dim=(1, 2, 3), keepdim=True)
    return torch.maximum(mel - (depth[:, None] * ramp)[:, None, :, None], floor)


def augment_mel(mel: torch.Tensor, frames: torch.Tensor | None, config: AugmentConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crop (when ``config.crop_frames``), then per clip: speed, gain, channel colour, a low-pass, a mel-bin shift,
    one time and one frequency mask."""
    if frames is not None and config.crop_frames:
        mel, frames = crop_mel(mel, frames, config.crop_frames, gen)
    n, channels, bins, width = mel.shape
    if frames is not None and config.speed:
        mel, frames = change_speed(mel, frames, 1 + (torch.rand(n, generator=gen) * 2 - 1) * config.speed)
    real = frames if frames is not None else torch.full((n,), width)
    gains = (torch.rand(n, generator=gen) * 2 - 1) * config.gain_db
    mel = mel + gains[:, None, None, None]
    if config.tilt_db or config.noise_db[1] > 0:
        mel = colour_channel(mel, real, config, gen)
    if config.lowpass_db:
        mel = low_pass(mel, config.lowpass_db, config.lowpass_band, gen)
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

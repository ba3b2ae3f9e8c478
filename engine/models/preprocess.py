"""Picklable preprocessors: raw inputs to CPU tensors, with no model weights, so worker processes can run them."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from engine.models.audio import as_clip, center_window, mono_at
from engine.models.towers.base import as_rgb, as_texts


class Preprocessor:
    """Turns a list of raw inputs into a dict of batched CPU tensors."""

    def __call__(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class ImagePreprocessor(Preprocessor):
    """PIL images through a torchvision-style transform (open_clip's eval transform)."""

    def __init__(self, transform: Callable, key: str = "pixels") -> None:
        self.transform = transform
        self.key = key

    def __call__(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        return {self.key: torch.stack([self.transform(as_rgb(im)) for im in inputs])}


class OpenClipTokens(Preprocessor):
    """Strings through an open_clip tokenizer (fixed context length)."""

    def __init__(self, tokenizer: Callable) -> None:
        self.tokenizer = tokenizer

    def __call__(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        return {"tokens": self.tokenizer(as_texts(inputs))}


class HFTokens(Preprocessor):
    """Strings through a transformers tokenizer, padded to the longest and truncated."""

    def __init__(self, tokenizer: Any, max_length: int = 256) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(as_texts(inputs), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return dict(enc)


class ClapFeatures(Preprocessor):
    """Audio clips to the CLAP extractor's log-mel input at its rate, centre-cropped to its window."""

    def __init__(self, extractor: Any) -> None:
        self.extractor = extractor

    def __call__(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        rate = self.extractor.sampling_rate
        # Centre-crop ourselves: the unfused extractor's rand_trunc would crop long clips at random.
        arrays = [center_window(mono_at(as_clip(c), rate), self.extractor.nb_max_samples) for c in inputs]
        feats = self.extractor(arrays, sampling_rate=rate, return_tensors="pt")
        return {"input_features": feats["input_features"], "is_longer": feats["is_longer"]}


class LogMel(Preprocessor):
    """Audio clips to fixed-width log-mel spectrograms plus each clip's count of real (unpadded) frames.

    A clip longer than the window is centre-cropped; a shorter one is analysed at its own length and its
    spectrogram padded with its own floor value, so ``frames`` tells the tower which columns are real.
    """

    def __init__(self, sample_rate: int, n_mels: int, n_fft: int, hop_length: int, clip_seconds: float) -> None:
        from transformers.audio_utils import mel_filter_bank, window_function

        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.length = int(clip_seconds * sample_rate)
        self.width = 1 + self.length // hop_length
        self.window = window_function(n_fft, "hann")
        self.mel = mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=20.0,
            max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm="slaney", mel_scale="slaney",
        )

    def _analyse(self, samples: np.ndarray) -> np.ndarray:
        from transformers.audio_utils import spectrogram

        return spectrogram(
            samples, self.window, frame_length=self.n_fft, hop_length=self.hop_length, power=2.0,
            mel_filters=self.mel, log_mel="dB", db_range=80.0,
        ).astype(np.float32)

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """(n_mels, frames) log-mel in dB of a mono clip at ``sample_rate``, padded or cropped to the window."""
        return self.log_mel_frames(samples)[0]

    def log_mel_frames(self, samples: np.ndarray) -> tuple[np.ndarray, int]:
        """The padded (n_mels, width) log-mel and how many of its frames come from the clip."""
        samples = center_window(np.asarray(samples, dtype=np.float32), self.length)
        samples = np.pad(samples, (0, max(0, self.n_fft - len(samples))))
        mel = self._analyse(samples)[:, : self.width]
        frames = mel.shape[1]
        if frames < self.width:
            mel = np.pad(mel, ((0, 0), (0, self.width - frames)), constant_values=float(mel.min()))
        return mel, frames

    def __call__(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        pairs = [self.log_mel_frames(mono_at(as_clip(c), self.sample_rate)) for c in inputs]
        mels = torch.from_numpy(np.stack([m for m, _ in pairs])).unsqueeze(1)
        return {"mel": mels, "frames": torch.tensor([f for _, f in pairs], dtype=torch.long)}

"""The tower contract: ``preprocess`` (CPU, picklable inputs to tensors) then ``embed`` (tensors to features)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from PIL import Image
from torch import nn

from core.errors import InvalidInput
from engine.models.kinds import MODALITIES



class Tower(nn.Module):
    """Turns raw media of one modality into feature vectors of width ``out_dim``."""

    modality: str = ""
    out_dim: int = 0
    preprocessor: Callable[[Sequence[Any]], dict[str, torch.Tensor]]

    def preprocess(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Turn a list of raw inputs into a batch of CPU tensors (``self.preprocessor``, picklable)."""
        return self.preprocessor(inputs)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features (n, out_dim) for a preprocessed batch already on the tower's device."""
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.embed(batch)


def as_rgb(image: Any) -> Image.Image:
    """Check that ``image`` is a PIL image and return it in RGB."""
    if not isinstance(image, Image.Image):
        raise InvalidInput(f"image input must be a PIL.Image, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")


def as_texts(texts: Sequence[Any]) -> list[str]:
    """Check that every input is a string."""
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise InvalidInput(f"text inputs must be str, got {bad[0]}")
    return list(texts)

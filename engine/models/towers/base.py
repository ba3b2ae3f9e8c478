"""The tower contract: ``preprocess`` (CPU, picklable inputs to tensors) then ``embed`` (tensors to features),
or ``embed_with_tokens`` (the same features and the token features behind them, from the same forward pass)."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import torch
from PIL import Image
from torch import nn

from core.errors import InvalidInput, RerankerUnavailable
from core.modalities import MODALITIES



class TowerOutput(NamedTuple):
    """A forward pass's pooled features and, when asked for, its token features with their validity mask."""

    features: torch.Tensor  # (n, out_dim)
    tokens: torch.Tensor | None = None  # (n, T, d)
    mask: torch.Tensor | None = None  # (n, T) bool: which of the T positions hold real input


class Tower(nn.Module):
    """Turns raw media of one modality into feature vectors of width ``out_dim``.

    A tower kind implements ``run``, the one forward pass: ``embed`` and ``embed_with_tokens`` both go through it, so
    features are the same whether or not tokens were asked for.
    """

    modality: str = ""
    out_dim: int = 0
    preprocessor: Callable[[Sequence[Any]], dict[str, torch.Tensor]]

    def preprocess(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Turn a list of raw inputs into a batch of CPU tensors (``self.preprocessor``, picklable)."""
        return self.preprocessor(inputs)

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        """Features (n, out_dim) of a preprocessed batch already on the tower's device; with ``with_tokens``, also
        the token features and mask (``RerankerUnavailable`` where this tower has none)."""
        if with_tokens:
            raise RerankerUnavailable(f"{type(self).__name__} gives no token features")
        raise NotImplementedError

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features (n, out_dim) for a preprocessed batch already on the tower's device."""
        return self.run(batch, with_tokens=False).features

    def embed_query(self, batch: dict[str, torch.Tensor], threads: int) -> torch.Tensor:
        """``embed`` for a search query on ``threads`` threads: a kind may run a faster engine here (hf_text: ONNX)."""
        return self.embed(batch)

    def embed_with_tokens(self, batch: dict[str, torch.Tensor]) -> TowerOutput:
        """Features equal to ``embed``'s, with token features (n, T, d) and their mask (n, T), in one pass."""
        return self.run(batch, with_tokens=True)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.embed(batch)


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def captured(module: nn.Module, pick: Callable[[Any], torch.Tensor] = _first) -> Iterator[list[torch.Tensor]]:
    """What ``module`` outputs (through ``pick``) while the block runs: a forward hook, removed afterwards."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(pick(out)))
    try:
        yield seen
    finally:
        handle.remove()


def all_valid(tokens: torch.Tensor) -> torch.Tensor:
    """A (n, T) mask that keeps every position of (n, T, d) tokens."""
    return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


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

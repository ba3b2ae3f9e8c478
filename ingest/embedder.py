"""What ingest needs from a model: the ``Embedder`` protocol; the engine passes its ``Encoder``, which fits it."""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch


class Embedder(Protocol):
    """Preprocesses and embeds batches of one modality into the shared space (float32, L2-normalised rows)."""

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities it can embed."""
        ...

    def preprocessor(self, modality: str) -> Callable[[Sequence[Any]], dict[str, torch.Tensor]]:
        """A picklable function turning decoded inputs of ``modality`` into a batch (run in decode workers)."""
        ...

    def preprocess(self, modality: str, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """A batch of ``modality`` from decoded inputs, in this process."""
        ...

    def embed(self, modality: str, batch: dict[str, torch.Tensor], precision: str = "fp32") -> np.ndarray:
        """Vectors (n, dim) of one batch."""
        ...

    def embed_with_tokens(self, modality: str, batch: dict[str, torch.Tensor],
                          precision: str = "fp32") -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of one batch and each row's token features (for the re-ranker)."""
        ...

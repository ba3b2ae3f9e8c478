"""The embedder as ingest uses it: batches collated, one precision, and token features when the preset wants them."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ingest.embedder import Embedder
from ingest.work import RepPayload


class Encoding:
    """Embeds representations and texts with ``embedder`` at ``precision``; with ``tokens``, each row's token
    features come from the same tower pass (else a None per row)."""

    def __init__(self, embedder: Embedder, precision: str = "fp32", tokens: bool = False) -> None:
        self.embedder, self.precision, self.tokens = embedder, precision, tokens

    def embed(self, modality: str, batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Vectors of one batch, and token features when asked (one tower pass either way)."""
        if self.tokens:
            vectors, tokens = self.embedder.embed_with_tokens(modality, batch, self.precision)
            return vectors, list(tokens)
        vectors = self.embedder.embed(modality, batch, self.precision)
        return vectors, [None] * len(vectors)

    def embed_reps(self, modality: str, reps: Sequence[RepPayload]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """One batch of representations of ``modality``: texts preprocessed here, media tensors (preprocessed by
        the runner) concatenated."""
        if modality == "text":
            batch = self.embedder.preprocess("text", [r.text for r in reps])
        else:
            batch = {k: torch.cat([r.batch[k] for r in reps]) for k in reps[0].batch}  # type: ignore[index]
        return self.embed(modality, batch)

    def embed_texts(self, texts: Sequence[str], size: int) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Texts embedded ``size`` at a time; (0, 0) vectors for none."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), []
        parts = [self.embed("text", self.embedder.preprocess("text", list(texts[i : i + size])))
                 for i in range(0, len(texts), size)]
        return np.concatenate([v for v, _ in parts]), [t for _, ts in parts for t in ts]

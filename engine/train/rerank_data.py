"""Re-ranker training data: items encoded once (vectors + tokens, cached), directions with first-stage hard negatives."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np
import torch

from engine.models import Encoder
from engine.query.fusion import Calibration, estimate_calibration
from engine.rerank.model import TokenBatch
from engine.train.data import TensorCache


@dataclass
class Encoded:
    """One modality's items: unit vectors (n, D) and padded float16 tokens (n, T, d) with lengths (n,)."""

    modality: str
    vectors: torch.Tensor
    tokens: torch.Tensor
    lengths: torch.Tensor

    def side(self, rows: torch.Tensor) -> TokenBatch:
        """Rows as a re-ranker input side (float32, padded to the longest of these rows)."""
        length = max(1, int(self.lengths[rows].max()))
        tokens = self.tokens[rows, :length].float()
        mask = torch.arange(length)[None, :] < self.lengths[rows][:, None]
        return TokenBatch(tokens, mask, self.vectors[rows], self.modality)


def encode_items(encoder: Encoder, modality: str, inputs: Sequence[Any], batch_size: int = 64) -> Encoded:
    """Vectors and tokens of raw inputs through the encoder's one-pass ``embed_with_tokens``."""
    vectors, tokens = [], []
    for start in range(0, len(inputs), batch_size):
        batch = encoder.preprocess(modality, inputs[start : start + batch_size])
        v, t = encoder.embed_with_tokens(modality, batch)
        vectors.append(v)
        tokens += t
    lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
    padded = torch.zeros(len(tokens), int(lengths.max()), tokens[0].shape[1], dtype=torch.float16)
    for i, t in enumerate(tokens):
        padded[i, : len(t)] = torch.from_numpy(t)
    return Encoded(modality, torch.from_numpy(np.concatenate(vectors)), padded, lengths)


def encode_cached(encoder: Encoder, modality: str, items: Sequence[Any], cache: TensorCache | None,
                  identity: str) -> Encoded:
    """``encode_items`` over dataset items (``.load()``), cached on disk under a key naming preset and items."""
    def make() -> dict[str, torch.Tensor]:
        e = encode_items(encoder, modality, [item.load() for item in items])
        return {"vectors": e.vectors, "tokens": e.tokens, "lengths": e.lengths}

    if cache is None:
        raw = make()
    else:
        key = cache.key(kind="rerank-items", preset=encoder.preset.name, identity=identity, modality=modality,
                        ids=[item.id for item in items])
        raw = cache.get_or_make(key, make)
    return Encoded(modality, raw["vectors"], raw["tokens"], raw["lengths"])


@dataclass
class EncodedDirection:
    """Queries of one modality against a corpus of another, with relevance and the first-stage scores' background."""

    name: str
    queries: Encoded
    corpus: Encoded
    relevant: np.ndarray
    calibration: Calibration

    @cached_property
    def sims(self) -> np.ndarray:
        """First-stage cosine of every query against every corpus item (computed once)."""
        return self.queries.vectors.numpy() @ self.corpus.vectors.numpy().T

    def calibrated(self, sims: np.ndarray | torch.Tensor) -> Any:
        """Cosines in the calibrated units the search layer fuses with."""
        return (sims - self.calibration.mean) / max(self.calibration.std, 1e-6)


def encoded_direction(name: str, queries: Encoded, corpus: Encoded, relevant: np.ndarray) -> EncodedDirection:
    """A direction whose calibration is estimated as the search layer does (queries against the corpus)."""
    rng = np.random.default_rng(0)
    q = queries.vectors.numpy()
    c = corpus.vectors.numpy()
    q = q[rng.choice(len(q), min(len(q), 512), replace=False)]
    c = c[rng.choice(len(c), min(len(c), 512), replace=False)]
    return EncodedDirection(name, queries, corpus, relevant, estimate_calibration(q, c))


def hard_negatives(d: EncodedDirection, pool: int) -> np.ndarray:
    """Per query, the ``pool`` best-scoring non-relevant corpus rows by first stage (hardest first)."""
    sims = np.where(d.relevant, -np.inf, d.sims)
    pool = min(pool, d.relevant.shape[1] - int(d.relevant.sum(axis=1).max()))
    top = np.argpartition(-sims, pool - 1, axis=1)[:, :pool]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)

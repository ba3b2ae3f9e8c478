"""The ``slots`` re-ranker kind: a second, token-level embedding per side, compared by cosine.

Each side's ``[vector] tokens`` pass a small transformer with positions, and ``slots`` learned queries
attention-pool them into one vector per slot; the concatenated slots are projected and normalised. The correction
is a learned gain times the cosine of the two sides' slot embeddings, so binding (which colour goes with which
shape, where) that mean/max pooling loses stays available, and a candidate's embedding does not depend on the query
(cheap to train, in-batch).
"""

from __future__ import annotations

import torch
from torch import nn

from core.errors import RerankerUnavailable
from engine.rerank.kinds import RerankerKind
from engine.rerank.model import Reranker, RerankerConfig, TokenBatch


class SlotEncoder(nn.Module):
    """One modality's tokens (with its pooled vector first) -> transformer -> ``slots`` attention pools -> unit vector."""

    def __init__(self, token_dim: int, vector_dim: int, config: RerankerConfig) -> None:
        super().__init__()
        w = config.width
        self.max_tokens = config.max_tokens
        self.tokens_in = nn.Sequential(nn.Linear(token_dim, w), nn.LayerNorm(w))
        self.vector_in = nn.Sequential(nn.Linear(vector_dim, w), nn.LayerNorm(w))
        self.position = nn.Embedding(config.max_tokens + 1, w)
        layer = nn.TransformerEncoderLayer(w, config.heads, 2 * w, config.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.slots = nn.Parameter(torch.randn(1, config.slots, w) * 0.02)
        self.pool = nn.MultiheadAttention(w, config.heads, batch_first=True)
        self.norm = nn.LayerNorm(config.slots * w)
        self.proj = nn.Linear(config.slots * w, vector_dim)

    def forward(self, side: TokenBatch) -> torch.Tensor:
        tokens, mask = side.tokens[:, : self.max_tokens], side.mask[:, : self.max_tokens]
        x = torch.cat([self.vector_in(side.vectors).unsqueeze(1), self.tokens_in(tokens)], dim=1)
        x = x + self.position(torch.arange(x.shape[1], device=x.device))
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        h = self.encoder(x, src_key_padding_mask=~keep)
        pooled = self.pool(self.slots.expand(len(h), -1, -1), h, h, key_padding_mask=~keep, need_weights=False)[0]
        return nn.functional.normalize(self.proj(self.norm(pooled.flatten(1))), dim=-1)


class SlotsKind(RerankerKind):
    """``scale * first_stage + gain * cosine(slot embedding of the query, slot embedding of the candidate)``."""

    name = "slots"
    in_batch = True

    def build(self, model: Reranker) -> None:
        config = model.config
        model.encoders = nn.ModuleDict({m: SlotEncoder(d, config.vector_dim, config)
                                        for m, d in config.token_dims.items()})
        model.gain = nn.Parameter(torch.tensor(5.0))

    def embed(self, model: Reranker, side: TokenBatch) -> torch.Tensor:
        """The unit slot embedding (n, vector_dim) of each row of ``side``."""
        if side.modality not in model.encoders:
            raise RerankerUnavailable(f"this re-ranker was not trained with {side.modality} tokens")
        return model.encoders[side.modality](side)

    def score(self, model: Reranker, query: TokenBatch, candidate: TokenBatch, first_stage: torch.Tensor,
              owner: torch.Tensor) -> torch.Tensor:
        queries = self.embed(model, query)[owner]
        return model.scale * first_stage + model.gain * (queries * self.embed(model, candidate)).sum(-1)

    def score_all(self, model: Reranker, queries: TokenBatch, candidates: TokenBatch,
                  first_stage: torch.Tensor) -> torch.Tensor:
        return model.scale * first_stage + model.gain * self.embed(model, queries) @ self.embed(model, candidates).T


KIND = SlotsKind()

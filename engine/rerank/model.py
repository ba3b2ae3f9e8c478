"""The attention re-ranker: a small transformer over query tokens and candidate tokens that scores each pair.

Input per pair: ``[CLS] [query vector] query tokens [candidate vector] candidate tokens``, each token projected
from its tower's width, tagged with its modality, side and position. The score is the first-stage calibrated
score times a learned scale plus a learned correction read from ``[CLS]``; the correction starts at zero, so an
untrained re-ranker keeps the first-stage order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from engine.errors import InvalidPreset, RerankerUnavailable
from engine.models.serialize import load_config, load_state, save_module
from engine.models.towers.base import MODALITIES

_MOD = {m: i for i, m in enumerate(MODALITIES)}


@dataclass(frozen=True)
class RerankerConfig:
    """Token widths per modality, shared-space width, transformer size and where it is on by default."""

    token_dims: Mapping[str, int]
    vector_dim: int
    width: int = 64
    layers: int = 2
    heads: int = 4
    max_tokens: int = 32
    dropout: float = 0.1
    # "query->target" pairs where held-out evaluation showed a gain; elsewhere rerank=None keeps the first stage
    enabled: tuple[str, ...] = ()
    evaluation: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Side:
    """One side of a batch of pairs: padded tokens (n, T, d), mask (n, T), shared-space vectors (n, D), modality."""

    tokens: torch.Tensor
    mask: torch.Tensor
    vectors: torch.Tensor
    modality: str

    @classmethod
    def from_arrays(cls, tokens: list[np.ndarray], vectors: np.ndarray, modality: str, max_tokens: int) -> "Side":
        """Pad float16 token arrays (one per row) into a batch."""
        if any(t is None for t in tokens):
            raise RerankerUnavailable("some candidates have no stored token features; re-ingest them")
        length = max(1, min(max_tokens, max(len(t) for t in tokens)))
        width = tokens[0].shape[1]
        padded = np.zeros((len(tokens), length, width), dtype=np.float32)
        mask = np.zeros((len(tokens), length), dtype=bool)
        for i, t in enumerate(tokens):
            n = min(len(t), length)
            padded[i, :n], mask[i, :n] = t[:n], True
        return cls(torch.from_numpy(padded), torch.from_numpy(mask), torch.as_tensor(vectors, dtype=torch.float32), modality)

    def expand(self, n: int) -> "Side":
        """A single-row side repeated ``n`` times (one query against n candidates), without copying."""
        return Side(self.tokens.expand(n, -1, -1), self.mask.expand(n, -1), self.vectors.expand(n, -1), self.modality)

    def take(self, rows: torch.Tensor) -> "Side":
        """The given rows."""
        return Side(self.tokens[rows], self.mask[rows], self.vectors[rows], self.modality)


class Reranker(nn.Module):
    """Scores (query, candidate) pairs with joint self-attention over both sides' tokens."""

    def __init__(self, config: RerankerConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.inputs = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, w), nn.LayerNorm(w)) for m, d in config.token_dims.items()})
        self.vector_in = nn.Sequential(nn.Linear(config.vector_dim, w), nn.LayerNorm(w))
        self.modality = nn.Embedding(len(MODALITIES), w)
        self.side = nn.Embedding(2, w)
        self.position = nn.Embedding(config.max_tokens + 1, w)
        self.cls = nn.Parameter(torch.zeros(1, 1, w))
        layer = nn.TransformerEncoderLayer(w, config.heads, 2 * w, config.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # Late interaction on the attended states: each query token's best match among the candidate's tokens.
        self.match_q = nn.Linear(w, w, bias=False)
        self.match_c = nn.Linear(w, w, bias=False)
        self.match_weight = nn.Parameter(torch.tensor(0.0))
        self.scale = nn.Parameter(torch.tensor(1.0))

    def _embed(self, side: Side, which: int) -> tuple[torch.Tensor, torch.Tensor]:
        if side.modality not in self.inputs:
            raise RerankerUnavailable(f"this re-ranker was not trained with {side.modality} tokens")
        tokens = side.tokens[:, : self.config.max_tokens]
        mask = side.mask[:, : self.config.max_tokens]
        x = torch.cat([self.vector_in(side.vectors).unsqueeze(1), self.inputs[side.modality](tokens)], dim=1)
        positions = torch.arange(x.shape[1], device=x.device)
        x = x + self.position(positions) + self.side.weight[which] + self.modality.weight[_MOD[side.modality]]
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return x, keep

    def forward(self, query: Side, candidate: Side, first_stage: torch.Tensor) -> torch.Tensor:
        """Scores (n,) for n pairs; ``first_stage`` is the calibrated first-stage score of each pair."""
        q, q_keep = self._embed(query, 0)
        c, c_keep = self._embed(candidate, 1)
        n = c.shape[0]
        x = torch.cat([self.cls.expand(n, -1, -1), q.expand(n, -1, -1), c], dim=1)
        keep = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=x.device), q_keep.expand(n, -1), c_keep], dim=1)
        h = self.norm(self.encoder(x, src_key_padding_mask=~keep))
        lq = q.shape[1]
        hq = nn.functional.normalize(self.match_q(h[:, 1 : 1 + lq]), dim=-1)
        hc = nn.functional.normalize(self.match_c(h[:, 1 + lq :]), dim=-1)
        sims = (hq @ hc.transpose(1, 2)).masked_fill(~c_keep[:, None, :], -1.0)
        q_mask = q_keep.expand(n, -1).to(sims.dtype)
        match = (sims.amax(dim=2) * q_mask).sum(dim=1) / q_mask.sum(dim=1)
        return self.scale * first_stage + self.match_weight * match + self.out(h[:, 0]).squeeze(-1)

    def is_enabled(self, query_modality: str, target: str) -> bool:
        """Whether held-out evaluation turned re-ranking on by default for this direction."""
        return f"{query_modality}->{target}" in self.config.enabled

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors``."""
        config = asdict(self.config)
        config["token_dims"], config["enabled"] = dict(self.config.token_dims), list(self.config.enabled)
        return save_module(self, {"type": "Reranker", **config}, directory)

    @classmethod
    def load(cls, directory: str | Path) -> "Reranker":
        """Load a re-ranker saved with ``save``."""
        raw = dict(load_config(directory))
        if raw.pop("type", None) != "Reranker":
            raise InvalidPreset(f"{directory} does not hold a re-ranker")
        raw["enabled"] = tuple(raw.get("enabled", ()))
        model = cls(RerankerConfig(**raw))
        model.load_state_dict(load_state(directory))
        return model.eval()

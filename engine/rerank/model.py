"""The attention re-ranker: a small transformer over query tokens and candidate tokens that scores each pair.

Each side is ``[vector] tokens``, every token projected from its tower's width and tagged with its modality,
side and position. The query's tokens pass one self-attention layer once per query; each candidate's
``[CLS] [vector] tokens`` then pass blocks of self-attention and cross-attention to the query's tokens. The score is the first-stage calibrated
score times a learned scale plus a learned correction read from ``[CLS]``; the correction starts at zero, so an
untrained re-ranker keeps the first-stage order.

That is the ``cross`` kind (``engine.rerank.cross``). ``config.kind`` picks the kind by name from the registry in
``engine.rerank.kinds`` (``slots``: ``engine.rerank.slots``); a kind builds its parameters on this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from core.errors import InvalidPreset, RerankerUnavailable
from engine.models.serialize import load_config, load_state, save_module
from engine.rerank.kinds import RerankerKind, reranker_kind
from core.modalities import MODALITIES
from engine.models.tokens import MAX_TOKENS

# The modality embedding's row order of re-rankers saved before their config recorded it (``modalities``).
LEGACY_MODALITIES = ("image", "text", "audio")
MAX_CORRECTION = 0.25  # chosen on bench.rerank_domain (README "Re-ranker"): most of the scenes gain, digits kept


@dataclass(frozen=True)
class RerankerConfig:
    """Token widths per modality, shared-space width, transformer size and where it is on by default."""

    token_dims: Mapping[str, int]
    vector_dim: int
    width: int = 64
    layers: int = 2
    heads: int = 4
    max_tokens: int = MAX_TOKENS
    dropout: float = 0.1
    kind: str = "cross"  # a name in engine.rerank.kinds: "cross" (cross-attention + late interaction), "slots"
    slots: int = 4
    # "query->target" pairs where held-out evaluation showed a gain; elsewhere rerank=None keeps the first stage
    enabled: tuple[str, ...] = ()
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    # how far (calibrated first-stage units, each way) the correction may move a candidate: see apply.bounded
    max_correction: float = MAX_CORRECTION
    # the modality embedding's rows by name (default: the registry's), so a grown or reordered registry still loads it
    modalities: tuple[str, ...] = field(default_factory=lambda: tuple(MODALITIES))


@dataclass
class TokenBatch:
    """One side of a batch of (query, candidate) pairs: padded tokens (n, T, d), mask (n, T), shared-space vectors
    (n, D), modality."""

    tokens: torch.Tensor
    mask: torch.Tensor
    vectors: torch.Tensor
    modality: str

    @classmethod
    def from_arrays(cls, tokens: list[np.ndarray], vectors: np.ndarray, modality: str, max_tokens: int) -> "TokenBatch":
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


class _CrossBlock(nn.Module):
    """Pre-norm block over candidate tokens: self-attention, cross-attention to the query's tokens, feed-forward.

    The query's keys and values are computed once per query and gathered per pair (``owner``), so a query
    scored against 100 candidates costs one pass over its tokens, not 100.
    """

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.n1, self.n2, self.n3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.o = nn.Linear(width, width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.drop = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, x_keep: torch.Tensor, memory: torch.Tensor, m_keep: torch.Tensor,
                owner: torch.Tensor) -> torch.Tensor:
        h = self.n1(x)
        x = x + self.drop(self.self_attn(h, h, h, key_padding_mask=~x_keep, need_weights=False)[0])
        k, v = self.kv(memory).chunk(2, dim=-1)
        k, v, m_keep = self._split(k), self._split(v), m_keep[:, None, None, :]
        if len(memory) == 1:  # one query against every candidate: broadcast, no copies
            k, v, m_keep = k.expand(len(x), -1, -1, -1), v.expand(len(x), -1, -1, -1), m_keep.expand(len(x), -1, -1, -1)
        else:
            k, v, m_keep = k[owner], v[owner], m_keep[owner]
        attn = nn.functional.scaled_dot_product_attention(self._split(self.q(self.n2(x))), k, v, attn_mask=m_keep)
        x = x + self.drop(self.o(attn.transpose(1, 2).reshape(x.shape)))
        return x + self.drop(self.ff(self.n3(x)))


class Reranker(nn.Module):
    """Scores (query, candidate) pairs as its kind (``config.kind``) does; saves and loads itself with its config."""

    def __init__(self, config: RerankerConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.kind: RerankerKind = reranker_kind(config.kind)
        self.kind.build(self)

    def build_cross(self) -> None:
        """The ``cross`` kind's layers (attributes of the model, named as saved re-rankers name them)."""
        config = self.config
        w = config.width
        self.inputs = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, w), nn.LayerNorm(w)) for m, d in config.token_dims.items()})
        self.vector_in = nn.Sequential(nn.Linear(config.vector_dim, w), nn.LayerNorm(w))
        self.modality = nn.Embedding(len(config.modalities), w)
        self._rows = {m: i for i, m in enumerate(config.modalities)}
        self.side = nn.Embedding(2, w)
        self.position = nn.Embedding(config.max_tokens + 1, w)
        self.cls = nn.Parameter(torch.zeros(1, 1, w))
        layer = nn.TransformerEncoderLayer(w, config.heads, 2 * w, config.dropout, batch_first=True, norm_first=True)
        self.query_encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.blocks = nn.ModuleList(_CrossBlock(w, config.heads, config.dropout) for _ in range(config.layers))
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # Late interaction on the attended states: each query token's best match among the candidate's tokens.
        self.match_q = nn.Linear(w, w, bias=False)
        self.match_c = nn.Linear(w, w, bias=False)
        self.match_weight = nn.Parameter(torch.tensor(0.0))

    def _row(self, modality: str) -> int:
        """The modality embedding's row for ``modality`` (rows are looked up by name, never by registry position)."""
        if modality not in self._rows:
            raise RerankerUnavailable(f"this re-ranker has no modality embedding for {modality}")
        return self._rows[modality]

    def _embed(self, side: TokenBatch, which: int) -> tuple[torch.Tensor, torch.Tensor]:
        if side.modality not in self.inputs:
            raise RerankerUnavailable(f"this re-ranker was not trained with {side.modality} tokens")
        tokens = side.tokens[:, : self.config.max_tokens]
        mask = side.mask[:, : self.config.max_tokens]
        x = torch.cat([self.vector_in(side.vectors).unsqueeze(1), self.inputs[side.modality](tokens)], dim=1)
        positions = torch.arange(x.shape[1], device=x.device)
        x = x + self.position(positions) + self.side.weight[which] + self.modality.weight[self._row(side.modality)]
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return x, keep

    def forward(self, query: TokenBatch, candidate: TokenBatch, first_stage: torch.Tensor,
                owner: torch.Tensor | None = None) -> torch.Tensor:
        """Scores (n,) for n candidates; ``owner[i]`` is the query row of candidate i (default: row 0 if the query
        side has one row, else row i); ``first_stage`` is each pair's calibrated first-stage score."""
        n = candidate.tokens.shape[0]
        if owner is None:
            owner = torch.zeros(n, dtype=torch.long) if query.tokens.shape[0] == 1 else torch.arange(n)
        return self.kind.score(self, query, candidate, first_stage, owner)

    def cross_score(self, query: TokenBatch, candidate: TokenBatch, first_stage: torch.Tensor,
                    owner: torch.Tensor) -> torch.Tensor:
        """The ``cross`` kind's scores (n,) of n candidates."""
        n = candidate.tokens.shape[0]
        q, q_keep = self._embed(query, 0)
        memory = self.query_encoder(q, src_key_padding_mask=~q_keep)
        c, c_keep = self._embed(candidate, 1)
        x = torch.cat([self.cls.expand(n, -1, -1), c], dim=1)
        x_keep = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=x.device), c_keep], dim=1)
        for block in self.blocks:
            x = block(x, x_keep, memory, q_keep, owner)
        h = self.norm(x)
        hq = nn.functional.normalize(self.match_q(memory), dim=-1)[owner]
        hc = nn.functional.normalize(self.match_c(h[:, 1:]), dim=-1)
        sims = (hq @ hc.transpose(1, 2)).masked_fill(~c_keep[:, None, :], -1.0)
        q_mask = q_keep[owner].to(sims.dtype)
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
        raw["modalities"] = tuple(raw.get("modalities", LEGACY_MODALITIES))
        model = cls(RerankerConfig(**raw))
        model.load_state_dict(load_state(directory))
        return model.eval()

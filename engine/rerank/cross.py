"""The ``cross`` re-ranker kind: candidate tokens attend to each other and to the query's tokens, plus late
interaction; the learned correction starts at zero, so an untrained re-ranker keeps the first-stage order.

Its parameters are attributes of the ``Reranker`` (``inputs``, ``blocks``, ``modality``...), so saved re-rankers keep
their state-dict keys; the modality embedding's rows are found by name (``config.modalities``).
"""

from __future__ import annotations

import torch
from torch import nn

from core.errors import RerankerUnavailable
from engine.rerank.kinds import RerankerKind
from engine.rerank.model import Reranker, TokenBatch


class CrossBlock(nn.Module):
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


def _row(model: Reranker, modality: str) -> int:
    """The modality embedding's row for ``modality`` (rows are looked up by name, never by registry position)."""
    if modality not in model._rows:
        raise RerankerUnavailable(f"this re-ranker has no modality embedding for {modality}")
    return model._rows[modality]


def _embed(model: Reranker, side: TokenBatch, which: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One side's ``[vector] tokens`` projected to the model's width, tagged with position, side and modality."""
    if side.modality not in model.inputs:
        raise RerankerUnavailable(f"this re-ranker was not trained with {side.modality} tokens")
    tokens = side.tokens[:, : model.config.max_tokens]
    mask = side.mask[:, : model.config.max_tokens]
    x = torch.cat([model.vector_in(side.vectors).unsqueeze(1), model.inputs[side.modality](tokens)], dim=1)
    positions = torch.arange(x.shape[1], device=x.device)
    x = x + model.position(positions) + model.side.weight[which] + model.modality.weight[_row(model, side.modality)]
    keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
    return x, keep


class CrossKind(RerankerKind):
    """``scale * first_stage + match_weight * late interaction + a correction read from [CLS]``, per pair."""

    name = "cross"

    def build(self, model: Reranker) -> None:
        """The layers, as attributes of the model (named as saved re-rankers name them)."""
        config = model.config
        w = config.width
        model.inputs = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, w), nn.LayerNorm(w)) for m, d in config.token_dims.items()})
        model.vector_in = nn.Sequential(nn.Linear(config.vector_dim, w), nn.LayerNorm(w))
        model.modality = nn.Embedding(len(config.modalities), w)
        model._rows = {m: i for i, m in enumerate(config.modalities)}
        model.side = nn.Embedding(2, w)
        model.position = nn.Embedding(config.max_tokens + 1, w)
        model.cls = nn.Parameter(torch.zeros(1, 1, w))
        layer = nn.TransformerEncoderLayer(w, config.heads, 2 * w, config.dropout, batch_first=True, norm_first=True)
        model.query_encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        model.blocks = nn.ModuleList(CrossBlock(w, config.heads, config.dropout) for _ in range(config.layers))
        model.norm = nn.LayerNorm(w)
        model.out = nn.Linear(w, 1)
        nn.init.zeros_(model.out.weight)
        nn.init.zeros_(model.out.bias)
        # Late interaction on the attended states: each query token's best match among the candidate's tokens.
        model.match_q = nn.Linear(w, w, bias=False)
        model.match_c = nn.Linear(w, w, bias=False)
        model.match_weight = nn.Parameter(torch.tensor(0.0))

    def score(self, model: Reranker, query: TokenBatch, candidate: TokenBatch, first_stage: torch.Tensor,
              owner: torch.Tensor) -> torch.Tensor:
        """Scores (n,) of n candidates."""
        n = candidate.tokens.shape[0]
        q, q_keep = _embed(model, query, 0)
        memory = model.query_encoder(q, src_key_padding_mask=~q_keep)
        c, c_keep = _embed(model, candidate, 1)
        x = torch.cat([model.cls.expand(n, -1, -1), c], dim=1)
        x_keep = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=x.device), c_keep], dim=1)
        for block in model.blocks:
            x = block(x, x_keep, memory, q_keep, owner)
        h = model.norm(x)
        hq = nn.functional.normalize(model.match_q(memory), dim=-1)[owner]
        hc = nn.functional.normalize(model.match_c(h[:, 1:]), dim=-1)
        sims = (hq @ hc.transpose(1, 2)).masked_fill(~c_keep[:, None, :], -1.0)
        q_mask = q_keep[owner].to(sims.dtype)
        match = (sims.amax(dim=2) * q_mask).sum(dim=1) / q_mask.sum(dim=1)
        return model.scale * first_stage + model.match_weight * match + model.out(h[:, 0]).squeeze(-1)


KIND = CrossKind()

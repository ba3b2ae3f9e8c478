"""The ``cross`` re-ranker kind: candidate tokens attend to each other and to the query's tokens, plus late
interaction; the learned correction starts at zero, so an untrained re-ranker keeps the first-stage order.

Its layers and forward pass are ``Reranker.build_cross`` and ``Reranker.cross_score`` (engine/rerank/model.py), where
the modality embedding they share with saved files is kept.
"""

from __future__ import annotations

import torch

from engine.rerank.kinds import RerankerKind
from engine.rerank.model import Reranker, TokenBatch


class CrossKind(RerankerKind):
    """``scale * first_stage + match_weight * late interaction + a correction read from [CLS]``, per pair."""

    name = "cross"

    def build(self, model: Reranker) -> None:
        model.build_cross()

    def score(self, model: Reranker, query: TokenBatch, candidate: TokenBatch, first_stage: torch.Tensor,
              owner: torch.Tensor) -> torch.Tensor:
        return model.cross_score(query, candidate, first_stage, owner)


KIND = CrossKind()

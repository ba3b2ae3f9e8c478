"""The attention re-ranker: token features, the model, its training, and re-ranking of fused results."""

from engine.rerank.model import Reranker, RerankerConfig, TokenBatch
from core.errors import RerankerUnavailable
from engine.models.tokens import MAX_TOKENS, pack

RERANK_DEPTH = 50

__all__ = ["MAX_TOKENS", "RERANK_DEPTH", "Reranker", "RerankerConfig", "TokenBatch", "pack",
           "wanted"]


def wanted(reranker: Reranker | None, query_modality: str, targets: list[str], rerank: bool | None,
           preset: str) -> bool:
    """Whether to re-rank: as asked (``True`` needs a re-ranker), else on where held-out data showed a gain for
    every searched direction."""
    if rerank is True and reranker is None:
        raise RerankerUnavailable(f"preset {preset!r} has no attention re-ranker")
    if rerank is not None:
        return rerank
    return reranker is not None and bool(targets) and all(reranker.is_enabled(query_modality, t) for t in targets)

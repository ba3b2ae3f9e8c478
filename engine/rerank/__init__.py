"""The attention re-ranker model (its training is ``engine.train``; its use in a search is ``engine.query.policy``)."""

from engine.rerank.model import Reranker, RerankerConfig, TokenBatch

__all__ = ["Reranker", "RerankerConfig", "TokenBatch"]

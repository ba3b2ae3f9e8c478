"""Re-rank fused first-stage results with the attention re-ranker, using token features stored at ingest."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from core.errors import RerankerUnavailable
from engine.query.fusion import Calibration
from engine.query.search import Result
from engine.rerank.model import Reranker, TokenBatch
from index import Catalog


def bounded(first: np.ndarray, correction: np.ndarray, bound: float) -> np.ndarray:
    """Ordering scores: first-stage calibrated scores plus the re-ranker's correction, centred on the candidates'
    median and clipped to ``±bound`` (calibrated units), so it reorders only candidates the first stage found close.

    Out of its training domain the correction is large and arbitrary (a scenes-trained re-ranker lifts unrelated
    captions above an exact digit match); within ``2 * bound`` of each other it decides, beyond that it cannot.
    """
    if len(correction) == 0:
        return first.astype(np.float32)
    centred = correction - np.median(correction)
    return (first + np.clip(centred, -bound, bound)).astype(np.float32)


@torch.inference_mode()
def corrections(reranker: Reranker, query: TokenBatch, candidates: TokenBatch, first: np.ndarray) -> np.ndarray:
    """The re-ranker's raw correction per candidate in calibrated first-stage units: (score - scale*first) / scale."""
    scale = float(reranker.scale)
    raw = reranker(query, candidates, torch.from_numpy(first)).numpy()
    if scale <= 1e-6:  # a degenerate re-ranker that ignores the first stage: its whole score is the correction
        return raw - raw.mean()
    return (raw - scale * first) / scale


def rerank(reranker: Reranker, catalog: Catalog, model: str, results: list[Result], query: TokenBatch,
           calibration: Callable[[str, str], Calibration], k: int) -> list[Result]:
    """Score each result's matched representation against the query; the top ``k`` by bounded re-ranked score.

    Every result gets ``rerank_score`` (the score that orders the list: calibrated first-stage score plus the
    bounded correction); the first-stage feature is the matched cosine in the calibrated units the fusion uses,
    so candidates of different target modalities stay comparable.
    """
    if not results:
        return []
    by_modality: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        by_modality.setdefault(r.match.modality, []).append(i)
    scores = np.empty(len(results), dtype=np.float32)
    for modality, rows in by_modality.items():
        rep_ids = np.array([results[i].match.representation_id for i in rows], dtype=np.int64)
        stored = catalog.tokens_for(model, rep_ids)
        missing = [int(r) for r in rep_ids if int(r) not in stored]
        if missing:
            raise RerankerUnavailable(
                f"{len(missing)} candidate(s) have no stored token features for {model} (e.g. representation "
                f"{missing[0]}); run `xmodal ingest --tokens` again on those files to add them")
        vectors = catalog.vectors_for(model, rep_ids)
        cal = calibration(query.modality, modality)
        cosines = np.array([results[i].first_stage for i in rows], dtype=np.float32)
        first = (cosines - cal.mean) / max(cal.std, 1e-6)
        candidates = TokenBatch.from_arrays([stored[int(r)] for r in rep_ids], vectors, modality, reranker.config.max_tokens)
        scores[rows] = bounded(first, corrections(reranker, query, candidates, first), reranker.config.max_correction)
    order = sorted(range(len(results)), key=lambda i: (-float(scores[i]), -results[i].score, results[i].item_id))[:k]
    return [replace(results[i], rerank_score=float(scores[i])) for i in order]

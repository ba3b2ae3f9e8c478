"""Re-rank fused first-stage results with the attention re-ranker, using token features stored at ingest."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from engine.errors import RerankerUnavailable
from engine.query.fusion import Calibration
from engine.query.search import Result
from engine.rerank.model import Reranker, Side
from index import Catalog


@torch.inference_mode()
def rerank(reranker: Reranker, catalog: Catalog, model: str, results: list[Result], query: Side,
           calibration: Callable[[str, str], Calibration], k: int) -> list[Result]:
    """Score each result's matched representation against the query; the top ``k`` by re-ranked score.

    Every result gets ``rerank_score``; the first-stage feature is the matched cosine in the calibrated units the
    fusion uses, so candidates of different target modalities stay comparable.
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
        first = torch.from_numpy((cosines - cal.mean) / max(cal.std, 1e-6))
        candidates = Side.from_arrays([stored[int(r)] for r in rep_ids], vectors, modality, reranker.config.max_tokens)
        scores[rows] = reranker(query, candidates, first).numpy()
    order = sorted(range(len(results)), key=lambda i: (-float(scores[i]), -results[i].score, results[i].item_id))[:k]
    return [replace(results[i], rerank_score=float(scores[i])) for i in order]

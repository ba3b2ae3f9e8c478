"""Re-rank fused first-stage results with the attention re-ranker, using token features stored at ingest.

The re-ranked order starts from the score that ordered the fused list (with probability fusion, the log-odds of a
match behind ``Result.score``; with calibrated fusion, the z-score itself) and adds the re-ranker's correction,
centred on the candidates' median, clipped to ``±max_correction`` calibrated units and converted into the start's
units. A query outside the re-ranker's training domain (``engine.rerank.domain``) gets no correction at all: its
first-stage order stands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from core.errors import RerankerUnavailable
from engine.query.calibrate import Calibrations
from engine.query.fusion import DEFAULT_FUSION, Calibration
from engine.query.search import Result
from engine.rerank.model import Reranker, TokenBatch
from index import Catalog

_P_EDGE = 1e-12  # probabilities are clipped this far from 0 and 1 before their log-odds are taken


def bounded(first: np.ndarray, correction: np.ndarray, bound: float) -> np.ndarray:
    """Ordering scores: first-stage calibrated scores plus the re-ranker's correction, centred on the candidates'
    median and clipped to ``±bound`` (calibrated units), so it reorders only candidates the first stage found close.

    Out of its training domain the correction is large and arbitrary (a scenes-trained re-ranker lifts unrelated
    captions above an exact digit match); within ``2 * bound`` of each other it decides, beyond that it cannot.
    """
    keep = np.ones(len(correction), dtype=bool)
    return ordering(first, correction, np.ones(len(correction)), keep, bound)


def ordering(start: np.ndarray, correction: np.ndarray, units: np.ndarray, keep: np.ndarray,
             bound: float) -> np.ndarray:
    """``start + units * clip(correction - median, ±bound)`` where ``keep``, ``start`` elsewhere; the median is of
    the kept candidates' corrections (``units``: the start's units per calibrated unit)."""
    start = np.asarray(start, dtype=np.float64)
    if len(correction) == 0 or not keep.any():
        return start.astype(np.float32)
    centred = np.where(keep, correction - np.median(correction[keep]), 0.0)
    return (start + units * np.clip(centred, -bound, bound)).astype(np.float32)


@dataclass(frozen=True)
class Starts:
    """Per candidate: the score the re-ranked order starts from, its units per calibrated first-stage unit, the
    calibrated cosine the re-ranker reads, and whether the correction may be added (a unit is known)."""

    start: np.ndarray
    units: np.ndarray
    first: np.ndarray
    usable: np.ndarray


def starts(results: list[Result], query_modality: str, calibration: Callable[[str, str], Calibration],
           fits: Calibrations | None = None, fusion: str = DEFAULT_FUSION) -> Starts:
    """Where each candidate's re-ranked score starts: the fused order's own score, in units the bound converts to.

    Probability fusion: the log-odds of ``Result.probability`` (what orders it), one calibrated unit being
    ``slope * background std`` log-odds of the pair's fitted curve. Calibrated fusion (also probability fusion's
    fallback without curves): ``Result.score`` (already a z-score). Otherwise (``rrf``, whose score has no units):
    the calibrated cosine, as before fusion had curves.
    """
    n = len(results)
    start, units, first = np.empty(n), np.ones(n), np.empty(n)
    usable = np.ones(n, dtype=bool)
    logits = fusion == "probability" and fits is not None and all(
        r.probability is not None and r.score == r.probability for r in results)
    z_scores = not logits and fusion in ("probability", "calibrated")  # probability falls back to calibrated
    for i, r in enumerate(results):
        cal = calibration(query_modality, r.match.modality)
        std = max(cal.std, 1e-6)
        first[i] = (r.first_stage - cal.mean) / std
        if logits:
            p = min(max(float(r.probability), _P_EDGE), 1.0 - _P_EDGE)
            start[i] = np.log(p) - np.log1p(-p)
            fit = fits.fit_for(query_modality, r.match.modality, r.match.kind)
            usable[i] = fit is not None and fit.slope > 0
            units[i] = fit.slope * std if usable[i] else 0.0
        elif z_scores:
            start[i] = r.score
        else:
            start[i] = first[i]
    return Starts(start, units, first.astype(np.float32), usable)


@torch.inference_mode()
def corrections(reranker: Reranker, query: TokenBatch, candidates: TokenBatch, first: np.ndarray) -> np.ndarray:
    """The re-ranker's raw correction per candidate in calibrated first-stage units: (score - scale*first) / scale."""
    scale = float(reranker.scale)
    raw = reranker(query, candidates, torch.from_numpy(first)).numpy()
    if scale <= 1e-6:  # a degenerate re-ranker that ignores the first stage: its whole score is the correction
        return raw - raw.mean()
    return (raw - scale * first) / scale


def rerank(reranker: Reranker, catalog: Catalog, model: str, results: list[Result], query: TokenBatch,
           calibration: Callable[[str, str], Calibration], k: int, *, fits: Calibrations | None = None,
           fusion: str = DEFAULT_FUSION) -> list[Result]:
    """Score each result's matched representation against the query; the top ``k`` by bounded re-ranked score.

    Every result gets ``rerank_score``, the score that orders the list: its first-stage ordering score (``starts``)
    plus the bounded correction, in the start's units, so candidates of different target modalities stay
    comparable. A query outside the re-ranker's domain gets the fused top ``k`` as they are (no ``rerank_score``). ``fits`` and ``fusion``
    are the searcher's curves and the fusion that ordered ``results``.
    """
    if not results:
        return []
    # bench.rerank_domain: gating candidates as well as the query cost in-domain text->image R@1 and gained nothing
    # out of the domain, so only the query is checked
    if not reranker.in_domain(query.modality, query.vectors.numpy())[0]:
        return results[:k]  # the fused order, shown as such (no rerank_score)
    begin = starts(results, query.modality, calibration, fits, fusion)
    scores = begin.start.astype(np.float32)
    by_modality: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        by_modality.setdefault(r.match.modality, []).append(i)
    for modality, rows in by_modality.items():
        rep_ids = np.array([results[i].match.representation_id for i in rows], dtype=np.int64)
        stored = catalog.tokens_for(model, rep_ids)
        missing = [int(r) for r in rep_ids if int(r) not in stored]
        if missing:
            raise RerankerUnavailable(
                f"{len(missing)} candidate(s) have no stored token features for {model} (e.g. representation "
                f"{missing[0]}); run `xmodal ingest --tokens` again on those files to add them")
        vectors = catalog.vectors_for(model, rep_ids)
        keep = begin.usable[rows]
        first = begin.first[rows]
        candidates = TokenBatch.from_arrays([stored[int(r)] for r in rep_ids], vectors, modality,
                                            reranker.config.max_tokens)
        correction = corrections(reranker, query, candidates, first)
        scores[rows] = ordering(begin.start[rows], correction, begin.units[rows], keep, reranker.config.max_correction)
    order = sorted(range(len(results)), key=lambda i: (-float(scores[i]), i))[:k]
    return [replace(results[i], rerank_score=float(scores[i])) for i in order]

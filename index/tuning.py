"""Tune ``nprobe``/``efSearch``/``k_factor`` to the cheapest setting reaching a target recall@k vs exact search."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from index.backend import VectorBackend
from index.config import SearchParams
from index.exact import neighbour_recall

log = logging.getLogger(__name__)

_K_FACTORS = (4, 16, 64)


@dataclass(frozen=True)
class TuneResult:
    """The chosen parameters, the recall they reached, whether that met the target, and every trial."""

    params: SearchParams
    recall: float
    reached: bool
    trials: tuple[tuple[SearchParams, float], ...]


def _powers(upper: int, start: int = 1) -> list[int]:
    out, p = [], start
    while p < upper:
        out.append(p)
        p *= 2
    return out + [upper]


def _sweeps(knobs: dict[str, int]) -> list[list[SearchParams]]:
    """Candidate settings, cheapest first, grouped by sweep (each sweep is monotone in cost)."""
    if "nprobe" in knobs:
        kfs = _K_FACTORS if "k_factor" in knobs else (None,)
        return [[SearchParams(nprobe=p, k_factor=kf) for p in _powers(knobs["nprobe"])] for kf in kfs]
    if "efSearch" in knobs:
        kfs = _K_FACTORS if "k_factor" in knobs else (None,)
        return [[SearchParams(efSearch=e, k_factor=kf) for e in _powers(knobs["efSearch"], 16)] for kf in kfs]
    if "k_factor" in knobs:
        return [[SearchParams(k_factor=kf) for kf in _K_FACTORS]]
    return [[SearchParams()]]


def _refine_nprobe(index: VectorBackend, hit: SearchParams, queries: np.ndarray, truth: np.ndarray,
                   target: float, k: int, trials: list, self_ids: np.ndarray | None) -> tuple[SearchParams, float]:
    """Bisect nprobe between the last failing power of two and the first passing one."""
    lo, hi = hit.nprobe // 2, hit.nprobe
    best = (hit, trials[-1][1])
    while hi - lo > max(1, hi // 8):
        mid = (lo + hi) // 2
        cand = SearchParams(nprobe=mid, efSearch=hit.efSearch, k_factor=hit.k_factor)
        r = measure(index, cand, queries, truth, k, self_ids)
        trials.append((cand, r))
        if r >= target:
            hi, best = mid, (cand, r)
        else:
            lo = mid
    return best


def drop_self(found: np.ndarray, self_ids: np.ndarray | None, k: int) -> np.ndarray:
    """Remove each query's own id from its result row (queries taken from the corpus), keeping ``k`` columns."""
    if self_ids is None:
        return found[:, :k]
    out = np.full((len(found), k), -1, dtype=np.int64)
    for row, (f, own) in enumerate(zip(found, self_ids)):
        kept = f[f != own][:k]
        out[row, : len(kept)] = kept
    return out


def measure(index: VectorBackend, params: SearchParams, queries: np.ndarray, truth: np.ndarray, k: int,
            self_ids: np.ndarray | None = None) -> float:
    """recall@k of ``index`` under ``params`` against exact ids ``truth`` (own ids excluded when given)."""
    index.set_params(params)
    _, found = index.search(queries, k + (self_ids is not None))
    return neighbour_recall(drop_self(found, self_ids, k), truth, k)


def tune(index: VectorBackend, queries: np.ndarray, truth: np.ndarray, target: float = 0.95, k: int = 10,
         self_ids: np.ndarray | None = None) -> TuneResult:
    """Pick the cheapest search parameters whose recall@k reaches ``target``; else the best seen. Leaves them set.

    ``self_ids``: when the queries are stored vectors, their own ids, left out of results and ``truth``.
    """
    trials: list[tuple[SearchParams, float]] = []
    best: tuple[SearchParams, float] | None = None
    for sweep in _sweeps(index.tunable()):
        for cand in sweep:
            r = measure(index, cand, queries, truth, k, self_ids)
            trials.append((cand, r))
            if best is None or r > best[1]:
                best = (cand, r)
            if r >= target:
                if cand.nprobe and cand.nprobe > 1:
                    cand, r = _refine_nprobe(index, cand, queries, truth, target, k, trials, self_ids)
                index.set_params(cand)
                index.recall = r
                return TuneResult(cand, r, True, tuple(trials))
    assert best is not None
    log.warning("recall@%d target %.3f not reached by %s; best %.4f with %s", k, target, index.factory, best[1], best[0])
    index.set_params(best[0])
    index.recall = best[1]
    return TuneResult(best[0], best[1], False, tuple(trials))

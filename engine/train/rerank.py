"""Train the re-ranker on first-stage hard negatives (listwise softmax), evaluate it against the first stage."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from engine.train.rerank_data import EncodedDirection, hard_negatives
from engine.rerank.model import Reranker, RerankerConfig

KS = (1, 5, 10)


@dataclass(frozen=True)
class RerankTrainConfig:
    """Steps, lists (one positive + hard negatives), optimiser and model size; seeded."""

    steps: int = 1500
    queries_per_step: int = 64
    list_size: int = 16
    hard_pool: int = 50
    depth: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.01
    width: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    kind: str = "slots"
    slots: int = 4
    seed: int = 0
    min_gain: float = 0.005


def _lists(d: EncodedDirection, negatives: np.ndarray, rng: np.random.Generator, cfg: RerankTrainConfig
           ) -> tuple[np.ndarray, np.ndarray]:
    """Query rows and candidate rows (queries x list_size, positive first) for one step."""
    has = np.flatnonzero(d.relevant.any(axis=1))
    queries = rng.choice(has, min(cfg.queries_per_step, len(has)), replace=False)
    n_neg = min(cfg.list_size - 1, negatives.shape[1])
    cands = np.empty((len(queries), 1 + n_neg), dtype=np.int64)
    for i, q in enumerate(queries):
        cands[i, 0] = rng.choice(np.flatnonzero(d.relevant[q]))
        cands[i, 1:] = rng.choice(negatives[q], n_neg, replace=False)
    return queries, cands.reshape(-1)


def _score(model: Reranker, d: EncodedDirection, sims: np.ndarray, queries: np.ndarray, c_rows: np.ndarray) -> torch.Tensor:
    """Scores of candidate rows ``c_rows``, an equal number per query of ``queries`` (in order)."""
    per = len(c_rows) // len(queries)
    owner = torch.arange(len(queries)).repeat_interleave(per)
    first = torch.from_numpy(d.calibrated(sims[np.repeat(queries, per), c_rows]).astype(np.float32))
    return model(d.queries.side(torch.from_numpy(queries)), d.corpus.side(torch.from_numpy(c_rows)), first, owner)


def _in_batch_loss(model: Reranker, d: EncodedDirection, sims: np.ndarray, queries: np.ndarray,
                   c_rows: np.ndarray) -> torch.Tensor:
    """Softmax over every distinct candidate of the step for each query (its list's positive is the target; other
    candidates relevant to it are left out), each candidate encoded once: the lists' hard negatives plus in-batch ones
    (kinds whose candidate side does not depend on the query)."""
    unique, inverse = np.unique(c_rows, return_inverse=True)
    target = torch.from_numpy(inverse.reshape(len(queries), -1)[:, 0])
    first = torch.from_numpy(d.calibrated(sims[np.ix_(queries, unique)]).astype(np.float32))
    query_side, candidate_side = d.queries.side(torch.from_numpy(queries)), d.corpus.side(torch.from_numpy(unique))
    scores = model.kind.score_all(model, query_side, candidate_side, first)
    other = torch.from_numpy(d.relevant[np.ix_(queries, unique)])
    other[torch.arange(len(queries)), target] = False
    return torch.nn.functional.cross_entropy(scores.masked_fill(other, -1e4), target)


def train_reranker(train: list[EncodedDirection], val: list[EncodedDirection],
                   cfg: RerankTrainConfig = RerankTrainConfig(),
                   on_step: Callable[[int, float], None] | None = None) -> tuple[Reranker, dict[str, Any]]:
    """Train on ``train`` directions in turn; evaluate on ``val``; enable it where it beats the first stage."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dims: dict[str, int] = {}
    for d in train:
        for side in (d.queries, d.corpus):
            dims[side.modality] = int(side.tokens.shape[2])
    vector_dim = int(train[0].queries.vectors.shape[1])
    shape = dict(width=cfg.width, layers=cfg.layers, heads=cfg.heads, dropout=cfg.dropout, kind=cfg.kind, slots=cfg.slots)
    model = Reranker(RerankerConfig(dims, vector_dim, **shape))
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps))))
    prepared = [(d, d.sims, hard_negatives(d, cfg.hard_pool)) for d in train]
    model.train()
    started, losses = time.perf_counter(), []
    for step in range(cfg.steps):
        d, sims, negatives = prepared[step % len(prepared)]
        queries, c_rows = _lists(d, negatives, rng, cfg)
        if model.kind.in_batch:
            loss = _in_batch_loss(model, d, sims, queries, c_rows)
        else:
            scores = _score(model, d, sims, queries, c_rows).view(len(queries), -1)
            loss = torch.nn.functional.cross_entropy(scores, torch.zeros(len(scores), dtype=torch.long))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if on_step and (step + 1) % 100 == 0:
            on_step(step + 1, float(np.mean(losses[-100:])))
    model.eval()
    evaluation = {d.name: evaluate(model, d, cfg.depth) for d in val}
    enabled = tuple(name for name, e in evaluation.items() if beats_first_stage(e, cfg.min_gain))
    config = RerankerConfig(dims, vector_dim, **shape, enabled=enabled, evaluation=evaluation)
    final = Reranker(config)
    final.load_state_dict(model.state_dict())
    report = {"steps": cfg.steps, "seconds": round(time.perf_counter() - started, 1),
              "final_loss": float(np.mean(losses[-100:])), "evaluation": evaluation, "enabled": list(enabled)}
    return final.eval(), report


def _recalls(ranked_relevant: np.ndarray) -> dict[str, float]:
    return {f"R@{k}": round(float(ranked_relevant[:, :k].any(axis=1).mean()), 4) for k in KS}


@torch.inference_mode()
def rerank_rows(model: Reranker, d: EncodedDirection, depth: int, chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """First-stage top-``depth`` corpus rows per query, and the same rows in re-ranked order."""
    sims = d.sims
    depth = min(depth, sims.shape[1])
    top = np.argsort(-sims, axis=1, kind="stable")[:, :depth]
    reranked = np.empty_like(top)
    for start in range(0, len(top), chunk):
        rows = np.arange(start, min(start + chunk, len(top)))
        scores = _score(model, d, sims, rows, top[rows].reshape(-1)).view(len(rows), depth).numpy()
        order = np.argsort(-scores, axis=1, kind="stable")
        reranked[rows] = np.take_along_axis(top[rows], order, axis=1)
    return top, reranked


def beats_first_stage(e: dict[str, Any], min_gain: float = 0.0) -> bool:
    """Whether a held-out evaluation shows a real gain: R@1 up by ``min_gain`` with recall@1/5/10 not down on
    average, and more queries won at rank 1 than lost by at least two standard deviations of a sign test (so a
    few queries' luck on a small set does not switch it on)."""
    wins, losses = e.get("r1_wins", 0), e.get("r1_losses", 0)
    significant = wins - losses >= max(1.0, 2.0 * (wins + losses) ** 0.5)
    return e["gain_r1"] >= min_gain and e["gain_mean"] >= 0 and significant


def evaluate(model: Reranker, d: EncodedDirection, depth: int) -> dict[str, Any]:
    """Recall@1/5/10 of the first stage and of the re-ranked top ``depth``, per query, over a direction."""
    keep = d.relevant.any(axis=1)
    top, reranked = rerank_rows(model, d, depth)
    first_hits = np.take_along_axis(d.relevant, top, axis=1)[keep]
    second_hits = np.take_along_axis(d.relevant, reranked, axis=1)[keep]
    first, second = _recalls(first_hits), _recalls(second_hits)
    gains = [second[f"R@{k}"] - first[f"R@{k}"] for k in KS]
    return {"queries": int(keep.sum()), "corpus": int(d.relevant.shape[1]), "depth": depth,
            "first_stage": first, "reranked": second, "gain_r1": round(gains[0], 4),
            "r1_wins": int((second_hits[:, 0] & ~first_hits[:, 0]).sum()),
            "r1_losses": int((first_hits[:, 0] & ~second_hits[:, 0]).sum()),
            "gain_mean": round(float(np.mean(gains)), 4)}

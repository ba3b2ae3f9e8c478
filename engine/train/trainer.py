"""Train heads (and optionally small towers) with symmetric InfoNCE; validation recall@1 each epoch, early stopping."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from engine.models.heads import Head
from engine.models.towers.base import Tower
from engine.train.augment import AugmentConfig, augment
from engine.train.data import PairSet, TowerInputs, recall_at_1
from engine.train.losses import ContrastiveLoss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; everything random is drawn from ``seed``.

    ``rows_per_set`` > 0 draws that many rows from every pair set each epoch (repeating small sets, sampling
    large ones), so a 240-clip set is not drowned by a 4,000-pair one; ``time_budget_s`` > 0 stops after the
    first epoch that ends past the budget (the best weights are kept either way); the learning rate rises
    linearly over ``warmup_steps``, then follows a cosine.
    """

    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 6
    seed: int = 0
    temperature: float = 0.07
    augment: bool = True
    augmentation: AugmentConfig = AugmentConfig()
    rows_per_set: int = 0
    time_budget_s: float = 0.0
    warmup_steps: int = 0


@dataclass
class TrainReport:
    """What training did: per-epoch loss and validation recall@1, the best epoch and its score, seconds."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -float("inf")  # validation recall, or minus the loss when there are no validation pairs
    seconds: float = 0.0
    temperature: float = 0.0


class SharedSpace(nn.Module):
    """Trainable towers and heads per modality; frozen towers enter as precomputed features."""

    def __init__(self, heads: dict[str, Head], towers: dict[str, Tower] | None = None) -> None:
        super().__init__()
        self.heads = nn.ModuleDict(heads)
        self.towers = nn.ModuleDict(towers or {})

    def embed(self, side: TowerInputs, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit vectors for a batch of one side."""
        features = batch["features"] if side.frozen_features else self.towers[side.modality].embed(batch)
        return self.heads[side.modality](features)


def _embed_all(model: SharedSpace, side: TowerInputs, batch_size: int = 256) -> np.ndarray:
    rows, expand = torch.arange(len(side)), None
    if side.keys is not None:
        distinct, expand = torch.unique(side.keys, return_inverse=True)
        rows = torch.zeros(len(distinct), dtype=torch.long).scatter_(0, expand, rows)
    model.eval()
    with torch.no_grad():
        parts = [model.embed(side, side.take(rows[i : i + batch_size])) for i in range(0, len(rows), batch_size)]
    out = torch.cat(parts)
    return (out if expand is None else out[expand]).numpy()


def evaluate(model: SharedSpace, sets: list[PairSet]) -> dict[str, tuple[float, float]]:
    """a->b and b->a recall@1 (group relevance) per validation pair set."""
    return {s.name: recall_at_1(_embed_all(model, s.a), _embed_all(model, s.b), s.groups.numpy()) for s in sets}


def _epoch_rows(n: int, rows: int, gen: torch.Generator) -> torch.Tensor:
    """Row order for one epoch: a permutation of ``n`` rows, or ``rows`` of them from back-to-back permutations."""
    if rows <= 0:
        return torch.randperm(n, generator=gen)
    perms = [torch.randperm(n, generator=gen) for _ in range(-(-rows // n))]
    return torch.cat(perms)[:rows]


def _steps(sets: list[PairSet], size: int, gen: torch.Generator, rows: int = 0) -> list[list[tuple[PairSet, torch.Tensor]]]:
    """One epoch's steps: step k holds batch k of every pair set that still has one.

    Mixing the sets in each step keeps batch-norm statistics the same in training and evaluation: batches
    of one domain each (all speech, then all ESC) would train on per-domain statistics but evaluate on
    their running mixture.
    """
    per_set = []
    for s in sets:
        order = _epoch_rows(len(s.groups), rows, gen)
        per_set.append([(s, order[i : i + size]) for i in range(0, len(order), size) if len(order[i : i + size]) > 1])
    return [[chunks[k] for chunks in per_set if k < len(chunks)] for k in range(max(map(len, per_set), default=0))]


def _step_loss(model: SharedSpace, loss_fn: ContrastiveLoss, step: list[tuple[PairSet, torch.Tensor]],
               config: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Mean loss over the step's pair sets, with one tower pass per modality over all their rows."""
    rows: dict[tuple[str, bool], list[tuple[int, str, dict[str, torch.Tensor]]]] = {}
    for i, (pair_set, index) in enumerate(step):
        for name, side in (("a", pair_set.a), ("b", pair_set.b)):
            batch = side.take(index)
            if config.augment:
                batch = augment(batch, config.augmentation, gen)
            rows.setdefault((side.modality, side.frozen_features), []).append((i, name, batch))
    vectors: dict[tuple[int, str], torch.Tensor] = {}
    for (modality, frozen), entries in rows.items():
        joined = {k: torch.cat([batch[k] for _, _, batch in entries]) for k in entries[0][2]}
        out = model.embed(TowerInputs(modality, {}, frozen), joined)
        for (i, name, _), part in zip(entries, out.split([len(next(iter(b.values()))) for _, _, b in entries])):
            vectors[(i, name)] = part
    losses = [loss_fn(vectors[(i, "a")], vectors[(i, "b")], pair_set.groups[index]) for i, (pair_set, index) in enumerate(step)]
    return torch.stack(losses).mean()


def train(
    model: SharedSpace, train_sets: list[PairSet], val_sets: list[PairSet], config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainReport:
    """Train in place and leave the best-validation weights in ``model``."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    loss_fn = ContrastiveLoss(config.temperature)
    params = list(model.parameters()) + list(loss_fn.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, len(_steps(train_sets, config.batch_size, torch.Generator().manual_seed(0), config.rows_per_set)))
    warm = max(1, config.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    report, best_state, stale, start = TrainReport(), None, 0, time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        losses = []
        for step in _steps(train_sets, config.batch_size, gen, config.rows_per_set):
            loss = _step_loss(model, loss_fn, step, config, gen)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        scores = evaluate(model, val_sets)
        score = float(np.mean([np.mean(v) for v in scores.values()])) if scores else -float(np.mean(losses))
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "val_score": score,
                 "val_r1": {k: {"a_to_b": v[0], "b_to_a": v[1]} for k, v in scores.items()},
                 "seconds": time.perf_counter() - start}
        report.history.append(entry)
        if on_epoch:
            on_epoch(entry)
        if score > report.best_score:
            report.best_epoch, report.best_score, stale = epoch, score, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
        if config.time_budget_s and entry["seconds"] > config.time_budget_s:
            log.info("time budget of %.0f s spent after epoch %d", config.time_budget_s, epoch)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    report.seconds = time.perf_counter() - start
    report.temperature = loss_fn.temperature
    return report

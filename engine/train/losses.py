"""Symmetric InfoNCE with a learnable temperature, with multi-positive targets for class-level pairs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ContrastiveLoss(nn.Module):
    """CLIP's symmetric cross-entropy over a similarity matrix; items sharing a group count as positives."""

    def __init__(self, temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_scale = max_scale

    @property
    def temperature(self) -> float:
        """Current temperature (1 / scale)."""
        return float(1.0 / self.logit_scale.detach().exp().clamp(max=self.max_scale))

    def forward(self, a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Loss for unit vectors ``a`` and ``b`` (n, d) paired row by row; ``groups`` (n,) marks extra positives."""
        logits = self.logit_scale.exp().clamp(max=self.max_scale) * a @ b.T
        if groups is None:
            target = torch.arange(len(a), device=a.device)
            return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        positives = (groups[:, None] == groups[None, :]).float()
        target = positives / positives.sum(dim=1, keepdim=True)
        loss_ab = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        loss_ba = -(target.T * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
        return (loss_ab + loss_ba) / 2

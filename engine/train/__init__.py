"""Training: symmetric InfoNCE for heads and small towers on paired data."""

from engine.train.data import PairSet, Side, TensorCache, batched, group_ids, recall_at_1
from engine.train.losses import ContrastiveLoss
from engine.train.trainer import SharedSpace, TrainConfig, TrainReport, evaluate, train

__all__ = [
    "ContrastiveLoss", "PairSet", "SharedSpace", "Side", "TensorCache", "TrainConfig", "TrainReport",
    "batched", "evaluate", "group_ids", "recall_at_1", "train",
]

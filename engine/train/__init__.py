"""Training: symmetric InfoNCE for heads and small towers on paired data."""

from engine.train.data import PairSet, TensorCache, TowerInputs, batched, group_ids, recall_at_1
from engine.train.losses import ContrastiveLoss
from engine.train.recipe import DataSpec, load_dataset, train_val
from engine.train.rerank_data import encode_items
from engine.train.trainer import SharedSpace, TrainConfig, TrainReport, evaluate, train

__all__ = [
    "ContrastiveLoss", "PairSet", "SharedSpace", "TensorCache", "TowerInputs", "TrainConfig", "TrainReport",
    "batched", "evaluate", "group_ids", "recall_at_1", "train",
]
__all__ += ["DataSpec", "encode_items", "load_dataset", "train_val"]

"""Recall@k (COCO protocol) and mAP over a similarity matrix and a relevance matrix."""

import numpy as np
import pytest

from bench.retrieval_metrics import mean_average_precision, recall_at_k


def test_recall_and_map_by_hand():
    sims = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    relevant = np.array([[False, False, True], [True, False, True]])
    assert recall_at_k(sims, relevant, ks=(1, 2, 3)) == {1: 0.0, 2: 1.0, 3: 1.0}  # both first hit at rank 2
    # query 0: relevant at rank 2 -> AP 1/2; query 1: ranks 2 and 3 -> (1/2 + 2/3) / 2
    assert mean_average_precision(sims, relevant) == pytest.approx((0.5 + (0.5 + 2 / 3) / 2) / 2)


def test_perfect_ranking_scores_one():
    relevant = np.eye(4, dtype=bool)
    assert mean_average_precision(np.eye(4), relevant) == 1.0
    assert recall_at_k(np.eye(4), relevant, ks=(1,)) == {1: 1.0}

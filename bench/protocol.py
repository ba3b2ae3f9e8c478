"""Recall@k and mAP under the standard retrieval protocols, as plain functions over score matrices.

Every function takes ``sims`` (n_queries, n_corpus), higher is better. A score of ``-inf`` means "not
retrieved" (an ANN or engine stage that returned fewer than the whole corpus): such an item is never a hit,
and counts against average precision like a relevant item ranked past the end. Ties keep corpus order.

- instance level (COCO / Flickr30k Karpathy): each text describes exactly one image; text->image hits when
  that image is in the top k, image->text hits when any of its captions is;
- class level: every corpus item of the query's class is relevant; recall@k hits when any is in the top k,
  and mAP averages precision over the whole ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranks(sims: np.ndarray) -> np.ndarray:
    """Corpus indices of every query, best first (stable, so ties keep corpus order)."""
    return np.argsort(-sims, axis=1, kind="stable")


def ranked_hits(sims: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Boolean (n_queries, n_corpus): whether the item at each rank is relevant and was retrieved."""
    order = ranks(sims)
    retrieved = np.isfinite(np.take_along_axis(sims, order, axis=1))
    return np.take_along_axis(np.asarray(relevant, dtype=bool), order, axis=1) & retrieved


def recall_at_k(sims: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries with at least one relevant item in their top k, per k (the CLIP-paper recall)."""
    hits = ranked_hits(sims, relevant)
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def mean_average_precision(sims: np.ndarray, relevant: np.ndarray) -> float:
    """Mean over queries of average precision over the whole ranking (unretrieved relevant items add zero)."""
    hits = ranked_hits(sims, relevant).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    total = np.asarray(relevant, dtype=bool).sum(axis=1)
    return float(np.mean((precision * hits).sum(axis=1) / np.maximum(total, 1)))


def instance_relevance(text_image: Sequence[int] | np.ndarray, n_images: int) -> np.ndarray:
    """Boolean (n_texts, n_images): True where text i describes image ``text_image[i]``."""
    owner = np.asarray(text_image, dtype=np.int64)
    if owner.size and (owner.min() < 0 or owner.max() >= n_images):
        raise ValueError(f"text_image holds image indices outside [0, {n_images})")
    relevant = np.zeros((len(owner), n_images), dtype=bool)
    relevant[np.arange(len(owner)), owner] = True
    return relevant


def text_to_image_recall(sims: np.ndarray, text_image: Sequence[int] | np.ndarray,
                         ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Karpathy text->image recall@k: ``sims`` is (n_texts, n_images), each text's one image must be in its top k."""
    return recall_at_k(sims, instance_relevance(text_image, sims.shape[1]), ks)


def image_to_text_recall(sims: np.ndarray, text_image: Sequence[int] | np.ndarray,
                         ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Karpathy image->text recall@k: ``sims`` is (n_images, n_texts), any of the image's captions in its top k hits."""
    return recall_at_k(sims, instance_relevance(text_image, sims.shape[0]).T, ks)


def class_relevance(query_labels: Sequence[object], corpus_labels: Sequence[object]) -> np.ndarray:
    """Boolean (n_queries, n_corpus): True where query and corpus item share a (non-None) label."""
    q = np.array([str(x) if x is not None else "\0none-q" for x in query_labels], dtype=object)
    c = np.array([str(x) if x is not None else "\0none-c" for x in corpus_labels], dtype=object)
    return q[:, None] == c[None, :]


def class_recall(sims: np.ndarray, query_labels: Sequence[object], corpus_labels: Sequence[object],
                 ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Class-level recall@k: a query hits when any item of its class is in its top k."""
    return recall_at_k(sims, class_relevance(query_labels, corpus_labels), ks)


def class_map(sims: np.ndarray, query_labels: Sequence[object], corpus_labels: Sequence[object]) -> float:
    """Class-level mAP: every item of the query's class is relevant."""
    return mean_average_precision(sims, class_relevance(query_labels, corpus_labels))


def scores_from_rankings(rankings: Sequence[Sequence[int]], n_corpus: int) -> np.ndarray:
    """A score matrix that reproduces given per-query rankings (corpus columns, best first); the rest is ``-inf``."""
    sims = np.full((len(rankings), n_corpus), -np.inf)
    for i, columns in enumerate(rankings):
        columns = np.asarray(columns, dtype=np.int64)
        if len(np.unique(columns)) != len(columns):
            raise ValueError(f"ranking of query {i} repeats a corpus column")
        sims[i, columns] = np.arange(len(columns), 0, -1, dtype=np.float64)
    return sims

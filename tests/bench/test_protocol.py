"""Recall@k (instance and class protocols) and mAP: by hand, and against CLIP_benchmark on seeded scores."""

import numpy as np
import pytest

from bench.protocol import (
    class_map, class_recall, class_relevance, image_to_text_recall, instance_relevance, mean_average_precision,
    recall_at_k, scores_from_rankings, text_to_image_recall,
)

KS = (1, 2, 5, 10)


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


def test_instance_protocol_by_hand():
    # three images; captions 0,1 describe image 0, caption 2 image 1, caption 3 image 2
    text_image = [0, 0, 1, 2]
    t2i = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.2, 0.1], [0.5, 0.4, 0.3]])
    assert text_to_image_recall(t2i, text_image, ks=(1, 2, 3)) == {1: 0.5, 2: 0.75, 3: 1.0}
    i2t = np.array([[0.1, 0.9, 0.8, 0.0], [0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    # image 0: its second caption is first; image 1: its caption is third; image 2: its caption is first
    assert image_to_text_recall(i2t, text_image, ks=(1, 2, 3)) == pytest.approx({1: 2 / 3, 2: 2 / 3, 3: 1.0})
    with pytest.raises(ValueError):
        instance_relevance([0, 3], 3)


def test_class_protocol_by_hand():
    sims = np.array([[0.9, 0.8, 0.1, 0.7], [0.1, 0.2, 0.3, 0.9]])
    assert class_relevance(["a", None], ["a", "b", None, "a"]).tolist() == [[True, False, False, True], [False] * 4]
    assert class_recall(sims, ["b", "a"], ["a", "b", "c", "a"], ks=(1, 2)) == {1: 0.5, 2: 1.0}
    # query "b": its one item at rank 2 -> 1/2; query "a": ranks 1 and 4 -> (1 + 2/4) / 2
    assert class_map(sims, ["b", "a"], ["a", "b", "c", "a"]) == pytest.approx((0.5 + 0.75) / 2)


def test_unretrieved_items_never_hit_and_cost_average_precision():
    relevant = np.array([[True, False, True, False]])
    sims = scores_from_rankings([[1, 0]], 4)  # a stage that returned only two items
    assert sims[0, 1] > sims[0, 0] and np.isinf(sims[0, 2:]).all()
    assert recall_at_k(sims, relevant, ks=(1, 2, 4)) == {1: 0.0, 2: 1.0, 4: 1.0}
    assert mean_average_precision(sims, relevant) == pytest.approx(0.5 / 2)  # item 2 was never returned
    assert recall_at_k(scores_from_rankings([[1, 3]], 4), relevant, ks=(4,)) == {4: 0.0}
    with pytest.raises(ValueError):
        scores_from_rankings([[1, 1]], 4)


# ---- equality with CLIP_benchmark (the reference implementation of the CLIP-paper protocol) ----

def _seeded(n_images: int, captions_per_image: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, dim)).astype(np.float32)
    texts = rng.standard_normal((n_images * captions_per_image, dim)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    text_image = rng.permutation(np.repeat(np.arange(n_images), captions_per_image))
    return images, texts, text_image


def _reference_recall(torch, zr, scores: np.ndarray, relevant: np.ndarray, k: int, batch_size: int = 7) -> float:
    """The computation inside ``zeroshot_retrieval.evaluate`` for one direction."""
    per_query = zr.batchify(zr.recall_at_k, torch.from_numpy(scores), torch.from_numpy(relevant), batch_size, "cpu", k=k)
    return (per_query > 0).float().mean().item()


@pytest.mark.parametrize("seed,n_images,captions", [(0, 23, 5), (1, 40, 1), (2, 12, 3)])
def test_instance_recall_matches_clip_benchmark(seed, n_images, captions):
    torch = pytest.importorskip("torch")
    zr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")
    images, texts, text_image = _seeded(n_images, captions, 16, seed)
    scores = (texts.astype(np.float64) @ images.T.astype(np.float64))
    assert len(np.unique(scores)) == scores.size  # ties-free, so top-k order is unambiguous
    positive = instance_relevance(text_image, n_images)
    t2i, i2t = text_to_image_recall(scores, text_image, KS), image_to_text_recall(scores.T, text_image, KS)
    for k in KS:
        assert t2i[k] == pytest.approx(_reference_recall(torch, zr, scores, positive, k), abs=1e-6)
        assert i2t[k] == pytest.approx(_reference_recall(torch, zr, scores.T.copy(), positive.T.copy(), k), abs=1e-6)
    assert any(0 < v < 1 for v in (*t2i.values(), *i2t.values()))  # non-trivial figures, not all 0 or 1


@pytest.mark.parametrize("seed", [3, 4])
def test_class_recall_matches_clip_benchmark(seed):
    torch = pytest.importorskip("torch")
    zr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")
    rng = np.random.default_rng(seed)
    query_labels, corpus_labels = rng.integers(0, 6, 30), rng.integers(0, 6, 50)
    scores = rng.standard_normal((30, 50))
    relevant = class_relevance(query_labels, corpus_labels)
    keep = relevant.any(axis=1)  # CLIP_benchmark divides by the positives: queries need at least one
    ours = class_recall(scores[keep], query_labels[keep], corpus_labels, KS)
    for k in KS:
        assert ours[k] == pytest.approx(_reference_recall(torch, zr, scores[keep], relevant[keep], k), abs=1e-6)


def test_evaluate_end_to_end_matches(monkeypatch):
    """CLIP_benchmark's ``evaluate`` itself, fed seeded unit embeddings through a stub model, gives our figures."""
    torch = pytest.importorskip("torch")
    zr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")
    images, texts, text_image = _seeded(30, 5, 16, seed=5)
    captions = [[] for _ in images]
    for t, owner in enumerate(text_image):
        captions[owner].append(t)

    class Stub:
        def encode_image(self, x):
            return torch.from_numpy(images)[x]

        def encode_text(self, x):
            return torch.from_numpy(texts)[x]

    loader = [(torch.arange(s, min(s + 8, 30)), [captions[i] for i in range(s, min(s + 8, 30))]) for s in range(0, 30, 8)]
    monkeypatch.setattr(zr, "tqdm", lambda it: it)
    metrics = zr.evaluate(Stub(), loader, lambda ts: torch.tensor(ts), "cpu", amp=False, recall_k_list=list(KS))
    order = np.concatenate([captions[i] for i in range(30)])  # evaluate's text order: by image, then caption
    scores = texts[order].astype(np.float64) @ images.T.astype(np.float64)
    t2i, i2t = text_to_image_recall(scores, text_image[order], KS), image_to_text_recall(scores.T, text_image[order], KS)
    for k in KS:
        assert t2i[k] == pytest.approx(metrics[f"image_retrieval_recall@{k}"], abs=1e-6)
        assert i2t[k] == pytest.approx(metrics[f"text_retrieval_recall@{k}"], abs=1e-6)

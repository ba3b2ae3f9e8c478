"""The re-ranker never overturns a clear first-stage match: its correction is bounded (``apply.bounded``)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.query.rerank import bounded
from engine.rerank.model import MAX_CORRECTION, Reranker, RerankerConfig


def test_bounded_reorders_only_close_candidates():
    first = np.array([3.0, 2.9, 1.0, 0.95], dtype=np.float32)
    correction = np.array([-5.0, 5.0, -5.0, 5.0], dtype=np.float32)  # wants 1 over 0 and 3 over 2
    scores = bounded(first, correction, 0.5)
    order = list(np.argsort(-scores, kind="stable"))
    assert order == [1, 0, 3, 2]  # close pairs (gap 0.1, 0.05 < 2 x 0.5) swap; the pairs 2 apart do not mix
    assert np.all(np.abs(scores - first) <= 0.5 + 1e-6)


def test_bounded_is_centred_and_zero_bound_is_first_stage():
    first = np.array([2.0, 1.0, 0.0], dtype=np.float32)
    shifted = bounded(first, np.array([10.0, 10.0, 10.0], dtype=np.float32), 1.0)
    assert np.allclose(shifted, first)  # a correction that is the same for every candidate changes nothing
    assert np.allclose(bounded(first, np.array([-9.0, 0.0, 9.0], dtype=np.float32), 0.0), first)
    assert bounded(first[:0], first[:0], 1.0).shape == (0,)


def test_config_default_bound_and_old_configs_load(tmp_path):
    model = Reranker(RerankerConfig(token_dims={"text": 8, "image": 8}, vector_dim=16, width=16, layers=1, heads=2))
    assert model.config.max_correction == MAX_CORRECTION
    model.save(tmp_path / "r")
    import json

    raw = json.loads((tmp_path / "r" / "config.json").read_text())
    raw.pop("max_correction")  # a re-ranker saved before the bound existed
    (tmp_path / "r" / "config.json").write_text(json.dumps(raw))
    assert Reranker.load(tmp_path / "r").config.max_correction == MAX_CORRECTION


@pytest.fixture(scope="module")
def digits_store(tmp_path_factory, mini_encoder):
    """The demo's situation through the catalog API: digit images and their captions among unrelated captions."""
    from engine.datasets import SceneConfig, generate_scenes, load_sklearn_digits
    from bench.rerank import _store
    from engine.api.demo import DIGITS
    from engine.api.facade import Engine
    from engine.train.rerank_data import encode_items
    from index import open_store

    encoder = mini_encoder
    scenes = generate_scenes(SceneConfig(n_scenes=200, seed=7, image_size=64)).split("test").records[:12]
    texts = [f"the number {w}" for w in DIGITS] + [s.texts[0] for s in scenes] + [
        "the sound of sea waves", "the sound of a helicopter", "the sound of rain", "the sound of a dog barking"]

    class _Text:
        def __init__(self, i: int, text: str) -> None:
            self.id, self.content = f"t{i}", text

    corpus = [_Text(i, t) for i, t in enumerate(texts)]
    encoded = encode_items(encoder, "text", texts)
    root = tmp_path_factory.mktemp("digits-store")
    tokens = [encoded.tokens[i, : int(encoded.lengths[i])].numpy() for i in range(len(texts))]
    ids = _store(root, encoder.preset.name, corpus, "text", encoded.vectors.numpy(), tokens)
    digits = load_sklearn_digits(seed=0, size=64).split("test")
    first_of = {}
    for record in digits:
        first_of.setdefault(int(record.label), record.load_image())
    engine = Engine(open_store(root), encoder)
    yield engine, ids, texts, first_of
    engine.close()


@pytest.mark.slow
def test_out_of_domain_digit_matches_stay_first(digits_store):
    engine, ids, texts, images = digits_store
    assert engine.reranker is not None and engine.reranker.is_enabled("image", "text")
    kept, right = 0, 0
    for digit, image in images.items():
        first = engine.search(image, ["text"], 5, rerank=False)
        reranked = engine.search(image, ["text"], 5, rerank=True)
        assert [r.order_score for r in reranked] == sorted((r.order_score for r in reranked), reverse=True)
        top_first, top_reranked = texts[int(ids[first[0].item_id][1:])], texts[int(ids[reranked[0].item_id][1:])]
        if top_first.startswith("the number"):
            right += 1
            kept += top_reranked == top_first
    assert right >= 7  # the first stage gets most digits right: the check below is not vacuous
    assert kept == right  # and the (scenes-trained) re-ranker never takes a right digit caption off the top

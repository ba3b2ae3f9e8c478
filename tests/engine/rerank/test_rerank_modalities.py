"""Re-rankers key their modality embedding by name: old files load in the old row order, and a registry that grows
or a file saved in another order gives the same scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import RerankerUnavailable
from core.modalities import Modality, registered
from engine.rerank.model import LEGACY_MODALITIES, Reranker, RerankerConfig, TokenBatch

SHIPPED = Path(__file__).resolve().parents[3] / "data" / "xmodal-mini" / "reranker"
LIDAR = Modality("lidar", frozenset({".pcd"}))  # video is built in (embedded as image, audio)


def _batch(rng: np.random.Generator, n: int, length: int, width: int, dim: int, modality: str):
    tokens = [rng.standard_normal((length + i, width)).astype(np.float16) for i in range(n)]
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return TokenBatch.from_arrays(tokens, vectors, modality, 32)


def _scores(model: Reranker, dims: dict[str, int], dim: int) -> list[float]:
    rng = np.random.default_rng(15)
    with torch.no_grad():
        one = model(_batch(rng, 1, 5, dims["text"], dim, "text"), _batch(rng, 4, 6, dims["image"], dim, "image"),
                    torch.tensor([0.1, 0.2, 0.3, 0.4]))
        two = model(_batch(rng, 1, 9, dims["image"], dim, "image"), _batch(rng, 3, 4, dims["text"], dim, "text"),
                    torch.tensor([0.5, -0.1, 0.0]))
    return [float(x) for x in torch.cat([one, two])]


def test_the_shipped_reranker_loads_with_its_old_scores():
    # The scores the code before names were recorded (commit 18b5c22) gave for these seeded inputs.
    before = [-1.605188, -1.026018, 0.168955, -3.526547, 1.952614, -2.30752, 0.771028]
    assert "modalities" not in json.loads((SHIPPED / "config.json").read_text())
    model = Reranker.load(SHIPPED)
    assert model.config.modalities == LEGACY_MODALITIES == ("image", "text", "audio")
    np.testing.assert_allclose(_scores(model, {"text": 384, "image": 128}, 256), before, atol=1e-5)
    with registered(LIDAR):
        np.testing.assert_allclose(_scores(Reranker.load(SHIPPED), {"text": 384, "image": 128}, 256), before, atol=1e-5)


def _cross(modalities: tuple[str, ...] | None = None) -> Reranker:
    torch.manual_seed(3)
    shape = {"width": 16, "layers": 1, "heads": 2}
    config = RerankerConfig({"text": 8, "image": 6}, 16, **shape, **({"modalities": modalities} if modalities else {}))
    model = Reranker(config).eval()
    with torch.no_grad():  # the correction head starts at zero: give the modality rows a say in the score
        for p in (model.out.weight, model.out.bias, model.match_weight):
            p.normal_()
    return model


def test_an_old_cross_reranker_loads_in_the_old_row_order_when_the_registry_grows(tmp_path):
    model = _cross()
    assert model.config.modalities == ("image", "text", "audio") and model.modality.weight.shape[0] == 3
    expected = _scores(model, {"text": 8, "image": 6}, 16)
    model.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["modalities"] == ["image", "text", "audio"]
    del config["modalities"]  # as files saved before the names were recorded
    (tmp_path / "config.json").write_text(json.dumps(config))
    with registered(LIDAR):
        assert _cross().config.modalities == ("image", "text", "audio", "lidar")  # new ones get a row for it
        loaded = Reranker.load(tmp_path)
        assert loaded.config.modalities == ("image", "text", "audio")
        assert _scores(loaded, {"text": 8, "image": 6}, 16) == pytest.approx(expected, abs=1e-6)


def test_rows_are_found_by_name_not_position(tmp_path):
    model = _cross()
    expected = _scores(model, {"text": 8, "image": 6}, 16)
    order = ("audio", "text", "image")
    moved = _cross(order)
    state = model.state_dict()
    state["modality.weight"] = state["modality.weight"][[LEGACY_MODALITIES.index(m) for m in order]]
    moved.load_state_dict(state)
    assert _scores(moved, {"text": 8, "image": 6}, 16) == pytest.approx(expected, abs=1e-6)
    moved.save(tmp_path)
    assert Reranker.load(tmp_path).config.modalities == order
    assert _scores(Reranker.load(tmp_path), {"text": 8, "image": 6}, 16) == pytest.approx(expected, abs=1e-6)


def test_a_reranker_saved_with_a_modality_the_registry_lacks_still_loads(tmp_path):
    with registered(LIDAR):
        model = _cross()
        expected = _scores(model, {"text": 8, "image": 6}, 16)
        model.save(tmp_path)
    loaded = Reranker.load(tmp_path)
    assert loaded.config.modalities == ("image", "text", "audio", "lidar")
    assert _scores(loaded, {"text": 8, "image": 6}, 16) == pytest.approx(expected, abs=1e-6)


def test_a_modality_without_a_row_is_refused():
    model = Reranker(RerankerConfig({"text": 8, "image": 6}, 16, width=16, layers=1, heads=2,
                                    modalities=("image", "audio"))).eval()
    rng = np.random.default_rng(0)
    with pytest.raises(RerankerUnavailable, match="no modality embedding for text"):
        model(_batch(rng, 1, 3, 8, 16, "text"), _batch(rng, 2, 3, 6, 16, "image"), torch.zeros(2))

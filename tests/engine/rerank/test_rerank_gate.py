"""The re-ranker starts from the fused order's own score and leaves queries and candidates outside its domain alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import InvalidPreset
from engine.query.calibrate import Calibrations, PairFit
from engine.query.fusion import Calibration
from engine.query.rerank import ordering, starts
from engine.query.search import Match, Result
from engine.rerank.domain import DOMAIN_FILE, Domain
from engine.rerank.model import Reranker, RerankerConfig


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def domain() -> Domain:
    rng = np.random.default_rng(0)
    centre = np.zeros(16, dtype=np.float32)
    centre[0] = 1.0
    inside = _unit(centre + 0.3 * rng.standard_normal((64, 16)))
    return Domain({"text": inside}, {"text": 0.7}, k=5)


def test_domain_scores_inside_and_outside(domain):
    near = _unit(np.eye(16, dtype=np.float32)[:1] + 0.01)
    far = _unit(np.eye(16, dtype=np.float32)[5:6] - 0.5 * np.eye(16, dtype=np.float32)[:1])
    assert domain.scores("text", near)[0] > 0.7 > domain.scores("text", far)[0]
    assert domain.inside("text", np.vstack([near, far])).tolist() == [True, False]
    assert domain.inside("audio", near).tolist() == [False]  # a modality it never saw is outside
    assert domain.scores("text", near[:0]).shape == (0,)


def test_domain_round_trips_with_the_reranker_and_old_configs_have_none(tmp_path, domain):
    model = Reranker(RerankerConfig(token_dims={"text": 8, "image": 8}, vector_dim=16, width=16, layers=1, heads=2))
    assert model.domain is None and model.in_domain("text", np.ones((3, 16))).all()  # no domain: no check
    model.domain = domain
    model.save(tmp_path / "r")
    loaded = Reranker.load(tmp_path / "r")
    assert loaded.domain is not None and loaded.domain.thresholds == {"text": 0.7} and loaded.domain.k == 5
    probe = _unit(np.random.default_rng(1).standard_normal((4, 16)))
    assert np.allclose(loaded.domain.scores("text", probe), domain.scores("text", probe), atol=2e-3)  # float16 file
    raw = json.loads((tmp_path / "r" / "config.json").read_text())
    raw.pop("domain")
    (tmp_path / "r" / "config.json").write_text(json.dumps(raw))
    assert Reranker.load(tmp_path / "r").domain is None


def test_a_damaged_domain_file_is_an_invalid_preset(tmp_path, domain):
    domain.save(tmp_path)
    (tmp_path / DOMAIN_FILE).write_bytes(b"not an npz")
    with pytest.raises(InvalidPreset):
        Domain.load(tmp_path, domain.settings())
    np.savez(tmp_path / DOMAIN_FILE, text=np.full((3, 16), np.nan, dtype=np.float16))
    with pytest.raises(InvalidPreset):
        Domain.load(tmp_path, domain.settings())


def test_ordering_corrects_only_kept_candidates_in_the_start_units():
    start = np.array([4.0, 3.9, 1.0, 0.9])
    correction = np.array([-5.0, 5.0, -5.0, 5.0])
    units = np.full(4, 2.0)
    keep = np.array([True, True, False, False])
    scores = ordering(start, correction, units, keep, 0.25)
    assert np.allclose(scores[2:], start[2:])  # outside the domain: the first-stage score
    assert np.allclose(scores[:2], [4.0 - 0.5, 3.9 + 0.5])  # bound 0.25 calibrated units = 0.5 start units
    assert np.allclose(ordering(start, correction, units, np.zeros(4, dtype=bool), 0.25), start)


def _result(item: int, score: float, cosine: float, probability: float | None) -> Result:
    match = Match(item, "caption", "text", None, None, cosine, item)
    return Result(item, f"/x/{item}", "image", score, cosine, match, probability=probability)


def test_starts_follow_the_fusion_that_ordered_the_list():
    fits = Calibrations({"image->text": PairFit(slope=20.0, intercept=-10.0)})
    background = lambda q, t: Calibration(0.1, 0.05)  # noqa: E731
    p = [0.9, 0.6, 0.2]
    by_probability = [_result(i, p[i], c, p[i]) for i, c in enumerate([0.5, 0.4, 0.45])]
    s = starts(by_probability, "image", background, fits, "probability")
    assert np.allclose(s.start, np.log(np.array(p) / (1 - np.array(p))))  # the fused log-odds, not the cosine
    assert np.all(np.diff(s.start) < 0) and np.allclose(s.units, 20.0 * 0.05) and s.usable.all()
    assert np.allclose(s.first, (np.array([0.5, 0.4, 0.45]) - 0.1) / 0.05)  # what the re-ranker reads
    by_z = [_result(i, z, c, 0.5) for i, (z, c) in enumerate([(3.0, 0.2), (2.0, 0.3)])]
    s = starts(by_z, "image", background, fits, "calibrated")
    assert s.start.tolist() == [3.0, 2.0] and s.units.tolist() == [1.0, 1.0]
    s = starts(by_z, "image", background, None, "rrf")
    assert np.allclose(s.start, [2.0, 4.0])  # rrf has no units: the calibrated cosine, as before
    unfitted = [_result(0, 0.7, 0.5, 0.7)]
    assert not starts(unfitted, "audio", background, fits, "probability").usable[0]  # no curve: no correction


def test_a_query_outside_the_domain_keeps_the_fused_order_unlabelled(domain):
    import torch

    from engine.query.rerank import rerank
    from engine.rerank.model import TokenBatch

    model = Reranker(RerankerConfig(token_dims={"text": 8, "image": 8}, vector_dim=16, width=16, layers=1, heads=2))
    model.domain = domain
    far = _unit(np.eye(16, dtype=np.float32)[5:6] - 0.5 * np.eye(16, dtype=np.float32)[:1])
    query = TokenBatch(torch.zeros(1, 2, 8), torch.ones(1, 2, dtype=torch.bool), torch.from_numpy(far), "text")
    results = [_result(i, p, c, p) for i, (p, c) in enumerate([(0.9, 0.2), (0.8, 0.6), (0.1, 0.7)])]
    fits = Calibrations({"text->text": PairFit(slope=20.0, intercept=-10.0)})
    out = rerank(model, None, "m", results, query, lambda q, t: Calibration(0.1, 0.05), 2, fits=fits)
    assert out == results[:2] and all(r.ordered_by == "fused" for r in out)  # no catalog read, no correction


def test_build_and_attach_a_domain_to_a_saved_reranker(tmp_path, tiny_encoder):
    from engine.datasets import SceneConfig, generate_scenes
    from engine.train.rerank_domain import attach, build_domain

    scenes = generate_scenes(SceneConfig(n_scenes=80, seed=7, image_size=32))
    built = build_domain(tiny_encoder, [(scenes, ["image", "text"])], sample=12, held_out=20, percentile=10.0)
    assert {m: len(v) for m, v in built.samples.items()} == {"image": 12, "text": 12}
    assert set(built.thresholds) == {"image", "text"}
    assert built.extra["held_out_percentiles"]["text"]["10.0"] == built.thresholds["text"]
    width = built.samples["text"].shape[1]  # the token widths do not matter to the domain
    model = Reranker(RerankerConfig(token_dims={"text": 8, "image": 8}, vector_dim=width, width=16, layers=1, heads=2))
    model.save(tmp_path / "r")
    weights = (tmp_path / "r" / "model.safetensors").read_bytes()
    attach(tmp_path / "r", built, "test", max_correction=1.0)
    loaded = Reranker.load(tmp_path / "r")
    assert loaded.config.max_correction == 1.0 and loaded.domain.thresholds == built.thresholds
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == weights  # the weights are not touched
    inside = loaded.in_domain("text", built.samples["text"])
    assert inside.mean() > 0.5  # training items themselves are (mostly) in the domain

"""Contract: every registered re-ranker kind, chosen by name from its config, scores the same way (shape, eval
determinism, one query or many), saves and loads to identical scores; a new kind is one module registered by name."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from core.errors import InvalidPreset
from engine.rerank import Reranker, RerankerConfig, TokenBatch
from engine.rerank import kinds
from engine.rerank.kinds import kind_names, register_kind, reranker_kind


def _config(kind: str) -> RerankerConfig:
    return RerankerConfig({"text": 8, "image": 6}, 16, width=16, layers=1, heads=2, slots=2, kind=kind)


def _batch(rows: list[int], width: int, modality: str, seed: int) -> TokenBatch:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(rows), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tokens = [rng.standard_normal((n, width)).astype(np.float16) for n in rows]
    return TokenBatch.from_arrays(tokens, vectors, modality, 32)


def _model(kind: str) -> Reranker:
    torch.manual_seed(0)
    model = Reranker(_config(kind))
    with torch.no_grad():  # move every parameter off its initial value, so no kind passes by scoring zeros
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


QUERY = _batch([3], 8, "text", 1)
QUERIES = _batch([3, 5], 8, "text", 2)
CANDIDATES = _batch([1, 2, 5, 4], 6, "image", 3)
FIRST = torch.tensor([0.5, 1.0, -1.0, 0.0])


@pytest.mark.parametrize("kind", kind_names())
def test_scores_one_per_candidate_and_are_deterministic_in_eval(kind):
    model = _model(kind)
    assert model.kind.name == kind == model.config.kind
    with torch.inference_mode():
        scores = model(QUERY, CANDIDATES, FIRST)
        again = model(QUERY, CANDIDATES, FIRST)
    assert scores.shape == (4,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()
    assert torch.equal(scores, again)


@pytest.mark.parametrize("kind", kind_names())
def test_many_queries_score_as_each_alone(kind):
    model = _model(kind)
    owner = torch.tensor([0, 0, 1, 1])
    with torch.inference_mode():
        together = model(QUERIES, CANDIDATES, FIRST, owner)
        for q in range(2):
            alone = TokenBatch(QUERIES.tokens[q:q + 1], QUERIES.mask[q:q + 1], QUERIES.vectors[q:q + 1], "text")
            rows = owner == q
            cands = TokenBatch(CANDIDATES.tokens[rows], CANDIDATES.mask[rows], CANDIDATES.vectors[rows], "image")
            torch.testing.assert_close(model(alone, cands, FIRST[rows]), together[rows], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", kind_names())
def test_save_load_round_trip_gives_identical_scores(kind, tmp_path):
    model = _model(kind)
    model.save(tmp_path / "rr")
    loaded = Reranker.load(tmp_path / "rr")
    assert loaded.config.kind == kind and not loaded.training
    with torch.inference_mode():
        assert torch.equal(loaded(QUERY, CANDIDATES, FIRST), model(QUERY, CANDIDATES, FIRST))


@pytest.mark.parametrize("kind", [k for k in kind_names() if reranker_kind(k).in_batch])
def test_in_batch_kinds_score_all_pairs_as_pair_by_pair(kind):
    model = _model(kind)
    first = torch.linspace(-1, 1, 8).view(2, 4)
    with torch.inference_mode():
        matrix = model.kind.score_all(model, QUERIES, CANDIDATES, first)
        for q in range(2):
            one = TokenBatch(QUERIES.tokens[q:q + 1], QUERIES.mask[q:q + 1], QUERIES.vectors[q:q + 1], "text")
            torch.testing.assert_close(matrix[q], model(one, CANDIDATES, first[q]), atol=1e-5, rtol=1e-5)


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(InvalidPreset, match="unknown re-ranker kind 'nope'.*slots.*cross"):
        Reranker(_config("nope"))


def test_shipped_reranker_loads_as_its_kind():
    from pathlib import Path

    shipped = Reranker.load(Path(__file__).resolve().parents[3] / "data" / "xmodal-mini" / "reranker")
    assert shipped.kind.name == shipped.config.kind == "slots"


NEW_KIND = '''
    import torch
    from torch import nn

    from engine.rerank.kinds import RerankerKind


    class VectorGainKind(RerankerKind):
        name = "vector-gain"

        def build(self, model):
            model.gain = nn.Parameter(torch.tensor(2.0))

        def score(self, model, query, candidate, first_stage, owner):
            return model.scale * first_stage + model.gain * (query.vectors[owner] * candidate.vectors).sum(-1)


    KIND = VectorGainKind()
'''


def test_a_new_kind_is_one_module_registered_by_name(tmp_path, monkeypatch):
    (tmp_path / "my_kind.py").write_text(textwrap.dedent(NEW_KIND))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    register_kind("vector-gain", "my_kind")
    assert "vector-gain" in kind_names()
    model = Reranker(_config("vector-gain")).eval()
    model.save(tmp_path / "rr")
    with torch.inference_mode():
        expected = FIRST + 2.0 * (QUERY.vectors * CANDIDATES.vectors).sum(-1)
        torch.testing.assert_close(Reranker.load(tmp_path / "rr")(QUERY, CANDIDATES, FIRST), expected)

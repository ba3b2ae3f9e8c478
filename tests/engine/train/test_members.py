"""Ensemble members: ``xmodal train --add-members`` on a tiny trained preset; the ensemble tower and its checks."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.datasets import SceneConfig, generate_scenes
from engine.cli import main
from core.errors import InvalidInput, InvalidPreset
from engine.models import get_preset, load_encoder
from engine.models.heads import Head, HeadConfig
from engine.models.towers import SmallAudioCNN, SmallAudioConfig
from engine.models.towers.ensemble import EnsembleTower
from engine.train.members import copy_preset, member_seed, train_members
from engine.train.recipe import parse_data_spec
from tests.corpus import tiny_trainable_template

TINY = tiny_trainable_template("tiny-members", 8000, temporal_audio=True)
FAST = ["--epochs", "1", "--batch-size", "16", "--rows-per-set", "32", "--crop-frames", "16"]


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    template = root / "tiny-members.json"
    template.write_text(json.dumps(TINY))
    base, out = root / "base", root / "grown"
    cache = ["--cache", str(root / "cache")]
    assert main(["train", "--preset", str(template), "--data", "synthetic:40", "--out", str(base), "--name", "tiny", *FAST, *cache]) == 0
    code = main(["train", "--preset", str(base / "tiny.json"), "--add-members", "2", "--data", "synthetic:40",
                 "--member-variant", '{"temporal": false}', "--member-variant", "{}", "--lowpass-db", "40", "--out", str(out),
                 *FAST, *cache])
    return base, out, code


def _clips(n: int = 5) -> list:
    return [item.load() for item in generate_scenes(SceneConfig(n_scenes=n, seed=4)).samples("audio")][:n]


@pytest.mark.slow  # grown: two training runs
def test_add_members_writes_an_ensemble_preset(grown):
    base, out, code = grown
    assert code == 0
    raw = json.loads((out / "tiny.json").read_text())
    assert raw["towers"]["audio"] == {"kind": "ensemble", "source": "local:towers/audio"}
    assert raw["heads"]["audio"] == {"kind": "identity"} and raw["heads"]["text"]["path"] == "heads/text"
    assert raw["description"].endswith(" [audio: ensemble of 3 members]")
    assert all((out / "towers" / "audio" / str(k) / "tower" / "model.safetensors").is_file() for k in range(3))
    members = json.loads((out / "reports" / "members_audio.json").read_text())
    assert [m["member"] for m in members] == [1, 2] and all(np.isfinite(m["history"][0]["loss"]) for m in members)
    assert json.loads((base / "tiny.json").read_text())["towers"]["audio"]["kind"] == "small_audio_cnn"  # source kept


@pytest.mark.slow
def test_ensemble_averages_members_and_leaves_other_modalities_alone(grown):
    base, out, _ = grown
    old, new = load_encoder(base / "tiny.json"), load_encoder(out / "tiny.json")
    texts = ["a red circle", "two blue squares"]
    np.testing.assert_allclose(old.encode("text", texts), new.encode("text", texts), atol=1e-6)
    clips = _clips()
    tower = new.towers["audio"]
    assert isinstance(tower, EnsembleTower) and len(tower.members) == 3
    assert [m.config.temporal for m in tower.members] == [True, False, True]
    batch = new.preprocess("audio", clips)
    with torch.inference_mode():
        each = torch.stack([h(t.embed(batch)) for t, h in zip(tower.members, tower.heads)])
    np.testing.assert_allclose(new.encode("audio", clips), F.normalize(each.mean(0), dim=-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(old.encode("audio", clips), each[0].numpy(), atol=1e-5)  # member 0 is the old tower


@pytest.mark.slow
def test_ensemble_gives_tokens_and_the_same_vectors(grown):
    _, out, _ = grown
    encoder = load_encoder(out / "tiny.json", modalities=["audio"])
    batch = encoder.preprocess("audio", _clips(3))
    vectors, tokens = encoder.embed_with_tokens("audio", batch)
    np.testing.assert_allclose(vectors, encoder.embed("audio", batch), atol=1e-5)
    assert len(tokens) == 3 and all(t.ndim == 2 and t.shape[1] == 16 for t in tokens)


@pytest.mark.slow
def test_ensemble_random_build_copies_the_architecture(grown):
    _, out, _ = grown
    clips = _clips(2)
    real = load_encoder(out / "tiny.json", modalities=["audio"])
    fresh = load_encoder(get_preset(out / "tiny.json"), random_weights=True, modalities=["audio"])
    shapes = lambda enc: {k: tuple(v.shape) for k, v in enc.towers["audio"].state_dict().items()}  # noqa: E731
    assert shapes(fresh) == shapes(real)
    vectors = fresh.encode("audio", clips)
    assert vectors.shape == (2, 32) and not np.allclose(vectors, real.encode("audio", clips), atol=1e-3)


def test_ensemble_members_must_share_a_front_end():
    config = SmallAudioConfig(sample_rate=8000, n_mels=16, n_fft=256, hop_length=160, clip_seconds=1.0, channels=(8,),
                              out_dim=16, temporal=True)
    other = SmallAudioConfig(**{**config.__dict__, "n_mels": 24})
    head = Head(HeadConfig("linear", 16, 32))
    with pytest.raises(InvalidPreset, match="front end"):
        EnsembleTower([SmallAudioCNN(config), SmallAudioCNN(other)], [head, head])
    with pytest.raises(InvalidPreset, match="one head per member"):
        EnsembleTower([SmallAudioCNN(config)], [head, head])


@pytest.mark.slow
def test_member_variants_are_checked_before_training(grown):
    _, out, _ = grown
    with pytest.raises(InvalidInput, match="not fields of SmallAudioConfig"):
        train_members(out / "tiny.json", [parse_data_spec("synthetic:8")], count=1, variants=[{"channel": [4]}])
    with pytest.raises(InvalidInput, match="front end"):
        train_members(out / "tiny.json", [parse_data_spec("synthetic:8")], count=1, variants=[{"n_mels": 24}])


@pytest.mark.slow
def test_new_members_never_reuse_a_seed(grown):
    _, out, _ = grown
    members = json.loads((out / "reports" / "members_audio.json").read_text())
    assert [m["seed"] for m in members] == [member_seed(0, 1, 0), member_seed(0, 1, 1)] == [1, 2]
    assert member_seed(0, 3, 0) == 3  # a second --add-members on this 3-member ensemble starts after them


def test_add_members_needs_a_preset_file(tmp_path):
    with pytest.raises(InvalidInput, match="trained preset"):
        copy_preset(tmp_path / "missing.json", tmp_path / "out")
    assert main(["train", "--preset", str(tmp_path / "missing.json"), "--add-members", "1", "--data", "synthetic:8",
                 "--out", str(tmp_path / "out")]) == 2


def _train_args(*extra: str):
    import argparse

    from engine.cli.train import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["train", "--preset", "p.json", "--data", "synthetic:4", "--out", "o", *extra])


def test_train_low_pass_flags_reach_the_augmentation(tmp_path):
    from engine.cli.train import train_config

    assert train_config(_train_args()).augmentation.lowpass_db == 0.0  # off unless asked for
    config = train_config(_train_args("--lowpass-db", "40", "--lowpass-band", "0.55", "0.8", "--crop-frames", "96"))
    augmentation = config.augmentation
    assert (augmentation.lowpass_db, augmentation.lowpass_band, augmentation.crop_frames) == (40.0, (0.55, 0.8), 96)
    for bad in (["--lowpass-band", "0.8", "0.5"], ["--lowpass-band", "0.5", "1.5"], ["--lowpass-db", "-3"]):
        with pytest.raises(InvalidInput):
            train_config(_train_args(*bad))
    assert main(["train", "--preset", "p.json", "--data", "synthetic:4", "--out", str(tmp_path / "o"),
                 "--lowpass-band", "0.9", "0.1"]) == 2

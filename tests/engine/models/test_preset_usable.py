"""Presets usable as listed: towers load per modality, a folder without audio never needs the audio weights,
one error lists everything missing, and a bound audio head lands where the preset looks for it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.api.facade import Engine
from core.errors import InvalidInput, WeightsUnavailable
from engine.models import Head, load_encoder
from engine.models.shipped import shipped_dir
from engine.train.bind_audio import BindConfig, bind_audio_from_text

CAPTIONS = [f"a {c} {s}" for c in ("red", "green", "blue", "yellow") for s in ("circle", "square", "drum")]


def test_lazy_encoder_loads_only_what_is_used(tiny_encoder, sample_media):
    lazy = load_encoder("tiny-random", lazy=True)
    assert lazy.modalities == () and set(lazy.supported) == {"image", "text", "audio"}
    texts = sample_media["text"][:2]
    np.testing.assert_allclose(lazy.encode("text", texts), tiny_encoder.encode("text", texts), atol=1e-6)
    assert lazy.modalities == ("text",)
    # a tower built alone is the same as one built beside the others (each random tower has its own seed)
    clips = sample_media["audio"][:2]
    np.testing.assert_allclose(lazy.encode("audio", clips), tiny_encoder.encode("audio", clips), atol=1e-5)
    assert set(lazy.modalities) == {"text", "audio"}
    assert lazy.towers["text"] is not None and "image" not in lazy.towers


def _mini_without_clap(tmp_path: Path) -> Path:
    """The shipped xmodal-mini text and image sides, with a CLAP audio tower and head that are not on this machine."""
    mini = shipped_dir("xmodal-mini")
    raw = json.loads((mini / "xmodal-mini.json").read_text())
    raw["name"] = "mini-no-clap"
    raw["towers"]["image"]["source"] = f"local:{mini / 'towers' / 'image'}"
    raw["towers"]["audio"] = {"kind": "clap_audio", "source": "hf:xmodal-test/not-on-this-machine"}
    raw["heads"] = {"text": {**raw["heads"]["text"], "path": str(mini / "heads" / "text")},
                    "image": {**raw["heads"]["image"], "path": str(mini / "heads" / "image")},
                    "audio": {"kind": "linear", "path": str(tmp_path / "heads" / "audio")}}
    raw.pop("reranker", None)
    path = tmp_path / "mini-no-clap.json"
    path.write_text(json.dumps(raw))
    return path


def test_folder_without_audio_never_asks_for_audio_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    preset = _mini_without_clap(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    (photos / "note.txt").write_text("a note about a red kite")
    with Engine.open(tmp_path / "store", preset=preset) as engine:
        summary = engine.ingest([photos])
        assert summary.failures == [] and set(engine.encoder.modalities) == {"image", "text"}
        assert engine.search("a red kite", k=3)
        sounds = tmp_path / "sounds"
        sounds.mkdir()
        (sounds / "beep.wav").write_bytes(b"RIFF")
        with pytest.raises(WeightsUnavailable) as info:
            engine.ingest([sounds])
    message = str(info.value)
    assert len(info.value.missing) == 2  # the CLAP snapshot and the audio head, together
    assert "hf download xmodal-test/not-on-this-machine" in message and str(tmp_path / "heads" / "audio") in message


def _tiny_with_head_path(tmp_path: Path) -> Path:
    raw = json.loads((Path(load_encoder.__code__.co_filename).parent / "presets" / "tiny-random.json").read_text())
    raw["name"] = "tiny-headed"
    raw["heads"]["audio"] = {"kind": "linear", "path": str(tmp_path / "heads" / "audio")}
    path = tmp_path / "tiny-headed.json"
    path.write_text(json.dumps(raw))
    return path


def test_bound_head_lands_where_the_preset_looks(tmp_path):
    preset = _tiny_with_head_path(tmp_path)
    path, report = bind_audio_from_text(preset, CAPTIONS, config=BindConfig(ridge=1e-4))
    assert path == preset and report.history[0]["captions"] == len(CAPTIONS)
    saved = Head.load(tmp_path / "heads" / "audio")
    loaded = load_encoder(preset).heads["audio"]  # the preset finds it with no other change
    assert torch.equal(loaded.net.weight, saved.net.weight) and torch.count_nonzero(saved.net.bias) == 0
    assert not any(p.name != "tiny-headed.json" and p.suffix == ".json" for p in tmp_path.iterdir())  # no new preset


def test_bind_cli_without_out_prints_the_preset_to_use(tmp_path, capsys):
    preset = _tiny_with_head_path(tmp_path)
    assert main(["train", "--preset", str(preset), "--bind-audio-from-text", "--data", "synthetic:12"]) == 0
    out = capsys.readouterr().out
    assert f"audio head written to {tmp_path / 'heads' / 'audio'}; use it with --preset {preset}" in out
    assert (tmp_path / "heads" / "audio" / "config.json").is_file()


def test_bind_without_a_head_path_needs_out(tmp_path, capsys):
    with pytest.raises(InvalidInput, match="--out"):
        bind_audio_from_text("tiny-random", CAPTIONS)
    assert main(["train", "--preset", "tiny-random", "--data", "synthetic:12"]) == 2  # training always needs --out
    assert "--out DIR is required" in capsys.readouterr().err


def test_vectors_of_other_weights_are_refused_not_mixed(tmp_path):
    import soundfile as sf

    from core.errors import WeightsChanged
    from index.settings import read_settings, write_settings

    preset = _tiny_with_head_path(tmp_path)
    bind_audio_from_text(preset, CAPTIONS, config=BindConfig(ridge=1e-4))
    media = tmp_path / "media"
    media.mkdir()
    sf.write(media / "tone.wav", np.sin(np.arange(16000) / 5).astype(np.float32), 16000)
    (media / "note.txt").write_text("a red circle")
    store = tmp_path / "store"
    with Engine.open(store, preset=preset) as engine:
        assert engine.ingest([media]).failures == []
    recorded = read_settings(store)["weights"]["tiny-headed"]
    assert set(recorded) == {"audio", "text"}
    # an older store without fingerprints is adopted on open (the vectors are taken as the current weights')
    write_settings(store, {k: v for k, v in read_settings(store).items() if k != "weights"})
    with Engine.open(store, preset=preset) as engine:
        assert engine.search("a red circle", k=2)
    assert read_settings(store)["weights"]["tiny-headed"] == recorded
    # retraining the audio head changes what produced audio vectors: the store refuses instead of mixing
    bind_audio_from_text(preset, CAPTIONS[:6], config=BindConfig(ridge=1e-1))
    with pytest.raises(WeightsChanged, match="audio vectors"):
        Engine.open(store, preset=preset)
    assert main(["search", "a red circle", "--store", str(store), "--preset", str(preset)]) == 2

"""One-epoch training through ``xmodal train`` on tiny synthetic data; the written preset loads and searches."""

import json

import numpy as np
import pytest

from engine.datasets import SceneConfig, generate_scenes
from engine.cli import main
from engine.models import get_preset, load_encoder
from engine.train.augment import AugmentConfig, augment
from engine.train.recipe import parse_data_spec
from tests.corpus import tiny_trainable_template

TINY = tiny_trainable_template("tiny-train", 8000)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    template = root / "tiny-train.json"
    template.write_text(json.dumps(TINY))
    out = root / "out"
    argv = ["train", "--preset", str(template), "--data", "synthetic:40", "--out", str(out), "--name", "tiny-trained",
            "--epochs", "1", "--batch-size", "16", "--rows-per-set", "32", "--crop-frames", "16", "--cache", str(root / "cache")]
    return out, main(argv)


def test_one_epoch_writes_a_loadable_preset(trained):
    out, code = trained
    assert code == 0
    preset = get_preset(out / "tiny-trained.json")
    assert preset.towers["image"].source.scheme == "local" and (out / "towers" / "audio" / "model.safetensors").is_file()
    report = json.loads((out / "reports" / "train_report.json").read_text())
    assert len(report["history"]) == 1 and np.isfinite(report["history"][0]["loss"])
    raw = json.loads((out / "tiny-trained.json").read_text())
    assert raw["towers"]["audio"]["source"] == "local:towers/audio" and raw["heads"]["text"]["path"] == "heads/text"


def test_trained_preset_encodes_and_finds_the_easy_item(trained):
    out, _ = trained
    encoder = load_encoder(out / "tiny-trained.json")
    scenes = generate_scenes(SceneConfig(n_scenes=6, seed=3))
    for modality in ("image", "audio", "text"):
        inputs = [item.load() for item in scenes.samples(modality)][:6]
        vectors = encoder.encode(modality, inputs)
        assert vectors.shape == (len(inputs), 32) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        query = encoder.encode(modality, inputs[2:3])  # the item itself is the easiest query there is
        assert int(np.argmax(vectors @ query[0])) == 2


def test_mel_padding_is_left_out(trained):
    out, _ = trained
    encoder = load_encoder(out / "tiny-trained.json", modalities=["audio"])
    rng = np.random.default_rng(0)
    short = (rng.standard_normal(2000).astype(np.float32), 8000)
    alone = encoder.encode("audio", [short])
    batch = encoder.preprocess("audio", [short, (rng.standard_normal(8000).astype(np.float32), 8000)])
    assert batch["frames"].tolist() == [13, 51]
    together = encoder.embed("audio", batch)
    np.testing.assert_allclose(together[0], alone[0], atol=1e-4)


def test_augment_crops_inside_real_frames():
    import torch

    mel = torch.arange(2 * 4 * 10, dtype=torch.float32).reshape(2, 1, 4, 10)
    frames = torch.tensor([10, 3])
    out = augment({"mel": mel, "frames": frames}, AugmentConfig(crop_frames=5, gain_db=0, mel_shift=0, time_mask=0, freq_mask=0),
                  torch.Generator().manual_seed(0))
    assert out["mel"].shape == (2, 1, 4, 5) and out["frames"].tolist() == [5, 3]
    assert torch.equal(out["mel"][1], mel[1, :, :, :5])


def test_augment_speed_resamples_real_frames_only():
    import torch

    from engine.train.augment import change_speed

    mel = torch.arange(20, dtype=torch.float32).repeat(2, 1, 3, 1)  # (2, 1, 3, 20): column index as value
    out, frames = change_speed(mel, torch.tensor([10, 20]), torch.tensor([2.0, 0.5]))
    assert frames.tolist() == [5, 20]
    assert out[0, 0, 0, :5].tolist() == [0, 2, 4, 6, 8]  # twice as fast: every other frame
    assert torch.allclose(out[1, 0, 0, :4], torch.tensor([0.0, 0.5, 1.0, 1.5]))  # half speed: interpolated
    assert out[0, 0, 0, 5:].eq(0).all()  # past the new length: the floor


def test_augment_channel_colour_keeps_shape_and_frames():
    import torch

    mel = torch.randn(3, 1, 8, 12) * 10 - 40
    frames = torch.tensor([12, 6, 3])
    config = AugmentConfig(gain_db=0, mel_shift=0, time_mask=0, freq_mask=0, speed=0.2, tilt_db=10, noise_db=(10, 30))
    out = augment({"mel": mel, "frames": frames}, config, torch.Generator().manual_seed(0))
    again = augment({"mel": mel, "frames": frames}, config, torch.Generator().manual_seed(0))
    assert out["mel"].shape == mel.shape and torch.equal(out["mel"], again["mel"])
    assert torch.isfinite(out["mel"]).all() and (out["frames"] >= 1).all() and (out["frames"] <= 12).all()


def test_low_pass_lowers_only_bins_above_the_cut_and_never_below_the_floor():
    import torch

    from engine.train.augment import low_pass

    mel = torch.full((4, 1, 20, 6), -20.0)
    mel[..., 0] = -80.0  # each clip's floor
    out = low_pass(mel, 30.0, (0.5, 0.5), torch.Generator().manual_seed(0))  # cut at bin 10, 3-bin ramp
    assert torch.equal(out[:, :, :11], mel[:, :, :11])  # at and below the cut: unchanged
    drop = (mel - out)[:, 0, :, 1]  # (clips, bins) on a non-floor column
    assert (drop[:, 13:] == drop[:, 19:20]).all() and (drop[:, 19] > 0).all() and (drop[:, 19] <= 30).all()
    assert (drop[:, 11] < drop[:, 12]).all() and (drop[:, 12] < drop[:, 13]).all()  # the ramp rises
    assert out.min() >= -80.0 and torch.equal(out[..., 0], mel[..., 0])
    deep = low_pass(mel, 1000.0, (0.5, 0.5), torch.Generator().manual_seed(1))
    assert deep.min() == -80.0  # clamped at the floor


def test_data_spec_errors():
    from core.errors import InvalidInput

    assert parse_data_spec("synthetic:10").arg == "10" and parse_data_spec("synthetic:10").modalities == ()
    with pytest.raises(InvalidInput):
        parse_data_spec("esc10")
    with pytest.raises(InvalidInput):
        parse_data_spec("nope:1")


def test_data_spec_modalities():
    from core.errors import InvalidInput

    assert parse_data_spec("synthetic:50@image,text").modalities == ("image", "text")
    assert parse_data_spec("manifest:/data/a@b.csv").arg == "/data/a@b.csv"
    with pytest.raises(InvalidInput):
        parse_data_spec("synthetic:5@image")


def test_data_spec_text_round_trips():
    for text in ("synthetic:50@image,text", "esc10:/data/esc10", "digits:"):
        assert parse_data_spec(text).text() == text and parse_data_spec(parse_data_spec(text).text()) == parse_data_spec(text)


def test_speed_copies_add_resampled_audio_records():
    from engine.datasets.base import Dataset, Record
    from engine.models import AudioClip
    from engine.models.audio import mono_at
    from engine.train.recipe import speed_copies

    clip = AudioClip(np.zeros(8000, dtype=np.float32), 8000)
    data = Dataset("d", (Record("d:a", "train", "1", audio=clip, group="s"), Record("d:t", "train", "1", texts=("one",))),
                   protocol="class")
    out = speed_copies(data, (0.9, 1.0, 1.1))
    assert [r.id for r in out.records] == ["d:a", "d:t", "d:a@x0.9", "d:a@x1.1"]
    fast = out.by_id["d:a@x1.1"]
    assert (fast.label, fast.group, fast.split) == ("1", "s", "train")
    assert fast.load_audio().sample_rate == 8800 and out.by_id["d:a@x0.9"].load_audio().sample_rate == 7200
    assert abs(len(mono_at(fast.load_audio(), 16000)) - 16000 / 1.1) < 2  # played faster: shorter

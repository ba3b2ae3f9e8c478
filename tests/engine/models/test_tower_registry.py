"""Tower kinds are looked up by name: unknown kinds are refused with the known ones listed, a new kind is one
registration that presets and the factory then accept, the table reads without torch, and towers without token
features say so with ``RerankerUnavailable``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import InvalidPreset, RerankerUnavailable
from engine.models.factory import build_towers
from engine.models.presets import TowerSpec, parse_preset
from engine.models.towers.base import Tower, TowerOutput
from engine.models.towers.registry import (
    TowerKind, register_tower_kind, tower_kind, tower_kinds, unregister_tower_kind,
)
from engine.models.towers.small import SmallAudioCNN, SmallAudioConfig

ROOT = Path(__file__).resolve().parents[3]


def _preset(kind: str, modality: str = "text") -> dict:
    return {"name": "p", "dim": 8, "towers": {modality: {"kind": kind, "source": "local:/nowhere"}}}


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(InvalidPreset, match="unknown tower kind 'nope'; known kinds: open_clip, hf_text") as info:
        tower_kind("nope")
    assert all(name in str(info.value) for name in tower_kinds())
    with pytest.raises(InvalidPreset, match="p: unknown tower kind 'nope'; known kinds: "):
        parse_preset(_preset("nope"))
    with pytest.raises(InvalidPreset, match="unknown tower kind None"):
        parse_preset({"name": "p", "dim": 8, "towers": {"text": {"source": "local:/nowhere"}}})


def test_a_kind_serves_only_its_modalities():
    with pytest.raises(InvalidPreset, match="tower kind 'hf_text' cannot serve audio"):
        parse_preset(_preset("hf_text", "audio"))


class _Bag(Tower):
    """A toy tower kind: the mean of a text's character codes through a linear map; tokens are the characters."""

    modality = "text"
    out_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(1, 4)
        self.preprocessor = lambda texts: {"codes": torch.tensor([[float(ord(c)) for c in t[:8].ljust(8)] for t in texts])}

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        tokens = self.proj(batch["codes"][..., None] / 128)
        pooled = tokens.mean(dim=1)
        return TowerOutput(pooled, tokens, torch.ones(tokens.shape[:2], dtype=torch.bool)) if with_tokens else TowerOutput(pooled)


def build_bag(spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> Tower:
    """Builder of the toy kind (named by ``"module:function"`` in its registration)."""
    return _Bag()


def test_a_new_kind_is_one_registration():
    kind = register_tower_kind(TowerKind("bag", ("text",), f"{__name__}:build_bag"))
    try:
        assert "bag" in tower_kinds() and register_tower_kind(kind) is kind  # registering again is harmless
        with pytest.raises(InvalidPreset, match="already registered"):
            register_tower_kind(TowerKind("bag", ("audio",), f"{__name__}:build_bag"))
        towers = build_towers(parse_preset(_preset("bag")), random_weights=True)
        assert isinstance(towers["text"], _Bag)
        assert towers["text"].embed(towers["text"].preprocess(["hi"])).shape == (1, 4)
    finally:
        unregister_tower_kind("bag")
    assert "bag" not in tower_kinds()
    with pytest.raises(InvalidPreset, match="built in"):
        unregister_tower_kind("open_clip")


def test_presets_and_the_kind_table_read_without_torch():
    code = ("import sys\n"
            "from engine.models.presets import get_preset\n"
            "from engine.models.towers.registry import tower_kinds\n"
            "assert get_preset('xmodal-mini').towers['audio'].kind == 'ensemble' and 'open_clip' in tower_kinds()\n"
            "heavy = [m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_towers_without_tokens_say_so():
    class _Plain(Tower):  # a tower that only overrides embed, as training wrappers do
        def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return batch["x"]

    with pytest.raises(RerankerUnavailable, match="_Plain gives no token features"):
        _Plain().embed_with_tokens({"x": torch.zeros(1, 2)})
    flat = SmallAudioCNN(SmallAudioConfig(n_mels=16, channels=(8,), out_dim=4, clip_seconds=0.5)).eval()
    batch = flat.preprocess([(torch.zeros(8000).numpy(), 16000)])
    with pytest.raises(RerankerUnavailable, match="temporal"):
        flat.embed_with_tokens(batch)
    assert flat.embed(batch).shape == (1, 4)

"""Audio tower over transformers CLAP (audio side), with the feature extractor matched to the tower."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

from core.errors import InvalidPreset
from engine.models.preprocess import ClapFeatures
from engine.models.presets import TowerSpec
from engine.models.sources import ModelSource
from engine.models.towers.base import Tower, TowerOutput, all_valid, captured
from engine.models.weights import resolve

log = logging.getLogger(__name__)


def extractor_truncation(config: ClapConfig) -> str:
    """The extractor mode a tower wants: 4-channel ``fusion`` input for fused towers, 1-channel otherwise."""
    return "fusion" if config.audio_config.enable_fusion else "rand_trunc"


class ClapAudioTower(Tower):
    """CLAP ``get_audio_features`` (HTSAT + CLAP projection) on 48 kHz log-mel input; its tokens are the audio
    model's last hidden state (HTSAT's (C, F, T) map flattened to positions)."""

    modality = "audio"

    def __init__(self, clap: ClapModel, extractor: ClapFeatureExtractor) -> None:
        super().__init__()
        want = extractor_truncation(clap.config)
        if extractor.truncation != want:
            raise InvalidPreset(
                f"CLAP extractor truncation {extractor.truncation!r} does not match the tower "
                f"(enable_fusion={clap.config.audio_config.enable_fusion}); it needs {want!r}"
            )
        self.clap = clap
        self.extractor = extractor
        self.preprocessor = ClapFeatures(extractor)
        self.out_dim = int(clap.config.projection_dim)

    def _features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.clap.get_audio_features(input_features=batch["input_features"], is_longer=batch["is_longer"])
        return out.pooler_output if hasattr(out, "pooler_output") else out

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        if not with_tokens:
            return TowerOutput(self._features(batch))
        with captured(self.clap.audio_model, lambda out: out.last_hidden_state) as seen:
            pooled = self._features(batch)
        tokens = seen[-1]
        if tokens.dim() == 4:  # HTSAT gives a (n, C, F, T) map
            tokens = tokens.flatten(2).transpose(1, 2)
        return TowerOutput(pooled, tokens, all_valid(tokens))


def clap_audio_tower(source: ModelSource, random_weights: bool, config: Mapping[str, Any] | None = None) -> ClapAudioTower:
    """Load CLAP from a resolved source, or build the described architecture with random weights when asked."""
    if random_weights:
        clap = ClapModel(ClapConfig(**dict(config or {})))
        extractor = ClapFeatureExtractor(truncation=extractor_truncation(clap.config), padding="repeatpad")
        log.info("CLAP audio tower %s built with random weights", source)
    else:
        path = resolve(source).path
        clap = ClapModel.from_pretrained(path, local_files_only=True)
        extractor = ClapFeatureExtractor.from_pretrained(
            path, local_files_only=True, truncation=extractor_truncation(clap.config)
        )
        log.info("CLAP audio tower %s loaded from %s", source, path)
    return ClapAudioTower(clap.eval(), extractor)


def build(spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> ClapAudioTower:
    """The ``clap_audio`` kind."""
    return clap_audio_tower(spec.source, random_weights, spec.config)


"""Text tower over a transformers encoder with attention-masked mean pooling (e.g. all-MiniLM-L6-v2)."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from core.errors import InvalidPreset
from engine.models.onnx_text import OnnxQueries, disabled
from engine.models.presets import TowerSpec
from engine.models.sources import ModelSource
from engine.models.preprocess import HFTokens
from engine.models.towers.base import Tower, TowerOutput
from engine.models.weights import resolve, verify_sha256

log = logging.getLogger(__name__)


class HFTextTower(Tower):
    """Mean-pooled last hidden state of a transformers text encoder; its tokens are that hidden state."""

    modality = "text"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, max_length: int = 256) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.preprocessor = HFTokens(tokenizer, max_length)
        self.out_dim = int(model.config.hidden_size)
        self.onnx = OnnxQueries()

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return TowerOutput(pooled, hidden, batch["attention_mask"].bool()) if with_tokens else TowerOutput(pooled)

    def embed_query(self, batch: dict[str, torch.Tensor], threads: int) -> torch.Tensor:
        """``embed`` through ONNX Runtime on ``threads`` threads (CPU, eval), else torch (engine.models.onnx_text)."""
        cpu = batch["input_ids"].device.type == "cpu" and not self.training and not torch.is_autocast_enabled("cpu")
        runner = self.onnx.runner(self, threads) if cpu and not disabled() else None
        return runner.features(batch) if runner is not None else self.embed(batch)


def hf_text_tower(
    source: ModelSource, random_weights: bool, sha256: str | None = None, config: Mapping[str, Any] | None = None
) -> HFTextTower:
    """Load the tokenizer and encoder from a resolved directory; random weights only when asked."""
    path = resolve(source).path
    if random_weights:
        cfg = AutoConfig.for_model(**dict(config)) if config else AutoConfig.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_config(cfg)
    else:
        if sha256:
            weights = path / "model.safetensors"
            if not weights.is_file():
                raise InvalidPreset(f"{source}: sha256 pinned but {weights} does not exist")
            verify_sha256(str(source), weights, sha256)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    log.info("text tower %s loaded from %s", source, path)
    return HFTextTower(model.eval(), tokenizer)


def build(spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> HFTextTower:
    """The ``hf_text`` kind."""
    return hf_text_tower(spec.source, random_weights, spec.sha256, spec.config)

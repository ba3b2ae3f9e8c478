"""Image and text towers over one open_clip model (any ``open_clip.list_models()`` architecture)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import open_clip
import torch

from core.errors import InvalidModelSource, RerankerUnavailable
from engine.models.presets import TowerSpec
from engine.models.sources import ModelSource
from engine.models.preprocess import ImagePreprocessor, OpenClipTokens
from engine.models.towers.base import Tower, TowerOutput, all_valid, captured
from engine.models.weights import resolve

log = logging.getLogger(__name__)
_CONFIG_DIR = Path(__file__).resolve().parent.parent / "open_clip_configs"
_registered = False


def register_open_clip_configs() -> None:
    """Register xmodal's own architecture configs (e.g. ``xmodal-tiny-vit``) with open_clip, once."""
    global _registered
    if not _registered:
        open_clip.add_model_config(_CONFIG_DIR)
        _registered = True


def load_open_clip(source: ModelSource, random_weights: bool) -> tuple[torch.nn.Module, Callable, Callable]:
    """Build (model, image transform, tokenizer) from a source, with random weights only when asked."""
    register_open_clip_configs()
    if source.scheme == "open_clip":
        if source.name not in open_clip.list_models():
            raise InvalidModelSource(f"open_clip has no architecture {source.name!r}; see open_clip.list_models()")
        name, pretrained = source.name, None
        if not random_weights:
            pretrained = str(resolve(source).path)
    elif source.scheme in ("hf", "local"):
        path = resolve(source).path
        if not (path / "open_clip_config.json").is_file():
            raise InvalidModelSource(f"{source} holds no open_clip_config.json; not an open_clip model")
        name, pretrained = f"local-dir:{path}", None
    else:
        raise InvalidModelSource(f"open_clip towers cannot load from {source}")
    model, _, transform = open_clip.create_model_and_transforms(name, pretrained=pretrained, load_weights=not random_weights)
    tokenizer = open_clip.get_tokenizer(name)
    log.info("open_clip %s loaded (%s)", source, "random weights" if random_weights else pretrained or name)
    return model.eval(), transform, tokenizer


def _embed_dim(model: torch.nn.Module, tokenizer: Callable) -> int:
    with torch.inference_mode():
        return int(model.encode_text(tokenizer([""])).shape[-1])


class OpenClipImageTower(Tower):
    """open_clip ``encode_image`` behind open_clip's own eval transform; its tokens are the ViT transformer's output."""

    modality = "image"

    def __init__(self, model: torch.nn.Module, transform: Callable, out_dim: int) -> None:
        super().__init__()
        self.model = model
        self.transform = transform
        self.preprocessor = ImagePreprocessor(transform)
        self.out_dim = out_dim

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        if not with_tokens:
            return TowerOutput(self.model.encode_image(batch["pixels"]))
        visual = self.model.visual
        if not hasattr(visual, "transformer"):
            raise RerankerUnavailable("token features need a ViT image tower (open_clip VisionTransformer)")
        with captured(visual.transformer) as seen:
            pooled = self.model.encode_image(batch["pixels"])
        tokens = seen[-1]
        if tokens.shape[0] != pooled.shape[0]:  # some open_clip versions run the transformer sequence-first
            tokens = tokens.transpose(0, 1)
        return TowerOutput(pooled, tokens, all_valid(tokens))


class OpenClipTextTower(Tower):
    """open_clip ``encode_text`` behind open_clip's tokenizer for that architecture; its tokens are ``ln_final``'s
    output at the non-padding positions."""

    modality = "text"

    def __init__(self, model: torch.nn.Module, tokenizer: Callable, out_dim: int) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.preprocessor = OpenClipTokens(tokenizer)
        self.out_dim = out_dim

    def run(self, batch: dict[str, torch.Tensor], with_tokens: bool) -> TowerOutput:
        if not with_tokens:
            return TowerOutput(self.model.encode_text(batch["tokens"]))
        final = getattr(self.model, "ln_final", None) or getattr(getattr(self.model, "text", None), "ln_final", None)
        if final is None:
            raise RerankerUnavailable("token features need an open_clip text transformer with ln_final")
        with captured(final) as seen:
            pooled = self.model.encode_text(batch["tokens"])
        return TowerOutput(pooled, seen[-1], batch["tokens"] != 0)


def open_clip_towers(source: ModelSource, random_weights: bool) -> dict[str, Tower]:
    """Both towers of one open_clip model, sharing its weights."""
    model, transform, tokenizer = load_open_clip(source, random_weights)
    dim = _embed_dim(model, tokenizer)
    return {"image": OpenClipImageTower(model, transform, dim), "text": OpenClipTextTower(model, tokenizer, dim)}


def build(spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> Tower:
    """The ``open_clip`` kind: one model per source in ``shared``, serving both image and text."""
    key = ("open_clip", str(spec.source))
    if key not in shared:
        shared[key] = open_clip_towers(spec.source, random_weights)
    return shared[key][modality]

"""Token features of a tower in the same forward pass as its pooled features, packed compactly for storage.

Candidates' tokens are computed at ingest and stored as float16 (at most ``MAX_TOKENS`` per representation);
queries' tokens come from the same pass that encodes the query, so re-ranking adds no second tower forward.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import RerankerUnavailable
from engine.models.towers import ClapAudioTower, HFTextTower, OpenClipImageTower, OpenClipTextTower, Tower
from engine.models.towers.ensemble import EnsembleTower
from engine.models.towers.small import SmallAudioCNN, SmallImageCNN, _columns

MAX_TOKENS = 32
Tokens = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # features (n, out_dim), tokens (n, T, d), mask (n, T)


def _small_image(tower: SmallImageCNN, batch: dict[str, torch.Tensor]) -> Tokens:
    x = tower.features(batch["pixels"])
    pooled = tower.proj(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))
    tokens = x.flatten(2).transpose(1, 2)  # (n, h*w, C), row-major grid positions
    return pooled, tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


def _small_audio(tower: SmallAudioCNN, batch: dict[str, torch.Tensor]) -> Tokens:
    if tower.config.temporal is False:
        raise RerankerUnavailable("token features need the temporal (1-D) small audio CNN")
    mel = batch["mel"][:, 0]
    frames = batch.get("frames")
    if frames is None:
        frames = torch.full((mel.shape[0],), mel.shape[-1], dtype=torch.long, device=mel.device)
    step = 2 ** len(tower.config.channels)
    width = max(step, -(-int(frames.max()) // step) * step)
    if width > mel.shape[-1]:
        mel = F.pad(mel, (0, width - mel.shape[-1]))
    x, frames = tower.masked_features(tower.input_norm(mel[..., :width]), frames.clamp(min=1))
    keep = _columns(frames, x).bool()
    mean = x.sum(dim=2) / frames[:, None].to(x.dtype)
    peak = x.masked_fill(~keep, float("-inf")).amax(dim=2)
    pooled = tower.proj(torch.cat([mean, peak], dim=1))
    return pooled, x.transpose(1, 2), keep[:, 0, :]


def _hf_text(tower: HFTextTower, batch: dict[str, torch.Tensor]) -> Tokens:
    hidden = tower.model(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return pooled, hidden, mask


@contextlib.contextmanager
def _captured(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """The output of ``module`` during the block (a forward hook, removed afterwards)."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out))
    try:
        yield seen
    finally:
        handle.remove()


def _open_clip_image(tower: OpenClipImageTower, batch: dict[str, torch.Tensor]) -> Tokens:
    visual = tower.model.visual
    if not hasattr(visual, "transformer"):
        raise RerankerUnavailable("token features need a ViT image tower (open_clip VisionTransformer)")
    with _captured(visual.transformer) as seen:
        pooled = tower.embed(batch)
    tokens = seen[-1]
    if tokens.shape[0] != pooled.shape[0]:  # some open_clip versions run the transformer sequence-first
        tokens = tokens.transpose(0, 1)
    return pooled, tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


def _open_clip_text(tower: OpenClipTextTower, batch: dict[str, torch.Tensor]) -> Tokens:
    model = tower.model
    final = getattr(model, "ln_final", None) or getattr(getattr(model, "text", None), "ln_final", None)
    if final is None:
        raise RerankerUnavailable("token features need an open_clip text transformer with ln_final")
    with _captured(final) as seen:
        pooled = tower.embed(batch)
    return pooled, seen[-1], batch["tokens"] != 0


def _clap_audio(tower: ClapAudioTower, batch: dict[str, torch.Tensor]) -> Tokens:
    seen: list = []
    handle = tower.clap.audio_model.register_forward_hook(lambda _m, _i, out: seen.append(out.last_hidden_state))
    try:
        pooled = tower.embed(batch)
    finally:
        handle.remove()
    tokens = seen[-1]
    if tokens.dim() == 4:  # HTSAT gives a (n, C, F, T) map
        tokens = tokens.flatten(2).transpose(1, 2)
    return pooled, tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


def _ensemble(tower: EnsembleTower, batch: dict[str, torch.Tensor]) -> Tokens:
    """The ensemble's own output, with the first member's tokens (one member's map stands for the item)."""
    first, tokens, mask = forward_with_tokens(tower.members[0], batch)
    return tower.embed(batch, first), tokens, mask


_EXTRACTORS: list[tuple[type, Callable[..., Tokens]]] = [
    (SmallImageCNN, _small_image), (SmallAudioCNN, _small_audio), (HFTextTower, _hf_text),
    (OpenClipImageTower, _open_clip_image), (OpenClipTextTower, _open_clip_text), (ClapAudioTower, _clap_audio),
    (EnsembleTower, _ensemble),
]


def forward_with_tokens(tower: Tower, batch: dict[str, torch.Tensor]) -> Tokens:
    """Pooled features (equal to ``tower.embed``), token features and their validity mask, in one pass."""
    for kind, extract in _EXTRACTORS:
        if isinstance(tower, kind):
            return extract(tower, batch)
    raise RerankerUnavailable(f"{type(tower).__name__} gives no token features")


def pack(tokens: torch.Tensor, mask: torch.Tensor, max_tokens: int = MAX_TOKENS) -> list[np.ndarray]:
    """Each row's valid tokens as float16 (T_i, d), average-pooled along the sequence to at most ``max_tokens``."""
    out = []
    for row, keep in zip(tokens.float(), mask):
        valid = row[keep]
        if len(valid) > max_tokens:
            valid = F.adaptive_avg_pool1d(valid.T.unsqueeze(0), max_tokens)[0].T
        out.append(valid.detach().cpu().numpy().astype(np.float16))
    return out

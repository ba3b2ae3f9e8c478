"""Bind a CLAP audio tower into another model's text-aligned space (e.g. CLIP) from captions alone.

CLAP's audio and text towers share one space, and CLIP's text tower embeds the same captions in CLIP's space.
A linear map fitted from CLAP *text* embeddings to CLIP *text* embeddings therefore also carries CLAP *audio*
embeddings into the CLIP space. The map is closed-form ridge regression between unit vectors with no bias,
so it is scale-invariant: CLAP's unnormalised audio features land on the same direction as their unit vectors.
"""

from __future__ import annotations

import json
import logging
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F

from core.errors import InvalidInput, InvalidPreset
from engine.models.factory import build_towers
from engine.models.heads import Head, HeadConfig
from engine.models.presets import Preset, get_preset
from engine.models.status import require_weights
from engine.models.towers.base import Tower
from engine.models.towers.clap_audio import ClapAudioTower
from engine.models.weights import resolve
from engine.train.trainer import SharedSpace, TrainReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BindConfig:
    """Ridge strength, the share of captions held out to measure the fit, batch size and seed."""

    ridge: float = 1e-2
    val_fraction: float = 0.1
    batch_size: int = 64
    seed: int = 0


class HashTokenizer:
    """Stand-in tokenizer for random-weight CLAP text towers (no vocabulary file exists): words hashed into ids."""

    def __init__(self, vocab_size: int, max_length: int) -> None:
        self.vocab_size, self.max_length = vocab_size, max_length

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        rows = [[0] + [3 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in re.findall(r"\w+", t.lower())][: self.max_length - 2] + [2]
                for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [1] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids != 1).long()}


def clap_text_tokenizer(tower: ClapAudioTower, source: Any, random_weights: bool) -> Any:
    """The CLAP checkpoint's own tokenizer, or a hashing stand-in for random weights."""
    text_config = tower.clap.config.text_config
    max_length = min(77, int(text_config.max_position_embeddings) - 2)
    if random_weights:
        return HashTokenizer(int(text_config.vocab_size), max_length)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(source).path, local_files_only=True)
    return lambda texts: dict(tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"))


def _in_batches(fn: Any, texts: Sequence[str], size: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([fn(texts[i : i + size]) for i in range(0, len(texts), size)]).float()


def clap_text_embeddings(tower: ClapAudioTower, tokenizer: Any, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """Unit CLAP text embeddings (the space CLAP's audio embeddings share)."""
    def run(chunk: Sequence[str]) -> torch.Tensor:
        out = tower.clap.get_text_features(**tokenizer(chunk))
        return out.pooler_output if hasattr(out, "pooler_output") else out
    return F.normalize(_in_batches(run, texts, batch_size), dim=-1)


def target_text_embeddings(tower: Tower, head: Head, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """Unit text embeddings of the target space (text tower, then the preset's text head)."""
    return _in_batches(lambda chunk: head(tower.embed(tower.preprocess(list(chunk)))), texts, batch_size)


def fit_linear_map(x: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """Ridge solution ``W`` (in, out) of ``min |xW - y|^2 + ridge |W|^2``, no bias, in float64."""
    x64, y64 = x.double(), y.double()
    gram = x64.T @ x64 + ridge * torch.eye(x.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram, x64.T @ y64).float()


def text_recall_at_1(mapped: torch.Tensor, target: torch.Tensor) -> float:
    """How often a mapped caption's nearest target caption is itself."""
    sims = F.normalize(mapped, dim=-1) @ target.T
    return float((sims.argmax(dim=1) == torch.arange(len(target))).float().mean())


def bind_audio_from_text(
    preset: str | Path | Preset, captions: Iterable[str], out: str | Path | None = None, name: str | None = None,
    config: BindConfig = BindConfig(), random_weights: bool = False,
) -> tuple[Path, TrainReport]:
    """Fit the preset's audio head (CLAP space -> target space) from captions. Without ``out`` the head is written
    where the preset looks for it (its ``heads.audio.path``) and the preset's own file is returned; with ``out``,
    the heads and a new preset file using them go there and that file is returned."""
    from engine.train.recipe import save_trained

    preset = get_preset(preset)
    audio, text = preset.towers.get("audio"), preset.towers.get("text")
    if audio is None or audio.kind != "clap_audio" or text is None:
        raise InvalidPreset(f"{preset.name}: binding from text needs a clap_audio tower and a text tower")
    if preset.heads["audio"].kind != "linear":
        raise InvalidPreset(f"{preset.name}: the audio head must be linear to be bound from text")
    install = preset.heads["audio"].path if out is None else None
    if out is None and (install is None or preset.path is None):
        raise InvalidInput(f"preset {preset.name} names no audio head path to write to; pass --out DIR for a new preset")
    texts = list(dict.fromkeys(t for t in captions if t.strip()))
    if len(texts) < 2:
        raise InvalidInput("binding audio from text needs at least two distinct captions")
    start = time.perf_counter()
    random_weights = random_weights or preset.random_weights
    require_weights(preset, ["text", "audio"], random_weights, parts=("tower",))  # every missing tower at once
    towers = build_towers(preset, random_weights, ["text", "audio"], config.seed)
    text_head = Head(HeadConfig("identity", towers["text"].out_dim, towers["text"].out_dim))
    if preset.heads["text"].kind != "identity":
        if preset.heads["text"].path is None:
            raise InvalidPreset(f"{preset.name}: the text head has no checkpoint to bind against")
        text_head = Head.load(preset.heads["text"].path)
    clap: ClapAudioTower = towers["audio"]  # type: ignore[assignment]
    source = clap_text_embeddings(clap, clap_text_tokenizer(clap, audio.source, random_weights), texts, config.batch_size)
    target = target_text_embeddings(towers["text"], text_head.eval(), texts, config.batch_size)
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(config.seed))
    n_val = int(len(texts) * config.val_fraction) if len(texts) >= 20 else 0
    val, fit = order[:n_val], order[n_val:]
    weights = fit_linear_map(source[fit], target[fit], config.ridge)
    head = Head(HeadConfig("linear", clap.out_dim, preset.dim))
    with torch.no_grad():
        head.net.weight.copy_(weights.T)
        head.net.bias.zero_()
    scores = {"fit_text_r1": text_recall_at_1(source[fit] @ weights, target[fit])}
    if n_val:
        scores["val_text_r1"] = text_recall_at_1(source[val] @ weights, target[val])
    report = TrainReport(history=[{"epoch": 0, "captions": len(texts), "held_out": n_val, **scores}], best_epoch=0,
                         best_score=scores.get("val_text_r1", scores["fit_text_r1"]), seconds=time.perf_counter() - start)
    heads = {m: Head(HeadConfig("identity", towers["text"].out_dim, preset.dim)) for m in ("image", "text") if m in preset.towers}
    if preset.heads["text"].kind != "identity":
        heads["text"] = text_head
    heads["audio"] = head
    log.info("audio head bound from %d captions: %s", len(texts), json.dumps(scores))
    if install is not None:
        head.save(install)  # config.json is written last, so a half-written head is never taken for one
        log.info("audio head written to %s, where preset %s looks for it", install, preset.name)
        return preset.path, report  # type: ignore[return-value]
    path = save_trained(preset, SharedSpace(heads), Path(out), name or f"{preset.name}-bound", report)  # type: ignore[arg-type]
    return path, report


def captions_of(specs: Iterable[Any], seed: int = 0) -> list[str]:
    """Every distinct training text of the given data specs (record captions and class texts)."""
    from engine.train.recipe import load_dataset

    texts: list[str] = []
    for spec in specs:
        dataset = load_dataset(spec, seed)
        split = "train" if "train" in dataset.splits else None
        texts += [str(item.content) for item in dataset.samples("text", split)]
    return list(dict.fromkeys(texts))

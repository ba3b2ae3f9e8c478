"""An ``Encoder``: a preset's towers and heads on one explicit device, turning media into unit vectors."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.models.devices import resolve_device
from core.errors import InvalidInput, InvalidPreset, UnsupportedModality, WeightsUnavailable
from engine.models.heads import Head, HeadConfig
from engine.models.presets import HeadSpec, Preset, get_preset
from engine.models.factory import build_towers
from engine.models.status import require_weights
from engine.models.towers import Tower

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "bf16")


Loader = Callable[[list[str]], "tuple[dict[str, Tower], dict[str, Head]]"]


class Encoder:
    """Encodes images, texts and audio clips into float32 unit vectors of the preset's space.

    With a ``loader`` (``load_encoder(..., lazy=True)``) a modality's tower and head are built the first time that
    modality is used or ``require``d, so a text search or a folder of photos never needs the audio weights.
    """

    def __init__(self, preset: Preset, towers: dict[str, Tower], heads: dict[str, Head], device: torch.device,
                 loader: Loader | None = None) -> None:
        self.preset = preset
        self.device = device
        self.towers = {m: t.to(device).eval() for m, t in towers.items()}
        self.heads = {m: h.to(device).eval() for m, h in heads.items()}
        self._loader = loader
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # an encoder travels to Ray encoder actors (ingest.ray_runner)
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def to(self, device: str | torch.device) -> Encoder:
        """Move the loaded towers and heads (and later ones) to ``device``; returns this encoder."""
        self.device = torch.device(device)
        self.towers = {m: t.to(self.device) for m, t in self.towers.items()}
        self.heads = {m: h.to(self.device) for m, h in self.heads.items()}
        return self

    @property
    def dim(self) -> int:
        """Width of the shared space."""
        return self.preset.dim

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities whose towers are loaded (all the encoder can encode, unless it loads lazily)."""
        return tuple(self.towers)

    @property
    def supported(self) -> tuple[str, ...]:
        """Modalities this encoder can encode: its preset's when it loads lazily, else the loaded ones."""
        return self.preset.modalities if self._loader is not None else self.modalities

    def require(self, modalities: Iterable[str]) -> None:
        """Load the towers and heads these modalities need (one ``WeightsUnavailable`` lists all that are missing)."""
        wanted = [m for m in dict.fromkeys(modalities) if m not in self.towers]
        if not wanted:
            return
        unknown = [m for m in wanted if m not in self.supported]
        if unknown:
            raise UnsupportedModality(f"preset {self.preset.name!r} has no {unknown[0]!r} tower; it has {self.supported}")
        assert self._loader is not None
        with self._lock:  # server threads may ask for the same modality at once
            todo = [m for m in wanted if m not in self.towers]
            if todo:
                towers, heads = self._loader(todo)
                self.heads.update({m: h.to(self.device).eval() for m, h in heads.items()})
                self.towers.update({m: t.to(self.device).eval() for m, t in towers.items()})

    def _tower(self, modality: str) -> Tower:
        if modality not in self.towers:
            if self._loader is None or modality not in self.preset.towers:
                raise UnsupportedModality(f"preset {self.preset.name!r} has no {modality!r} tower; it has {self.supported}")
            self.require([modality])
        return self.towers[modality]

    def preprocessor(self, modality: str) -> Callable[[Sequence[Any]], dict[str, torch.Tensor]]:
        """The modality's picklable preprocessor (no weights), for worker processes."""
        return self._tower(modality).preprocessor

    def preprocess(self, modality: str, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        """CPU preprocessing of raw inputs into a batch (safe to run in worker processes)."""
        return self._tower(modality).preprocess(list(inputs))

    def _autocast(self, precision: str) -> contextlib.AbstractContextManager:
        if precision not in PRECISIONS:
            raise InvalidInput(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def embed(self, modality: str, batch: dict[str, torch.Tensor], precision: str = "fp32",
              query: bool = False) -> np.ndarray:
        """Run tower and head on a preprocessed batch; returns float32 (n, dim) unit vectors. ``query``: a search
        query, which a tower may encode with a faster engine (``Tower.embed_query``, on this thread's torch threads)."""
        autocast = self._autocast(precision)
        tower, head = self._tower(modality), self.heads[modality]
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.inference_mode(), autocast:
            features = tower.embed_query(batch, torch.get_num_threads()) if query and precision == "fp32" \
                else tower.embed(batch)
            vectors = head(features)
        return F.normalize(vectors.float(), dim=-1).cpu().numpy()

    def embed_with_tokens(self, modality: str, batch: dict[str, torch.Tensor],
                          precision: str = "fp32") -> tuple[np.ndarray, list[np.ndarray]]:
        """Unit vectors and each input's float16 token features (for the re-ranker), in one tower pass."""
        from engine.models.tokens import pack

        autocast = self._autocast(precision)
        tower, head = self._tower(modality), self.heads[modality]
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.inference_mode(), autocast:
            features, tokens, mask = tower.embed_with_tokens(batch)
            vectors = head(features)
        return F.normalize(vectors.float(), dim=-1).cpu().numpy(), pack(tokens, mask)

    def encode(
        self, modality: str, inputs: Sequence[Any], batch_size: int = 32, precision: str = "fp32", query: bool = False
    ) -> np.ndarray:
        """Encode raw inputs in batches into float32 (n, dim) unit vectors (``query``: search queries, see ``embed``)."""
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise InvalidInput(f"encode takes a sequence of {modality} inputs, got {type(inputs).__name__}")
        self._tower(modality)
        parts = [
            self.embed(modality, self.preprocess(modality, inputs[i : i + batch_size]), precision, query)
            for i in range(0, len(inputs), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)


def _head(spec: HeadSpec, tower: Tower, preset: Preset, modality: str, random_weights: bool) -> Head:
    if spec.path is not None and (spec.path / "config.json").is_file():
        head = Head.load(spec.path)
    elif spec.kind == "identity":
        head = Head(HeadConfig("identity", tower.out_dim, tower.out_dim))
    elif random_weights:
        head = Head(HeadConfig(spec.kind, tower.out_dim, preset.dim, spec.hidden_dim))
    else:
        where = str(spec.path) if spec.path else f"(no path in preset {preset.name})"
        raise WeightsUnavailable(
            f"{preset.name} {modality} head", [where],
            "This head is learned: train it with `xmodal train` or pass random weights for speed tests.",
        )
    if head.config.in_dim != tower.out_dim or head.config.out_dim != preset.dim:
        raise InvalidPreset(
            f"{preset.name} {modality} head maps {head.config.in_dim}->{head.config.out_dim}, "
            f"but the tower gives {tower.out_dim} and the space is {preset.dim}"
        )
    return head


def _loader(preset: Preset, random_weights: bool, seed: int) -> Loader:
    shared: dict = {}  # one open_clip model for image and text, even when they load at different times

    def load(modalities: list[str]) -> tuple[dict[str, Tower], dict[str, Head]]:
        require_weights(preset, modalities, random_weights)
        towers = build_towers(preset, random_weights, modalities, seed, shared)
        heads = {}
        for m in modalities:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1 + preset.modalities.index(m))  # the same head whichever others load
                heads[m] = _head(preset.heads[m], towers[m], preset, m, random_weights)
        return towers, heads

    return load


def load_encoder(
    preset: str | Path | Preset,
    device: str = "cpu",
    random_weights: bool = False,
    modalities: Iterable[str] | None = None,
    seed: int = 0,
    lazy: bool = False,
) -> Encoder:
    """Build an encoder; random weights only when asked or when the preset declares them. Missing weights for any
    wanted modality raise one ``WeightsUnavailable`` listing them all. ``lazy``: load ``modalities`` (default none)
    now and every other modality of the preset on first use."""
    preset = get_preset(preset)
    wanted = list(modalities or ([] if lazy else preset.modalities))
    for m in wanted:
        if m not in preset.towers:
            raise UnsupportedModality(f"preset {preset.name!r} has no {m!r} tower")
    random_weights = random_weights or preset.random_weights
    dev = resolve_device(device)
    load = _loader(preset, random_weights, seed)
    towers, heads = load(wanted) if wanted else ({}, {})
    log.info("encoder %s on %s (%s weights%s)", preset.name, dev, "random" if random_weights else "real",
             ", other modalities on first use" if lazy else "")
    return Encoder(preset, towers, heads, dev, load if lazy else None)

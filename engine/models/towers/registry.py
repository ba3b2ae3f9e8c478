"""Tower kinds by name, as data: the modalities each serves and where its builder lives.

Reading this table imports no torch (``xmodal models`` parses presets without it); a kind's module is imported
only when a tower of that kind is built. A new kind is one module under ``engine/models/towers/`` with a Tower
subclass and a ``build`` function, named in ``BUILTIN`` below (or registered from outside with
``register_tower_kind``); ``tests/engine/models/test_tower_contract.py`` then asks for a tiny spec of it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from core.errors import InvalidPreset

if TYPE_CHECKING:
    from engine.models.presets import TowerSpec
    from engine.models.towers.base import Tower

# (spec, modality, random_weights, shared) -> Tower; ``shared`` lets kinds that serve several modalities
# from one model (open_clip: image and text) build that model once per source
Builder = Callable[["TowerSpec", str, bool, dict], "Tower"]


@dataclass(frozen=True)
class TowerKind:
    """A tower kind: its name in presets, the modalities it can serve, its builder as ``"module:function"``."""

    name: str
    modalities: tuple[str, ...]
    builder: str

    def build(self, spec: TowerSpec, modality: str, random_weights: bool, shared: dict) -> Tower:
        """Build this kind's tower for ``modality`` (random weights only when asked)."""
        module, _, function = self.builder.partition(":")
        build: Builder = getattr(importlib.import_module(module), function)
        return build(spec, modality, random_weights, shared)


BUILTIN = (
    TowerKind("open_clip", ("image", "text"), "engine.models.towers.open_clip_towers:build"),
    TowerKind("hf_text", ("text",), "engine.models.towers.hf_text:build"),
    TowerKind("clap_audio", ("audio",), "engine.models.towers.clap_audio:build"),
    TowerKind("small_audio_cnn", ("audio",), "engine.models.towers.small:build_audio"),
    TowerKind("small_image_cnn", ("image",), "engine.models.towers.small:build_image"),
    TowerKind("ensemble", ("audio", "image"), "engine.models.towers.ensemble:build"),
)
_KINDS: dict[str, TowerKind] = {kind.name: kind for kind in BUILTIN}


def register_tower_kind(kind: TowerKind) -> TowerKind:
    """Add a tower kind (a name already taken by another kind is refused)."""
    if _KINDS.get(kind.name, kind) != kind:
        raise InvalidPreset(f"tower kind {kind.name!r} is already registered as {_KINDS[kind.name]}")
    _KINDS[kind.name] = kind
    return kind


def unregister_tower_kind(name: str) -> None:
    """Remove a kind added with ``register_tower_kind`` (built-in kinds stay)."""
    if name in {kind.name for kind in BUILTIN}:
        raise InvalidPreset(f"tower kind {name!r} is built in")
    _KINDS.pop(name, None)


def tower_kinds() -> tuple[str, ...]:
    """Names of every registered tower kind."""
    return tuple(_KINDS)


def tower_kind(name: object) -> TowerKind:
    """The kind registered as ``name``; ``InvalidPreset`` listing the known kinds otherwise."""
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidPreset(f"unknown tower kind {name!r}; known kinds: {', '.join(_KINDS)}")
    return kind

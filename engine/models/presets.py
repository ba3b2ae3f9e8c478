"""Presets are data: JSON files naming each tower, its weights source and its head checkpoint."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from core.errors import InvalidPreset, PresetNotFound
from engine.models.kinds import HEAD_KINDS, MODALITIES
from engine.models.sources import ModelSource, parse_source
from engine.models.shipped import shipped_dir
from engine.models.towers.registry import tower_kind

BUILTIN_DIR = Path(__file__).resolve().parent / "presets"


@dataclass(frozen=True)
class TowerSpec:
    """One tower: its kind, weights source, optional pinned sha256 and architecture config (for random builds)."""

    kind: str
    source: ModelSource
    sha256: str | None = None
    config: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class HeadSpec:
    """One head: its kind, checkpoint directory (absent for identity or untrained heads), hidden width."""

    kind: str
    path: Path | None = None
    hidden_dim: int | None = None


@dataclass(frozen=True)
class Preset:
    """A named model: towers and heads per modality projecting into one space of width ``dim``."""

    name: str
    dim: int
    towers: Mapping[str, TowerSpec]
    heads: Mapping[str, HeadSpec]
    description: str = ""
    random_weights: bool = False
    path: Path | None = field(default=None, compare=False)
    reranker: Path | None = None  # directory of the attention re-ranker trained for this preset, if any
    # what it was made for and measured on, per modality ("text", "image", "audio"), and "photos": whether its
    # image tower handles real photographs (False: ingesting photos points the user to a preset that does)
    domain: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def handles_photos(self) -> bool:
        """Whether the image tower is meant for real photographs (presets without a domain say nothing: True)."""
        return bool(self.domain.get("photos", True))

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this preset can encode, in canonical order."""
        return tuple(m for m in MODALITIES if m in self.towers)


def preset_dirs() -> list[Path]:
    """Where presets are looked up: the built-in folder, the shipped ``xmodal-mini`` when present, then ``XMODAL_PRESET_PATH`` entries."""
    extra = [Path(p).expanduser() for p in os.environ.get("XMODAL_PRESET_PATH", "").split(os.pathsep) if p]
    shipped = shipped_dir("xmodal-mini")
    return [BUILTIN_DIR, *([shipped] if shipped else []), *extra]


def _resolve_relative(source: ModelSource, base: Path) -> ModelSource:
    if source.scheme == "local" and not Path(source.name).expanduser().is_absolute():
        return ModelSource("local", str((base / source.name).resolve()))
    return source


def _head_path(raw: str | None, base: Path) -> Path | None:
    if not raw:
        return None
    path = Path(os.path.expandvars(raw)).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def parse_preset(data: Mapping[str, Any], path: Path | None = None) -> Preset:
    """Validate a preset mapping (as read from JSON) into a ``Preset``."""
    base = path.parent if path else Path.cwd()
    where = str(path or data.get("name", "preset"))
    try:
        name, dim = str(data["name"]), int(data["dim"])
        towers_raw, heads_raw = dict(data["towers"]), dict(data.get("heads", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidPreset(f"{where}: needs name, dim and towers ({exc})") from exc
    towers: dict[str, TowerSpec] = {}
    heads: dict[str, HeadSpec] = {}
    for modality, spec in towers_raw.items():
        if modality not in MODALITIES:
            raise InvalidPreset(f"{where}: unknown modality {modality!r}")
        try:
            kind = tower_kind(spec.get("kind"))
        except InvalidPreset as exc:
            raise InvalidPreset(f"{where}: {exc}") from None
        if modality not in kind.modalities:
            raise InvalidPreset(f"{where}: tower kind {kind.name!r} cannot serve {modality}")
        source = _resolve_relative(parse_source(spec.get("source", "")), base)
        towers[modality] = TowerSpec(kind.name, source, spec.get("sha256"), spec.get("config"))
        head = heads_raw.get(modality, {"kind": "identity"})
        if head.get("kind") not in HEAD_KINDS:
            raise InvalidPreset(f"{where}: head kind {head.get('kind')!r} for {modality} not in {HEAD_KINDS}")
        heads[modality] = HeadSpec(head["kind"], _head_path(head.get("path"), base), head.get("hidden_dim"))
    if not towers:
        raise InvalidPreset(f"{where}: no towers")
    domain = data.get("domain", {})
    if not isinstance(domain, dict):
        raise InvalidPreset(f"{where}: domain must be an object (modality -> what it was made for), got {domain!r}")
    return Preset(name, dim, towers, heads, str(data.get("description", "")), bool(data.get("random_weights")), path,
                  _head_path(data.get("reranker"), base), domain)


def load_preset_file(path: str | Path) -> Preset:
    """Read one preset JSON file."""
    path = Path(path).expanduser().resolve()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise PresetNotFound(f"no preset file at {path}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidPreset(f"{path}: not valid JSON ({exc})") from exc
    return parse_preset(data, path)


def list_presets() -> list[Preset]:
    """Every preset found in ``preset_dirs()``, first occurrence of a name wins."""
    found: dict[str, Preset] = {}
    for folder in preset_dirs():
        for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if file.name.endswith(".calibration.json"):  # a preset's fitted calibrations sit beside it
                continue
            preset = load_preset_file(file)
            found.setdefault(preset.name, preset)
    return list(found.values())


def get_preset(name_or_path: str | Path | Preset) -> Preset:
    """A preset by name, or from a JSON file path."""
    if isinstance(name_or_path, Preset):
        return name_or_path
    text = str(name_or_path)
    if text.endswith(".json") or os.sep in text:
        return load_preset_file(text)
    for folder in preset_dirs():
        candidate = folder / f"{text}.json"
        if candidate.is_file():
            return load_preset_file(candidate)
    for preset in list_presets():
        if preset.name == text:
            return preset
    names = ", ".join(p.name for p in list_presets())
    raise PresetNotFound(f"no preset named {text!r}; known presets: {names}")

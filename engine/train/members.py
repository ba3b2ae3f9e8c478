"""More members for one small tower of a trained preset, trained against its other modalities' frozen embeddings.

The trained preset fixes the shared space: its text and image towers and heads are frozen, so their embeddings are
computed once and become fixed targets. Each new member (a fresh small tower of the same architecture and its
own head, from its own seed) learns to map its modality onto those targets, so every member lands in the same
space and ``EnsembleTower`` averages them. Only the new member trains, so a member costs a fraction of the
first training run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from core.errors import InvalidInput, InvalidPreset
from engine.models.encoder import Encoder, load_encoder
from engine.models.heads import Head, HeadConfig
from engine.models.presets import Preset, get_preset
from engine.models.towers.base import Tower
from engine.models.towers.ensemble import EnsembleTower, front_end
from engine.models.towers.small import SmallAudioCNN, SmallImageCNN
from engine.train.data import TensorCache
from engine.train.recipe import DataSpec, _Inputs, _pair_sets, _only_split, load_dataset, speed_copies, train_val
from engine.train.trainer import SharedSpace, TrainConfig, TrainReport, train

log = logging.getLogger(__name__)


class _Projected(Tower):
    """A frozen tower and its trained head: features that already lie in the shared space."""

    def __init__(self, tower: Tower, head: Head) -> None:
        super().__init__()
        self.tower, self.head = tower, head
        self.modality, self.out_dim, self.preprocessor = tower.modality, head.config.out_dim, tower.preprocessor

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.tower.embed(batch))


def _fingerprint(module: torch.nn.Module) -> str:
    """A hash of a module's weights, so cached target embeddings follow the weights, not the preset's name."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _varied(config: Any, overrides: Mapping[str, Any]) -> Any:
    """A tower config with some fields replaced; unknown fields are refused."""
    unknown = sorted(set(overrides) - {f.name for f in fields(config)})
    if unknown:
        raise InvalidInput(f"member variant sets {', '.join(unknown)}, not fields of {type(config).__name__}")
    return replace(config, **overrides)


def member_seed(seed: int, existing: int, k: int) -> int:
    """The seed of new member ``k`` when ``existing`` members are there: never one an earlier member used."""
    return seed + existing + k


def current_members(tower: Tower, head: Head) -> tuple[list[Tower], list[Head]]:
    """A trained modality's members so far: an ensemble's own, or the single tower with its head."""
    if isinstance(tower, EnsembleTower):
        return list(tower.members), list(tower.heads)
    if not isinstance(tower, (SmallAudioCNN, SmallImageCNN)):
        raise InvalidPreset(f"only small towers take extra members, not {type(tower).__name__}")
    return [tower], [head]


def train_members(
    preset: str | Path | Preset, specs: Iterable[DataSpec], modality: str = "audio", count: int = 1,
    config: TrainConfig = TrainConfig(), cache_dir: str | Path | None = None, variants: Sequence[Mapping[str, Any]] = (),
    encoder: Encoder | None = None,
) -> tuple[list[Tower], list[Head], list[TrainReport]]:
    """Train ``count`` new members for ``modality`` (seeds from ``member_seed``); ``variants`` are
    tower config overrides taken in turn (e.g. a 2-D audio CNN beside the temporal one), front end unchanged;
    ``encoder``: the preset's, when the caller has it loaded already."""
    preset = get_preset(preset)
    encoder = encoder or load_encoder(preset)
    base_towers, base_heads = current_members(encoder.towers[modality], encoder.heads[modality])
    template = base_towers[0]
    configs = [_varied(template.config, variants[k % len(variants)] if variants else {}) for k in range(count)]  # type: ignore[attr-defined]
    for member_config in configs:  # refuse a variant that changes the front end before any data loads
        if front_end(type(template)(member_config)) != front_end(template):  # type: ignore[call-arg]
            raise InvalidInput(f"member variant changes the {modality} front end; members share one preprocessing")
    cache = TensorCache(cache_dir or Path(preset.path or ".").parent / "cache")
    inputs = {m: _Inputs(_Projected(encoder.towers[m], encoder.heads[m]), False,
                         f"projected|{m}|{_fingerprint(encoder.towers[m])}|{_fingerprint(encoder.heads[m])}", cache)
              for m in preset.modalities if m != modality}
    spec = preset.towers[modality]
    identity = f"{spec.kind}|{template.config}"  # type: ignore[attr-defined]
    inputs[modality] = _Inputs(template, True, identity, cache)
    train_sets, val_sets = [], []
    for data_spec in specs:
        wanted = tuple(m for m in preset.modalities if not data_spec.modalities or m in data_spec.modalities)
        if modality not in wanted:
            continue
        dataset = load_dataset(data_spec, config.seed)
        if modality not in dataset.modalities():
            continue
        train_part, val_part = train_val(dataset)
        if data_spec.speeds:
            train_part = speed_copies(train_part, data_spec.speeds)
        train_sets += [s for s in _pair_sets(train_part, wanted, inputs) if modality in (s.a.modality, s.b.modality)]
        val_sets += [s for s in _pair_sets(_only_split(val_part, "val"), wanted, inputs)
                     if modality in (s.a.modality, s.b.modality)]
    if not train_sets:
        raise InvalidInput(f"no training pairs with {modality} in the data")
    fixed = {m: Head(HeadConfig("identity", preset.dim, preset.dim)) for m in inputs if m != modality}
    towers, heads, reports = [], [], []
    for k in range(count):
        seed = member_seed(config.seed, len(base_towers), k)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tower = type(template)(configs[k])  # type: ignore[call-arg]
            head = Head(HeadConfig(base_heads[0].config.kind, tower.out_dim, preset.dim, base_heads[0].config.hidden_dim))
        space = SharedSpace({modality: head, **fixed}, {modality: tower})
        report = train(space, train_sets, val_sets, TrainConfig(**{**config.__dict__, "seed": seed}), on_epoch=lambda e, k=k: log.info(
            "member %d epoch %d loss %.4f val %.4f", k + 1, e["epoch"], e["loss"], e["val_score"]))
        towers.append(tower.eval())
        heads.append(head.eval())
        reports.append(report)
    return towers, heads, reports


def copy_preset(preset_file: str | Path, out: str | Path) -> Path:
    """The trained preset file inside ``out``: its folder copied there first (without a feature cache) unless it is ``out``."""
    source, out = Path(preset_file), Path(out)
    if not source.is_file():
        raise InvalidInput(f"{source}: --add-members needs a trained preset's JSON file")
    if source.parent.resolve() != out.resolve():
        shutil.copytree(source.parent, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("cache"))
    return out / source.name


def add_members(
    preset_file: str | Path, specs: Iterable[DataSpec], modality: str = "audio", count: int = 1,
    config: TrainConfig = TrainConfig(), cache_dir: str | Path | None = None, variants: Sequence[Mapping[str, Any]] = (),
) -> tuple[Path, list[TrainReport]]:
    """Train ``count`` members and rewrite the preset (in its own folder) to use the ensemble of old and new ones."""
    path = Path(preset_file)
    preset = get_preset(path)
    encoder = load_encoder(preset)
    old_towers, old_heads = current_members(encoder.towers[modality], encoder.heads[modality])
    towers, heads, reports = train_members(preset, specs, modality, count, config, cache_dir, variants, encoder)
    ensemble = EnsembleTower(old_towers + towers, old_heads + heads)
    folder = path.parent / "towers" / modality
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(path.parent / "heads" / modality, ignore_errors=True)
    ensemble.save(folder)
    data = json.loads(path.read_text())
    data["towers"][modality] = {"kind": "ensemble", "source": f"local:towers/{modality}"}
    data["heads"][modality] = {"kind": "identity"}
    note = f" [{modality}: ensemble of "
    data["description"] = data.get("description", "").split(note)[0] + f"{note}{len(ensemble.members)} members]"
    path.write_text(json.dumps(data, indent=2))
    report_dir = path.parent / "reports"
    report_dir.mkdir(exist_ok=True)
    report_file = report_dir / f"members_{modality}.json"
    earlier = json.loads(report_file.read_text()) if report_file.is_file() else []
    added = [{"member": len(old_towers) + k, "seed": member_seed(config.seed, len(old_towers), k), "best_epoch": r.best_epoch,
              "best_score": r.best_score, "seconds": r.seconds, "history": r.history} for k, r in enumerate(reports)]
    report_file.write_text(json.dumps(earlier + added, indent=2))
    return path, reports

"""From a preset and data specs to trained heads (and small towers) saved with a preset file that uses them."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import torch

from core.errors import InvalidInput
from engine.models.factory import build_towers
from engine.models.heads import Head, HeadConfig
from engine.models.presets import Preset, get_preset
from engine.models.towers.base import MODALITIES, Tower
from engine.train.data import PairSet, TensorCache, TowerInputs, batched, group_ids
from engine.train.trainer import SharedSpace, TrainConfig, TrainReport, train

log = logging.getLogger(__name__)
TRAINABLE_KINDS = ("small_audio_cnn", "small_image_cnn")
DATA_KINDS = ("esc10", "fsdd", "digits", "digits3", "coco", "flickr", "manifest", "synthetic")


@dataclass(frozen=True)
class DataSpec:
    """One training source: a loader kind and its argument (a path, or a scene count for ``synthetic``)."""

    kind: str
    arg: str | None = None
    modalities: tuple[str, ...] = ()  # train only pairs among these (all of the preset's when empty)
    speeds: tuple[float, ...] = ()  # also train on each training clip played at these speeds (see ``speed_copies``)

    def text(self) -> str:
        """The ``KIND[:ARG][@MODALITY,...]`` form that ``parse_data_spec`` reads."""
        return f"{self.kind}:{self.arg or ''}" + (f"@{','.join(self.modalities)}" if self.modalities else "")


def parse_data_spec(text: str) -> DataSpec:
    """Parse ``KIND[:ARG][@MODALITY,...]`` (e.g. ``esc10:../shared/data/esc10``, ``synthetic:5000@image,text``)."""
    body, _, only = text.rpartition("@")
    modalities = tuple(m.strip() for m in only.split(","))
    if not body or not all(m in MODALITIES for m in modalities):
        body, modalities = text, ()
    elif len(modalities) < 2:
        raise InvalidInput(f"data spec {text!r} names fewer than two modalities after '@'")
    kind, _, arg = body.partition(":")
    if kind not in DATA_KINDS:
        raise InvalidInput(f"unknown data kind {kind!r} in {text!r}; expected one of {', '.join(DATA_KINDS)}")
    if kind not in ("digits", "synthetic") and not arg:
        raise InvalidInput(f"data spec {text!r} needs a path: {kind}:PATH")
    return DataSpec(kind, arg or None, modalities)


def load_dataset(spec: DataSpec, seed: int = 0) -> Any:
    """Load a spec through ``engine.datasets`` (the loaders shared by training, ingest and benchmarks)."""
    import engine.datasets as D

    if spec.kind == "esc10":
        return D.load_esc(spec.arg, val_folds=(4,))
    if spec.kind == "fsdd":
        return D.load_fsdd(spec.arg)
    if spec.kind == "digits":
        return D.load_sklearn_digits(seed=seed)
    if spec.kind == "digits3":
        return D.load_digits_trimodal(spec.arg, seed=seed)
    if spec.kind == "coco":
        return D.load_coco(spec.arg)
    if spec.kind == "flickr":
        return D.load_flickr(spec.arg)
    if spec.kind == "manifest":
        return D.load_manifest(spec.arg)
    return D.generate_scenes(D.SceneConfig(n_scenes=int(spec.arg or 2000), seed=seed))


def train_val(dataset: Any) -> tuple[Any, Any]:
    """The train split and a validation split: ``val`` when present, else a 10% hash slice of train."""
    from engine.datasets import hash_split

    train_part = dataset.split("train")
    if "val" in dataset.splits:
        return train_part, dataset.split("val")
    held = {r.id for r in train_part.records if hash_split(r.id, val_fraction=0.1) == "val"}
    keep = tuple(replace(r, split="val" if r.id in held else "train") for r in train_part.records)
    both = replace(train_part, records=keep)
    return both.split("train"), both.split("val")


@dataclass(frozen=True)
class _AtSpeed:
    """A clip source played ``factor`` times as fast: its samples relabelled with a rate ``factor`` times its own,
    so resampling to the tower's rate shortens it and raises its pitch and formants together."""

    source: Any
    factor: float

    def __call__(self) -> Any:
        from engine.datasets.media import decode_audio
        from engine.models import AudioClip

        clip = decode_audio(self.source)
        return AudioClip(clip.samples, int(round(clip.sample_rate * self.factor)))


def speed_copies(dataset: Any, speeds: Iterable[float]) -> Any:
    """The dataset plus, for every record with audio, one copy per speed factor (id ``<id>@x<factor>``, same label,
    group and split): speed perturbation as in Ko et al., "Audio augmentation for speech recognition" (2015). A
    faster copy of a speaker sounds like a speaker with a shorter vocal tract, which a log-mel augmentation of
    tempo alone does not imitate. Apply it to a training split only, after the validation records are set aside."""
    extra = tuple(replace(r, id=f"{r.id}@x{f:g}", audio=_AtSpeed(r.audio, float(f)), texts=())
                  for r in dataset.records if r.audio is not None for f in speeds if f != 1.0)
    return replace(dataset, records=dataset.records + extra)


class _Inputs:
    """Tensors per unique item for one tower: preprocessed inputs (trainable) or features (frozen), cached on disk."""

    def __init__(self, tower: Tower, trainable: bool, identity: str, cache: TensorCache) -> None:
        self.tower, self.trainable, self.identity, self.cache = tower, trainable, identity, cache

    def side(self, modality: str, items: list[Any]) -> TowerInputs:
        unique = list(dict.fromkeys(item.id for item in items))
        by_id = {item.id: item for item in items}
        key = self.cache.key(tower=self.identity, trainable=self.trainable, ids=unique, format=2)

        def make() -> dict[str, torch.Tensor]:
            pre = batched(self.tower.preprocessor, [by_id[i].load() for i in unique])
            if self.trainable:
                return pre
            self.tower.eval()
            with torch.inference_mode():
                feats = [self.tower.embed({k: v[i : i + 64] for k, v in pre.items()}) for i in range(0, len(unique), 64)]
            return {"features": torch.cat(feats).float()}

        start = time.perf_counter()
        tensors = self.cache.get_or_make(key, make)
        log.info("%s inputs for %d %s items ready in %.1f s", "tower" if self.trainable else "feature",
                 len(unique), modality, time.perf_counter() - start)
        row = {item_id: i for i, item_id in enumerate(unique)}
        index = torch.tensor([row[item.id] for item in items], dtype=torch.long)
        return TowerInputs(modality, {k: v[index] for k, v in tensors.items()}, frozen_features=not self.trainable, keys=index)


def _pair_sets(dataset: Any, modalities: tuple[str, ...], inputs: dict[str, _Inputs]) -> list[PairSet]:
    from engine.datasets import Pair

    sets = []
    present = [m for m in modalities if m in dataset.modalities()]
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            pairs = dataset.pairs(a, b, split="train")
            if dataset.protocol == "class":  # every item of either side gets a class-mate, not only the a-side's few
                pairs += [Pair(p.b, p.a) for p in dataset.pairs(b, a, split="train", seed=1)]
            if not pairs:
                continue
            key = (lambda item: item.label) if dataset.protocol == "class" else (lambda item: item.record_id)
            sets.append(PairSet(
                f"{dataset.name}:{a}-{b}", inputs[a].side(a, [p.a for p in pairs]), inputs[b].side(b, [p.b for p in pairs]),
                group_ids([key(p.a) for p in pairs]),
            ))
    return sets


def _only_split(dataset: Any, name: str) -> Any:
    return replace(dataset, records=tuple(replace(r, split="train") for r in dataset.split(name).records))


def train_preset(
    preset: str | Path | Preset, specs: Iterable[DataSpec], out: str | Path, name: str | None = None,
    config: TrainConfig = TrainConfig(), train_towers: bool = True, cache_dir: str | Path | None = None,
) -> tuple[Path, TrainReport]:
    """Train heads (and small towers) of ``preset`` on the given data; write towers, heads and a preset to ``out``."""
    preset = get_preset(preset)
    out = Path(out)
    cache = TensorCache(cache_dir or out / "cache")
    trainable = {m for m, t in preset.towers.items() if train_towers and t.kind in TRAINABLE_KINDS}
    towers = build_towers(preset, random_weights=False, modalities=[m for m in preset.modalities if m not in trainable])
    towers.update(build_towers(preset, random_weights=True, modalities=sorted(trainable), seed=config.seed))
    inputs = {m: _Inputs(towers[m], m in trainable, f"{preset.towers[m].kind}|{preset.towers[m].source}|{preset.towers[m].config}", cache)
              for m in preset.modalities}
    train_sets, val_sets = [], []
    for spec in specs:
        dataset = load_dataset(spec, config.seed)
        train_part, val_part = train_val(dataset)
        if spec.speeds:
            train_part = speed_copies(train_part, spec.speeds)
        modalities = tuple(m for m in preset.modalities if not spec.modalities or m in spec.modalities)
        train_sets += _pair_sets(train_part, modalities, inputs)
        val_sets += _pair_sets(_only_split(val_part, "val"), modalities, inputs)
    if not train_sets:
        raise InvalidInput(f"no training pairs: the data has no two modalities that {preset.name} encodes")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        heads = {m: Head(HeadConfig(preset.heads[m].kind, towers[m].out_dim, preset.dim, preset.heads[m].hidden_dim))
                 for m in preset.modalities}
    space = SharedSpace(heads, {m: towers[m] for m in trainable})
    report = train(space, train_sets, val_sets, config,
                   on_epoch=lambda e: log.info("epoch %d loss %.4f val %.4f", e["epoch"], e["loss"], e["val_score"]))
    return save_trained(preset, space, out, name or f"{preset.name}-trained", report), report


def save_trained(preset: Preset, space: SharedSpace, out: Path, name: str, report: TrainReport) -> Path:
    """Write trained towers and heads under ``out`` and a preset file referencing them by relative paths."""
    data: dict[str, Any] = {"name": name, "dim": preset.dim, "description": f"{preset.description} (trained)",
                            "towers": {}, "heads": {}}
    if preset.random_weights:
        data["random_weights"] = True
    for modality, spec in preset.towers.items():
        entry: dict[str, Any] = {"kind": spec.kind, "source": str(spec.source)}
        if spec.sha256:
            entry["sha256"] = spec.sha256
        if spec.config:
            entry["config"] = dict(spec.config)
        if modality in space.towers:
            shutil.rmtree(out / "towers" / modality, ignore_errors=True)  # e.g. an earlier run's ensemble members
            space.towers[modality].save(out / "towers" / modality)
            entry = {"kind": spec.kind, "source": f"local:towers/{modality}"}
        data["towers"][modality] = entry
        head = space.heads[modality]
        head_entry: dict[str, Any] = {"kind": head.config.kind}
        if head.config.kind != "identity":
            head.save(out / "heads" / modality)
            head_entry["path"] = f"heads/{modality}"
        if head.config.hidden_dim:
            head_entry["hidden_dim"] = head.config.hidden_dim
        data["heads"][modality] = head_entry
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    (out / "reports").mkdir(exist_ok=True)
    (out / "reports" / "train_report.json").write_text(json.dumps(
        {"best_epoch": report.best_epoch, "best_score": report.best_score, "seconds": report.seconds,
         "temperature": report.temperature, "history": report.history}, indent=2))
    return path

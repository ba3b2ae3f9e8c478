"""Whether a preset's weights are on this machine, per tower and head, without loading or downloading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from core.errors import InvalidModelSource, WeightsUnavailable
from engine.models.presets import HeadSpec, Preset, TowerSpec
from engine.models.weights import resolve


@dataclass(frozen=True)
class ComponentStatus:
    """One tower or head of a preset and whether its weights are here (``detail``: where, or what is missing;
    ``how``: how to supply them when missing)."""

    modality: str
    part: str
    kind: str
    source: str
    available: bool
    detail: str
    how: str = ""


def _needs_files(spec: TowerSpec, random_weights: bool) -> bool:
    """Whether building the tower reads files: always, unless a random build needs no config or tokenizer from disk."""
    if not random_weights:
        return True
    return spec.kind in ("hf_text", "ensemble") or (spec.kind == "open_clip" and spec.source.scheme != "open_clip")


def _tower_status(modality: str, spec: TowerSpec, random_weights: bool) -> ComponentStatus:
    if not _needs_files(spec, random_weights):
        return ComponentStatus(modality, "tower", spec.kind, str(spec.source), True, "random weights (preset)")
    try:
        found = resolve(spec.source, allow_download=False)
    except (WeightsUnavailable, InvalidModelSource) as exc:
        missing = ", ".join(getattr(exc, "missing", [])) or str(exc)
        how = getattr(exc, "how", "fix the preset's source")
        return ComponentStatus(modality, "tower", spec.kind, str(spec.source), False, f"missing {missing}", how)
    except ImportError as exc:  # the library that reads this source is not installed (or cannot be imported)
        return ComponentStatus(modality, "tower", spec.kind, str(spec.source), False, f"cannot check: {exc}",
                               "install the package named above")
    return ComponentStatus(modality, "tower", spec.kind, str(spec.source), True, f"{found.path} ({found.origin})")


def head_how(preset: Preset, modality: str, spec: HeadSpec, tower: TowerSpec) -> str:
    """How to make a learned head that is missing (heads are trained here, never downloaded)."""
    where = f"writes it to {spec.path}" if spec.path else "writes a preset using it"
    if modality == "audio" and tower.kind == "clap_audio" and spec.kind == "linear":
        return (f"fit it from captions: `xmodal train --preset {preset.name} --bind-audio-from-text "
                f"--data flickr:captions.txt` ({where}; it needs the text and audio towers' weights first)")
    return f"train it: `xmodal train --preset {preset.name} --data KIND:ARG --out DIR` (writes DIR/NAME.json to use as --preset)"


def _head_status(preset: Preset, modality: str, random_weights: bool) -> ComponentStatus:
    head, tower = preset.heads[modality], preset.towers[modality]
    shown = str(head.path or "-")
    if head.kind == "identity":
        return ComponentStatus(modality, "head", head.kind, shown, True, "identity (no weights)")
    if head.path is not None and (head.path / "config.json").is_file():
        return ComponentStatus(modality, "head", head.kind, shown, True, str(head.path))
    if random_weights:
        return ComponentStatus(modality, "head", head.kind, shown, True, "random weights (preset)")
    return ComponentStatus(modality, "head", head.kind, shown, False,
                           f"missing {head.path or 'head checkpoint'}", head_how(preset, modality, head, tower))


def preset_status(preset: Preset, modalities: Iterable[str] | None = None,
                  random_weights: bool = False) -> list[ComponentStatus]:
    """Tower and head availability for each modality of ``preset`` (or only those given), nothing downloaded."""
    random_weights = random_weights or preset.random_weights
    rows: list[ComponentStatus] = []
    for modality in modalities or preset.modalities:
        rows.append(_tower_status(modality, preset.towers[modality], random_weights))
        rows.append(_head_status(preset, modality, random_weights))
    return rows


def require_weights(preset: Preset, modalities: Iterable[str], random_weights: bool = False,
                    parts: tuple[str, ...] = ("tower", "head")) -> None:
    """Raise one ``WeightsUnavailable`` naming every tower and head (of ``parts``) the modalities need that is not
    here, each with how to supply it; return quietly when all are present."""
    from engine.models.weights import weights_dir

    wanted = list(dict.fromkeys(modalities))
    groups: dict[tuple[str, str, str], list[ComponentStatus]] = {}
    for row in preset_status(preset, wanted, random_weights):
        if not row.available and row.part in parts:  # image and text share one CLIP file: one entry for both
            groups.setdefault((row.part, row.source, row.detail), []).append(row)
    if not groups:
        return
    missing, steps = [], []
    for (part, source, detail), rows in groups.items():
        what = f"{'+'.join(r.modality for r in rows)} {part}"
        gone = detail.removeprefix("missing ")
        missing.append(f"{what} {source}" + (f" ({gone})" if gone != source else ""))
        steps.append(f"  - {what}: {rows[0].how}")
    footer = (f"\nOr run `xmodal models pull {preset.name}`: it shows each file's size, downloads what the hub has into "
              f"{weights_dir()} ($XMODAL_WEIGHTS) and verifies checksums, or offline prints these steps. A checkpoint "
              f"you already have is one preset field: open_clip:ARCH@/path/to/checkpoint or local:/path/to/dir.")
    raise WeightsUnavailable(f"preset {preset.name} ({', '.join(wanted)})", missing,
                             f"{len(missing)} missing; to supply them:\n" + "\n".join(steps) + footer)

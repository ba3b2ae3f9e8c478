"""Whether a preset's weights are on this machine, per tower and head, without loading or downloading."""

from __future__ import annotations

from dataclasses import dataclass

from engine.models.presets import Preset
from engine.models.weights import cached_status


@dataclass(frozen=True)
class ComponentStatus:
    """One tower or head of a preset and whether its weights are here."""

    modality: str
    part: str
    kind: str
    source: str
    available: bool
    detail: str


def preset_status(preset: Preset) -> list[ComponentStatus]:
    """Tower and head availability for each modality of ``preset``."""
    rows: list[ComponentStatus] = []
    for modality in preset.modalities:
        tower, head = preset.towers[modality], preset.heads[modality]
        if preset.random_weights:
            ok, detail = True, "random weights (preset)"
        else:
            ok, detail = cached_status(tower.source)
        rows.append(ComponentStatus(modality, "tower", tower.kind, str(tower.source), ok, detail))
        if head.kind == "identity":
            ok, detail = True, "identity (no weights)"
        elif preset.random_weights:
            ok, detail = True, "random weights (preset)"
        elif head.path is not None and (head.path / "config.json").is_file():
            ok, detail = True, str(head.path)
        else:
            ok, detail = False, f"missing {head.path or 'head checkpoint'} (train with `xmodal train`)"
        rows.append(ComponentStatus(modality, "head", head.kind, str(head.path or "-"), ok, detail))
    return rows

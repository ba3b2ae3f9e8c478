"""Save and load a module as ``config.json`` + ``model.safetensors`` in one directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.errors import WeightsUnavailable

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_module(module: torch.nn.Module, config: dict[str, Any], directory: str | Path) -> Path:
    """Write ``config`` and the module's state dict into ``directory`` (created), atomically per file."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    tmp = out / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, out / WEIGHTS_NAME)
    tmp = out / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
    os.replace(tmp, out / CONFIG_NAME)
    return out


def load_config(directory: str | Path) -> dict[str, Any]:
    """Read the JSON config saved next to a module's weights."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise WeightsUnavailable(str(directory), [str(path)], "Save the module there first (e.g. `xmodal train`).")
    return json.loads(path.read_text())


def load_state(directory: str | Path) -> dict[str, torch.Tensor]:
    """Read the safetensors state dict saved in ``directory``."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise WeightsUnavailable(str(directory), [str(path)], "Save the module there first (e.g. `xmodal train`).")
    return load_file(str(path))

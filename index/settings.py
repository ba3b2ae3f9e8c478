"""The store's small settings file (``xmodal.json``: e.g. the preset it was last used with), read strictly."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from index.errors import SettingsCorrupt

SETTINGS_NAME = "xmodal.json"


def settings_path(root: str | Path) -> Path:
    """Where a store keeps its settings."""
    return Path(root) / SETTINGS_NAME


def read_settings(root: str | Path) -> dict[str, Any]:
    """The store's settings ({} when there are none); ``SettingsCorrupt`` when the file is not a JSON object."""
    path = settings_path(root)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        data, why = None, str(exc)
    else:
        why = f"a JSON {type(data).__name__}, not an object"
    if not isinstance(data, dict):
        raise SettingsCorrupt(f"{path} is unreadable ({why}); `xmodal check --repair` moves it aside "
                              f"({SETTINGS_NAME}.damaged-*) and the next open uses --preset or the default preset")
    return data


def write_settings(root: str | Path, settings: dict[str, Any]) -> None:
    """Replace the settings file atomically (temp name, fsync, rename)."""
    path = settings_path(root)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(settings, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

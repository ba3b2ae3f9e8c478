"""The default store folder and preset, kept apart from ``engine.api.facade`` so the CLI can name them without torch."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PRESET = "xmodal-mini"


def default_store() -> Path:
    """``$XMODAL_STORE`` or ``./xmodal-store``."""
    return Path(os.environ.get("XMODAL_STORE", "xmodal-store"))

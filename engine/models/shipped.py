"""Where the shipped data lives: inside an installed wheel (``engine/_shipped``) or in a checkout's ``data/``."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # the engine package
# A wheel carries data/<name> as engine/_shipped/<name> (setup.py's build step); a checkout has it at the root.
_PLACES = (_PACKAGE / "_shipped", _PACKAGE.parent / "data")
SHIPPED = ("xmodal-mini", "demo")


def shipped_dir(name: str) -> Path | None:
    """The folder of shipped data ``name`` (``xmodal-mini`` or ``demo``), or None when this install lacks it."""
    for place in _PLACES:
        if (place / name).is_dir():
            return place / name
    return None

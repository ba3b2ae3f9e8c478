"""Names the model layer accepts, kept free of torch so presets can be read (``xmodal models``) without it."""

from __future__ import annotations

from core.modalities import MODALITIES

__all__ = ["HEAD_KINDS", "MODALITIES"]

HEAD_KINDS = ("identity", "linear", "mlp")

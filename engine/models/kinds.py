"""Names the model layer accepts, kept free of torch so presets can be read (``xmodal models``) without it."""

from __future__ import annotations

MODALITIES = ("image", "text", "audio")
HEAD_KINDS = ("identity", "linear", "mlp")

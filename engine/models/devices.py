"""Resolve a device name once, explicitly, and log the choice."""

from __future__ import annotations

import logging

import torch

from core.errors import DeviceUnavailable

log = logging.getLogger(__name__)


def resolve_device(name: str = "cpu") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda[:n]``/``mps`` into a torch device, raising if it is absent."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        log.info("device auto resolved to %s", device)
        return device
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceUnavailable(f"unknown device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {name!r} requested but torch sees no CUDA device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"device {name!r} requested but MPS is not available")
    return device

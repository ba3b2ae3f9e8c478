"""The one error root (``XmodalError``) and the model and query errors; index and ingest errors derive from it.

Library code raises; only the CLI and the server map these to messages, exit codes and HTTP statuses.
"""

from __future__ import annotations


class XmodalError(Exception):
    """Base of every error xmodal raises (engine, index, ingest, bench)."""

    exit_code = 1


class InvalidModelSource(XmodalError, ValueError):
    """A model source string (``open_clip:...``, ``hf:...``, ``local:...``) could not be parsed."""

    exit_code = 2


class PresetNotFound(XmodalError):
    """No preset of that name or path exists."""

    exit_code = 2


class InvalidPreset(XmodalError):
    """A preset file exists but does not describe a usable model."""

    exit_code = 2


class WeightsUnavailable(XmodalError):
    """Weights are neither given, cached nor downloadable; the message says how to supply them."""

    exit_code = 3

    def __init__(self, source: str, missing: list[str], how: str) -> None:
        self.source = source
        self.missing = list(missing)
        self.how = how
        files = ", ".join(self.missing) or "(weights)"
        super().__init__(f"weights for {source} are not available here: missing {files}. {how}")


class WeightsChecksumMismatch(WeightsUnavailable):
    """A weights file exists but its sha256 differs from the pinned one."""


class UnsupportedModality(XmodalError, ValueError):
    """The model has no tower for that modality, or the modality name is unknown."""

    exit_code = 2


class InvalidInput(XmodalError, ValueError):
    """An input to encode is of the wrong type or shape for its modality."""

    exit_code = 2


class DeviceUnavailable(XmodalError):
    """The requested device (e.g. ``cuda``) does not exist on this machine."""

    exit_code = 4


class ClusterUnavailable(XmodalError):
    """The Ray cluster could not place or start what was asked of it in time (too few CPUs, GPUs or nodes)."""

    exit_code = 4


class RerankerUnavailable(XmodalError):
    """Re-ranking was asked for but the preset has no re-ranker, or the store holds no tokens for the candidates."""

    exit_code = 2


class PortUnavailable(XmodalError):
    """``xmodal serve`` cannot bind its address: the port is taken, privileged, or the host is not this machine's."""

    exit_code = 8


class WeightsChanged(InvalidPreset):
    """A store's vectors were made by other weights than the preset now names (retrained or re-pointed)."""

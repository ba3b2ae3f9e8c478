"""The worker stage: read one file, hash it, decode it and preprocess its representations (runs in worker processes)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from engine.errors import XmodalError
from ingest.decode import DecodeSettings, audio_windows, decode_audio, decode_image, decode_text, modality_of
from ingest.errors import DecodeError

Preprocessors = Mapping[str, Callable[[Sequence[Any]], dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class FileTask:
    """One file to ingest: where it is, what the catalog knew of it, captions and metadata from its source."""

    path: str
    uri: str
    size: int
    mtime: float
    captions: tuple[str, ...] = ()
    metadata: Mapping[str, Any] | None = None
    known_sha256: str | None = None


@dataclass
class RepPayload:
    """One representation: its kind and modality, time offset or text, and its preprocessed tensors."""

    kind: str
    modality: str
    offset: float | None = None
    text: str | None = None
    batch: dict[str, torch.Tensor] | None = None


@dataclass
class Decoded:
    """A worker's answer for one task: content hash, modality, representations, or an error reason."""

    task: FileTask
    sha256: str = ""
    modality: str | None = None
    reps: list[RepPayload] = field(default_factory=list)
    error: str | None = None
    unchanged: bool = False


_state: dict[str, Any] = {}


def init_worker(preprocessors: Preprocessors, settings: DecodeSettings) -> None:
    """Worker initializer: one thread for torch, the preprocessors and decode settings kept per process."""
    torch.set_num_threads(1)
    _state["preprocessors"], _state["settings"] = preprocessors, settings


def process_in_worker(task: FileTask) -> Decoded:
    """``process`` with the state installed by ``init_worker``."""
    return process(task, _state["preprocessors"], _state["settings"])


def _media_reps(modality: str, data: bytes, task: FileTask, pre: Preprocessors, settings: DecodeSettings) -> list[RepPayload]:
    if modality == "image":
        image = decode_image(data, task.path, settings)
        reps = [RepPayload("image", "image", batch=pre["image"]([image]))] if "image" in pre else []
    elif modality == "audio":
        clip = decode_audio(data, task.path, settings)
        reps = [RepPayload("audio-segment", "audio", offset=off, batch=pre["audio"]([part]))
                for off, part in audio_windows(clip, settings)] if "audio" in pre else []
    else:
        reps = [RepPayload("text", "text", text=decode_text(data, task.path))]
    reps += [RepPayload("caption", "text", text=c) for c in task.captions if c.strip()]
    return reps


def process(task: FileTask, pre: Preprocessors, settings: DecodeSettings) -> Decoded:
    """Read, hash, decode and preprocess one file; every failure becomes ``Decoded.error`` with its reason."""
    try:
        with open(task.path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return Decoded(task, error=f"cannot read file: {exc.strerror or exc}")
    sha = hashlib.sha256(data).hexdigest()
    if task.known_sha256 == sha:
        return Decoded(task, sha256=sha, unchanged=True)
    if not data:
        return Decoded(task, sha256=sha, error="file is empty (0 bytes)")
    modality = modality_of(task.path, data[:16])
    if modality is None:
        return Decoded(task, sha256=sha, error="unsupported file type")
    if modality != "text" and modality not in pre:
        return Decoded(task, sha256=sha, modality=modality, error=f"the model has no {modality} tower")
    try:
        reps = _media_reps(modality, data, task, pre, settings)
    except DecodeError as exc:
        return Decoded(task, sha256=sha, modality=modality, error=exc.reason)
    except XmodalError as exc:
        return Decoded(task, sha256=sha, modality=modality, error=str(exc))
    if not reps:
        return Decoded(task, sha256=sha, modality=modality, error="nothing to index in this file")
    return Decoded(task, sha256=sha, modality=modality, reps=reps)

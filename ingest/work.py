"""The worker stage: read one file, hash it, decode it and preprocess its representations (runs in worker processes)."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from core.errors import XmodalError
from core.modalities import modality as registered
from ingest.decode import DecodeSettings, decode_image, decode_text, iter_audio_windows, modality_of
from ingest.errors import DecodeError
from ingest.files import hash_capped, human_bytes, open_regular, read_capped
from ingest.passages import PassageSettings, is_short, split_passages
from ingest.video import video_media

if TYPE_CHECKING:  # torch loads in the workers and the pipeline, not for a scan or a runner's name
    import torch

Preprocessors = Mapping[str, Callable[[Sequence[Any]], "dict[str, torch.Tensor]"]]


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
    note: str | None = None  # ingested, with a caveat (e.g. a long text indexed only up to its passage cap)


Handler = Callable[[FileTask, Preprocessors, DecodeSettings], Decoded]  # one file: ``process``, or a test's
_state: dict[str, Any] = {}
T = TypeVar("T")


def init_worker(preprocessors: Preprocessors, settings: DecodeSettings) -> None:
    """Worker initializer: one thread for torch, the preprocessors and decode settings kept per process."""
    import torch

    torch.set_num_threads(1)
    _state["preprocessors"], _state["settings"] = preprocessors, settings


def run_handler(handler: Handler, task: FileTask, pre: Preprocessors, settings: DecodeSettings) -> Decoded:
    """``handler``'s answer for one task; an exception (a decoder bug) fails that file, with its reason, not the run."""
    try:
        return handler(task, pre, settings)
    except Exception as exc:
        return Decoded(task, error=f"decode failed: {type(exc).__name__}: {exc}")


def text_reps(text: str, settings: PassageSettings) -> tuple[list[RepPayload], str | None]:
    """A short text as one "text" representation; a long one as "passage" representations at their character
    offsets (``offset``), with a note when the passage cap left the rest of it out."""
    found = split_passages(text, settings)
    if is_short(text, found, settings):
        return [RepPayload("text", "text", text=text)], None
    reps = [RepPayload("passage", "text", offset=float(p.offset), text=p.text) for p in found.items]
    if not found.truncated:
        return reps, None
    return reps, (f"text indexed up to character {found.stopped_at:,} of {len(text):,}: the first {len(reps)} "
                  f"passages (the passage cap)")


def _beating(items: Iterable[T]) -> Iterator[T]:
    """Pass items through, telling a worker pool after each one that this decode is making progress."""
    beat = _state.get("beat")
    for item in items:
        if beat is not None:
            beat()
        yield item


def _media_reps(modality: str, data: bytes | BinaryIO, task: FileTask, pre: Preprocessors,
                settings: DecodeSettings) -> tuple[list[RepPayload], str | None]:
    note = None
    if modality == "image":
        image = decode_image(data, task.path, settings)
        reps = [RepPayload("image", "image", batch=pre["image"]([image]))] if "image" in pre else []
    elif modality == "audio":
        reps = [RepPayload("audio-segment", "audio", offset=off, batch=pre["audio"]([part]))
                for off, part in _beating(iter_audio_windows(data, task.uri, settings))] if "audio" in pre else []
    elif modality == "video":  # frames and soundtrack windows; the decoder beats per packet, kept or not
        reps = [RepPayload(kind, m, offset=off, batch=pre[m]([media]))
                for kind, m, off, media in video_media(data, task.uri, settings, tuple(pre), _state.get("beat"))]
    else:
        reps, note = text_reps(decode_text(data, task.path), settings.passages)  # type: ignore[arg-type]
    reps += [RepPayload("caption", "text", text=c) for c in task.captions if c.strip()]
    return reps, note


def process(task: FileTask, pre: Preprocessors, settings: DecodeSettings) -> Decoded:
    """Read, hash, decode and preprocess one file; every failure becomes ``Decoded.error`` with its reason.

    Only regular files are read (opened non-blocking, checked on the descriptor), never more bytes than the
    modality's limit; audio is hashed and decoded in blocks rather than read whole.
    """
    try:
        fd, st = open_regular(task.path)
    except DecodeError as exc:
        return Decoded(task, error=exc.reason)
    try:
        return _process_open(task, fd, st.st_size, pre, settings)
    except OSError as exc:
        return Decoded(task, error=f"cannot read file: {exc.strerror or exc}")
    finally:
        os.close(fd)


def _process_open(task: FileTask, fd: int, size: int, pre: Preprocessors, settings: DecodeSettings) -> Decoded:
    head = os.pread(fd, 16, 0)
    if not head:
        return Decoded(task, sha256=hashlib.sha256(b"").hexdigest(), error="file is empty (0 bytes)")
    modality = modality_of(task.path, head)
    if modality is None:
        return Decoded(task, error="unsupported file type")
    limit = settings.max_bytes(modality)
    if size > limit:
        return Decoded(task, modality=modality, error=f"file is {human_bytes(size)}, over the limit of "
                                                      f"{human_bytes(limit)} for {modality} files")
    try:
        if modality in ("audio", "video"):  # hashed and decoded in blocks, never read whole
            data: bytes | BinaryIO = os.fdopen(fd, "rb", closefd=False)
            sha = hash_capped(fd, limit, task.path)
        else:
            data = read_capped(fd, limit, task.path)
            sha = hashlib.sha256(data).hexdigest()
    except DecodeError as exc:
        return Decoded(task, modality=modality, error=exc.reason)
    if task.known_sha256 == sha:
        return Decoded(task, sha256=sha, unchanged=True)
    towers = registered(modality).towers()  # a video's frames and soundtrack need the image or audio tower
    if modality != "text" and not any(m in pre for m in towers):
        return Decoded(task, sha256=sha, modality=modality, error=f"the model has no {' or '.join(towers)} tower")
    if isinstance(data, io.BufferedReader):
        data.seek(0)
    try:
        reps, note = _media_reps(modality, data, task, pre, settings)
    except DecodeError as exc:
        return Decoded(task, sha256=sha, modality=modality, error=exc.reason)
    except XmodalError as exc:
        return Decoded(task, sha256=sha, modality=modality, error=str(exc))
    if not reps:
        return Decoded(task, sha256=sha, modality=modality, error="nothing to index in this file")
    return Decoded(task, sha256=sha, modality=modality, reps=reps, note=note)

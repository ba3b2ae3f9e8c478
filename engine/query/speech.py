"""Speech queries: an audio query is transcribed too, and its transcript joins the query as a text part.

Where a store is transcribed (``xmodal ingest --transcribe``), what a clip *says* is as searchable as how it
sounds: the transcript's text vector is added to the clip's acoustic vector (a weighted sum in the shared space,
``TRANSCRIPT_WEIGHT`` of the audio part's weight, so the audio part stays the heaviest: the re-ranker and the
calibration still read the query as audio), and in hybrid mode its words are keyword-matched as well.
A clip with no speech (VAD finds none, or the speech gate of ``engine.models.speech_gate`` finds Whisper's words are
written over a sneeze or a bark, not a voice) is searched by its sound alone: queries pass the same gate as items.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from core.errors import InvalidInput
from core.media import AudioClip
from engine.query.inputs import QUERY_DECODE, QueryPart
from engine.query.policy import SearchRequest

log = logging.getLogger(__name__)

TRANSCRIPT_WEIGHT = 0.5  # of the audio part's weight (bench.transcripts compares weights)
MAX_TRANSCRIPT_CHARS = 2000  # a query transcript longer than this is cut (a two-minute clip says ~300 words)


class Transcriber(Protocol):
    """What a speech query needs of the ``transcribe`` enricher (``engine.models.speech.SpeechEnricher``)."""

    def text(self, clip: AudioClip) -> str:
        """The whole transcript of one clip; "" when nothing was said."""
        ...


def decoded_audio(value: Any) -> AudioClip:
    """A query audio value (``AudioClip``, (samples, rate), bytes or a path) decoded as the query layer decodes it."""
    from ingest.decode import decode_audio
    from ingest.errors import DecodeError

    if isinstance(value, AudioClip):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return AudioClip(np.asarray(value[0], dtype=np.float32), int(value[1]))
    try:
        data = value if isinstance(value, bytes) else Path(value).read_bytes()
        return decode_audio(data, "query audio", QUERY_DECODE)
    except (OSError, TypeError, ValueError) as exc:
        raise InvalidInput(f"query audio could not be read: {exc}") from exc
    except DecodeError as exc:
        raise InvalidInput(f"query audio could not be read: {exc.reason}") from exc


def with_transcripts(parts: tuple[QueryPart, ...], transcriber: Transcriber,
                     weight: float = TRANSCRIPT_WEIGHT) -> tuple[QueryPart, ...]:
    """``parts`` with each audio part decoded once and followed by its transcript as a text part of ``weight`` times
    its weight (none where nothing was said)."""
    out: list[QueryPart] = []
    for part in parts:
        if part.modality != "audio":
            out.append(part)
            continue
        clip = decoded_audio(part.value)
        out.append(dataclasses.replace(part, value=clip))
        text = transcriber.text(clip).strip()[:MAX_TRANSCRIPT_CHARS]
        if text and weight:
            out.append(QueryPart("text", text, part.weight * weight))
    return tuple(out)


@dataclass
class SpeechQueries:
    """Transcribes the audio parts of requests, loading the transcriber on the first audio query (``load``)."""

    load: Callable[[], Transcriber]
    weight: float = TRANSCRIPT_WEIGHT
    _transcriber: Transcriber | None = field(default=None, repr=False)

    def expand(self, request: SearchRequest) -> SearchRequest:
        """``request`` with its audio parts' transcripts added (unchanged when it has no audio part)."""
        if self.weight == 0 or not any(p.modality == "audio" for p in request.parts):
            return request
        if self._transcriber is None:
            self._transcriber = self.load()
        return dataclasses.replace(request, parts=with_transcripts(request.parts, self._transcriber, self.weight))


def speech_queries(device: str = "cpu", threads: int = 1, model: str | None = None,
                   weight: float = TRANSCRIPT_WEIGHT, gate: bool = True) -> SpeechQueries:
    """Speech queries with the ``transcribe`` enricher as the store's ingest builds it (loaded on first use; ``gate``:
    the store's speech gate setting, so a store transcribed without the gate hears its queries without it too)."""

    def load() -> Transcriber:
        from engine.models.enrichers import EnrichOptions, make_enrichers

        options = EnrichOptions(device=device, threads=threads, model=model, speech_gate=gate)
        (enricher,) = make_enrichers(["transcribe"], options)
        return enricher  # type: ignore[return-value]

    return SpeechQueries(load, weight)

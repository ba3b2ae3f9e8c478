"""The enrichment pass (ingest.enrich) with stand-in enrichers on a real catalog and the tiny encoder: segments land as
text representations with times and vectors; a rerun reads nothing; a new version redoes; a failure is that item's
alone; an interrupted pass continues where it stopped; changed content loses its old segments; twins copy them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine.models.enrichers import ENRICHERS, UnknownEnricher
from ingest.enrich import Segment
from ingest.errors import DecodeError
from ingest.pipeline import IngestOptions
from tests.corpus import jpeg_bytes, wav_bytes


class _Hearing:
    """Reads audio: one segment per piece saying how long it is; a clip of exactly 2 s is 'unreadable'."""

    name, kind, reads = "hear", "transcript", "audio"

    def __init__(self, version: str = "v1", stop_after: int | None = None) -> None:
        self.version, self.calls, self.stop_after = version, 0, stop_after

    def segments(self, media):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt  # the process dies mid-pass
        found = []
        for offset, clip in media:
            assert clip.sample_rate == 16000 and clip.samples.ndim == 1
            if abs(clip.duration - 2.0) < 1e-3:
                raise DecodeError("x", "cannot hear this")
            found.append(Segment(f"a sound of {clip.duration:.1f} seconds {self.version}", offset, offset + clip.duration))
        return found


class _Reading:
    """Reads images: a wide image says 'wide', others hold no text."""

    name, kind, reads, version = "read", "ocr", "image", "r1"

    def segments(self, media):
        return [Segment("wide picture", t) for t, image in media if image.width > image.height]


def _folder(root: Path) -> Path:
    media = root / "media"
    media.mkdir(parents=True)
    (media / "one.wav").write_bytes(wav_bytes(1, seconds=1.0))
    (media / "three.wav").write_bytes(wav_bytes(3, seconds=3.0, rate=8000))
    (media / "two.wav").write_bytes(wav_bytes(2, seconds=2.0))
    (media / "wide.jpg").write_bytes(jpeg_bytes(4, size=(96, 64)))
    (media / "tall.jpg").write_bytes(jpeg_bytes(5, size=(40, 80)))
    (media / "note.txt").write_text("a plain note\n")
    return media


@pytest.fixture()
def engine_with(tmp_path, monkeypatch):
    """An engine on a fresh store (tiny-random), with stand-in enrichers registered; yields (engine, media, made)."""
    from engine.api.facade import Engine

    made: dict[str, object] = {}
    monkeypatch.setitem(ENRICHERS, "hear", lambda options: made.setdefault("hear", _Hearing()))
    monkeypatch.setitem(ENRICHERS, "read", lambda options: made.setdefault("read", _Reading()))
    media = _folder(tmp_path)
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        yield engine, media, made


def _reps(engine, kind: str):
    return {(r.text, r.offset_seconds, r.end_seconds, r.source) for item in engine.store.catalog.items("ok")
            for r in engine.store.catalog.representations_of(item.id) if r.kind == kind}


def test_segments_are_text_representations_with_times_and_vectors(engine_with):
    engine, media, made = engine_with
    summary = engine.ingest([media], IngestOptions(workers=0), enrich=["hear", "read"])
    hear, read = summary.enriched["hear"], summary.enriched["read"]
    assert (hear.items, hear.with_text, hear.segments) == (3, 2, 2)
    assert [(Path(u).name, why) for u, why in hear.failures] == [("two.wav", "cannot hear this")]
    assert (read.items, read.with_text, read.segments) == (2, 1, 1)
    assert _reps(engine, "transcript") == {("a sound of 1.0 seconds v1", 0.0, 1.0, "enrich:hear"),
                                           ("a sound of 3.0 seconds v1", 0.0, 3.0, "enrich:hear")}
    assert _reps(engine, "ocr") == {("wide picture", None, None, "enrich:read")}
    catalog = engine.store.catalog
    rep_ids = [r.id for i in catalog.items("ok") for r in catalog.representations_of(i.id) if r.source]
    vectors = catalog.vectors_for(engine.model, np.array(rep_ids))
    assert vectors.shape == (3, engine.encoder.dim) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert catalog.enrichment_counts() == {"hear": (3, 2, 1), "read": (2, 1, 0)}
    # a text query finds the audio item through its transcript, and says when
    results = engine.search("a sound of 3.0 seconds v1", targets=["audio"], k=3)
    assert Path(results[0].uri).name == "three.wav"


def test_rerun_reads_nothing_new_version_redoes_and_store_remembers(engine_with, monkeypatch):
    engine, media, made = engine_with
    engine.ingest([media], IngestOptions(workers=0), enrich=["hear"])
    first = made["hear"].calls
    again = engine.ingest([media], IngestOptions(workers=0))  # enrich=None: the store's choice, "hear"
    assert again.enriched["hear"].items == 0 and made["hear"].calls == first
    assert engine.enrichment() == ("hear",)
    monkeypatch.setitem(ENRICHERS, "hear", lambda options: _Hearing("v2"))
    redone = engine.enrich()
    assert redone.enriched["hear"].items == 3
    assert {t for t, *_ in _reps(engine, "transcript")} == {"a sound of 1.0 seconds v2", "a sound of 3.0 seconds v2"}
    with pytest.raises(UnknownEnricher, match="known: "):
        engine.ingest([media], IngestOptions(workers=0), enrich=["nope"])


def test_interrupted_pass_continues_where_it_stopped(engine_with, monkeypatch):
    engine, media, made = engine_with
    engine.ingest([media], IngestOptions(workers=0))
    monkeypatch.setitem(ENRICHERS, "hear", lambda options: _Hearing(stop_after=2))
    with pytest.raises(KeyboardInterrupt):
        engine.enrich(["hear"], IngestOptions(workers=0, batch_size=1))
    assert engine.store.catalog.enrichment_counts()["hear"][0] == 2  # the first two items' batches were committed
    monkeypatch.setitem(ENRICHERS, "hear", lambda options: made.setdefault("hear", _Hearing()))
    rest = engine.enrich(["hear"], IngestOptions(workers=0, batch_size=1))
    assert rest.enriched["hear"].items == 1
    assert len(_reps(engine, "transcript")) == 2  # every segment exactly once


def test_changed_content_loses_old_segments_and_twins_copy_them(engine_with):
    engine, media, made = engine_with
    engine.ingest([media], IngestOptions(workers=0), enrich=["hear"])
    (media / "three.wav").write_bytes(wav_bytes(9, seconds=4.0))
    (media / "copy.wav").write_bytes((media / "one.wav").read_bytes())
    calls = made["hear"].calls
    summary = engine.ingest([media], IngestOptions(workers=0))
    assert summary.enriched["hear"].items == 1 and made["hear"].calls == calls + 1  # the twin ran no model
    texts = sorted((Path(i.uri).name, r.text) for i in engine.store.catalog.items("ok")
                   for r in engine.store.catalog.representations_of(i.id) if r.kind == "transcript")
    assert texts == [("copy.wav", "a sound of 1.0 seconds v1"), ("one.wav", "a sound of 1.0 seconds v1"),
                     ("three.wav", "a sound of 4.0 seconds v1")]
    (media / "one.wav").unlink()
    engine.ingest([media], IngestOptions(workers=0))
    item = engine.store.catalog.item_by_uri(str(media / "one.wav"))
    assert item.status == "deleted" and engine.store.catalog.enrichments_of(item.id) == []


def test_migration_7_adds_enrichments_to_an_old_catalog(tmp_path):
    from index.catalog import Catalog
    from index.schema import MIGRATIONS, migrate

    conn = sqlite3.connect(tmp_path / "old.db")
    migrate(conn, MIGRATIONS[:6])
    conn.execute("INSERT INTO items (uri, modality, sha256, created_at, updated_at, generation) "
                 "VALUES ('a.wav', 'audio', 'aa', 'now', 'now', 0)")
    conn.commit()
    conn.close()
    with Catalog(tmp_path / "old.db") as catalog:
        assert catalog.enrich_todo("hear", "v1", ["audio"])[0].uri == "a.wav"
        ids = catalog.replace_enrichment(1, "hear", "transcript", "v1", "aa", [(0.0, 1.5, "hello")])
        assert catalog.representations_of(1)[0].end_seconds == 1.5 and len(ids) == 1
        assert catalog.enrich_todo("hear", "v1", ["audio"]) == []


def test_each_enricher_gets_its_own_model_and_the_store_remembers_it(tmp_path, monkeypatch):
    from engine.api.facade import Engine
    from engine.models.enrichers import EnrichOptions

    seen: list[tuple[str, str | None]] = []
    monkeypatch.setitem(ENRICHERS, "hear", lambda options: seen.append(("hear", options.model)) or _Hearing())
    monkeypatch.setitem(ENRICHERS, "read", lambda options: seen.append(("read", options.model)) or _Reading())
    media = _folder(tmp_path)
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        engine.ingest([media], IngestOptions(workers=0), enrich=["hear", "read"],
                      enrich_options=EnrichOptions(models={"hear": "/models/big"}))
        assert seen == [("hear", "/models/big"), ("read", None)]  # the other enricher never sees it
        engine.ingest([media], IngestOptions(workers=0))
        assert seen[2:] == [("hear", "/models/big"), ("read", None)]  # remembered by the store
        assert engine.enrich_models() == {"hear": "/models/big"}

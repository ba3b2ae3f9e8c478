"""Keyword search through the engine: safe expressions, keyword lists fused like vector lists, filters, modes."""

from __future__ import annotations

import sqlite3

import pytest

from core.errors import InvalidInput
from engine.api.facade import Engine
from engine.query import Filters, QueryPart
from engine.query.keyword import (
    HYBRID,
    KEYWORD,
    VECTOR,
    check_mode,
    fts_expression,
    keyword_score,
    pieces,
    substring_expression,
)
from engine.query.policy import SearchRequest
from ingest.pipeline import IngestOptions
from tests.corpus import jpeg_bytes

NOTES = {
    "groceries.txt": "buy milk, eggs and the sourdough from the corner bakery",
    "trip.txt": "the ferry to the island leaves at nine; bring the quokka photos",
    "meeting.txt": "quarterly budget review moved to thursday afternoon",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("keyword")
    media = root / "media"
    (media / "photos").mkdir(parents=True)
    (media / "notes").mkdir()
    for i, name in enumerate(("IMG_2041.jpg", "beach.jpg", "receipt-7731.jpg")):
        (media / "photos" / name).write_bytes(jpeg_bytes(300 + i))
    for name, text in NOTES.items():
        (media / "notes" / name).write_text(text + "\n")
    (media / "tagged.csv").write_text("path,caption,album\nphotos/beach.jpg,sand and waves,Zanzibar\n")
    engine = Engine.open(root / "store", "tiny-random")
    summary = engine.ingest([media / "photos", media / "notes", media / "tagged.csv"], IngestOptions(workers=0))
    assert summary.failed == 0
    yield engine, media
    engine.close()


def _search(engine, text, mode=HYBRID, **kw):
    request = SearchRequest((QueryPart("text", text),), mode=mode, **kw)
    return engine.run_search(request).results


def test_pieces_are_quoted_never_syntax():
    assert pieces('  "quokka"  OR (NEAR x*) -y  ') == ["quokka", "OR", "NEAR", "x", "y"]
    assert fts_expression('a" OR "b') == '"a" "OR" "b"'
    assert fts_expression('say "hi"') == '"say" "hi"'
    assert fts_expression("!!! ---") is None and fts_expression("") is None
    assert fts_expression('x"y') == '"x""y"'  # a quote inside a piece is doubled
    assert substring_expression("ab cde") is None  # a two-letter piece cannot match trigrams
    assert substring_expression("7731 receipt") == '"7731" "receipt"'
    assert len(pieces(" ".join(f"w{i}" for i in range(100)))) == 16


def test_any_user_text_is_a_valid_match_expression(tmp_path):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61 remove_diacritics 2')")
    conn.execute("CREATE VIRTUAL TABLE s USING fts5(x, tokenize='trigram')")
    conn.execute("INSERT INTO t VALUES ('a b c')")
    for text in ['"', '""', "a AND", "OR OR", "NEAR(a b, 2)", "x:y", "{x} : y", "^a", "a*", "(", ")", "-a", "+",
                 "é ü 雨の音", "'; DROP TABLE t; --", "a\u0000b", "NOT"]:
        for table, build in (("t", fts_expression), ("s", substring_expression)):
            expression = build(text)
            if expression is not None:
                conn.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH ?", (expression,)).fetchall()


def test_modes_are_checked():
    assert check_mode("hybrid") == HYBRID
    with pytest.raises(InvalidInput, match="mode must be one of"):
        check_mode("fuzzy")


def test_keyword_scores_fall_with_rank():
    scores = [keyword_score(r) for r in range(5)]
    assert all(a.logit > b.logit and a.score > b.score for a, b in zip(scores, scores[1:]))


def test_rare_word_in_a_note_is_found_by_keyword_and_hybrid(store):
    engine, media = store
    trip = str(media / "notes" / "trip.txt")
    for mode in (KEYWORD, HYBRID):
        for fusion in ("rrf", "calibrated", "probability"):
            results = _search(engine, "quokka", mode, fusion=fusion)
            if (mode, fusion) == (HYBRID, "rrf"):  # rrf sums ranks: an item first in two vector lists outranks it
                assert trip in [r.uri for r in results[:3]]
                continue
            assert results[0].uri == trip, (mode, fusion)
            assert results[0].match.kind == "text"
    found = _search(engine, "quokka", KEYWORD)
    assert [r.uri for r in found] == [str(media / "notes" / "trip.txt")]  # keyword mode: only what matched
    assert [r.uri for r in engine.search("quokka", mode=KEYWORD)] == [trip]  # the library's search takes the mode
    assert found[0].probability is not None and found[0].probability > 0.5


def test_file_name_substring_and_metadata_matches(store):
    engine, media = store
    by_name = _search(engine, "IMG_2041", KEYWORD)
    assert by_name[0].uri == str(media / "photos" / "IMG_2041.jpg")
    assert by_name[0].match.kind == "name" and by_name[0].match.text == "IMG_2041.jpg"
    assert _search(engine, "7731", KEYWORD)[0].uri == str(media / "photos" / "receipt-7731.jpg")
    assert _search(engine, "2041", KEYWORD)[0].uri == str(media / "photos" / "IMG_2041.jpg")
    tagged = _search(engine, "zanzibar", KEYWORD)
    assert [(r.uri, r.match.kind) for r in tagged] == [(str(media / "photos" / "beach.jpg"), "metadata")]
    hybrid = _search(engine, "IMG_2041", HYBRID, k=3)
    assert hybrid[0].uri == str(media / "photos" / "IMG_2041.jpg")


def test_keyword_hits_respect_filters_and_targets(store):
    engine, media = store
    assert _search(engine, "quokka", KEYWORD, targets=("image",)) == []
    assert _search(engine, "quokka", KEYWORD, filters=Filters(uri_glob="*/photos/*")) == []
    assert _search(engine, "zanzibar", KEYWORD, filters=Filters(metadata={"album": "Mombasa"})) == []
    assert len(_search(engine, "zanzibar", KEYWORD, filters=Filters(metadata={"album": "Zanzibar"}))) == 1
    hybrid = _search(engine, "quokka", HYBRID, targets=("image",))
    assert all(r.modality == "image" for r in hybrid)


def test_vector_mode_ignores_keywords_and_keyword_mode_needs_text(store):
    engine, media = store
    vector = _search(engine, "quokka", VECTOR, k=20)
    assert all(not r.match.kind.startswith("name") for r in vector)
    with pytest.raises(InvalidInput, match="keyword mode needs a text query"):
        engine.run_search(SearchRequest((QueryPart("image", str(media / "photos" / "beach.jpg")),), mode=KEYWORD))
    with pytest.raises(InvalidInput):
        _search(engine, "x", "fuzzy")


def test_deleted_items_never_match(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "a.txt").write_text("the wombat sleeps\n")
    (media / "b.txt").write_text("the wombat digs\n")
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        engine.ingest([media], IngestOptions(workers=0))
        assert len(_search(engine, "wombat", KEYWORD)) == 2
        gone = engine.store.catalog.item_by_uri(str(media / "a.txt"))
        engine.store.catalog.mark_deleted(gone.id)
        assert [r.uri for r in _search(engine, "wombat", KEYWORD)] == [str(media / "b.txt")]


def test_server_takes_the_mode_and_the_cli_repeats_it():
    from engine.cli import search as cli_search
    from engine.query import keyword
    from engine.server.request import SearchIn

    assert (cli_search.MODES, cli_search.DEFAULT_MODE) == (keyword.MODES, keyword.DEFAULT_MODE)  # repeated for --help
    assert SearchIn(text="x", mode="keyword").job(None).mode == KEYWORD
    assert SearchIn(text="x").job(None).mode == keyword.DEFAULT_MODE
    with pytest.raises(Exception, match="mode"):
        SearchIn(text="x", mode="fuzzy")


def test_cli_search_mode(store, capsys):
    from engine.cli import main

    engine, _ = store
    assert main(["search", "IMG_2041", "--mode", "keyword", "--store", str(engine.store.root), "--json"]) == 0
    printed = capsys.readouterr().out
    assert '"kind": "name"' in printed and "IMG_2041.jpg" in printed


def test_raw_indexes_search_those_vectors_alone(store):
    engine, _ = store
    raw = _search(engine, "quokka", HYBRID, indexes=("image",), k=20)
    assert raw and all(r.match.modality == "image" for r in raw)  # a benchmark of one direction: no keyword lists

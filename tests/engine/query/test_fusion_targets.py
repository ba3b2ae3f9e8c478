"""``targets`` are kinds of result item (a photo matches through its captions); ``indexes`` keeps the raw choice."""

import json

import pytest

from engine.cli import main
from engine.api.facade import Engine
from engine.query import Filters

CAPTION = "a lighthouse on a cliff at dusk"


@pytest.fixture(scope="module")
def store(tiny_store):
    assert tiny_store.note.read_text().startswith(CAPTION)  # the session's store (read only): the photo, a note
    return tiny_store.store, tiny_store.captioned


def test_targets_image_finds_a_captioned_photo_through_its_caption(store):
    root, photo = store
    with Engine.open(root, create=False) as engine:
        results = engine.search(CAPTION, targets=["image"], k=5)
        raw = engine.search(CAPTION, indexes=["image"], k=20)
    assert results[0].uri == str(photo) and results[0].match.kind == "caption"
    assert results[0].first_stage == pytest.approx(1.0, abs=1e-4)
    assert all(r.modality == "image" for r in results)  # the note says the same words but is not an image
    assert all(r.match.modality == "image" for r in raw)  # the raw choice searched image vectors only
    assert next(r for r in raw if r.uri == str(photo)).first_stage < 0.999


def test_raw_indexes_still_search_one_vector_set(store):
    root, photo = store
    with Engine.open(root, create=False) as engine:
        text_index = engine.search(CAPTION, indexes=["text"], k=3)
        both = engine.search(CAPTION, k=3)
    assert {r.match.modality for r in text_index} == {"text"}
    assert {r.modality for r in text_index[:2]} == {"image", "text"}  # the photo via its caption, and the note
    assert str(photo) in {r.uri for r in both}  # no targets, no indexes: every index, every kind


def test_targets_and_modality_filter_combine(store):
    root, _ = store
    with Engine.open(root, create=False) as engine:
        assert engine.search(CAPTION, targets=["image"], filters=Filters(("text",))) == []
        only_text = engine.search(CAPTION, targets=["image", "text"], filters=Filters(("text",)), k=5)
    assert only_text and {r.modality for r in only_text} == {"text"}


def test_cli_targets_and_indexes(store, capsys):
    root, photo = store
    assert main(["search", CAPTION, "--targets", "image", "--k", "2", "--store", str(root), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found[0]["uri"] == str(photo) and found[0]["match"]["kind"] == "caption"
    assert main(["search", CAPTION, "--indexes", "image", "--k", "3", "--store", str(root), "--json"]) == 0
    assert {r["match"]["modality"] for r in json.loads(capsys.readouterr().out)} == {"image"}
    assert main(["search", CAPTION, "--indexes", "pixels", "--store", str(root)]) == 2

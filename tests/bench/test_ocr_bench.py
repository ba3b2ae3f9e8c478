"""bench.ocr's scoring: R@1 with ties and a floor, CER of the closest line, and the generated images it scores."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.ocr import cer, find_fonts, generate, levenshtein, r_at_1


def test_r_at_1_shares_ties_and_returns_nothing_at_the_floor():
    scores = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # query 0: alone on top; query 1: tied with another image (half a hit); query 2: nothing matched (no hit)
    assert r_at_1(scores, 0.0) == pytest.approx((1 + 0.5 + 0) / 3)
    assert r_at_1(np.array([[0.2, 0.9], [0.1, 0.3]]), -2.0) == pytest.approx(0.5)


def test_cer_reads_the_closest_line_and_ignores_case():
    assert levenshtein("kitten", "sitting") == 3
    assert cer("Hotel Atlantic", ["PARKING", "HOTEL ATLANTIC"], compact=False) == 0.0
    assert cer("Hotel Atlantic", ["HOTELATLANTIC"], compact=False) == pytest.approx(1 / 14)
    assert cer("Hotel Atlantic", ["HOTELATLANTIC"], compact=True) == 0.0
    assert cer("word", [], compact=True) == 1.0


def test_generate_draws_distinct_words_on_photos(tmp_path):
    coco = tmp_path / "coco"
    (coco / "val2017").mkdir(parents=True)
    (coco / "annotations").mkdir()
    Image.new("RGB", (320, 240), (90, 120, 150)).save(coco / "val2017" / "1.jpg")
    captions = ["a lighthouse standing above rocky shores", "bicycle leaning against yellow fences",
                "several pelicans resting beside harbour boats"]
    import json

    (coco / "annotations" / "captions_val2017.json").write_text(
        json.dumps({"annotations": [{"caption": c} for c in captions]}))
    if not find_fonts():
        pytest.skip("no TrueType fonts on this machine")
    images = generate(tmp_path / "out", coco, 4, seed=0)
    words = [r.word for r in images]
    assert len(set(words)) == 4 and not any(a in b for a in words for b in words if a != b)
    for r in images:
        assert r.word in r.line.lower()
        with Image.open(r.path) as im:
            assert im.size == (320, 240) and np.asarray(im).std() > 0  # something was drawn on the flat photo

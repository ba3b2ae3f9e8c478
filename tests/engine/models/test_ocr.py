"""The ``ocr`` enricher: RapidOCR reads a rendered word, finds nothing on a blank image, bounds its input, pins its
models, and turns video frames into timed segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

pytest.importorskip("rapidocr_onnxruntime")

from core.errors import DeviceUnavailable, InvalidInput, InvalidModelSource, WeightsChecksumMismatch  # noqa: E402
from engine.models.enrichers import EnrichOptions  # noqa: E402
from engine.models.ocr import (  # noqa: E402
    MODEL_SHA256, OcrEnricher, OcrFailed, OcrSettings, compact, make_enricher, prepare, verify_models,
)
from ingest.enrich import Segment  # noqa: E402

WORD = "LIGHTHOUSE"


def font(size: int) -> ImageFont.FreeTypeFont:
    """A TrueType font: matplotlib's DejaVu Sans Bold when present, else Pillow's bundled one."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    except ImportError:
        pass
    return ImageFont.load_default(size)


def word_image(text: str = WORD, size: tuple[int, int] = (320, 120)) -> Image.Image:
    """A noisy mid-grey photo-like background with ``text`` in dark letters."""
    rng = np.random.default_rng(7)
    pixels = rng.normal(170, 20, (size[1], size[0], 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    ImageDraw.Draw(image).text((16, 36), text, font=font(40), fill=(20, 20, 60))
    return image


@pytest.fixture(scope="module")
def enricher() -> OcrEnricher:
    return make_enricher(EnrichOptions(threads=1))


def test_reads_a_rendered_word_and_nothing_on_a_blank_image(enricher):
    found = enricher.segments([(None, word_image()), (None, Image.new("RGB", (200, 120), (128, 128, 128)))])
    assert [compact(s.text) for s in found] == [WORD.lower()]
    assert found[0].start is None and found[0].end is None
    assert enricher.segments([(None, Image.new("RGB", (200, 120), (255, 255, 255)))]) == []


def test_enricher_fields_and_version_pin_the_models(enricher):
    assert (enricher.name, enricher.kind, enricher.reads) == ("ocr", "ocr", "image")
    assert enricher.version.startswith("rapidocr-onnxruntime==")
    for sha in MODEL_SHA256.values():
        assert sha[:12] in enricher.version
    assert OcrSettings().fingerprint() in enricher.version
    ocr = enricher.engine._ocr  # RapidOCR 1.4.4's sessions: the thread count asked for is the one they run with
    for session in (ocr.text_det.infer, ocr.text_cls.infer, ocr.text_rec.session):
        assert session.session.get_session_options().intra_op_num_threads == 1


def test_video_frames_give_timed_segments_merged_over_consecutive_frames():
    class Lines:  # stands in for RapidOcr: the lines each frame "shows", so the merging alone is tested
        settings, shas = OcrSettings(), dict(MODEL_SHA256)

        def lines(self, image):
            return [(t, 1.0) for t in image.info["lines"]]

    def frame(*lines):
        image = Image.new("RGB", (8, 8))
        image.info["lines"] = lines
        return image

    frames = [(0.0, frame("OPEN")), (1.0, frame("OPEN", "EXIT")), (2.0, frame("EXIT")), (3.0, frame()),
              (4.0, frame("OPEN"))]
    found = OcrEnricher(Lines()).segments(frames)
    assert found == [Segment("OPEN", 0.0, 1.0), Segment("EXIT", 1.0, 2.0), Segment("OPEN", 4.0, 4.0)]


def test_an_engine_error_fails_that_image_as_an_xmodal_error(enricher, monkeypatch):
    def broken(pixels):
        raise ZeroDivisionError("inside the engine")

    monkeypatch.setattr(enricher.engine, "_ocr", broken)
    with pytest.raises(OcrFailed, match="ZeroDivisionError"):
        enricher.segments([(None, word_image())])


def test_prepare_bounds_the_input():
    settings = OcrSettings(max_side=640, max_aspect=4.0)
    strip = prepare(Image.new("RGB", (5000, 40), (9, 9, 9)), settings)
    assert max(strip.shape[:2]) == 640 and strip.shape[0] >= 640 / 4  # downscaled, then padded to the aspect cap
    tall = prepare(Image.new("L", (30, 2000)), settings)
    assert tall.shape[2] == 3 and tall.shape[1] * 4 >= tall.shape[0] and max(tall.shape[:2]) == 640
    small = prepare(Image.new("RGBA", (50, 40)), settings)
    assert small.shape == (40, 50, 3) and small.dtype == np.uint8
    with pytest.raises(InvalidInput):
        prepare(np.zeros((4, 4, 3), dtype=np.uint8), settings)


def test_a_changed_model_file_is_refused(tmp_path):
    (tmp_path / "models").mkdir()
    for name in MODEL_SHA256:
        (tmp_path / "models" / name).write_bytes(b"not the pinned model")
    with pytest.raises(WeightsChecksumMismatch):
        verify_models(tmp_path)


def test_options_that_cannot_be_met_are_errors():
    with pytest.raises(InvalidModelSource):
        make_enricher(EnrichOptions(model="tesseract"))
    with pytest.raises(DeviceUnavailable):
        make_enricher(EnrichOptions(device="tpu"))


@pytest.mark.slow  # loads xmodal-mini and ingests: about 10 s of CPU
def test_ingest_with_ocr_finds_the_word_through_its_ocr_representation(tmp_path, capsys, mini_encoder):
    """The user's path: ``xmodal ingest --ocr`` on a folder of two pictures with words, then ``xmodal search``."""
    import json

    from engine.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    word_image(WORD).save(folder / "a.png")
    word_image("BICYCLE").save(folder / "b.png")
    store = str(tmp_path / "store")
    assert main(["ingest", str(folder), "--store", store, "--preset", "xmodal-mini", "--workers", "0", "--ocr",
                 "--no-progress"]) == 0
    assert "ocr: 2 items read, 2 with text" in capsys.readouterr().out
    for query, name in (("lighthouse", "a.png"), ("bicycle", "b.png")):
        assert main(["search", query, "--store", store, "--targets", "image", "-k", "1", "--json"]) == 0
        top = json.loads(capsys.readouterr().out)[0]
        assert top["uri"].endswith(name)
        assert top["match"]["kind"] == "ocr" and compact(top["match"]["text"]) == query

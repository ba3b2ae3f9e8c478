"""The shipped xmodal-mini preset (``data/xmodal-mini``) is found by name, loads offline and encodes every modality."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.models import get_preset, list_presets

SHIPPED = Path(__file__).resolve().parents[3] / "data" / "xmodal-mini"
pytestmark = pytest.mark.skipif(not (SHIPPED / "xmodal-mini.json").is_file(), reason="data/xmodal-mini is absent")


@pytest.fixture(scope="module")
def mini(mini_encoder):
    return mini_encoder  # loaded once per session (tests/conftest.py)


def test_found_by_name_with_relative_paths():
    preset = get_preset("xmodal-mini")
    assert "xmodal-mini" in {p.name for p in list_presets()}  # the folder's reports/ hold no stray *.json
    assert preset.path == (SHIPPED / "xmodal-mini.json").resolve()
    assert preset.towers["audio"].source.name == str((SHIPPED / "towers" / "audio").resolve())
    assert all(spec.path is None or spec.path.is_relative_to(SHIPPED.resolve()) for spec in preset.heads.values())


def test_encodes_each_modality(mini):
    rng = np.random.default_rng(0)
    inputs = {
        "text": ["a dog barking", "the number seven", "a small red circle above a blue square"],
        "image": [Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)), Image.new("RGB", (8, 8), "white")],
        "audio": [(rng.standard_normal(8000).astype(np.float32) * 0.1, 8000),
                  (rng.standard_normal(44100 * 6).astype(np.float32) * 0.1, 44100)],
    }
    for modality, items in inputs.items():
        vectors = mini.encode(modality, items)
        assert vectors.shape == (len(items), mini.dim) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_digit_words_match_their_spoken_class_better_than_chance(mini):
    root = Path(__file__).resolve().parents[4] / "shared" / "data" / "fsdd" / "recordings"
    if not root.is_dir():
        pytest.skip("../shared/data/fsdd is absent")
    import soundfile

    clips = []
    for digit in range(10):
        samples, rate = soundfile.read(str(root / f"{digit}_theo_0.wav"), dtype="float32")
        clips.append((samples, rate))
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    sims = mini.encode("audio", clips) @ mini.encode("text", words).T
    assert np.mean(sims.argmax(axis=1) == np.arange(10)) >= 0.5  # a held-out speaker; chance is 0.1

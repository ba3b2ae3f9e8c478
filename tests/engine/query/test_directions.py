"""Every search direction finds the planted match first: a tiny model trained here on an easy generated set.

Four classes, each with its own colour (images), its own pitch (sounds) and its own captions, shared by the
images and sounds of the class. A manifest of seeded (media, captions) rows trains image<->text and
audio<->text; image<->audio meet through the shared space (a manifest record holds one medium, so there are
no image-audio pairs to train on). Held-out media of new seeds go into a store, one planted item per class
and modality; each direction is then queried with a held-out item of every class and must rank that class's
planted item first among the target modality.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.corpus import png_bytes, tiny_trainable_template

pytestmark = pytest.mark.slow  # the module trains a tiny preset for 12 epochs first

RATE = 8000
CLASSES = {  # name: (colour, tone in Hz, captions shared by the class's images and sounds)
    "fire": ((220, 40, 30), 250, ("a red fire with a low rumble", "red flames roaring deep", "a deep rumbling red blaze")),
    "forest": ((40, 170, 50), 600, ("a green forest humming softly", "green leaves and a gentle hum", "a soft hum among green trees")),
    "sea": ((30, 60, 210), 1400, ("the blue sea with a whistling wind", "blue waves and a whistle", "a whistling breeze over blue water")),
    "sun": ((235, 215, 40), 3000, ("the yellow sun with a high chirp", "a bright yellow sky and a shrill beep", "a high chirping under yellow light")),
}
# temporal: mel bins as input channels keep a tone's pitch, which the 2-D form's global pooling blurs
TINY = tiny_trainable_template("tiny-directions", RATE, temporal_audio=True)
DIRECTIONS = [("text", "image"), ("image", "text"), ("text", "audio"), ("audio", "text"), ("image", "audio"), ("audio", "image")]


def class_image(name: str, seed: int) -> bytes:
    """A PNG of the class's colour, a little brightness jitter and pixel noise."""
    rng = np.random.default_rng(seed)
    colour = np.array(CLASSES[name][0], dtype=np.float32) * rng.uniform(0.85, 1.15)
    pixels = colour + rng.normal(0, 20, (48, 48, 3))
    return png_bytes(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))


def class_sound(name: str, seed: int) -> bytes:
    """A one-second WAV: the class's tone (small pitch and level jitter, random phase) plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    freq = CLASSES[name][1] * rng.uniform(0.97, 1.03)
    wave = rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) + 0.02 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), RATE, format="WAV")
    return buf.getvalue()


def write_training_set(root: Path, per_class: int = 12) -> Path:
    """Images and sounds of every class with their captions, as a JSONL manifest.

    The ``val`` split is one caption without media, so it holds no pairs and no epoch is chosen by validation
    recall: with paired validation data the trainer keeps the first epoch at the best recall, and this easy
    set reaches perfect recall after a few epochs, long before images and sounds sit close enough to their
    captions (and so to each other) for image<->audio to rank reliably.
    """
    root.mkdir(parents=True)
    rows = [{"text": CLASSES["fire"][2][0], "split": "val"}]
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            for medium, make, suffix in (("image", class_image, "png"), ("audio", class_sound, "wav")):
                file = root / f"{name}_{medium}_{i}.{suffix}"
                file.write_bytes(make(name, 1000 * c + 10 * i + (medium == "audio")))
                rows.append({"media": file.name, "captions": list(CLASSES[name][2]), "label": name, "split": "train"})
    manifest = root / "train.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


@pytest.fixture(scope="module")
def trained_preset(tmp_path_factory):
    from engine.train.augment import AugmentConfig
    from engine.train.recipe import parse_data_spec, train_preset
    from engine.train.trainer import TrainConfig

    root = tmp_path_factory.mktemp("directions_train")
    manifest = write_training_set(root / "data")
    template = root / "tiny-directions.json"
    template.write_text(json.dumps(TINY))
    # A warm temperature (0.25, not CLIP's 0.07) makes the loss pull each item tight onto its captions, which is
    # what carries image<->audio; patience = epochs, as there is no validation recall to stop on.
    config = TrainConfig(epochs=12, batch_size=32, lr=3e-3, patience=12, seed=0, rows_per_set=96, temperature=0.25,
                         augmentation=AugmentConfig(crop_frames=32))
    path, report = train_preset(template, [parse_data_spec(f"manifest:{manifest}")], root / "out", "tiny-directions", config,
                                cache_dir=root / "cache")
    losses = [epoch["loss"] for epoch in report.history]
    assert len(losses) == 12 and losses[-1] < 0.8 * losses[0], losses
    return path


@pytest.fixture(scope="module")
def planted(trained_preset, tmp_path_factory):
    """A store holding one planted image, sound and text per class; held-out queries of every class beside it."""
    from engine.api.facade import Engine
    from ingest.pipeline import IngestOptions

    root = tmp_path_factory.mktemp("directions_store")
    corpus, queries = root / "corpus", root / "queries"
    corpus.mkdir()
    queries.mkdir()
    targets: dict[tuple[str, str], Path] = {}
    query_parts: dict[tuple[str, str], object] = {}
    for c, name in enumerate(CLASSES):
        seed = 50_000 + 100 * c  # seeds the training set never used
        targets[(name, "image")] = corpus / f"{name}.png"
        targets[(name, "image")].write_bytes(class_image(name, seed))
        targets[(name, "audio")] = corpus / f"{name}.wav"
        targets[(name, "audio")].write_bytes(class_sound(name, seed + 1))
        targets[(name, "text")] = corpus / f"{name}.txt"
        targets[(name, "text")].write_text(CLASSES[name][2][0], encoding="utf-8")
        (queries / f"{name}.png").write_bytes(class_image(name, seed + 2))
        (queries / f"{name}.wav").write_bytes(class_sound(name, seed + 3))
        query_parts[(name, "image")] = queries / f"{name}.png"
        query_parts[(name, "audio")] = queries / f"{name}.wav"
        query_parts[(name, "text")] = CLASSES[name][2][1]  # another caption of the class than the planted text
    engine = Engine.open(root / "store", trained_preset)
    summary = engine.ingest([corpus], IngestOptions(workers=0))
    assert summary.failed == 0
    assert sorted(engine.store_modalities()) == ["audio", "image", "text"]  # also builds the engine's searcher
    yield engine, targets, query_parts
    engine.close()


@pytest.mark.parametrize("source, target", DIRECTIONS, ids=[f"{s[0]}->{t[0]}" for s, t in DIRECTIONS])
def test_direction_finds_the_planted_match_first(planted, source, target):
    from engine.query import QueryPart

    engine, targets, query_parts = planted
    for name in CLASSES:
        value = query_parts[(name, source)]
        results = engine.search(QueryPart(source, value if source == "text" else str(value)), targets=[target], k=len(CLASSES))
        ranked = [Path(r.uri).name for r in results]
        assert {r.modality for r in results} == {target}
        assert ranked[0] == targets[(name, target)].name, f"{source}->{target} query of class {name!r} ranked {ranked}"

import random
import time
from collections import defaultdict

import numpy as np
import pytest

from engine.datasets import SceneConfig, generate_scenes, make_scene, scene_key
from engine.datasets.scene_render import RGB
from engine.datasets.scene_text import COLOUR_WORDS
from engine.datasets.synthetic import hard_negative_scenes


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(SceneConfig(n_scenes=300, seed=0))


def media_bytes(dataset, n=20):
    return [(r.load_image().tobytes(), r.load_audio().samples.tobytes()) for r in dataset.records[:n]]


def test_same_seed_identical_bytes(scenes):
    again = generate_scenes(SceneConfig(n_scenes=300, seed=0))
    assert [(r.id, r.split, r.label, r.texts, r.hard_negatives) for r in scenes] == [
        (r.id, r.split, r.label, r.texts, r.hard_negatives) for r in again
    ]
    assert media_bytes(scenes) == media_bytes(again)


def test_different_seed_differs(scenes):
    other = generate_scenes(SceneConfig(n_scenes=300, seed=1))
    assert [r.texts for r in other] != [r.texts for r in scenes]
    assert sum(a != b for a, b in zip(media_bytes(scenes), media_bytes(other))) >= 15


def test_smaller_set_is_a_prefix(scenes):
    small = generate_scenes(SceneConfig(n_scenes=40, seed=0))
    assert [(r.id, r.texts) for r in small] == [(r.id, r.texts) for r in scenes.records[:40]]
    assert media_bytes(small, 5) == media_bytes(scenes, 5)


def test_layout_makes_relations_true(scenes):
    counts = defaultdict(int)
    for record in scenes:
        scene = record.meta["scene"]
        objs = scene.objects
        counts[len(objs)] += 1
        assert len({o.colour for o in objs}) == len(objs)
        if len(objs) > 1:
            along = [o.col if scene.axis == "horizontal" else o.row for o in objs]
            assert along == sorted(set(along))
        if len(objs) == 2:
            across = {o.row if scene.axis == "horizontal" else o.col for o in objs}
            assert len(across) == 1
    assert set(counts) == {1, 2, 3} and counts[2] > counts[1] and counts[3] > counts[1]


def test_captions_are_five_distinct_and_name_every_colour(scenes):
    for record in scenes:
        assert len(record.texts) == 5 and len(set(record.texts)) == 5
        for text in record.texts:
            words = set(text.replace(",", " ").replace(":", " ").split())
            for shape in record.meta["scene"].objects:
                assert words & set(COLOUR_WORDS[shape.colour]), (text, shape)
    assert len({t for r in scenes for t in r.texts}) > 0.9 * 5 * len(scenes)


def test_hard_negatives_are_false(scenes):
    for record in scenes:
        scene = record.meta["scene"]
        assert 1 <= len(record.hard_negatives) <= 2
        assert not set(record.hard_negatives) & set(record.texts)
        negatives = hard_negative_scenes(scene, random.Random(0))
        assert negatives and all(scene_key(n) != scene_key(scene) for n in negatives)
        for negative in negatives:  # same shapes and sizes, only colours or places moved
            assert sorted((o.shape, o.size) for o in negative.objects) == sorted((o.shape, o.size) for o in scene.objects)


def test_swapped_relation_example():
    scene = next(s for s in (make_scene(0, i) for i in range(100)) if len(s.objects) == 2)
    keys = {scene_key(n) for n in hard_negative_scenes(scene, random.Random(0))}
    a, b = scene.objects
    swapped_colours = f"{scene.axis}: {a.size} {b.colour} {a.shape} ; {b.size} {a.colour} {b.shape}"
    swapped_order = f"{scene.axis}: {b.size} {b.colour} {b.shape} ; {a.size} {a.colour} {a.shape}"
    assert swapped_colours in keys and swapped_order in keys


def test_splits_are_disjoint_by_description(scenes):
    big = generate_scenes(SceneConfig(n_scenes=2000, seed=3, audio=False))
    by_split = defaultdict(set)
    for record in big:
        by_split[record.split].add(record.label)
    assert set(by_split) == {"train", "val", "test"}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["val"])
    assert not (by_split["val"] & by_split["test"])
    sizes = {s: len(big.split(s)) for s in by_split}
    assert sizes["train"] > 1400 and 100 < sizes["test"] < 320 and 100 < sizes["val"] < 320
    assert big.records[0].audio is None


def test_image_shows_each_shape_in_its_colour():
    dataset = generate_scenes(SceneConfig(n_scenes=30, seed=5, image_size=48))
    for record in dataset:
        image = np.asarray(record.load_image()).astype(int)
        assert image.shape == (48, 48, 3)
        cell = 48 / 3
        for shape in record.meta["scene"].objects:
            slack = cell / 2 - cell * (0.42 if shape.size == "large" else 0.22)
            x = int((shape.col + 0.5) * cell + shape.dx * slack)
            y = int((shape.row + 0.5) * cell + shape.dy * slack)
            expected = np.clip(np.array(RGB[shape.colour]) + shape.tint, 0, 255)
            assert np.abs(image[y, x] - expected).max() <= 30, (record.id, shape)


def test_audio_shape_rate_and_one_note_per_shape():
    dataset = generate_scenes(SceneConfig(n_scenes=30, seed=2, sample_rate=8000, audio_seconds=0.75))
    for record in dataset:
        clip = record.load_audio()
        assert clip.sample_rate == 8000 and clip.samples.shape == (6000,) and clip.samples.dtype == np.float32
        assert np.abs(clip.samples).max() <= 1.0
        n = len(record.meta["scene"].objects)
        slots = np.array_split(clip.samples[: 6000 // n * n], n)
        assert all(np.sqrt(np.mean(s**2)) > 0.01 for s in slots)


def test_retrieval_and_pairs_use_the_coco_protocol(scenes):
    task = scenes.retrieval("text", "image")
    assert len(task.queries) == 5 * len(scenes.split("test")) and all(len(v) == 1 for v in task.relevant.values())
    assert len(scenes.pairs("audio", "image")) == len(scenes.split("train"))


def test_config_checks_and_single_shapes():
    assert {len(r.meta["scene"].objects) for r in generate_scenes(SceneConfig(n_scenes=50, max_objects=1))} == {1}
    with pytest.raises(ValueError):
        generate_scenes(SceneConfig(n_scenes=5, max_objects=4))


def test_thousand_scenes_are_fast():
    start = time.perf_counter()
    dataset = generate_scenes(SceneConfig(n_scenes=1000, seed=9))
    for record in dataset.records[:200]:
        record.load_image(), record.load_audio()
    assert time.perf_counter() - start < 5.0

"""Seeded compositional scenes in three modalities: images of one to three shapes, captions, hard negatives, sounds.

Scene ``i`` of seed ``s`` depends on ``(s, i)`` only, so a 1k set is a prefix of the 10k one and scenes can be
made one at a time. Images and sounds are rendered lazily (on ``Record.load_image`` / ``load_audio``); the
same seed gives identical bytes. Layout: shapes sit in cells of a 3x3 grid (with jitter) so every stated
relation is unambiguous; two shapes share a row (left/right) or a column (above/below); three shapes run
along one axis. A record's label is the scene's canonical description, and the split is a stable hash of
it, so no description appears in two splits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from functools import partial

from engine.datasets.scene_render import render_audio, render_image
from engine.datasets.scene_text import caption, captions
from engine.datasets.base import Dataset, Record
from engine.datasets.media import hash_split

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
OBJECT_COUNT_WEIGHTS = (0.2, 0.4, 0.4)  # one, two, three shapes
TINT = 18  # per-shape colour jitter, +- in each RGB channel


@dataclass(frozen=True)
class SceneConfig:
    """What to generate: how many scenes, seed, image size, audio, splits and captions per scene."""

    n_scenes: int = 1000
    seed: int = 0
    image_size: int = 64
    max_objects: int = 3
    audio: bool = True
    sample_rate: int = 16_000
    audio_seconds: float = 1.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    captions_per_scene: int = 5
    name: str = "scenes"


@dataclass(frozen=True)
class Shape:
    """One shape: kind, colour, size, grid cell, jitter in [-1, 1] and an RGB tint."""

    shape: str
    colour: str
    size: str
    row: int
    col: int
    dx: float = 0.0
    dy: float = 0.0
    tint: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True)
class Scene:
    """Shapes in reading order (left to right, or top to bottom when ``axis`` is vertical)."""

    index: int
    objects: tuple[Shape, ...]
    axis: str = "none"


def scene_key(scene: Scene) -> str:
    """Canonical description: what the captions state, and nothing else (no jitter or tint)."""
    parts = " ; ".join(f"{o.size} {o.colour} {o.shape}" for o in scene.objects)
    if len(scene.objects) == 1:
        return f"{parts} @ {scene.objects[0].row},{scene.objects[0].col}"
    return f"{scene.axis}: {parts}"


def _place(rng: random.Random, count: int, axis: str) -> list[tuple[int, int]]:
    """Grid cells in reading order: one anywhere, two in one row/column, three along the axis."""
    if count == 1:
        return [(rng.randrange(3), rng.randrange(3))]
    steps = sorted(rng.sample(range(3), count))
    if count == 2:
        line = rng.randrange(3)
        return [(line, s) if axis == "horizontal" else (s, line) for s in steps]
    return [(rng.randrange(3), s) if axis == "horizontal" else (s, rng.randrange(3)) for s in steps]


def make_scene(seed: int, index: int, max_objects: int = 3) -> Scene:
    """Scene ``index`` of ``seed``: a pure function of the two (and ``max_objects``)."""
    rng = random.Random(f"xmodal-scene:{seed}:{index}")
    count = rng.choices(range(1, max_objects + 1), OBJECT_COUNT_WEIGHTS[:max_objects])[0]
    axis = "none" if count == 1 else rng.choice(("horizontal", "vertical"))
    colours = rng.sample(COLOURS, count)  # distinct colours: every colour swap changes the scene
    objects = tuple(
        Shape(rng.choice(SHAPES), colour, rng.choice(SIZES), row, col, rng.uniform(-1, 1), rng.uniform(-1, 1),
              (rng.randint(-TINT, TINT), rng.randint(-TINT, TINT), rng.randint(-TINT, TINT)))
        for colour, (row, col) in zip(colours, _place(rng, count, axis))
    )
    return Scene(index, objects, axis)


def _moved(shape: Shape, to: Shape) -> Shape:
    """``shape`` at the place of ``to``."""
    return replace(shape, row=to.row, col=to.col, dx=to.dx, dy=to.dy)


def hard_negative_scenes(scene: Scene, rng: random.Random) -> list[Scene]:
    """Scenes that differ from ``scene`` by swapped colours or a swapped relation (a moved shape when alone)."""
    objs = list(scene.objects)
    if len(objs) == 1:
        only = objs[0]
        other = rng.choice([c for c in COLOURS if c != only.colour])
        row, col = (only.row, 2 - only.col) if only.col != 1 else (2 - only.row, only.col) if only.row != 1 else (1, rng.choice((0, 2)))
        return [replace(scene, objects=(replace(only, colour=other),)), replace(scene, objects=(replace(only, row=row, col=col),))]
    i, j = sorted(rng.sample(range(len(objs)), 2))
    swapped_colours = list(objs)
    swapped_colours[i], swapped_colours[j] = replace(objs[i], colour=objs[j].colour), replace(objs[j], colour=objs[i].colour)
    swapped_order = list(objs)
    swapped_order[i], swapped_order[j] = _moved(objs[j], objs[i]), _moved(objs[i], objs[j])
    key = scene_key(scene)
    found = {}
    for objects in (swapped_colours, swapped_order):
        negative = replace(scene, objects=tuple(objects))
        found.setdefault(scene_key(negative), negative)
    return [negative for k, negative in found.items() if k != key]


def hard_negatives(scene: Scene, seed: int) -> tuple[str, ...]:
    """One caption per hard-negative scene, phrased with the same templates as the true captions."""
    rng = random.Random(f"xmodal-negatives:{seed}:{scene.index}")
    return tuple(caption(negative, rng) for negative in hard_negative_scenes(scene, rng))


def scene_record(scene: Scene, config: SceneConfig) -> Record:
    """The record of one scene: captions, hard negatives, lazy image and (optionally) lazy audio."""
    key = scene_key(scene)
    rng = random.Random(f"xmodal-captions:{config.seed}:{scene.index}")
    audio = partial(render_audio, scene, config.sample_rate, config.audio_seconds) if config.audio else None
    return Record(
        f"{config.name}:{scene.index:06d}", hash_split(key, config.val_fraction, config.test_fraction), key,
        image=partial(render_image, scene, config.image_size), audio=audio,
        texts=captions(scene, rng, config.captions_per_scene), hard_negatives=hard_negatives(scene, config.seed),
        meta={"scene": scene},
    )


def generate_scenes(config: SceneConfig = SceneConfig()) -> Dataset:
    """``config.n_scenes`` scenes as a dataset (instance protocol, evaluated on ``test``); media render lazily."""
    if not 1 <= config.max_objects <= 3:
        raise ValueError(f"max_objects must be 1, 2 or 3, got {config.max_objects}")
    scenes = (make_scene(config.seed, i, config.max_objects) for i in range(config.n_scenes))
    return Dataset(config.name, tuple(scene_record(scene, config) for scene in scenes))

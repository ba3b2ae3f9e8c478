"""Captions for synthetic scenes: templates and synonyms, driven by a per-scene ``random.Random``."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.datasets.synthetic import Scene, Shape

COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"), "green": ("green", "emerald"), "blue": ("blue", "cobalt"),
    "yellow": ("yellow", "golden"), "purple": ("purple", "violet"), "orange": ("orange", "tangerine"),
}
SHAPE_WORDS = {
    "circle": ("circle", "disk", "round shape"), "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape"), "diamond": ("diamond", "rhombus"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
ROWS, COLS = ("top", "middle", "bottom"), ("left", "center", "right")

# Per axis: the forward relation (first object -> second), its inverse, the reading order and its reverse, the ends.
AXES = {
    "horizontal": (("to the left of", "left of", "on the left of"), ("to the right of", "right of", "on the right of"),
                   "from left to right", "from right to left", ("on the left", "on the right")),
    "vertical": (("above", "over", "higher than"), ("below", "under", "beneath"),
                 "from top to bottom", "from bottom to top", ("at the top", "at the bottom")),
}


def noun_phrase(shape: Shape, rng: random.Random, size_p: float = 0.5) -> str:
    """``"a small crimson disk"``: colour and shape always, size with probability ``size_p``."""
    words = [rng.choice(SIZE_WORDS[shape.size])] if rng.random() < size_p else []
    words += [rng.choice(COLOUR_WORDS[shape.colour]), rng.choice(SHAPE_WORDS[shape.shape])]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def position_phrase(row: int, col: int, rng: random.Random) -> str:
    """Where a lone shape sits in the 3x3 grid, e.g. ``"in the top left corner"``."""
    r, c = ROWS[row], COLS[col]
    if (row, col) == (1, 1):
        return rng.choice(("in the center", "in the middle", "in the center of the image"))
    if row == 1:
        return rng.choice((f"on the {c}", f"on the {c} side", f"at the {c}"))
    if col == 1:
        return rng.choice((f"at the {r}", f"at the {r} of the image", f"near the {r}"))
    return rng.choice((f"in the {r} {c} corner", f"at the {r} {c}", f"in the {r}-{c} corner"))


def _one(scene: Scene, rng: random.Random) -> str:
    shape = scene.objects[0]
    a, pos = noun_phrase(shape, rng), position_phrase(shape.row, shape.col, rng)
    return rng.choice((
        f"{a} {pos}", f"there is {a} {pos}", f"{pos} is {a}", f"a picture of {a} {pos}", f"{a} sits {pos}",
        f"{a} {pos} on a dark background", f"an image with {a} {pos}",
    ))


def _two(scene: Scene, rng: random.Random) -> str:
    forward, inverse, order, _, _ = AXES[scene.axis]
    x, y = (noun_phrase(o, rng) for o in scene.objects)
    if rng.random() < 0.5:
        p, rel, q = x, rng.choice(forward), y
    else:
        p, rel, q = y, rng.choice(inverse), x
    return rng.choice((
        f"{p} {rel} {q}", f"there is {p} {rel} {q}", f"{p} is {rel} {q}", f"{p} placed {rel} {q}",
        f"a picture of {p} {rel} {q}", f"{x} and {y}, {order}", f"{order}: {x} and {y}",
    ))


def _three(scene: Scene, rng: random.Random) -> str:
    forward, inverse, order, reverse, (first_end, last_end) = AXES[scene.axis]
    x, y, z = (noun_phrase(o, rng) for o in scene.objects)
    return rng.choice((
        f"{x}, {y} and {z} {order}", f"{order}: {x}, {y}, {z}", f"{z}, {y} and {x} {reverse}",
        f"{y} between {x} {first_end} and {z} {last_end}", f"{x} {rng.choice(forward)} {y}, which is {rng.choice(forward)} {z}",
        f"{x} {first_end}, {y} in the middle and {z} {last_end}", f"{z} {rng.choice(inverse)} {y}, which is {rng.choice(inverse)} {x}",
    ))


def caption(scene: Scene, rng: random.Random) -> str:
    """One true caption of the scene, drawn from the templates for its number of shapes."""
    return (_one, _two, _three)[len(scene.objects) - 1](scene, rng)


def captions(scene: Scene, rng: random.Random, n: int = 5) -> tuple[str, ...]:
    """``n`` distinct true captions (fewer only if the templates run out after many draws)."""
    found: dict[str, None] = {}
    for _ in range(50 * n):
        found[caption(scene, rng)] = None
        if len(found) == n:
            break
    return tuple(found)

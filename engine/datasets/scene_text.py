"""Captions for synthetic scenes: templates and synonyms, driven by a per-scene ``random.Random``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.datasets.synthetic import Scene, Shape

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


def pick(rng: random.Random, options: Sequence[str]) -> str:
    """A uniform choice; ``random.choice`` costs twice as much and this runs millions of times for 100k scenes."""
    return options[int(rng.random() * len(options))]


def noun_phrase(shape: Shape, rng: random.Random, size_p: float = 0.5) -> str:
    """``"a small crimson disk"``: colour and shape always, size with probability ``size_p``."""
    words = [pick(rng, SIZE_WORDS[shape.size])] if rng.random() < size_p else []
    words += [pick(rng, COLOUR_WORDS[shape.colour]), pick(rng, SHAPE_WORDS[shape.shape])]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def position_phrase(row: int, col: int, rng: random.Random) -> str:
    """Where a lone shape sits in the 3x3 grid, e.g. ``"in the top left corner"``."""
    r, c = ROWS[row], COLS[col]
    if (row, col) == (1, 1):
        return pick(rng, ("in the center", "in the middle", "in the center of the image"))
    if row == 1:
        return pick(rng, (f"on the {c}", f"on the {c} side", f"at the {c}"))
    if col == 1:
        return pick(rng, (f"at the {r}", f"at the {r} of the image", f"near the {r}"))
    return pick(rng, (f"in the {r} {c} corner", f"at the {r} {c}", f"in the {r}-{c} corner"))


# Templates by number of shapes; fields are filled by ``caption`` (only the chosen template is formatted).
TEMPLATES = (
    ("{a} {pos}", "there is {a} {pos}", "{pos} is {a}", "a picture of {a} {pos}", "{a} sits {pos}",
     "{a} {pos} on a dark background", "an image with {a} {pos}"),
    ("{p} {rel} {q}", "there is {p} {rel} {q}", "{p} is {rel} {q}", "{p} placed {rel} {q}",
     "a picture of {p} {rel} {q}", "{x} and {y}, {order}", "{order}: {x} and {y}"),
    ("{x}, {y} and {z} {order}", "{order}: {x}, {y}, {z}", "{z}, {y} and {x} {reverse}",
     "{y} between {x} {first} and {z} {last}", "{x} {fwd} {y}, which is {fwd2} {z}",
     "{x} {first}, {y} in the middle and {z} {last}", "{z} {inv} {y}, which is {inv2} {x}"),
)


def _fields(scene: Scene, rng: random.Random) -> dict[str, str]:
    """Every field a template of this scene may use, drawn once."""
    objs = scene.objects
    if len(objs) == 1:
        return {"a": noun_phrase(objs[0], rng), "pos": position_phrase(objs[0].row, objs[0].col, rng)}
    forward, inverse, order, reverse, (first, last) = AXES[scene.axis]
    fields = dict(zip("xyz", (noun_phrase(o, rng) for o in objs)))
    fields.update(order=order, reverse=reverse, first=first, last=last, fwd=pick(rng, forward),
                  fwd2=pick(rng, forward), inv=pick(rng, inverse), inv2=pick(rng, inverse))
    if len(objs) == 2:  # "x rel y" or, as often, "y inverse-rel x"
        flip = rng.random() < 0.5
        fields.update(p=fields["y" if flip else "x"], q=fields["x" if flip else "y"], rel=fields["inv" if flip else "fwd"])
    return fields


def caption(scene: Scene, rng: random.Random) -> str:
    """One true caption of the scene, drawn from the templates for its number of shapes."""
    return pick(rng, TEMPLATES[len(scene.objects) - 1]).format(**_fields(scene, rng))


def captions(scene: Scene, rng: random.Random, n: int = 5) -> tuple[str, ...]:
    """``n`` distinct true captions (fewer only if the templates run out after many draws)."""
    found: dict[str, None] = {}
    for _ in range(50 * n):
        found[caption(scene, rng)] = None
        if len(found) == n:
            break
    return tuple(found)

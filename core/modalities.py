"""The one modality registry: every kind of media xmodal knows, by name, in one order, with its file extensions.

Whatever needs the list of modalities reads it here: the catalog's CHECK constraints, the decoders' extension
tables, the CLI's choices, the server's request validation, the re-ranker's modality rows (saved by name). A new
kind of media is one ``register`` call (plus the code that decodes and encodes it). Names are lowercase
identifiers, so they are safe inside SQL text; an extension belongs to one modality only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import overload

from core.errors import UnsupportedModality, XmodalError


class InvalidModality(XmodalError, ValueError):
    """A modality cannot be registered: its name is malformed or taken, or an extension is another modality's."""

    exit_code = 2


@dataclass(frozen=True)
class Modality:
    """A kind of media: its name, the file extensions that hold it, whether its items are binary files, and the
    modalities its representations are embedded as when not its own (a video: image frames, audio windows)."""

    name: str
    extensions: frozenset[str] = field(default_factory=frozenset)
    # A binary file (an image, a recording) is sniffed by its content and served as is; text is read as words.
    binary: bool = True
    embedded_as: tuple[str, ...] = ()  # empty: its own tower embeds it

    def towers(self) -> tuple[str, ...]:
        """The modalities whose towers embed an item of this kind."""
        return self.embedded_as or (self.name,)


_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_EXTENSION = re.compile(r"\.[a-z0-9]{1,15}")
_REGISTRY: dict[str, Modality] = {}


class _Names(Sequence[str]):
    """The registered names in registry order, read live (a module that imported it sees later registrations)."""

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return tuple(_REGISTRY)[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # it changes with the registry

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))


MODALITIES: Sequence[str] = _Names()


def register(entry: Modality) -> Modality:
    """Add a modality at the end of the order; a malformed or taken name, or a taken extension, is refused."""
    if not _NAME.fullmatch(entry.name):
        raise InvalidModality(f"modality name {entry.name!r} must be a lowercase identifier (a-z, 0-9, _)")
    if entry.name in _REGISTRY:
        raise InvalidModality(f"modality {entry.name!r} is registered already")
    for ext in sorted(entry.extensions):
        if not _EXTENSION.fullmatch(ext):
            raise InvalidModality(f"{entry.name}: extension {ext!r} must be lowercase and start with a dot (.mp4)")
        owner = modality_of_path(f"x{ext}")
        if owner is not None:
            raise InvalidModality(f"{entry.name}: extension {ext} belongs to {owner} already")
    unknown = [m for m in entry.embedded_as if m not in _REGISTRY]
    if unknown:
        raise InvalidModality(f"{entry.name}: embedded as {', '.join(unknown)}, which is not registered")
    _REGISTRY[entry.name] = entry
    return entry


@contextmanager
def registered(entry: Modality) -> Iterator[Modality]:
    """Register ``entry`` for the ``with`` block and remove it afterwards (tests, experiments)."""
    register(entry)
    try:
        yield entry
    finally:
        _REGISTRY.pop(entry.name, None)


def modality(name: str) -> Modality:
    """The registered modality called ``name``; ``UnsupportedModality`` names the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnsupportedModality(f"unknown modality {name!r} (known: {', '.join(_REGISTRY)})") from None


def modality_of_path(path: str | PurePath) -> str | None:
    """The modality whose extensions hold ``path``'s suffix (any case), None when no modality claims it."""
    suffix = PurePath(str(path)).suffix.lower()
    return next((m.name for m in _REGISTRY.values() if suffix in m.extensions), None) if suffix else None


def extensions(*names: str) -> frozenset[str]:
    """The file extensions of the named modalities (of every modality when none is named)."""
    chosen = [modality(n) for n in names] if names else list(_REGISTRY.values())
    return frozenset().union(*(m.extensions for m in chosen))


# The built-in kinds, in the order every table and saved file has used since the first release.
register(Modality("image", frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})))
register(Modality("text", frozenset({".txt", ".md"}), binary=False))
register(Modality("audio", frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})))
register(Modality("video", frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov"}), embedded_as=("image", "audio")))

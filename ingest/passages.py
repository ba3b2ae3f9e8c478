"""Long texts cut into overlapping passages, each a representation with its character offset; bounded work."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from ingest.errors import IngestError

# A "word" is at most 40 characters, so text without spaces (base64, CJK runs) still cuts into bounded passages.
_WORD = re.compile(r"\S{1,40}")


@dataclass(frozen=True)
class PassageSettings:
    """How text files become passages: words per passage, words shared with the next, caps on size and count.

    Past ``max_passages`` the rest of a file is not indexed (the ingest summary notes it); the bytes a text
    file may hold at all are ``DecodeSettings.max_text_bytes``. The defaults fit a 256-token text tower
    (all-MiniLM-L6-v2); a 77-token CLIP text tower reads about the first 55 words of each passage.
    """

    words: int = 120
    overlap: int = 24
    max_chars: int = 1000  # per passage, for text whose "words" are long
    max_passages: int = 1000

    def __post_init__(self) -> None:
        if self.words < 1 or self.overlap < 0 or self.overlap >= self.words:
            raise IngestError(f"passages need words >= 1 and 0 <= overlap < words, got {self.words}, {self.overlap}")
        if self.max_chars < 40 or self.max_passages < 1:
            raise IngestError("passage limits must be positive (max_chars >= 40)")


@dataclass(frozen=True)
class Passage:
    """One passage: where it starts in the text (characters) and its words, joined by single spaces."""

    offset: int
    text: str


@dataclass(frozen=True)
class Passages:
    """The passages of one text, and whether text was left out past ``max_passages``."""

    items: list[Passage]
    truncated: bool
    # Character offset where indexing stopped (None when the whole text is covered).
    stopped_at: int | None = None


def _windows(text: str, settings: PassageSettings) -> Iterator[tuple[list[re.Match[str]], int]]:
    """Successive word windows, each with how many leading words the one before already held (at most
    ``overlap``, and at most a fifth of a window). Words are read lazily, so stopping early costs nothing more."""
    window: list[re.Match[str]] = []
    kept = chars = 0  # chars: the length of the window's words joined by single spaces
    for word in _WORD.finditer(text):
        size = word.end() - word.start()
        if window and (len(window) >= settings.words or chars + 1 + size > settings.max_chars):
            yield window, kept
            kept = min(settings.overlap, len(window) // 5)
            window = window[len(window) - kept :] if kept else []
            chars = sum(m.end() - m.start() for m in window) + max(0, len(window) - 1)
        chars += size + (1 if len(window) else 0)
        window.append(word)
    if len(window) > kept:
        yield window, kept


def split_passages(text: str, settings: PassageSettings = PassageSettings()) -> Passages:
    """Cut ``text`` into at most ``settings.max_passages`` overlapping passages (empty for blank text)."""
    out: list[Passage] = []
    for window, kept in _windows(text, settings):
        if len(out) == settings.max_passages:
            return Passages(out, True, window[kept].start())  # the first word no passage holds
        out.append(Passage(window[0].start(), " ".join(m.group() for m in window)))
    return Passages(out, False)


def is_short(text: str, passages: Passages, settings: PassageSettings = PassageSettings()) -> bool:
    """Whether a text is kept whole as one representation (one passage, and not padded with huge whitespace)."""
    return len(passages.items) == 1 and not passages.truncated and len(text) <= 4 * settings.max_chars

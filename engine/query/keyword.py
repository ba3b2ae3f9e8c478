"""Keyword search for the query layer: a user's text becomes safe FTS5 expressions (each whitespace-separated piece
quoted, never the user's own syntax) and the catalog's keyword hits become candidate lists that the search fuses
like every vector list: by rank (``rrf``) or by a calibrated score (``calibrated``, ``probability``).

Three lists, each one more "target" for the fusion: ``keyword:text`` (words in captions, texts, passages,
transcripts, OCR lines), ``keyword:name`` (words in file names and metadata values) and ``keyword:substring``
(pieces of three characters or more inside OCR lines and file names). A hit's fusion score depends on its rank
in its list only (bm25 values are not comparable across lists or stores); its shown cosine is the real cosine of the
matched representation's stored vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from core.errors import InvalidInput
from engine.query.fusion import Calibration, HitScore
from index import Hit
from index.keyword import NAME, SUBSTRING, KeywordHit, match_items, match_substrings, match_text, stored_vectors

HYBRID, VECTOR, KEYWORD = "hybrid", "vector", "keyword"
MODES = (HYBRID, VECTOR, KEYWORD)
# bench.hybrid (xmodal-mini; COCO photos, ESC-10 and FSDD clips, generated notes): hybrid finds every exact-token
# answer that keyword alone finds and keeps vector's R@1 on the semantic sets (README "Keyword search").
DEFAULT_MODE = HYBRID
PREFIX = "keyword:"
TEXT_LIST, NAME_LIST, SUBSTRING_LIST = (PREFIX + n for n in ("text", "name", "substring"))
MAX_PIECES = 16  # whitespace-separated pieces of a query used for keywords (the rest are ignored)
MAX_PIECE_CHARS = 64
MIN_SUBSTRING = 3  # the trigram tokenizer cannot match shorter pieces

# Keyword hits are scored in calibrated units already: their background is the identity, so the "calibrated" fusion
# reads the z-score below and "probability" the log-odds; both fall with the hit's rank in its list. The defaults are
# bench.hybrid's choice on its tuning half (README "Keyword search"): a keyword match at the top of its list beats
# a clear vector match (log-odds 8, p = 0.9997), and the score falls fast down the list (log-odds 1.1 at rank 9,
# under the 0.5 floor past rank 13) so vectors still order the many items a common word matches.
KEYWORD_BACKGROUND = Calibration(0.0, 1.0)


@dataclass(frozen=True)
class KeywordScale:
    """A keyword hit's fusion scores at rank r: log-odds ``logit - logit_step * ln(1 + r)`` and z-score
    ``z - z_step * ln(1 + r)``."""

    logit: float = 8.0
    logit_step: float = 3.0
    z: float = 10.0
    z_step: float = 4.5


DEFAULT_SCALE = KeywordScale()


def check_mode(mode: str) -> str:
    """``mode`` when it is one of ``MODES``, else ``InvalidInput`` naming them."""
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def is_keyword_list(name: str) -> bool:
    """Whether a candidate list's name is a keyword list's (not a vector target's)."""
    return name.startswith(PREFIX)


def pieces(text: str) -> list[str]:
    """The query's whitespace-separated pieces that hold a letter or digit, without control characters, trimmed of
    punctuation at both ends, repeats dropped, at most ``MAX_PIECES`` of at most ``MAX_PIECE_CHARS`` characters."""
    found: list[str] = []
    for raw in text.split():
        raw = "".join(c for c in raw if c.isprintable())  # a NUL would end the expression SQLite reads
        start, end = 0, len(raw)
        while start < end and not raw[start].isalnum():
            start += 1
        while end > start and not raw[end - 1].isalnum():
            end -= 1
        piece = raw[start:end][:MAX_PIECE_CHARS]
        if piece and piece.casefold() not in (p.casefold() for p in found):
            found.append(piece)
        if len(found) == MAX_PIECES:
            break
    return found


def _quoted(piece: str) -> str:
    return '"' + piece.replace('"', '""') + '"'  # an FTS5 string: inside quotes nothing is syntax


def fts_expression(text: str) -> str | None:
    """An FTS5 expression matching rows that hold every piece of ``text`` as words (None: no usable piece)."""
    found = pieces(text)
    return " ".join(map(_quoted, found)) if found else None


def substring_expression(text: str) -> str | None:
    """A trigram expression matching rows that hold every piece of ``text`` anywhere (None when any piece is shorter
    than the trigram tokenizer can match, or there is none)."""
    found = pieces(text)
    if not found or any(len(p) < MIN_SUBSTRING for p in found):
        return None
    return " ".join(map(_quoted, found))


def keyword_score(rank: int, scale: KeywordScale = DEFAULT_SCALE) -> HitScore:
    """The fusion's view of a keyword hit at ``rank`` in its list (0 = first)."""
    fall = math.log1p(rank)
    return HitScore(rank, scale.z - scale.z_step * fall, KEYWORD_BACKGROUND, scale.logit - scale.logit_step * fall)


def _as_hit(found: KeywordHit, hit: Hit) -> Hit:
    """The hydrated hit of a keyword match; a file name or metadata match shows that text under its own kind."""
    if found.field == NAME or found.field == "metadata" or (found.field == SUBSTRING and found.text is not None):
        kind = NAME if found.field == SUBSTRING else found.field
        return replace(hit, kind=kind, text=found.text)
    return hit


def keyword_lists(catalog: Any, text: str, depth: int, model: str, vector: np.ndarray,
                  modalities: Sequence[str] = ()) -> tuple[dict[str, list[tuple[Hit, float]]], bool]:
    """Keyword candidate lists for ``text`` (at most ``depth`` hits each, items of ``modalities`` only when given) as
    (hydrated hit, cosine of its stored ``model`` vector with ``vector``, 0.0 when it has none) pairs, and whether
    every list was exhausted (fewer than ``depth`` hits)."""
    words, subs = fts_expression(text), substring_expression(text)
    raw: dict[str, list[KeywordHit]] = {}
    if words:
        raw[TEXT_LIST] = match_text(catalog, words, depth, modalities)
        raw[NAME_LIST] = match_items(catalog, words, depth, modalities)
    if subs:
        raw[SUBSTRING_LIST] = match_substrings(catalog, subs, depth, modalities)
    ids = sorted({h.representation_id for found in raw.values() for h in found})
    if not ids:
        return {}, True
    hits = catalog.hydrate(ids)
    stored = stored_vectors(catalog, model, ids)
    query = np.asarray(vector, dtype=np.float32).reshape(-1)
    cosines = {i: float(v @ query) for i, v in stored.items() if v.shape == query.shape}
    lists = {name: [(_as_hit(h, hits[h.representation_id]), cosines.get(h.representation_id, 0.0))
                    for h in found if h.representation_id in hits] for name, found in raw.items()}
    return lists, all(len(found) < depth for found in raw.values())

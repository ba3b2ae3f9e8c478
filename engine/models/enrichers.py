"""Enrichers by name: the models that read a file's content into text (speech transcripts, text in images).

``ENRICHERS`` maps a switch name to a factory taking ``EnrichOptions`` (or its "module:attribute", imported only
when that enricher is turned on: speech and OCR models are heavy). The ingest pass that runs them is
``ingest.enrich``; a store remembers which are on (``xmodal.json`` ``enrich``).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from core.errors import XmodalError
from ingest.enrich import Enricher


class UnknownEnricher(XmodalError, ValueError):
    """An enricher name nothing is registered under."""


@dataclass(frozen=True)
class EnrichOptions:
    """How to build enrichers: device, CPU threads, and per enricher name a model id or path other than its default
    (``models``; ``model`` is what one factory receives: ``make_enrichers`` sets it from ``models``)."""

    device: str = "cpu"
    threads: int = 1
    model: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    speech_gate: bool = True  # transcribe: drop Whisper segments the speech gate finds are not speech


EnricherFactory = Callable[[EnrichOptions], Enricher]

ENRICHERS: dict[str, str | EnricherFactory] = {
    "transcribe": "engine.models.speech:make_enricher",
    "ocr": "engine.models.ocr:make_enricher",
}


def register_enricher(name: str, factory: str | EnricherFactory) -> None:
    """Make ``name`` an enricher that ``xmodal ingest`` and ``Engine.ingest(enrich=...)`` can turn on."""
    ENRICHERS[name] = factory


def enricher_names() -> tuple[str, ...]:
    """The names enrichers can be turned on by."""
    return tuple(sorted(ENRICHERS))


def check_enrichers(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` deduplicated, in order; ``UnknownEnricher`` naming the known ones for any other."""
    out = tuple(dict.fromkeys(names))
    for name in out:
        if name not in ENRICHERS:
            raise UnknownEnricher(f"unknown enricher {name!r}; known: {', '.join(enricher_names())}")
    return out


def make_enrichers(names: Iterable[str], options: EnrichOptions = EnrichOptions()) -> list[Enricher]:
    """The enrichers called ``names``, built (their models loaded) in order, each with its own ``models`` entry."""
    built = []
    for name in check_enrichers(names):
        factory = ENRICHERS[name]
        if isinstance(factory, str):
            module, _, attribute = factory.partition(":")
            factory = getattr(importlib.import_module(module), attribute)
        built.append(factory(dataclasses.replace(options, model=options.models.get(name, options.model))))
    return built

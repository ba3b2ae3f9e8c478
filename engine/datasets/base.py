"""Records, samples and the ``Dataset`` interface: training pairs and retrieval tasks under two protocols.

A record is one thing in the world (a COCO image with its captions, an ESC clip, a synthetic scene) with a
stable id, a split, an optional class label and lazily decoded content per modality. From records a dataset
derives *samples* (one image, one clip, one text) and from samples:

- ``pairs(a, b)``: (a, b) training pairs, within one record (instance) or across records of one class (class);
- ``retrieval(q, c)``: queries, corpus and relevant corpus ids per query, as in sentence-transformers'
  ``InformationRetrievalEvaluator``. Instance protocol: relevant = the same record (COCO); class protocol:
  relevant = the same label, and each label's ``class_texts`` join the text items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from engine.datasets.media import AudioSource, ImageSource, decode_audio, decode_image
from core.media import AudioClip
from core.modalities import MODALITIES as REGISTERED

# What a Record holds (its image, audio and texts), in the registry's one order.
MODALITIES = tuple(m for m in REGISTERED if m in ("image", "audio", "text"))
PROTOCOLS = ("instance", "class")
Content = str | ImageSource | AudioSource


@dataclass(frozen=True)
class Record:
    """One dataset record: id, split, optional label and group, lazily decoded image/audio, texts, hard negatives."""

    id: str
    split: str
    label: str | None = None
    image: ImageSource | None = None
    audio: AudioSource | None = None
    texts: tuple[str, ...] = ()
    hard_negatives: tuple[str, ...] = ()
    group: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def has(self, modality: str) -> bool:
        """Whether the record carries that modality."""
        return bool(self.texts) if modality == "text" else getattr(self, _checked(modality)) is not None

    def load_image(self) -> Image.Image:
        """The decoded RGB image."""
        if self.image is None:
            raise ValueError(f"record {self.id} has no image")
        return decode_image(self.image)

    def load_audio(self) -> AudioClip:
        """The decoded audio clip."""
        if self.audio is None:
            raise ValueError(f"record {self.id} has no audio")
        return decode_audio(self.audio)


@dataclass(frozen=True)
class Sample:
    """One retrievable unit of one modality; text ids are ``record#i`` or ``class:label#i``."""

    id: str
    modality: str
    content: Content
    label: str | None = None
    record_id: str | None = None

    def load(self) -> str | Image.Image | AudioClip:
        """The decoded content: a str, an RGB PIL image or an ``AudioClip``."""
        if self.modality == "image":
            return decode_image(self.content)  # type: ignore[arg-type]
        if self.modality == "audio":
            return decode_audio(self.content)  # type: ignore[arg-type]
        return self.content  # type: ignore[return-value]


@dataclass(frozen=True)
class Pair:
    """A positive training pair between two modalities."""

    a: Sample
    b: Sample


@dataclass(frozen=True)
class RetrievalTask:
    """Queries, corpus and the relevant corpus ids of each query (every query has at least one)."""

    name: str
    queries: tuple[Sample, ...]
    corpus: tuple[Sample, ...]
    relevant: Mapping[str, frozenset[str]]

    def relevance_matrix(self) -> np.ndarray:
        """Boolean (n_queries, n_corpus) matrix: True where the corpus item is relevant to the query."""
        column = {item.id: j for j, item in enumerate(self.corpus)}
        matrix = np.zeros((len(self.queries), len(self.corpus)), dtype=bool)
        for i, query in enumerate(self.queries):
            matrix[i, [column[c] for c in self.relevant[query.id]]] = True
        return matrix


def _checked(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return modality


@dataclass(frozen=True)
class Dataset:
    """Records plus per-label class texts; ``protocol`` and ``eval_split`` are the defaults for its tasks."""

    name: str
    records: tuple[Record, ...]
    class_texts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    protocol: str = "instance"
    eval_split: str = "test"

    def __post_init__(self) -> None:
        self._protocol(None)
        if len(self.by_id) != len(self.records):
            dupes = sorted(i for i, n in Counter(r.id for r in self.records).items() if n > 1)
            raise ValueError(f"dataset {self.name}: duplicate record ids {dupes[:5]}")

    @cached_property
    def by_id(self) -> dict[str, Record]:
        """Records keyed by id."""
        return {r.id: r for r in self.records}

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, record_id: str) -> Record:
        return self.by_id[record_id]

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names present, in first-seen order."""
        return tuple(dict.fromkeys(r.split for r in self.records))

    @property
    def labels(self) -> tuple[str, ...]:
        """Sorted class labels present."""
        return tuple(sorted({r.label for r in self.records if r.label is not None}))

    def modalities(self) -> tuple[str, ...]:
        """Modalities at least one record carries (text also when class texts exist)."""
        return tuple(m for m in MODALITIES if any(r.has(m) for r in self.records) or (m == "text" and self.class_texts))

    def split(self, name: str) -> Dataset:
        """The records of one split, as a dataset of the same kind."""
        if name not in self.splits:
            raise ValueError(f"dataset {self.name} has no split {name!r}; it has {self.splits}")
        return replace(self, records=tuple(r for r in self.records if r.split == name))

    def samples(self, modality: str, split: str | None = None, protocol: str | None = None,
                texts_per_class: int | None = None) -> tuple[Sample, ...]:
        """Samples of one modality in a split (all splits when None); class protocol adds each label's class texts."""
        protocol = self._protocol(protocol)
        records = self.split(split).records if split is not None else self.records
        if modality != "text":
            return tuple(Sample(r.id, modality, getattr(r, _checked(modality)), r.label, r.id) for r in records if r.has(modality))
        items = [Sample(f"{r.id}#{i}", "text", t, r.label, r.id) for r in records for i, t in enumerate(r.texts)]
        if protocol == "class":
            present = sorted({r.label for r in records if r.label is not None})
            items += [
                Sample(f"class:{label}#{i}", "text", t, label)
                for label in present for i, t in enumerate(self.class_texts.get(label, ())[:texts_per_class])
            ]
        return tuple(items)

    def pairs(self, a: str, b: str, split: str = "train", protocol: str | None = None, seed: int = 0) -> list[Pair]:
        """Positive (a, b) pairs: every a-item of a record with each b-item of it (instance), or with a seeded random b-item of its label (class)."""
        protocol = self._protocol(protocol, a, b)
        left, groups = self.samples(a, split, protocol), _group(self.samples(b, split, protocol), protocol)
        if protocol == "instance":
            return [Pair(x, y) for x in left for y in groups.get(x.record_id, ())]
        rng = np.random.default_rng(seed)
        pairs = []
        for x in left:
            candidates = groups.get(x.label, []) if x.label is not None else []
            if candidates:
                pairs.append(Pair(x, candidates[int(rng.integers(len(candidates)))]))
        return pairs

    def retrieval(self, query: str, corpus: str, split: str | None = None, protocol: str | None = None,
                  texts_per_class: int | None = None) -> RetrievalTask:
        """Queries of one modality against a corpus of another in ``split`` (default ``eval_split``); queries with nothing relevant are dropped."""
        protocol = self._protocol(protocol, query, corpus)
        split = self.eval_split if split is None else split
        queries = self.samples(query, split, protocol, texts_per_class)
        docs = self.samples(corpus, split, protocol, texts_per_class)
        groups = _group(docs, protocol)
        relevant = {q.id: frozenset(d.id for d in groups[k]) for q in queries if (k := _key(q, protocol)) in groups}
        kept = tuple(q for q in queries if q.id in relevant)
        return RetrievalTask(f"{self.name}/{split} {query}->{corpus} ({protocol})", kept, docs, relevant)

    def _protocol(self, protocol: str | None, *between: str) -> str:
        """The protocol to use (the dataset's by default), checking it and that ``between`` are two different modalities."""
        protocol = self.protocol if protocol is None else protocol
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
        if between and _checked(between[0]) == _checked(between[1]):
            raise ValueError(f"pairs and retrieval need two different modalities, got {between[0]!r} twice")
        return protocol


def _key(item: Sample, protocol: str) -> str | None:
    """What makes two samples relevant to each other: the same record (instance) or the same label (class)."""
    return item.record_id if protocol == "instance" else item.label


def _group(items: tuple[Sample, ...], protocol: str) -> dict[str, list[Sample]]:
    """Samples grouped by ``_key``; samples without one are left out."""
    groups: dict[str, list[Sample]] = {}
    for item in items:
        key = _key(item, protocol)
        if key is not None:
            groups.setdefault(key, []).append(item)
    return groups


def merge(name: str, *datasets: Dataset, protocol: str = "class", eval_split: str = "test") -> Dataset:
    """One dataset holding every record of several (ids must stay unique); class texts are merged per label."""
    class_texts: dict[str, tuple[str, ...]] = {}
    for dataset in datasets:
        for label, texts in dataset.class_texts.items():
            class_texts[label] = tuple(dict.fromkeys(class_texts.get(label, ()) + tuple(texts)))
    records = tuple(r for dataset in datasets for r in dataset.records)
    return Dataset(name, records, class_texts, protocol, eval_split)

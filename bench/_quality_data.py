"""What ``bench.quality`` evaluates: suites of retrieval directions built from ``engine.datasets``, their vectors
(encoded once per item) and their media written as files for a real ingest."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from engine.datasets import Dataset, Sample, SceneConfig, generate_scenes, load_digits_trimodal, load_esc
from engine.models import AudioClip, Encoder

FSDD_PAIRS = (("audio", ("image",)), ("image", ("audio",)), ("text", ("image",)), ("image", ("text",)),
              ("text", ("audio",)), ("audio", ("text",)), ("text", ("image", "audio")))


@dataclass(frozen=True)
class Direction:
    """Queries of one modality against a corpus of one or more, with the boolean relevance matrix."""

    name: str
    queries: tuple[Sample, ...]
    corpus: tuple[Sample, ...]
    relevant: np.ndarray
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Suite:
    """A dataset's evaluation: its protocol (``instance`` or ``class``) and retrieval directions."""

    name: str
    protocol: str
    directions: tuple[Direction, ...]
    description: str


def direction(data: Dataset, query: str, targets: tuple[str, ...], texts_per_class: int | None = None) -> Direction:
    """One direction from the dataset's own retrieval tasks (eval split, its protocol); several targets are concatenated."""
    tasks = [data.retrieval(query, t, texts_per_class=texts_per_class) for t in targets]
    if any(t.queries != tasks[0].queries for t in tasks[1:]):
        raise ValueError(f"{data.name}: {query}->{'+'.join(targets)} keeps different queries per target")
    relevant = np.hstack([t.relevance_matrix() for t in tasks])
    corpus = tuple(item for t in tasks for item in t.corpus)
    return Direction(f"{query}->{'+'.join(targets)}", tasks[0].queries, corpus, relevant, targets)


def scenes_suite(n_scenes: int = 10_000, seed: int = 0) -> Suite:
    """Synthetic scenes, test split (descriptions never trained on), instance protocol, text<->image."""
    data = generate_scenes(SceneConfig(n_scenes=n_scenes, seed=seed, audio=False))
    return Suite("scenes", "instance", (direction(data, "text", ("image",)), direction(data, "image", ("text",))),
                 f"synthetic scenes (seed {seed}, {n_scenes} generated), test split; a caption's one image is relevant")


def esc10_suite(root: Path) -> Suite:
    """ESC-10 fold 5 against the ten canonical class captions, class protocol."""
    data = load_esc(root)
    return Suite("esc10", "class", (direction(data, "audio", ("text",), 1), direction(data, "text", ("audio",), 1)),
                 "ESC-10 fold 5 (held out) and the ten class captions; same class is relevant")


def fsdd_suite(root: Path) -> Suite:
    """FSDD speech of held-out speakers, held-out sklearn digit images and digit words, class protocol."""
    data = load_digits_trimodal(root)
    return Suite("fsdd", "class", tuple(direction(data, q, t) for q, t in FSDD_PAIRS),
                 "FSDD speech (held-out speakers nicolas, theo), sklearn digit images (test split), digit words; "
                 "same digit is relevant")


def subsample(suite: Suite, max_queries: int | None, seed: int = 0) -> Suite:
    """At most ``max_queries`` seeded queries per direction (all when None)."""
    if max_queries is None:
        return suite
    rng = np.random.default_rng(seed)
    out = []
    for d in suite.directions:
        if len(d.queries) <= max_queries:
            out.append(d)
            continue
        keep = np.sort(rng.choice(len(d.queries), max_queries, replace=False))
        out.append(Direction(d.name, tuple(d.queries[i] for i in keep), d.corpus, d.relevant[keep], d.targets))
    return Suite(suite.name, suite.protocol, tuple(out), suite.description)


class VectorCache:
    """Encodes each item once per modality, by item id, and keeps the encoding time per modality."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.memo: dict[tuple[str, str], np.ndarray] = {}
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, items: tuple[Any, ...]) -> np.ndarray:
        missing = {(it.modality, it.id): it for it in items if (it.modality, it.id) not in self.memo}
        by_modality: dict[str, list[Any]] = {}
        for it in missing.values():
            by_modality.setdefault(it.modality, []).append(it)
        for modality, group in by_modality.items():
            contents = [it.load() for it in group]  # decoding is not encoding: keep it out of the timing
            start = time.perf_counter()
            vectors = self.encoder.encode(modality, contents, batch_size=64)
            self.seconds[modality] = self.seconds.get(modality, 0.0) + time.perf_counter() - start
            self.counts[modality] = self.counts.get(modality, 0) + len(group)
            self.memo.update({(modality, it.id): v for it, v in zip(group, vectors)})
        return np.stack([self.memo[(it.modality, it.id)] for it in items])

    def ms_per_item(self) -> dict[str, float]:
        """Batched encoding time per item, by modality."""
        return {m: 1000 * s / self.counts[m] for m, s in self.seconds.items()}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


def write_item(item: Sample, path_stem: Path) -> Path:
    """Write one item as a file ingest reads (source files copied, generated media saved as PNG/WAV, text as .txt)."""
    content = item.content
    if item.modality == "text":
        path = path_stem.with_suffix(".txt")
        path.write_text(str(content), encoding="utf-8")
    elif isinstance(content, (str, Path)) and Path(content).is_file():
        path = path_stem.with_suffix(Path(content).suffix)
        shutil.copyfile(content, path)
    elif item.modality == "image":
        path = path_stem.with_suffix(".png")
        image: Image.Image = item.load()  # type: ignore[assignment]
        image.save(path)
    else:
        path = path_stem.with_suffix(".wav")
        clip: AudioClip = item.load()  # type: ignore[assignment]
        soundfile.write(path, clip.samples, clip.sample_rate)
    return path


def write_corpus(suite: Suite, folder: Path) -> dict[str, tuple[str, str]]:
    """Write every corpus item of the suite once under ``folder/<modality>/``; returns file path -> (modality, item id)."""
    written: dict[tuple[str, str], str] = {}
    for d in suite.directions:
        for item in d.corpus:
            key = (item.modality, item.id)
            if key not in written:
                sub = folder / item.modality
                sub.mkdir(parents=True, exist_ok=True)
                written[key] = str(write_item(item, sub / f"{len(written):06d}-{_safe(item.id)}"))
    return {path: key for key, path in written.items()}

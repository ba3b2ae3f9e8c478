"""``xmodal train-reranker``: build directions from dataset specs, train the re-ranker, save it beside a preset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from core.errors import InvalidInput
from engine.models import Encoder
from engine.train.rerank_data import EncodedDirection, encode_cached, encoded_direction
from engine.rerank.model import Reranker
from engine.train.rerank import RerankTrainConfig, train_reranker
from engine.train.data import TensorCache


def dataset_directions(encoder: Encoder, dataset: Any, pairs: Sequence[tuple[str, str]], split: str,
                       cache: TensorCache | None, protocol: str | None = None) -> list[EncodedDirection]:
    """One ``EncodedDirection`` per (query, corpus) modality pair of a dataset split; items are encoded once per
    modality."""
    encoded: dict[tuple[str, ...], Any] = {}
    out = []
    for query, corpus in pairs:
        task = dataset.retrieval(query, corpus, split=split, protocol=protocol)
        sides = []
        for modality, items in ((query, task.queries), (corpus, task.corpus)):
            key = (modality, *[i.id for i in items])
            if key not in encoded:
                encoded[key] = encode_cached(encoder, modality, items, cache, f"{dataset.name}:{split}")
            sides.append(encoded[key])
        out.append(encoded_direction(f"{dataset.name}:{query}->{corpus}", sides[0], sides[1], task.relevance_matrix()))
    return out


def with_counterfactuals(dataset: Any, split: str = "train") -> Any:
    """Synthetic scenes plus, for each scene of ``split``, distractors that differ only in binding: renders of its
    hard-negative scenes (swapped colours or relation) and its hard-negative captions, relevant to nothing.

    Mined first-stage negatives then include exactly the cases a pooled embedding confuses and token-level
    attention can tell apart. Datasets without scenes come back unchanged.
    """
    from functools import partial
    import random

    from engine.datasets import Record, hard_negative_scenes, render_image

    extra = []
    for record in dataset.records:
        scene = record.meta.get("scene") if record.split == split else None
        if scene is None:
            continue
        size = record.image.args[1] if isinstance(record.image, partial) and len(record.image.args) > 1 else 64
        rng = random.Random(f"xmodal-rerank-counterfactual:{record.id}")
        extra += [Record(f"{record.id}~cf{k}", split, image=partial(render_image, negative, size))
                  for k, negative in enumerate(hard_negative_scenes(scene, rng))]
        if record.hard_negatives:
            extra.append(Record(f"{record.id}~neg", split, texts=record.hard_negatives))
    return replace(dataset, records=dataset.records + tuple(extra)) if extra else dataset


def split_names(dataset: Any, wanted: Sequence[str]) -> list[str]:
    """The wanted split names the dataset has (error naming what exists otherwise)."""
    found = [s for s in wanted if s in dataset.splits]
    if not found:
        raise InvalidInput(f"dataset {dataset.name} has none of the splits {list(wanted)}; it has {dataset.splits}")
    return found


def train_and_save(encoder: Encoder, train: list[EncodedDirection], val: list[EncodedDirection], out: Path,
                   config: RerankTrainConfig, on_step: Callable[[int, float], None] | None = None) -> tuple[Reranker, dict]:
    """Train, then save the re-ranker to ``out`` with its report (``report.json``)."""
    model, report = train_reranker(train, val, config, on_step)
    # Directions are named "<dataset>:<query>-><target>"; the search layer switches on per "<query>-><target>".
    by_modality: dict[str, list[bool]] = {}
    for name, e in report["evaluation"].items():
        pair = name.split(":", 1)[-1]
        by_modality.setdefault(pair, []).append(name in model.config.enabled)
    enabled = tuple(sorted(p for p, votes in by_modality.items() if all(votes)))
    model.config = replace(model.config, enabled=enabled)
    report["enabled"] = list(enabled)
    report["preset"] = encoder.preset.name
    out.mkdir(parents=True, exist_ok=True)
    model.save(out)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return model, report
